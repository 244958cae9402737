"""PKCS#11 through python-pkcs11, shared by the PKCS#11 and NSS keystores and the SDK's ``pkcs11`` backend.

- ``native``: the few ctypes calls python-pkcs11 cannot make for us (initialising with locking, a GCM
  encrypt into a buffer we size);
- ``module``: a module loaded and initialised once per process, finalised after its last user;
- ``pins``: where a PIN comes from (file or environment variable), read only at login;
- ``session``: one login per token and process, and a pool of sessions lent to one thread at a time;
- ``keys``: finding secret keys by label and id, and the non-extractable AES-256 key a keystore roots in.

python-pkcs11 0.10 calls ``C_Initialize(NULL)``, which by the PKCS#11 spec promises the library that no two
threads will ever call it at once: SoftHSM2 then turns its own mutexes off and crashes (double free) under the
server's request threads. ``module`` initialises the same loaded library through ctypes first, with
``CKF_OS_LOCKING_OK`` (and, for NSS, the softoken's database parameters), and stops python-pkcs11 from
initialising it again.
"""
