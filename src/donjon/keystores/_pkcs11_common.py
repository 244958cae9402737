"""What the PKCS#11 keystores share: loading and initialising a module, logging in, a session pool, the blob.

The root key is an AES-256 secret key inside the token, generated there, never extractable. A KEK is wrapped by
encrypting it inside the token with CKM_AES_GCM under that key, with the context as associated data: one
mechanism gives confidentiality, integrity and the binding to the context, and every token we target (SoftHSM2,
NSS softoken, HSMs) implements it.

Blob: ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``; the associated data fed to the
token is ``version || context``, so a blob cannot be re-labelled as another format.

python-pkcs11 0.10 calls ``C_Initialize(NULL)``, which by the PKCS#11 spec promises the library that no two
threads will ever call it at once: SoftHSM2 then turns its own mutexes off and crashes (double free) under the
server's request threads. We initialise the same loaded library through ctypes first, with
``CKF_OS_LOCKING_OK`` (and, for NSS, the softoken's database parameters), and stop python-pkcs11 from
initialising it again. A library is initialised once per process and finalised after its last keystore closes.

A token's login state is per process, not per session, so keystores on one token share one logged-in
``_Token``, which lends sessions from a pool: a session carries one operation at a time (EncryptInit then
Encrypt), so each request thread borrows its own.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import hmac
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, _pkcs11
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, SecretKey, Session, Token

from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey

VERSION = b"\x01"  # AES-256-GCM inside the token, 96-bit random nonce, 128-bit tag
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
ROOT_KEY_ID_BYTES = 16

CKR_OK = 0x0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_OS_LOCKING_OK = 0x2
CKM_AES_GCM = 0x1087

# How a token says "this ciphertext does not open" (measured): SoftHSM2 2.6 answers a wrong tag, wrong
# associated data or a truncated blob with CKR_GENERAL_ERROR; NSS 3.87 with CKR_ENCRYPTED_DATA_INVALID, or
# CKR_DATA_LEN_RANGE when too short. HSMs use the others. During C_Decrypt these are a mismatch, not an outage.
_DECRYPT_MISMATCH: tuple[type[Exception], ...] = (
    p11e.GeneralError,
    p11e.FunctionFailed,
    p11e.EncryptedDataInvalid,
    p11e.EncryptedDataLenRange,
    p11e.DataInvalid,
    p11e.DataLenRange,
)


class KeystoreUnavailable(Exception):
    """The token failed in a way that is not about the data (session lost, device error). Safe to show."""


# --------------------------------------------------------------------------------------------- ctypes layer


class CK_C_INITIALIZE_ARGS(ctypes.Structure):
    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


class CK_NSS_C_INITIALIZE_ARGS(ctypes.Structure):
    # NSS softoken's variant: its LibraryParameters string sits where pReserved is in the standard struct.
    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("LibraryParameters", ctypes.c_char_p),
        ("pReserved", ctypes.c_void_p),
    ]


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


class _Functions:
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


def encrypt_gcm_presized(
    functions: _Functions, session_handle: int, key_handle: int, nonce: bytes, aad: bytes, data: bytes
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
        ulTagBits=8 * TAG_BYTES,
    )
    mechanism = CK_MECHANISM(CKM_AES_GCM, ctypes.addressof(params), ctypes.sizeof(params))
    rv = functions.encrypt_init(session_handle, ctypes.byref(mechanism), key_handle)
    if rv != CKR_OK:
        raise KeystoreUnavailable(f"C_EncryptInit(AES-GCM) failed (0x{rv:x})")
    out = ctypes.create_string_buffer(len(data) + TAG_BYTES)
    length = ctypes.c_ulong(len(out))
    rv = functions.encrypt(session_handle, data, len(data), ctypes.addressof(out), ctypes.byref(length))
    if rv != CKR_OK:
        raise KeystoreUnavailable(f"C_Encrypt(AES-GCM) failed (0x{rv:x})")
    return out.raw[: length.value]


# --------------------------------------------------------------------------------------------- modules


@dataclass
class Module:
    """One PKCS#11 library loaded in this process, shared by every keystore using it.

    Loaded once and kept for the life of the process (python-pkcs11's lib object must not be collected while
    sessions or its subclass's type may be torn down with it); initialised while some keystore uses it and
    finalised after the last one closes, so it can be initialised afresh (for NSS: on another database).
    """

    path: str
    functions: _Functions
    lib: _pkcs11.lib | None = None
    init_key: str | None = None  # what C_Initialize was given (no secrets in it), None while finalised
    init_args: ctypes.Structure | None = None  # kept alive while initialised: a module may keep the pointer
    users: int = 0
    tokens: dict[str, _Token] = field(default_factory=dict)


_modules: dict[str, Module] = {}
# Guards _modules, Module.users/init_key/tokens and _initializing: keystores open and close from any thread.
_registry_lock = threading.Lock()
_initializing: list[Module] = []  # the module python-pkcs11's lib.__init__ is initialising


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
    with _registry_lock:
        module = _modules.get(path)
        if module is None:
            try:
                module = Module(path=path, functions=_Functions(path))
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


def release_module(module: Module) -> None:
    """After the last keystore on a module closes, finalise it."""
    with _registry_lock:
        module.users -= 1
        if module.users > 0:
            return
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
    with _registry_lock:
        for module in _modules.values():
            if module.init_key is not None:
                for token in list(module.tokens.values()):
                    token.close_all()
                module.tokens.clear()
                module.functions.finalize(None)
                module.init_key = module.init_args = None
            module.lib = None
        _modules.clear()


def os_locking_args() -> CK_C_INITIALIZE_ARGS:
    return CK_C_INITIALIZE_ARGS(flags=CKF_OS_LOCKING_OK)


# --------------------------------------------------------------------------------------------- PIN


@dataclass(frozen=True)
class PinSource:
    """Where the PIN comes from, for messages; the PIN itself is read only at login and then dropped."""

    pin_file: Path | None
    pin_env: str

    def describe(self) -> str:
        return f"pin_file {self.pin_file}" if self.pin_file else f"environment variable {self.pin_env}"

    def read(self, what: str) -> str:
        if self.pin_file is not None:
            try:
                mode = self.pin_file.stat().st_mode
                if mode & stat.S_IRWXO:
                    # Group may read (root:donjon 0640), others may not: as the vault keystore's token file.
                    raise ConfigurationError(
                        f"{what}: pin_file {self.pin_file} is readable by others (mode {oct(mode & 0o777)}); chmod 600"
                    )
                text = self.pin_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"{what}: cannot read pin_file {self.pin_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigurationError(f"{what}: pin_file {self.pin_file} is not UTF-8 text") from None
            return text.rstrip("\r\n")
        value = os.environ.get(self.pin_env)
        if value is None:
            raise ConfigurationError(f"{what}: no PIN: set the environment variable {self.pin_env} or pin_file")
        return value


def pin_source(options: dict[str, Any], default_env: str, what: str) -> PinSource:
    if "pin_file" in options and "pin_env" in options:
        raise ConfigurationError(f"{what}: give pin_file or pin_env, not both")
    if "pin_file" in options:
        return PinSource(Path(str(options["pin_file"])), default_env)
    env = str(options.get("pin_env", default_env))
    if not env:
        raise ConfigurationError(f"{what}: pin_env must name an environment variable")
    return PinSource(None, env)


# A per-process key for comparing PINs given to keystores sharing one logged-in token, so no PIN is kept.
_PIN_MAC_KEY = os.urandom(32)


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_PIN_MAC_KEY, pin.encode(), hashlib.sha256).digest()


# --------------------------------------------------------------------------------------------- tokens


@dataclass(eq=False)
class PooledSession:
    session: Session
    keys: dict[str, SecretKey] = field(default_factory=dict)  # root keys found in this session, by id


class _Token:
    """One token, logged in once for the process, with a pool of sessions lent to one thread at a time."""

    def __init__(self, module: Module, label: str, token: Token, pin_digest: bytes | None, max_sessions: int) -> None:
        self.module = module
        self.label = label
        self.token = token
        self.pin_digest = pin_digest
        self.max_sessions = max_sessions
        self.users = 0
        # Holds the login (login state lives while any session is open) and serves start-up lookups.
        self.login_session: Session | None = None
        self._idle: list[PooledSession] = []
        self._open = 0
        self._available = threading.Condition()
        self._closed = False
        self._pid = os.getpid()
        # Keystores opened at once by threads of this process must agree on one root key: one creates it.
        self.setup_lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[PooledSession]:
        if os.getpid() != self._pid:
            # PKCS#11 state does not survive fork(); each worker process must open its own keystore.
            raise KeystoreUnavailable("PKCS#11 keystore used in a forked process; open it after forking")
        pooled = self._take()
        keep = False
        try:
            yield pooled
            keep = True
        except DecryptionFailed:
            keep = True  # the token ended the operation cleanly: the session is fine
            raise
        finally:
            self._give_back(pooled, keep=keep)

    def _take(self) -> PooledSession:
        with self._available:
            while True:
                if self._closed:
                    raise KeystoreUnavailable("PKCS#11 keystore is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.max_sessions:
                    self._open += 1
                    break
                self._available.wait()
        try:
            return PooledSession(self.token.open(rw=True))
        except BaseException:
            with self._available:
                self._open -= 1
                self._available.notify()
            raise

    def _give_back(self, pooled: PooledSession, keep: bool) -> None:
        with self._available:
            if keep and not self._closed:
                self._idle.append(pooled)
            else:
                # After an unexpected failure the session may hold a half-done operation: drop it.
                self._open -= 1
                _close_quietly(pooled.session)
            self._available.notify()

    def close_all(self, drain_seconds: float = 5.0) -> None:
        """Close every session; first let borrowed ones come back, as finalising under a call could crash."""
        with self._available:
            self._closed = True
            for pooled in self._idle:
                _close_quietly(pooled.session)
            self._open -= len(self._idle)
            self._idle.clear()
            self._available.wait_for(lambda: self._open == 0, timeout=drain_seconds)
            if self.login_session is not None:
                _close_quietly(self.login_session)
                self.login_session = None
            self._available.notify_all()


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except p11e.PKCS11Error:
        pass


def open_token(module: Module, token_label: str, pins: PinSource, what: str, max_sessions: int) -> _Token:
    """Find the token and log in, or join this process's login on it (login state is per process, not session)."""
    with _registry_lock:
        shared = module.tokens.get(token_label)
        if shared is not None:
            pin = pins.read(what)
            if shared.pin_digest is not None and not hmac.compare_digest(shared.pin_digest, _pin_digest(pin)):
                # The token is logged in already; a wrong PIN must still be refused, as it would be on its own.
                raise ConfigurationError(f"{what}: token {token_label!r} rejected the PIN from {pins.describe()}")
            shared.users += 1
            return shared
        lib = module.lib
        assert lib is not None, "acquire_module loads it"
        try:
            token = lib.get_token(token_label=token_label)
        except p11e.NoSuchToken:
            labels = sorted(t.label for t in lib.get_tokens())
            raise ConfigurationError(f"{what}: no token labelled {token_label!r} (present: {labels})") from None
        except p11e.MultipleTokensReturned:
            raise ConfigurationError(f"{what}: several tokens are labelled {token_label!r}") from None
        pin = pins.read(what)
        try:
            session = token.open(rw=True, user_pin=pin or None)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange):
            raise ConfigurationError(f"{what}: token {token_label!r} rejected the PIN from {pins.describe()}") from None
        except p11e.PinLocked:
            raise ConfigurationError(f"{what}: the user PIN of token {token_label!r} is locked") from None
        except p11e.UserAlreadyLoggedIn:
            raise ConfigurationError(
                f"{what}: token {token_label!r} is already logged in by other code in this process"
            ) from None
        except p11e.PKCS11Error as exc:
            raise ConfigurationError(
                f"{what}: cannot open a session on {token_label!r}: {type(exc).__name__}"
            ) from None
        shared = _Token(module, token_label, token, _pin_digest(pin) if pin else None, max_sessions)
        shared.login_session = session
        shared.users = 1
        module.tokens[token_label] = shared
        return shared


