"""The ``donjon`` backend: a donjon server, or any server speaking Barbican's v1 API (a real Barbican too).

Objects are secrets; ``create_key`` and ``create_key_pair`` are orders, polled until done (the order, and for
a pair its container, are then deleted on a best-effort basis, as Castellan does: the keys stay).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr, model_validator

from donjon.client._errors import ClientError, ConfigError, Conflict, configuration_errors
from donjon.client._http import BarbicanAPI, DevAuth, KeystoneSessionAuth, TokenAuth, ref_id
from donjon.client._manager import BaseKeyManager, Consumer
from donjon.client._objects import ManagedObject, ObjectInfo, build, type_name
from donjon.options import PluginOptions, Seconds, Verify, invalid, parse_options


class DonjonBackendOptions(PluginOptions):
    url: str | None = None  # required unless a session's catalog has a key-manager endpoint
    # Auth, one of: dev headers (Barbican's unauthenticated mode), a token, a keystoneauth1 session.
    project_id: str | None = None
    user_id: str | None = None
    roles: str | list[str] | None = None
    token: SecretStr | None = None
    session: Any = None
    interface: str = "public"  # of the catalog's endpoint
    region_name: str | None = None
    timeout: Seconds = 30.0  # per HTTP request
    verify: Verify = True
    order_timeout: Seconds = 120.0  # how long create_key and create_key_pair wait for their order
    transport: Any = None  # an httpx transport (tests: the app in process)

    @model_validator(mode="after")
    def _one_auth(self) -> DonjonBackendOptions:
        token = self.token.get_secret_value() if self.token is not None else None
        given = {"project_id": self.project_id, "token": token, "session": self.session}
        chosen = [name for name, value in given.items() if value]
        if len(chosen) > 1:
            raise invalid(f"choose one of project_id, token, session (got {', '.join(chosen)})")
        return self


def parse_time(value: Any) -> datetime | None:
    """A server time; Barbican writes UTC without an offset, so a naive one is taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _iso(expiration: datetime | None) -> str | None:
    return None if expiration is None else expiration.isoformat()


def _order_meta(algorithm: str, bit_length: int, name: str | None, expiration: datetime | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"algorithm": algorithm, "bit_length": bit_length}
    if name is not None:
        meta["name"] = name
    if expiration is not None:
        meta["expiration"] = _iso(expiration)
    return meta


