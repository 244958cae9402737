"""The PKCS#11 keystore: the root key is a non-extractable AES-256 key in an HSM or SoftHSM2 token.

Options: ``library`` (the module's .so; default SoftHSM2's), ``token_label`` (required), ``pin_file`` or
``pin_env`` (default ``DONJON_PKCS11_PIN``), ``key_label`` (default ``donjon-root``), ``create`` (default true:
generate the key in the token on first use), ``sessions`` (the most sessions opened at once, default 8).

KEKs are sealed inside the token with AES-GCM, the context as associated data (see ``_pkcs11_common``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from donjon.errors import ConfigurationError
from donjon.keystores._pkcs11_common import (
    Pkcs11Base,
    _encrypt_with_python_pkcs11,
    acquire_module,
    bool_option,
    check_options,
    first_existing,
    int_option,
    open_root_key,
    os_locking_args,
    pin_source,
)

DEFAULT_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
_OPTIONS = {"library", "token_label", "pin_file", "pin_env", "key_label", "create", "sessions"}
_WHAT = "pkcs11 keystore"


class Pkcs11Keystore(Pkcs11Base):
    _prefix = "pkcs11"
    _what = _WHAT

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Pkcs11Keystore:
        opts = dict(options)
        check_options(opts, _OPTIONS, _WHAT)
        token_label = str(opts.get("token_label", ""))
        if not token_label:
            raise ConfigurationError(f"{_WHAT}: 'token_label' is required")
        library = str(opts["library"]) if "library" in opts else first_existing(DEFAULT_LIBRARIES, _WHAT, "SoftHSM2")
        key_label = str(opts.get("key_label", "donjon-root"))
        if not key_label:
            raise ConfigurationError(f"{_WHAT}: 'key_label' must not be empty")
        create = bool_option(opts, "create", True, _WHAT)
        sessions = int_option(opts, "sessions", 8, 1, 1024, _WHAT)
        pins = pin_source(opts, "DONJON_PKCS11_PIN", _WHAT)
        # CKF_OS_LOCKING_OK: the server calls in from many threads (see _pkcs11_common).
        module = acquire_module(library, os_locking_args(), init_key="CKF_OS_LOCKING_OK")
        shared, key_id = open_root_key(module, token_label, pins, key_label, create, sessions, _WHAT)
        return cls(module, shared, key_label, key_id, _encrypt_with_python_pkcs11)
