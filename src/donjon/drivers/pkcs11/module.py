"""PKCS#11 modules loaded in this process: each loaded once, initialised while in use, finalised after.

A module is initialised through ctypes with the arguments its users need (``CKF_OS_LOCKING_OK``; for NSS, the
database), not with python-pkcs11's ``C_Initialize(NULL)`` (see the package's docstring), and only once per
process: users asking for the same settings share it, other settings are refused while it is in use.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pkcs11 import _pkcs11
from pkcs11 import exceptions as p11e

from donjon.drivers.pkcs11.native import CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_OK, Functions
from donjon.errors import ConfigurationError

if TYPE_CHECKING:
    from donjon.drivers.pkcs11.session import SharedToken


@dataclass
class Module:
    """One PKCS#11 library loaded in this process, shared by every user of it.

    Loaded once and kept for the life of the process (python-pkcs11's lib object must not be collected while
    sessions or its subclass's type may be torn down with it); initialised while some user holds it and
    finalised after the last one releases it, so it can be initialised afresh (for NSS: on another database).
    """

    path: str
    functions: Functions
    lib: _pkcs11.lib | None = None
    init_key: str | None = None  # what C_Initialize was given (no secrets in it), None while finalised
    init_args: ctypes.Structure | None = None  # kept alive while initialised: a module may keep the pointer
    users: int = 0
    tokens: dict[str, SharedToken] = field(default_factory=dict)  # logged-in tokens, by label


_modules: dict[str, Module] = {}
# Guards _modules, Module.users/init_key/tokens, the tokens' user counts and _initializing: users open and
# close from any thread.
registry_lock = threading.Lock()
_initializing: list[Module] = []  # the module python-pkcs11's lib.__init__ is initialising


def find_library(candidates: tuple[str, ...], what: str, kind: str) -> str:
    """The first of ``candidates`` that exists (a module's usual install paths)."""
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    raise ConfigurationError(f"{what}: no {kind} found (looked at {', '.join(candidates)}); set 'library'")


def _initialize(module: Module, args: ctypes.Structure) -> None:
    rv = module.functions.initialize(ctypes.byref(args))
    if rv == CKR_CRYPTOKI_ALREADY_INITIALIZED:
        # Other code in this process initialised it, with arguments we cannot know: perhaps without locking,
        # perhaps (NSS) on another database. Using it anyway could crash or use the wrong keys.
        raise ConfigurationError(f"PKCS#11 library {module.path} was already initialised by other code in this process")
    if rv != CKR_OK:
        raise ConfigurationError(f"PKCS#11 library {module.path}: C_Initialize failed (0x{rv:x})")


class _Lib(_pkcs11.lib):
    """python-pkcs11's lib, initialising the module our way instead of with C_Initialize(NULL).

    Defined once at module level: a class made per call would be garbage with its instance, and Cython's
    __dealloc__ then finds its methods gone.
    """

    def initialize(self) -> None:  # the cpdef hook lib.__init__ calls
        module = _initializing[-1]
        assert module.init_args is not None
        _initialize(module, module.init_args)


def acquire_module(path: str, init_args: ctypes.Structure, init_key: str) -> Module:
    """The module at ``path``, initialised with ``init_args`` unless in use already with the same settings."""
    path = os.path.realpath(path)
    with registry_lock:
        module = _modules.get(path)
        if module is None:
            try:
                module = Module(path=path, functions=Functions(path))
            except OSError as exc:
                raise ConfigurationError(f"cannot load PKCS#11 library {path}: {exc}") from None
        if module.init_key is None:
            module.init_args = init_args
            if module.lib is None:
                _initializing.append(module)
                try:
                    module.lib = _Lib(path)
                except BaseException as exc:
                    module.functions.finalize(None)  # if our C_Initialize succeeded; harmless otherwise
                    if isinstance(exc, p11e.PKCS11Error):
                        raise ConfigurationError(f"PKCS#11 library {path}: {type(exc).__name__}") from None
                    raise
                finally:
                    _initializing.pop()
            else:
                _initialize(module, init_args)
            module.init_key = init_key
            _modules[path] = module
        elif module.init_key != init_key:
            raise ConfigurationError(
                f"PKCS#11 library {path} is already in use in this process with other settings ({module.init_key})"
            )
        module.users += 1
        return module


class _Shared(Protocol):
    users: int


def last_user_gone(shared: _Shared) -> bool:
    """Count one user of a shared module or token out (under ``registry_lock``): True when none is left, for
    the caller to close it."""
    shared.users -= 1
    return shared.users <= 0


def release_module(module: Module) -> None:
    """After the last user of a module releases it, finalise it."""
    with registry_lock:
        if last_user_gone(module):
            _finalize(module)


def _finalize(module: Module) -> None:
    for token in list(module.tokens.values()):
        token.close_all()
    module.tokens.clear()
    module.functions.finalize(None)
    module.init_key = module.init_args = None


@atexit.register
def _unload_all() -> None:
    """Drop the lib objects while the interpreter is whole.

    At interpreter teardown python-pkcs11's ``lib.__dealloc__`` looks up ``self.unload`` on a class already
    cleared, and prints an AttributeError on every exit (in server logs: at each worker's shutdown).
    """
    with registry_lock:
        for module in _modules.values():
            if module.init_key is not None:
                _finalize(module)
            module.lib = None
        _modules.clear()
