"""A Castellan key-manager driver on the donjon SDK: ``[key_manager] backend = donjon``.

Castellan loads drivers from the ``castellan.drivers`` entry point group; donjon registers this class as
``donjon`` (pyproject). Configuration, group ``[donjon]``::

    [key_manager]
    backend = donjon
    [donjon]
    url = https://kms.example:9311   # default: the catalog's key-manager endpoint (keystone auth)
    auth = keystone                   # keystone (the context's auth plugin) | token | dev
    token =                           # auth = token: a donjon token (default: the context's auth_token)
    verify = true
    timeout = 30
    order_timeout = 120

Each call acts for the caller in ``context``: with ``auth = keystone`` through a keystoneauth session on the
context's auth plugin (as Castellan's Barbican driver), with ``dev`` as the context's project (donjon's dev mode
and Barbican's unauthenticated pipeline). Objects follow Castellan's conventions: keys and certificates are
DER in Castellan objects and stored as PEM, so the Barbican driver and this one read each other's secrets.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from castellan.common import exception as castellan_errors
from castellan.common.objects import (
    managed_object,
    opaque_data,
    passphrase,
    private_key,
    public_key,
    symmetric_key,
    x_509,
)
from castellan.key_manager import key_manager
from oslo_config import cfg

from donjon.client._donjon import DonjonKeyManager, parse_time
from donjon.client._errors import ClientError, Conflict, Forbidden, NotFound, Unauthorized
from donjon.client._manager import Consumer
from donjon.client._objects import (
    Certificate,
    ManagedObject,
    OpaqueData,
    Passphrase,
    PrivateKey,
    PublicKey,
    SymmetricKey,
)
from donjon.crypto.encodings import der_to_pem, pem_to_der

GROUP = "donjon"
OPTS = [
    cfg.StrOpt("url", help="donjon's endpoint; default: the key-manager endpoint of the Keystone catalog."),
    cfg.StrOpt("auth", default="keystone", choices=["keystone", "token", "dev"], help="How calls authenticate."),
    cfg.StrOpt("token", secret=True, help="auth = token: a donjon token (default: the context's auth_token)."),
    cfg.StrOpt("interface", default="public", help="Catalog interface for the endpoint."),
    cfg.StrOpt("region_name", help="Catalog region for the endpoint."),
    cfg.BoolOpt("verify", default=True, help="Verify the server's TLS certificate."),
    cfg.StrOpt("cafile", help="CA bundle for the server's certificate."),
    cfg.FloatOpt("timeout", default=30.0, help="Seconds per HTTP request."),
    cfg.FloatOpt("order_timeout", default=120.0, help="Seconds to wait for a key order."),
]

_TO_CASTELLAN = {
    "symmetric": symmetric_key.SymmetricKey,
    "private": private_key.PrivateKey,
    "public": public_key.PublicKey,
    "certificate": x_509.X509,
    "passphrase": passphrase.Passphrase,
    "opaque": opaque_data.OpaqueData,
}
_PEM_TYPES = ("private", "public", "certificate")


class DonjonCastellanKeyManager(key_manager.KeyManager):
    """Castellan's ``KeyManager`` over ``donjon.client``."""

    def __init__(self, configuration: cfg.ConfigOpts | None) -> None:
        self.conf = configuration or cfg.CONF
        self.conf.register_opts(OPTS, group=GROUP)

    def list_options_for_discovery(self) -> builtins.list[tuple[str | None, builtins.list[cfg.Opt]]]:
        return [(GROUP, OPTS)]

    # ------------------------------------------------------------------ plumbing

    def _manager(self, context: Any) -> DonjonKeyManager:
        if context is None:
            raise castellan_errors.Forbidden("a context is required")
        conf = self.conf[GROUP]
        options: dict[str, Any] = {
            "timeout": conf.timeout,
            "order_timeout": conf.order_timeout,
            "verify": conf.cafile or conf.verify,
        }
        if conf.url:
            options["url"] = conf.url
        if conf.auth == "dev":
            if not getattr(context, "project_id", None):
                raise castellan_errors.Forbidden("auth = dev needs the context's project_id")
            options["project_id"] = context.project_id
            if getattr(context, "user_id", None):
                options["user_id"] = context.user_id
        elif conf.auth == "token":
            token = conf.token or getattr(context, "auth_token", None)
            if not token:
                raise castellan_errors.Forbidden("auth = token needs [donjon] token or the context's auth_token")
            options["token"] = token
        else:
            from keystoneauth1 import session as ks_session

            plugin = context.get_auth_plugin() if hasattr(context, "get_auth_plugin") else None
            if plugin is None:
                raise castellan_errors.Forbidden("auth = keystone needs a context with an auth plugin")
            options["session"] = ks_session.Session(auth=plugin, verify=conf.cafile or conf.verify)
            options["interface"] = conf.interface
            if conf.region_name:
                options["region_name"] = conf.region_name
        try:
            return DonjonKeyManager.from_options(options)
        except ClientError as exc:
            raise castellan_errors.KeyManagerError(reason=exc.message) from exc

    def _run(self, context: Any, object_id: str | None, fn: Any) -> Any:
        with self._manager(context) as km:
            try:
                return fn(km)
            except NotFound as exc:
                raise castellan_errors.ManagedObjectNotFoundError(uuid=object_id) from exc
            except (Forbidden, Unauthorized) as exc:
                raise castellan_errors.Forbidden(exc.message) from exc
            except ClientError as exc:
                raise castellan_errors.KeyManagerError(reason=exc.message) from exc

    # ------------------------------------------------------------------ Castellan API

    def create_key(
        self,
        context: Any,
        algorithm: str,
        length: int,
        expiration: str | datetime | None = None,
        name: str | None = None,
    ) -> str:
        when = _expiration(expiration)
        result: str = self._run(
            context,
            None,
            lambda km: km.create_key(algorithm=algorithm.lower(), bit_length=length, name=name, expiration=when),
        )
        return result

    def create_key_pair(
        self,
        context: Any,
        algorithm: str,
        length: int,
        expiration: str | datetime | None = None,
        name: str | None = None,
    ) -> tuple[str, str]:
        when = _expiration(expiration)
        result: tuple[str, str] = self._run(
            context,
            None,
            lambda km: km.create_key_pair(algorithm=algorithm.lower(), bit_length=length, name=name, expiration=when),
        )
        return result

    def store(
        self, context: Any, managed_object: managed_object.ManagedObject, expiration: str | datetime | None = None
    ) -> str:
        obj = to_donjon(managed_object)
        when = _expiration(expiration)
        result: str = self._run(context, None, lambda km: km.store(obj, expiration=when))
        return result

    def get(self, context: Any, managed_object_id: str, metadata_only: bool = False) -> managed_object.ManagedObject:
        if metadata_only:
            meta: managed_object.ManagedObject = self._run(
                context, managed_object_id, lambda km: _metadata(km, managed_object_id)
            )
            return meta
        return to_castellan(self._run(context, managed_object_id, lambda km: km.get(managed_object_id)))

    def delete(self, context: Any, managed_object_id: str, force: bool = False) -> None:
        def delete(km: DonjonKeyManager) -> None:
            try:
                km.delete(managed_object_id, force=force)
            except Conflict as exc:
                raise castellan_errors.KeyManagerError(reason=exc.message) from exc

        self._run(context, managed_object_id, delete)

    def add_consumer(self, context: Any, managed_object_id: str, consumer_data: dict[str, str]) -> None:
        consumer = Consumer(**consumer_data)
        self._run(context, managed_object_id, lambda km: km.add_consumer(managed_object_id, consumer))

    def remove_consumer(self, context: Any, managed_object_id: str, consumer_data: dict[str, str]) -> None:
        consumer = Consumer(**consumer_data)
        self._run(context, managed_object_id, lambda km: km.remove_consumer(managed_object_id, consumer))

    def list(
        self,
        context: Any,
        object_type: type[managed_object.ManagedObject] | None = None,
        metadata_only: bool = False,
    ) -> builtins.list[managed_object.ManagedObject]:
        wanted = None
        if object_type is not None:
            wanted = next((k for k, v in _TO_CASTELLAN.items() if v is object_type), None)
            if wanted is None:
                raise castellan_errors.KeyManagerError(reason=f"unknown object type {object_type!r}")

        def collect(km: DonjonKeyManager) -> builtins.list[managed_object.ManagedObject]:
            infos = builtins.list(km.list(wanted))
            if metadata_only:
                return [_from_info(i.object_type, i.id, i.name, i.algorithm, i.bit_length) for i in infos]
            return [to_castellan(km.get(i.id)) for i in infos]

        result: builtins.list[managed_object.ManagedObject] = self._run(context, None, collect)
        return result


