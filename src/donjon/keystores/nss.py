"""The NSS keystore: the root key is a non-extractable AES-256 key in an NSS database (``certutil -N``).

NSS's softoken (libsoftokn3.so) is driven as a PKCS#11 module over the database's persistent token,
"NSS Certificate DB". Options: ``db_dir`` (required: the directory holding key4.db), ``pin_file`` or ``pin_env``
(default ``DONJON_NSS_PIN``: the database password), ``key_label`` (default ``donjon-root``), ``create`` (default
true), ``library`` (default: libsoftokn3.so from the usual library directories), ``sessions`` (default 8).

Two softoken quirks are handled here and in ``_pkcs11_common``:

* ``C_Initialize(NULL)`` is refused (CKR_ARGUMENTS_BAD): the softoken needs NSS's own init struct carrying
  "LibraryParameters" (which database, which prefixes); we pass it, with CKF_OS_LOCKING_OK;
* a GCM ``C_Encrypt`` size query under-reports (no room for the tag), so wrapping calls C_Encrypt through ctypes
  with a buffer we size ourselves. Opening (C_Decrypt) works through python-pkcs11 as is.

NSS's CKM_AES_KEY_WRAP_PAD is RFC 3394 plus PKCS#7 padding, not RFC 5649; we do not use key wrapping at all.
One process can hold one NSS database open at a time (the softoken is initialised per process).
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from pkcs11.types import SecretKey

from donjon.errors import ConfigurationError
from donjon.keystores._pkcs11_common import (
    CK_NSS_C_INITIALIZE_ARGS,
    CKF_OS_LOCKING_OK,
    Encryptor,
    Module,
    Pkcs11Base,
    PooledSession,
    acquire_module,
    bool_option,
    check_options,
    encrypt_gcm_presized,
    first_existing,
    int_option,
    open_root_key,
    pin_source,
)

TOKEN_LABEL = "NSS Certificate DB"  # the softoken's persistent (key4.db) token; slot 1 is the session-only one
DEFAULT_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
    "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
    "/usr/lib64/libsoftokn3.so",
    "/usr/lib/libsoftokn3.so",
    *sorted(glob.glob("/usr/lib/*/libsoftokn3.so")),
)
_OPTIONS = {"db_dir", "library", "pin_file", "pin_env", "key_label", "create", "sessions"}
_WHAT = "nss keystore"


def library_parameters(db_dir: Path) -> str:
    """The softoken's LibraryParameters, as NSS itself writes them to pkcs11.txt for an sql: database."""
    return f"configdir='sql:{db_dir}' certPrefix='' keyPrefix='' secmod='secmod.db' flags= "


def _presized_encryptor(module: Module) -> Encryptor:
    def encrypt(pooled: PooledSession, key: SecretKey, nonce: bytes, aad: bytes, data: bytes) -> bytes:
        key_handle = key.handle
        assert key_handle is not None
        # The Cython Session has the handle; python-pkcs11's type stubs do not declare it.
        session_handle = int(cast(Any, pooled.session).handle)
        return encrypt_gcm_presized(module.functions, session_handle, key_handle, nonce, aad, data)

    return encrypt


class NssKeystore(Pkcs11Base):
    _prefix = "nss"
    _what = _WHAT

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> NssKeystore:
        opts = dict(options)
        check_options(opts, _OPTIONS, _WHAT)
        if not opts.get("db_dir"):
            raise ConfigurationError(f"{_WHAT}: 'db_dir' is required")
        db_dir = Path(str(opts["db_dir"])).resolve()
        if any(c in str(db_dir) for c in "'\"\\"):
            # The parameter string quotes the path; NSS's parser has no escape we could rely on.
            raise ConfigurationError(f"{_WHAT}: db_dir must not contain quotes or backslashes")
        if not (db_dir / "key4.db").is_file():
            raise ConfigurationError(f"{_WHAT}: {db_dir} holds no NSS key database (create it with certutil -N)")
        library = (
            str(opts["library"]) if "library" in opts else first_existing(DEFAULT_LIBRARIES, _WHAT, "NSS softoken")
        )
        key_label = str(opts.get("key_label", "donjon-root"))
        if not key_label:
            raise ConfigurationError(f"{_WHAT}: 'key_label' must not be empty")
        create = bool_option(opts, "create", True, _WHAT)
        sessions = int_option(opts, "sessions", 8, 1, 1024, _WHAT)
        pins = pin_source(opts, "DONJON_NSS_PIN", _WHAT)
        params = library_parameters(db_dir)
        args = CK_NSS_C_INITIALIZE_ARGS(flags=CKF_OS_LOCKING_OK, LibraryParameters=params.encode())
        module = acquire_module(library, args, init_key=f"NSS database {db_dir}")
        shared, key_id = open_root_key(module, TOKEN_LABEL, pins, key_label, create, sessions, _WHAT)
        return cls(module, shared, key_label, key_id, _presized_encryptor(module))
