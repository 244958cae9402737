"""The PKCS#11 keystore: the root key is a non-extractable AES-256 key in an HSM or SoftHSM2 token.

Options: ``library`` (the module's .so; default SoftHSM2's), ``token_label`` (required), ``pin_file`` or
``pin_env`` (default ``DONJON_PKCS11_PIN``), ``key_label`` (default ``donjon-root``), ``create`` (default true:
generate the key in the token on first use), ``sessions`` (the most sessions opened at once, default 8).

KEKs are sealed inside the token with AES-GCM, the context as associated data (see ``_pkcs11_base``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from donjon.drivers.pkcs11.native import os_locking_args
from donjon.keystores._pkcs11_base import Pkcs11Base, TokenKeystoreOptions
from donjon.options import Text, parse_options

DEFAULT_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


class Pkcs11KeystoreOptions(TokenKeystoreOptions):
    token_label: Text


class Pkcs11Keystore(Pkcs11Base):
    _prefix = "pkcs11"
    _libraries = DEFAULT_LIBRARIES
    _library_kind = "SoftHSM2"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Pkcs11Keystore:
        opts = parse_options(Pkcs11KeystoreOptions, options, cls._what())
        # CKF_OS_LOCKING_OK: the server calls in from many threads (see donjon.drivers.pkcs11).
        return cls._open(os_locking_args(), "CKF_OS_LOCKING_OK", opts.token_label, opts)