def to_donjon(obj: managed_object.ManagedObject) -> ManagedObject:
    """A Castellan object as an SDK object (DER keys and certificates become PEM, as Castellan's Barbican does)."""
    data = obj.get_encoded()
    if data is None:
        raise castellan_errors.KeyManagerError(reason="cannot store an object without data")
    name = obj.name
    if isinstance(obj, symmetric_key.SymmetricKey):
        return SymmetricKey(data=data, name=name, algorithm=obj.algorithm, bit_length=obj.bit_length)
    if isinstance(obj, private_key.PrivateKey):
        pem = der_to_pem(data, "private")
        return PrivateKey(data=pem, name=name, algorithm=obj.algorithm, bit_length=obj.bit_length)
    if isinstance(obj, public_key.PublicKey):
        pem = der_to_pem(data, "public")
        return PublicKey(data=pem, name=name, algorithm=obj.algorithm, bit_length=obj.bit_length)
    if isinstance(obj, x_509.X509):
        return Certificate(data=der_to_pem(data, "certificate"), name=name)
    if isinstance(obj, passphrase.Passphrase):
        return Passphrase(data=data, name=name)
    if isinstance(obj, opaque_data.OpaqueData):
        return OpaqueData(data=data, name=name)
    raise castellan_errors.UnknownManagedObjectTypeError(type=type(obj).__name__)