def release_token(shared: _Token) -> None:
    with _registry_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        if shared.module.tokens.get(shared.label) is shared:
            del shared.module.tokens[shared.label]
    shared.close_all()


# --------------------------------------------------------------------------------------------- root keys


def _root_key_template() -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        # Least privilege: the key only seals and opens KEK blobs.
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.DERIVE: False,
    }


def format_root_key_id(prefix: str, label: str, key_id: bytes) -> str:
    """``<prefix>:<label>:<CKA_ID hex>``: the label for people, the id to tell same-labelled keys apart."""
    return f"{prefix}:{label}:{key_id.hex()}"


def parse_root_key_id(prefix: str, root_key_id: str) -> tuple[str, bytes] | None:
    if not root_key_id.startswith(prefix + ":"):
        return None
    label, sep, id_hex = root_key_id[len(prefix) + 1 :].rpartition(":")
    if not sep or not label:
        return None
    try:
        return label, bytes.fromhex(id_hex)
    except ValueError:
        return None


def _find(session: Session, label: str, key_id: bytes | None) -> list[SecretKey]:
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
    if key_id:
        template[Attribute.ID] = key_id
    found = [k for k in session.get_objects(template) if isinstance(k, SecretKey)]
    if key_id is not None and not key_id:
        found = [k for k in found if not _key_id(k)]
    return found


