"""donjon's key-manager SDK: one typed API over donjon, Barbican, Vault, KMIP and PKCS#11.

Importable without the server's dependencies (no Starlette, SQLAlchemy, uvicorn or oslo.policy): the
``donjon`` backend needs httpx (``pip install 'donjon[client]'``), the others hvac, PyKMIP or python-pkcs11.

>>> from donjon.client import Passphrase, open_key_manager
>>> km = open_key_manager({"type": "donjon", "url": "http://127.0.0.1:9311", "project_id": "demo"})
>>> secret_id = km.store(Passphrase(data=b"s3cret", name="db"))
>>> km.get(secret_id)
Passphrase(name='db', id='...', created=...)
"""

from donjon.client._config import BACKENDS, open_key_manager
from donjon.client._errors import (
    BackendError,
    ClientError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotSupported,
    OrderFailed,
    Unauthorized,
)
from donjon.client._manager import BaseKeyManager, Consumer, KeyManager
from donjon.client._objects import (
    OBJECT_TYPES,
    Certificate,
    ManagedObject,
    ObjectInfo,
    ObjectType,
    OpaqueData,
    Passphrase,
    PrivateKey,
    PublicKey,
    SymmetricKey,
)

__all__ = [
    "BACKENDS",
    "BackendError",
    "BaseKeyManager",
    "Certificate",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Consumer",
    "Forbidden",
    "InvalidRequest",
    "KeyManager",
    "ManagedObject",
    "NotFound",
    "NotSupported",
    "OBJECT_TYPES",
    "ObjectInfo",
    "ObjectType",
    "OpaqueData",
    "OrderFailed",
    "Passphrase",
    "PrivateKey",
    "PublicKey",
    "SymmetricKey",
    "Unauthorized",
    "open_key_manager",
]
