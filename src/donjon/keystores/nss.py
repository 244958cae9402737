"""The NSS keystore: the root key is a non-extractable AES-256 key in an NSS database (``certutil -N``).

NSS's softoken (libsoftokn3.so) is driven as a PKCS#11 module over the database's persistent token,
"NSS Certificate DB". Options: ``db_dir`` (required: the directory holding key4.db), ``pin_file`` or ``pin_env``
(default ``DONJON_NSS_PIN``: the database password), ``key_label`` (default ``donjon-root``), ``create`` (default
true), ``library`` (default: libsoftokn3.so from the usual library directories), ``sessions`` (default 8).

Two softoken quirks are handled here and in ``donjon.drivers.pkcs11.native``:

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

from donjon.drivers.pkcs11.native import CK_NSS_C_INITIALIZE_ARGS, CKF_OS_LOCKING_OK, encrypt_gcm_presized
from donjon.drivers.pkcs11.session import PooledSession
from donjon.errors import ConfigurationError
from donjon.keystores._pkcs11_base import Pkcs11Base, TokenKeystoreOptions
from donjon.options import Text, parse_options

TOKEN_LABEL = "NSS Certificate DB"  # the softoken's persistent (key4.db) token; slot 1 is the session-only one
DEFAULT_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
    "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
    "/usr/lib64/libsoftokn3.so",
    "/usr/lib/libsoftokn3.so",
    *sorted(glob.glob("/usr/lib/*/libsoftokn3.so")),
)


class NssKeystoreOptions(TokenKeystoreOptions):
    db_dir: Text  # the directory holding key4.db


def library_parameters(db_dir: Path) -> str:
    """The softoken's LibraryParameters, as NSS itself writes them to pkcs11.txt for an sql: database."""
    return f"configdir='sql:{db_dir}' certPrefix='' keyPrefix='' secmod='secmod.db' flags= "


class NssKeystore(Pkcs11Base):
    _prefix = "nss"
    _libraries = DEFAULT_LIBRARIES
    _library_kind = "NSS softoken"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> NssKeystore:
        opts = parse_options(NssKeystoreOptions, options, cls._what())
        db_dir = Path(opts.db_dir).resolve()
        if any(c in str(db_dir) for c in "'\"\\"):
            # The parameter string quotes the path; NSS's parser has no escape we could rely on.
            raise ConfigurationError(f"{cls._what()}: db_dir must not contain quotes or backslashes")
        if not (db_dir / "key4.db").is_file():
            raise ConfigurationError(f"{cls._what()}: {db_dir} holds no NSS key database (create it with certutil -N)")
        params = library_parameters(db_dir)
        args = CK_NSS_C_INITIALIZE_ARGS(flags=CKF_OS_LOCKING_OK, LibraryParameters=params.encode())
        return cls._open(args, f"NSS database {db_dir}", TOKEN_LABEL, opts)

    def _encrypt(self, pooled: PooledSession, key: SecretKey, nonce: bytes, aad: bytes, data: bytes) -> bytes:
        key_handle = key.handle
        assert key_handle is not None
        # The Cython Session has the handle; python-pkcs11's type stubs do not declare it.
        session_handle = int(cast(Any, pooled.session).handle)
        return encrypt_gcm_presized(self._module.functions, session_handle, key_handle, nonce, aad, data)