def _key_id(key: SecretKey) -> bytes:
    try:
        value = key[Attribute.ID]
    except p11e.PKCS11Error:
        return b""
    return bytes(value) if value else b""


def _check_root_key(key: SecretKey, what: str, label: str) -> None:
    """An existing key is only used if it is what we would have created: AES-256, sensitive, never leaving."""

    def attr(a: Attribute) -> Any:
        try:
            return key[a]
        except p11e.PKCS11Error:
            return None

    problems = []
    if attr(Attribute.KEY_TYPE) != KeyType.AES or attr(Attribute.VALUE_LEN) != KEY_BYTES:
        problems.append("not an AES-256 key")
    if attr(Attribute.EXTRACTABLE) is not False:
        problems.append("extractable")
    if attr(Attribute.SENSITIVE) is not True:
        problems.append("not sensitive")
    if attr(Attribute.ENCRYPT) is not True or attr(Attribute.DECRYPT) is not True:
        problems.append("lacks CKA_ENCRYPT/CKA_DECRYPT")
    if problems:
        raise ConfigurationError(f"{what}: root key {label!r} is unusable: {', '.join(problems)}")


def _find_or_create_root_key(session: Session, label: str, create: bool, what: str) -> bytes:
    """The CKA_ID of the root key labelled ``label``, generating it in the token if absent and allowed.

    If several keys carry the label (two processes' first starts raced), the lowest CKA_ID wins, so processes
    opened later agree; wraps by either key keep opening anywhere, as the root key id names the exact key.
    """
    try:
        found = _find(session, label, None)
        if not found:
            if not create:
                raise ConfigurationError(f"{what}: no root key labelled {label!r} in the token (create = false)")
            session.generate_key(
                KeyType.AES,
                8 * KEY_BYTES,
                id=os.urandom(ROOT_KEY_ID_BYTES),
                label=label,
                store=True,
                template=_root_key_template(),
            )
            found = _find(session, label, None)
    except p11e.PKCS11Error as exc:
        raise ConfigurationError(f"{what}: cannot find or create root key {label!r}: {type(exc).__name__}") from None
    key = min(found, key=_key_id)
    _check_root_key(key, what, label)
    return _key_id(key)