class DonjonKeyManager(BaseKeyManager):
    """Key manager over a donjon (or Barbican) server.

    Auth, one of: ``project_id`` (dev headers; with ``user_id``, ``roles``), ``token`` (``X-Auth-Token``),
    ``session`` (a keystoneauth1 session; ``url`` then defaults to the catalog's ``key-manager`` endpoint).
    """

    backend = "donjon"
    expires = True  # the server stops serving a secret past its expiration

    def __init__(self, api: BarbicanAPI) -> None:
        self.api = api

    def __repr__(self) -> str:
        return f"DonjonKeyManager(url={self.api.url!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DonjonKeyManager:
        with configuration_errors():
            opts = parse_options(DonjonBackendOptions, options, "donjon backend")
        auth: httpx.Auth | None
        url = opts.url
        if opts.session is not None:
            auth = KeystoneSessionAuth(opts.session)
            if not url:
                try:
                    url = opts.session.get_endpoint(
                        service_type="key-manager", interface=opts.interface, region_name=opts.region_name
                    )
                except Exception as exc:
                    raise ConfigError(f"donjon backend: no key-manager endpoint in the catalog: {exc}") from exc
        elif opts.token is not None and opts.token.get_secret_value():
            auth = TokenAuth(opts.token.get_secret_value())
        elif opts.project_id:
            roles = ",".join(opts.roles) if isinstance(opts.roles, list) else opts.roles
            auth = DevAuth(opts.project_id, opts.user_id, roles)
        else:
            auth = None
        if not url:
            raise ConfigError("donjon backend: 'url' is required")
        return cls(
            BarbicanAPI(
                str(url),
                auth=auth,
                timeout=opts.timeout,
                verify=opts.verify,
                order_timeout=opts.order_timeout,
                transport=opts.transport,
            )
        )

    def close(self) -> None:
        self.api.close()

    def _create_key(self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None) -> str:
        meta = _order_meta(algorithm, bit_length, name, expiration)
        order = self.api.create_order("key", meta)
        done = self.api.wait_for_order(order)
        self._forget_order(order)
        return ref_id(done["secret_ref"])

    def _create_key_pair(
        self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None
    ) -> tuple[str, str]:
        meta = _order_meta(algorithm, bit_length, name, expiration)
        order = self.api.create_order("asymmetric", meta)
        done = self.api.wait_for_order(order)
        container = self.api.get_container(done["container_ref"])
        refs = {item["name"]: item["secret_ref"] for item in container.get("secret_refs", [])}
        try:
            self.api.delete_container(done["container_ref"])
        except ClientError:
            pass  # best effort: the keys are what matters
        self._forget_order(order)
        return ref_id(refs["private_key"]), ref_id(refs["public_key"])

    def _forget_order(self, order: str) -> None:
        try:
            self.api.delete_order(order)
        except ClientError:
            pass  # legacy policy lets only admins delete orders; the order is harmless

    def _store(self, obj: ManagedObject, expiration: datetime | None) -> str:
        algorithm = getattr(obj, "algorithm", None)
        bit_length = getattr(obj, "bit_length", None)
        ref = self.api.store_bytes(
            obj.data,
            secret_type=obj.object_type,
            name=obj.name,
            algorithm=algorithm,
            bit_length=bit_length,
            expiration=_iso(expiration),
        )
        return ref_id(ref)

    def get(self, object_id: str) -> ManagedObject:
        meta = self.api.get_secret(object_id)
        payload = self.api.get_payload(object_id)
        return build(
            str(meta.get("secret_type") or "opaque"),
            payload.data,
            name=meta.get("name"),
            object_id=ref_id(object_id),
            algorithm=meta.get("algorithm"),
            bit_length=meta.get("bit_length"),
            created=parse_time(meta.get("created")),
        )

    def delete(self, object_id: str, *, force: bool = False) -> None:
        if not force:
            # As python-barbicanclient: refuse here when consumers exist (servers at 1.0/1.1 would not).
            consumers = self.api.get_secret(object_id).get("consumers") or []
            if consumers:
                raise Conflict(f"secret {ref_id(object_id)} has {len(consumers)} consumer(s); use force to delete")
        self.api.delete_secret(object_id, force=force)

    def list(self, object_type: type[ManagedObject] | str | None = None) -> Iterator[ObjectInfo]:
        wanted = type_name(object_type)
        for item in self.api.list_secrets(secret_type=wanted):
            yield ObjectInfo(
                id=ref_id(item["secret_ref"]),
                object_type=item.get("secret_type") or "opaque",
                name=item.get("name"),
                algorithm=item.get("algorithm"),
                bit_length=item.get("bit_length"),
                created=parse_time(item.get("created")),
                expiration=parse_time(item.get("expiration")),
            )

    def add_consumer(self, object_id: str, consumer: Consumer) -> None:
        self.api.add_consumer("secrets", object_id, _consumer_body(consumer))

    def remove_consumer(self, object_id: str, consumer: Consumer) -> None:
        self.api.remove_consumer("secrets", object_id, _consumer_body(consumer))

    def list_consumers(self, object_id: str) -> builtins.list[Consumer]:
        return [
            Consumer(c["service"], c["resource_type"], c["resource_id"])
            for c in self.api.list_consumers("secrets", object_id)
        ]


def _consumer_body(consumer: Consumer) -> dict[str, str]:
    return {"service": consumer.service, "resource_type": consumer.resource_type, "resource_id": consumer.resource_id}