def to_castellan(obj: ManagedObject) -> managed_object.ManagedObject:
    """An SDK object as the Castellan object of its type (PEM keys and certificates become DER)."""
    data = obj.data
    if obj.object_type in _PEM_TYPES:
        data = pem_to_der(data) or data
    return _from_info(
        obj.object_type,
        obj.id,
        obj.name,
        getattr(obj, "algorithm", None),
        getattr(obj, "bit_length", None),
        data,
        int(obj.created.timestamp()) if obj.created else None,
    )


def _from_info(
    object_type: str,
    object_id: str | None,
    name: str | None,
    algorithm: str | None,
    bit_length: int | None,
    data: bytes | None = None,
    created: int | None = None,
) -> managed_object.ManagedObject:
    cls: Any = _TO_CASTELLAN.get(object_type, opaque_data.OpaqueData)
    if object_type in ("symmetric", "private", "public"):
        return cls(algorithm, bit_length, data, name=name, created=created, id=object_id)  # type: ignore[no-any-return]
    return cls(data, name=name, created=created, id=object_id)  # type: ignore[no-any-return]


def _metadata(km: DonjonKeyManager, object_id: str) -> managed_object.ManagedObject:
    meta = km.api.get_secret(object_id)
    return _from_info(
        str(meta.get("secret_type") or "opaque"),
        object_id,
        meta.get("name"),
        meta.get("algorithm"),
        meta.get("bit_length"),
    )


def _expiration(value: str | datetime | None) -> datetime | None:
    """Castellan's expiration (an ISO 8601 string or a datetime, as barbicanclient takes it) as an aware datetime.

    Without an offset it is UTC, as Barbican reads it.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    parsed = parse_time(value)
    if parsed is None:
        raise castellan_errors.KeyManagerError(reason=f"expiration {value!r} is not an ISO 8601 time")
    return parsed