# --------------------------------------------------------------------------------------------- the keystore

Encryptor = Callable[[PooledSession, SecretKey, bytes, bytes, bytes], bytes]


def _encrypt_with_python_pkcs11(pooled: PooledSession, key: SecretKey, nonce: bytes, aad: bytes, data: bytes) -> bytes:
    result = cast(EncryptMixin, key).encrypt(
        data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 8 * TAG_BYTES)
    )
    assert isinstance(result, bytes)  # a bytes input gives bytes, an iterable gives an iterator
    return result


class Pkcs11Base:
    """A keystore over one root key in one token; subclasses say how to open the module and token."""

    _prefix = "pkcs11"
    _what = "pkcs11 keystore"

    def __init__(self, module: Module, shared: _Token, label: str, key_id: bytes, encryptor: Encryptor) -> None:
        self._module: Module | None = module
        self._token: _Token | None = shared
        self._label = label
        self._current = format_root_key_id(self._prefix, label, key_id)
        self._encryptor = encryptor
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root_key_id={self._current!r})"

    def root_key_id(self) -> str:
        return self._current

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        if not key:
            raise ValueError("nothing to wrap")
        nonce = os.urandom(NONCE_BYTES)
        with self._borrow() as pooled:
            root = self._root_key(pooled, self._current)
            if root is None:
                raise KeystoreUnavailable(f"{self._what}: root key {self._current} vanished from the token")
            try:
                sealed = self._encryptor(pooled, root, nonce, VERSION + context, key)
            except p11e.PKCS11Error as exc:
                raise KeystoreUnavailable(f"{self._what}: wrapping failed: {type(exc).__name__}") from None
        if len(sealed) != len(key) + TAG_BYTES:
            raise KeystoreUnavailable(f"{self._what}: the token returned a malformed AES-GCM output")
        return WrappedKey(self._current, VERSION + nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        blob = wrapped.blob
        if len(blob) <= 1 + NONCE_BYTES + TAG_BYTES or blob[:1] != VERSION:
            raise DecryptionFailed
        nonce = blob[1 : 1 + NONCE_BYTES]
        with self._borrow() as pooled:
            root = self._root_key(pooled, wrapped.root_key_id)
            if root is None:
                raise DecryptionFailed
            try:
                plain = cast(DecryptMixin, root).decrypt(
                    blob[1 + NONCE_BYTES :],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, VERSION + context, 8 * TAG_BYTES),
                )
            except _DECRYPT_MISMATCH:
                raise DecryptionFailed from None
            except p11e.PKCS11Error as exc:
                raise KeystoreUnavailable(f"{self._what}: unwrapping failed: {type(exc).__name__}") from None
        assert isinstance(plain, bytes)
        return plain

    def close(self) -> None:
        with self._close_lock:
            shared, module = self._token, self._module
            self._token = self._module = None
        if shared is not None:
            release_token(shared)
        if module is not None:
            release_module(module)

    @contextmanager
    def _borrow(self) -> Iterator[PooledSession]:
        shared = self._token
        if shared is None:
            raise KeystoreUnavailable(f"{self._what} is closed")
        with shared.borrow() as pooled:
            yield pooled

    def _root_key(self, pooled: PooledSession, root_key_id: str) -> SecretKey | None:
        """The root key named by ``root_key_id`` (any label: older keys unwrap after a rotation), or None."""
        key = pooled.keys.get(root_key_id)
        if key is not None:
            return key
        parsed = parse_root_key_id(self._prefix, root_key_id)
        if parsed is None:
            return None
        label, key_id = parsed
        try:
            found = _find(pooled.session, label, key_id)
        except p11e.PKCS11Error as exc:
            raise KeystoreUnavailable(f"{self._what}: key lookup failed: {type(exc).__name__}") from None
        if len(found) != 1:
            return None
        pooled.keys[root_key_id] = found[0]
        return found[0]


