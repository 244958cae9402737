"""The ctypes layer: the PKCS#11 structures and entry points python-pkcs11 does not let us reach.

Two calls go around python-pkcs11: ``C_Initialize`` with our own arguments (locking, NSS's parameters; see the
package's docstring) and a GCM ``C_Encrypt`` into a buffer we size (``encrypt_gcm_presized``). Both reach the
same in-process instance of the library that python-pkcs11 drives.
"""

from __future__ import annotations

import ctypes
from typing import Any

from donjon.drivers.pkcs11.errors import TokenUnavailable
from donjon.errors import ConfigurationError

CKR_OK = 0x0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_OS_LOCKING_OK = 0x2
CKM_AES_GCM = 0x1087
GCM_TAG_BYTES = 16


# CK_C_INITIALIZE_ARGS up to its flags; the standard struct and NSS's differ only after them.
_INITIALIZE_HEAD: list[tuple[str, Any]] = [
    ("CreateMutex", ctypes.c_void_p),
    ("DestroyMutex", ctypes.c_void_p),
    ("LockMutex", ctypes.c_void_p),
    ("UnlockMutex", ctypes.c_void_p),
    ("flags", ctypes.c_ulong),
]


class CK_C_INITIALIZE_ARGS(ctypes.Structure):
    _fields_ = [*_INITIALIZE_HEAD, ("pReserved", ctypes.c_void_p)]


class CK_NSS_C_INITIALIZE_ARGS(ctypes.Structure):
    # NSS softoken's variant: its LibraryParameters string sits where pReserved is in the standard struct.
    _fields_ = [*_INITIALIZE_HEAD, ("LibraryParameters", ctypes.c_char_p), ("pReserved", ctypes.c_void_p)]


class CK_GCM_PARAMS(ctypes.Structure):
    _fields_ = [
        ("pIv", ctypes.c_void_p),
        ("ulIvLen", ctypes.c_ulong),
        ("ulIvBits", ctypes.c_ulong),
        ("pAAD", ctypes.c_void_p),
        ("ulAADLen", ctypes.c_ulong),
        ("ulTagBits", ctypes.c_ulong),
    ]


class CK_MECHANISM(ctypes.Structure):
    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


_Fn = ctypes.c_void_p
# The head of CK_FUNCTION_LIST (PKCS#11 2.40 §5.15), as far as the functions called here.
_FUNCTION_NAMES = (
    "C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo C_GetTokenInfo "
    "C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession C_CloseSession "
    "C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login C_Logout "
    "C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue "
    "C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt"
).split()


class CK_FUNCTION_LIST_HEAD(ctypes.Structure):
    _fields_ = [("version_major", ctypes.c_ubyte), ("version_minor", ctypes.c_ubyte)] + [
        (name, _Fn) for name in _FUNCTION_NAMES
    ]


_CK_RV = ctypes.c_ulong
_InitializeFn = ctypes.CFUNCTYPE(_CK_RV, ctypes.c_void_p)
_FinalizeFn = ctypes.CFUNCTYPE(_CK_RV, ctypes.c_void_p)
_EncryptInitFn = ctypes.CFUNCTYPE(_CK_RV, ctypes.c_ulong, ctypes.POINTER(CK_MECHANISM), ctypes.c_ulong)
_EncryptFn = ctypes.CFUNCTYPE(
    _CK_RV, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong)
)


class Functions:
    """Direct entry points into a loaded module (the same in-process instance python-pkcs11 drives)."""

    def __init__(self, path: str) -> None:
        self.dll = ctypes.CDLL(path)
        pointer = ctypes.POINTER(CK_FUNCTION_LIST_HEAD)()
        rv = self.dll.C_GetFunctionList(ctypes.byref(pointer))
        if rv != CKR_OK or not pointer:
            raise ConfigurationError(f"PKCS#11 library {path}: C_GetFunctionList failed (0x{rv:x})")
        head = pointer.contents
        self.initialize = _InitializeFn(head.C_Initialize)
        self.finalize = _FinalizeFn(head.C_Finalize)
        self.encrypt_init = _EncryptInitFn(head.C_EncryptInit)
        self.encrypt = _EncryptFn(head.C_Encrypt)


def os_locking_args() -> CK_C_INITIALIZE_ARGS:
    """``C_Initialize`` arguments for a module called from many threads: use the OS's locking."""
    return CK_C_INITIALIZE_ARGS(flags=CKF_OS_LOCKING_OK)


def encrypt_gcm_presized(
    functions: Functions, session_handle: int, key_handle: int, nonce: bytes, aad: bytes, data: bytes
) -> bytes:
    """C_Encrypt with CKM_AES_GCM into a buffer sized by us.

    NSS 3.87's softoken under-reports the output length of a GCM C_Encrypt size query (it leaves out the tag) and
    python-pkcs11 passes that size back, which fails with CKR_BUFFER_TOO_SMALL. Ciphertext || tag is exactly
    ``len(data) + 16`` bytes, so no query is needed.
    """
    iv = ctypes.create_string_buffer(nonce, len(nonce))
    ad = ctypes.create_string_buffer(aad, len(aad))
    params = CK_GCM_PARAMS(
        pIv=ctypes.addressof(iv),
        ulIvLen=len(nonce),
        ulIvBits=8 * len(nonce),  # NSS rejects 0 here
        pAAD=ctypes.addressof(ad) if aad else None,
        ulAADLen=len(aad),
        ulTagBits=8 * GCM_TAG_BYTES,
    )
    mechanism = CK_MECHANISM(CKM_AES_GCM, ctypes.addressof(params), ctypes.sizeof(params))
    rv = functions.encrypt_init(session_handle, ctypes.byref(mechanism), key_handle)
    if rv != CKR_OK:
        raise TokenUnavailable(f"C_EncryptInit(AES-GCM) failed (0x{rv:x})")
    out = ctypes.create_string_buffer(len(data) + GCM_TAG_BYTES)
    length = ctypes.c_ulong(len(out))
    rv = functions.encrypt(session_handle, data, len(data), ctypes.addressof(out), ctypes.byref(length))
    if rv != CKR_OK:
        raise TokenUnavailable(f"C_Encrypt(AES-GCM) failed (0x{rv:x})")
    return out.raw[: length.value]
