"""The ``pkcs11`` backend: managed objects in a PKCS#11 token (an HSM, SoftHSM2), through python-pkcs11.

Symmetric AES and HMAC keys are secret-key objects (``CKO_SECRET_KEY``, ``CKK_AES`` or
``CKK_GENERIC_SECRET``); ``create_key`` generates AES keys inside the token (``C_GenerateKey``). Every other
object is a data object (``CKO_DATA``) holding the bytes in ``CKA_VALUE``. All are token objects, private
(login needed to see them), and - since a key manager must hand keys back - extractable and not sensitive:
this backend keeps keys *in* a token, it does not make them non-exportable. Key pairs are generated here
(cryptography) and stored as PEM data objects.

Each object's ``CKA_LABEL`` is its id (a UUID); its metadata (namespace, type, name, algorithm, bit length,
creation time) is JSON in ``CKA_ID`` (keys) or ``CKA_OBJECT_ID`` (data objects), and data objects carry
``CKA_APPLICATION = "donjon"``. ``list`` finds objects by class and keeps those of its namespace.

The module is loaded, initialised and logged in to by the PKCS#11 driver donjon's keystores use
(``donjon.drivers.pkcs11``): ``C_Initialize`` with ``CKF_OS_LOCKING_OK``, because python-pkcs11's
``C_Initialize(NULL)`` makes SoftHSM2 turn its own locking off and crash under threads; one login per token and
process, shared.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11e
from pydantic import Field

from donjon.client import _generate
from donjon.client._errors import BackendError, Conflict, InvalidRequest, NotFound, configuration_errors
from donjon.client._manager import BaseKeyManager
from donjon.client._objects import ManagedObject, ObjectInfo, build, type_name
from donjon.drivers.pkcs11.errors import TokenUnavailable
from donjon.drivers.pkcs11.keys import secret_key_template
from donjon.drivers.pkcs11.native import os_locking_args
from donjon.drivers.pkcs11.pins import PinOptions
from donjon.drivers.pkcs11.session import SharedToken, log_in, log_out
from donjon.options import Integer, Text, parse_options

_WHAT = "pkcs11 backend"
_APPLICATION = "donjon"
_KEY_TYPES = {"aes": KeyType.AES}


class Pkcs11BackendOptions(PinOptions):
    library: Text  # the module's .so (an HSM vendor's, SoftHSM2's)
    token_label: Text
    namespace: str = "default"  # objects of other namespaces are not listed nor served
    sessions: Integer = Field(4, ge=1, le=1024)  # the most sessions open at once


class Pkcs11KeyManager(BaseKeyManager):
    backend = "pkcs11"

    def __init__(self, token: SharedToken, namespace: str) -> None:
        self._token: SharedToken | None = token
        self._namespace = namespace

    def __repr__(self) -> str:
        label = self._token.label if self._token else None
        return f"Pkcs11KeyManager(token={label!r}, namespace={self._namespace!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Pkcs11KeyManager:
        with configuration_errors():
            opts = parse_options(Pkcs11BackendOptions, options, _WHAT)
            pins = opts.pin_source("DONJON_PKCS11_PIN")
            token = log_in(
                opts.library, os_locking_args(), "CKF_OS_LOCKING_OK", opts.token_label, pins, _WHAT, opts.sessions
            )
        return cls(token, opts.namespace)

    def close(self) -> None:
        if self._token is not None:
            token, self._token = self._token, None
            log_out(token)

    # ------------------------------------------------------------------ token access

    def _session(self) -> Any:
        if self._token is None:
            raise BackendError("pkcs11: the key manager is closed")
        return self._token.borrow()

    def _meta(self, obj: ManagedObject, generated_type: str | None = None) -> bytes:
        meta = {
            "ns": self._namespace,
            "t": generated_type or obj.object_type,
            "n": obj.name,
            "a": getattr(obj, "algorithm", None),
            "b": getattr(obj, "bit_length", None),
            "c": datetime.now(UTC).isoformat(),
        }
        return json.dumps(meta, sort_keys=True).encode()

    def _find(self, session: Any, object_id: str) -> tuple[Any, dict[str, Any]]:
        for cls, meta_attr in ((ObjectClass.SECRET_KEY, Attribute.ID), (ObjectClass.DATA, Attribute.OBJECT_ID)):
            for found in session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: object_id}):
                meta = _parse(found[meta_attr])
                if meta is not None and meta.get("ns") == self._namespace:
                    return found, meta
        raise NotFound(f"pkcs11: no object {object_id!r} in this namespace")

    def _run(self, what: str, fn: Any) -> Any:
        try:
            with self._session() as pooled:
                return fn(pooled.session)
        except (NotFound, InvalidRequest, Conflict):
            raise
        except (p11e.KeySizeRange, p11e.TemplateInconsistent, p11e.AttributeValueInvalid) as exc:
            raise InvalidRequest(f"pkcs11: {what}: {type(exc).__name__}") from exc
        except (p11e.PKCS11Error, TokenUnavailable) as exc:
            raise BackendError(f"pkcs11: {what}: {type(exc).__name__}") from exc

    # ------------------------------------------------------------------ KeyManager

    def _create_key(self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None) -> str:
        if algorithm.lower() != "aes":
            data = _generate.symmetric_key(algorithm, bit_length)
            return self.store(build("symmetric", data, name=name, algorithm=algorithm, bit_length=bit_length))
        _generate.check_symmetric(algorithm, bit_length)  # C_GenerateKey in the token makes it
        object_id = str(uuid.uuid4())
        template_obj = build("symmetric", b"\0", name=name, algorithm=algorithm, bit_length=bit_length)

        def generate(session: Any) -> None:
            session.generate_key(
                KeyType.AES,
                bit_length,
                label=object_id,
                id=self._meta(template_obj),
                store=True,
                template=secret_key_template(extractable=True),
            )

        self._run("generate", generate)
        return object_id

    def _store(self, obj: ManagedObject, expiration: datetime | None) -> str:
        object_id = str(uuid.uuid4())
        algorithm = (getattr(obj, "algorithm", None) or "").lower()
        meta = self._meta(obj)
        if obj.object_type == "symmetric" and (algorithm == "aes" or algorithm.startswith("hmac")):
            key_type = _KEY_TYPES.get(algorithm, KeyType.GENERIC_SECRET)
            attributes: dict[Attribute, Any] = {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: key_type,
                Attribute.VALUE: obj.data,
                Attribute.LABEL: object_id,
                Attribute.ID: meta,
                **secret_key_template(extractable=True),
            }
        else:
            attributes = {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: False,
                Attribute.APPLICATION: _APPLICATION,
                Attribute.LABEL: object_id,
                Attribute.OBJECT_ID: meta,
                Attribute.VALUE: obj.data,
            }
        self._run("store", lambda session: session.create_object(attributes))
        return object_id

    def get(self, object_id: str) -> ManagedObject:
        def read(session: Any) -> ManagedObject:
            found, meta = self._find(session, object_id)
            return build(
                str(meta["t"]),
                bytes(found[Attribute.VALUE]),
                name=meta.get("n"),
                object_id=object_id,
                algorithm=meta.get("a"),
                bit_length=meta.get("b"),
                created=_time(meta.get("c")),
            )

        result: ManagedObject = self._run(f"get {object_id}", read)
        return result

    def delete(self, object_id: str, *, force: bool = False) -> None:
        def destroy(session: Any) -> None:
            found, _ = self._find(session, object_id)
            found.destroy()

        self._run(f"delete {object_id}", destroy)

    def list(self, object_type: type[ManagedObject] | str | None = None) -> Iterator[ObjectInfo]:
        wanted = type_name(object_type)

        def scan(session: Any) -> list[ObjectInfo]:
            infos = []
            for cls, meta_attr in ((ObjectClass.SECRET_KEY, Attribute.ID), (ObjectClass.DATA, Attribute.OBJECT_ID)):
                for found in session.get_objects({Attribute.CLASS: cls}):
                    meta = _parse(found[meta_attr])
                    if meta is None or meta.get("ns") != self._namespace:
                        continue
                    if wanted is not None and meta.get("t") != wanted:
                        continue
                    infos.append(
                        ObjectInfo(
                            id=str(found[Attribute.LABEL]),
                            object_type=meta["t"],
                            name=meta.get("n"),
                            algorithm=meta.get("a"),
                            bit_length=meta.get("b"),
                            created=_time(meta.get("c")),
                        )
                    )
            return sorted(infos, key=lambda i: (i.created or datetime.min.replace(tzinfo=UTC), i.id))

        yield from self._run("list", scan)


def _parse(raw: Any) -> dict[str, Any] | None:
    try:
        meta = json.loads(bytes(raw))
    except (ValueError, TypeError):
        return None
    return meta if isinstance(meta, dict) and "ns" in meta and "t" in meta else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