def check_options(options: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise ConfigurationError(f"{what}: unknown options {sorted(unknown)}")


def bool_option(options: dict[str, Any], name: str, default: bool, what: str) -> bool:
    value = options.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        # Environment variables (DONJON_KEYSTORE__OPTIONS__CREATE=false) arrive as strings.
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what}: option {name!r} must be true or false")
    return value


def int_option(options: dict[str, Any], name: str, default: int, low: int, high: int, what: str) -> int:
    value = options.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what}: option {name!r} must be an integer") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigurationError(f"{what}: option {name!r} must be between {low} and {high}")
    return number


def first_existing(candidates: tuple[str, ...], what: str, kind: str) -> str:
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    raise ConfigurationError(f"{what}: no {kind} found (looked at {', '.join(candidates)}); set 'library'")


def open_root_key(
    module: Module, token_label: str, pins: PinSource, key_label: str, create: bool, max_sessions: int, what: str
) -> tuple[_Token, bytes]:
    """Log in to the token and find (or create) the root key; on failure, release what was taken."""
    try:
        shared = open_token(module, token_label, pins, what, max_sessions)
        try:
            with shared.setup_lock, shared.borrow() as pooled:
                key_id = _find_or_create_root_key(pooled.session, key_label, create, what)
        except BaseException:
            release_token(shared)
            raise
    except BaseException:
        release_module(module)
        raise
    return shared, key_id
