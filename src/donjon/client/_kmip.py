"""The ``kmip`` backend: managed objects on a KMIP server (PyKMIP's server, an HSM's KMIP interface...).

It speaks KMIP 1.4 over mutual TLS through ``donjon.drivers.kmip`` (PyKMIP's message classes only), not
PyKMIP's ``ProxyKmipClient``, which logs whole messages - key bytes included - at DEBUG, reads
``~/.pykmip/pykmip.conf`` and cannot check the server's host name.

Objects are KMIP's own types: ``SymmetricKey`` (AES keys from ``create_key`` are made by the server's Create),
``PrivateKey`` (PKCS#8), ``PublicKey``, ``X509Certificate``, ``SecretData`` (passphrases) and ``OpaqueObject``.
A PEM key or certificate is registered as DER when the PEM can be rebuilt byte for byte; anything that
cannot be typed faithfully (PKCS#1 PEM, a malformed certificate) is registered as an opaque object, so ``get``
always returns the bytes stored. Each object has two Name attributes: ``donjon:<namespace>`` (what ``list``
locates) and ``donjon-meta:<json>`` (type, name, algorithm, bit length, encoding, creation time). Key pairs are
generated here and registered (the server's CreateKeyPair returns PKCS#1, which is not what callers expect).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from donjon.client import _generate
from donjon.client._errors import BackendError, Forbidden, InvalidRequest, NotFound, configuration_errors
from donjon.client._manager import BaseKeyManager
from donjon.client._objects import ManagedObject, ObjectInfo, build, stored_info, type_name, with_data
from donjon.crypto import encodings
from donjon.drivers.kmip import KmipConnectionOptions, KmipUnavailable, OperationFailed, Pool, open_pool
from donjon.options import Integer, parse_options

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.attributes import UniqueIdentifier
    from kmip.core.factories.attributes import AttributeFactory
    from kmip.core.messages import payloads
    from kmip.core.objects import TemplateAttribute
    from kmip.pie import factory as pie_factory
    from kmip.pie import objects as pie

_WHAT = "kmip backend"


class KmipBackendOptions(KmipConnectionOptions):
    pool_size: Integer = Field(2, ge=1)  # a client process needs fewer connections than a server's
    namespace: str = "default"  # objects of other namespaces are not listed nor served


_SYMMETRIC = {
    "aes": enums.CryptographicAlgorithm.AES,
    "hmacsha1": enums.CryptographicAlgorithm.HMAC_SHA1,
    "hmacsha256": enums.CryptographicAlgorithm.HMAC_SHA256,
    "hmacsha384": enums.CryptographicAlgorithm.HMAC_SHA384,
    "hmacsha512": enums.CryptographicAlgorithm.HMAC_SHA512,
}
_ASYMMETRIC = {"RSA": enums.CryptographicAlgorithm.RSA, "EC": enums.CryptographicAlgorithm.EC}
_TYPED = {
    "private": encodings.private_key,
    "public": encodings.public_key,
    "certificate": encodings.certificate,
}
_NOT_FOUND = {enums.ResultReason.ITEM_NOT_FOUND}
_FORBIDDEN = {enums.ResultReason.PERMISSION_DENIED}
_INVALID = {
    enums.ResultReason.INVALID_FIELD,
    enums.ResultReason.INVALID_MESSAGE,
    enums.ResultReason.CRYPTOGRAPHIC_FAILURE,
    enums.ResultReason.INVALID_OBJECT_TYPE,
    enums.ResultReason.FEATURE_NOT_SUPPORTED,
}
_META = "donjon-meta:"


class KmipKeyManager(BaseKeyManager):
    backend = "kmip"

    def __init__(self, pool: Pool, endpoint: str, namespace: str) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._tag = f"donjon:{namespace}"
        self._objects = pie_factory.ObjectFactory()
        self._attributes = AttributeFactory()

    def __repr__(self) -> str:
        return f"KmipKeyManager(server={self._endpoint!r}, namespace={self._tag[7:]!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KmipKeyManager:
        with configuration_errors():
            opts = parse_options(KmipBackendOptions, options, _WHAT)
            pool, endpoint = open_pool(opts, _WHAT)
        return cls(pool, endpoint, opts.namespace)

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ KMIP calls

    def _call(self, what: str, operation: Any, payload: Any, *, retry: bool = True) -> Any:
        try:
            return self._pool.call(operation, payload, retry=retry)
        except OperationFailed as exc:
            if exc.reason in _NOT_FOUND:
                raise NotFound(f"kmip: {what}: not found") from exc
            if exc.reason in _FORBIDDEN:
                raise Forbidden(f"kmip: {what}: permission denied") from exc
            if exc.reason in _INVALID:
                raise InvalidRequest(f"kmip: {what}: {exc}") from exc
            raise BackendError(f"kmip: {what}: {exc}") from exc
        except KmipUnavailable as exc:
            raise BackendError(f"kmip: {what}: {exc}") from exc

    def _names(self, object_id: str) -> list[str]:
        response = self._call(
            f"attributes of {object_id}",
            enums.Operation.GET_ATTRIBUTES,
            payloads.GetAttributesRequestPayload(unique_identifier=object_id, attribute_names=["Name"]),
        )
        return [str(a.attribute_value.name_value.value) for a in response.attributes or []]

    def _meta(self, object_id: str) -> dict[str, Any]:
        """The object's donjon metadata; ``NotFound`` if it is not an object of this namespace."""
        names = self._names(object_id)
        if self._tag not in names:
            raise NotFound(f"kmip: no object {object_id!r} in this namespace")
        for name in names:
            if name.startswith(_META):
                meta: dict[str, Any] = json.loads(name[len(_META) :])
                return meta
        raise NotFound(f"kmip: object {object_id!r} has no donjon metadata")

    def _template(self, meta: dict[str, Any], masks: list[Any] | None = None) -> TemplateAttribute:
        attributes = [
            self._attributes.create_attribute(enums.AttributeType.NAME, self._tag, 0),
            self._attributes.create_attribute(enums.AttributeType.NAME, _META + json.dumps(meta, sort_keys=True), 1),
        ]
        if masks:
            attributes.append(self._attributes.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, masks))
        return TemplateAttribute(attributes=attributes)

    def _register(self, obj: ManagedObject) -> str:
        kmip_object, form = self._typed(obj)
        meta = _meta_of(obj, form)
        masks = getattr(kmip_object, "cryptographic_usage_masks", None)
        request = payloads.RegisterRequestPayload(
            object_type=kmip_object.object_type,
            template_attribute=self._template(meta, masks),
            managed_object=self._objects.convert(kmip_object),
        )
        # Never retried: a Register that reached the server before the connection broke would leave a twin.
        return str(self._call("register", enums.Operation.REGISTER, request, retry=False).unique_identifier)

    def _typed(self, obj: ManagedObject) -> tuple[Any, str]:
        """The KMIP object for ``obj``, and how its value maps back to ``obj.data`` (raw, der, pem)."""
        algorithm = (getattr(obj, "algorithm", None) or "").lower()
        if obj.object_type == "symmetric" and algorithm in _SYMMETRIC:
            masks = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]
            return pie.SymmetricKey(_SYMMETRIC[algorithm], 8 * len(obj.data), obj.data, masks=masks), "raw"
        if obj.object_type in _TYPED:
            # Typed only when the DER gives the caller's exact bytes back (PEM or DER); anything else is opaque.
            typed = _TYPED[obj.object_type](obj.data)
            if typed is not None:
                form = "pem" if typed.pem else "der"
                if obj.object_type == "certificate":
                    return pie.X509Certificate(typed.der), form
                if typed.algorithm in _ASYMMETRIC:
                    algorithm_enum = _ASYMMETRIC[typed.algorithm]
                    if obj.object_type == "private":
                        key_format = enums.KeyFormatType.PKCS_8
                        return pie.PrivateKey(algorithm_enum, typed.bit_length, typed.der, key_format), form
                    return pie.PublicKey(algorithm_enum, typed.bit_length, typed.der), form
        if obj.object_type == "passphrase":
            return pie.SecretData(obj.data, enums.SecretDataType.PASSWORD), "raw"
        return pie.OpaqueObject(obj.data, enums.OpaqueDataType.NONE), "raw"

    # ------------------------------------------------------------------ KeyManager

    def _create_key(self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None) -> str:
        if algorithm.lower() != "aes":
            data = _generate.symmetric_key(algorithm, bit_length)
            return self._register(build("symmetric", data, name=name, algorithm=algorithm, bit_length=bit_length))
        _generate.check_symmetric(algorithm, bit_length)  # the server's Create generates it
        meta = {"t": "symmetric", "n": name, "a": algorithm, "b": bit_length, "f": "raw", "c": _now()}
        template = self._template(meta, [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT])
        template.attributes += [
            self._attributes.create_attribute(
                enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES
            ),
            self._attributes.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, bit_length),
        ]
        response = self._call(
            "create",
            enums.Operation.CREATE,
            payloads.CreateRequestPayload(object_type=enums.ObjectType.SYMMETRIC_KEY, template_attribute=template),
            retry=False,
        )
        return str(response.unique_identifier)

    def _store(self, obj: ManagedObject, expiration: datetime | None) -> str:
        return self._register(obj)

    def get(self, object_id: str) -> ManagedObject:
        meta = self._meta(object_id)
        response = self._call(
            f"get {object_id}", enums.Operation.GET, payloads.GetRequestPayload(unique_identifier=object_id)
        )
        value = bytes(self._objects.convert(response.secret).value)
        if meta.get("f") == "pem":
            value = encodings.der_to_pem(value, str(meta["t"]))
        return with_data(_info(object_id, meta), value)

    def delete(self, object_id: str, *, force: bool = False) -> None:
        self._meta(object_id)  # NotFound unless it is ours
        self._call(
            f"destroy {object_id}",
            enums.Operation.DESTROY,
            payloads.DestroyRequestPayload(unique_identifier=UniqueIdentifier(object_id)),
        )

    def list(self, object_type: type[ManagedObject] | str | None = None) -> Iterator[ObjectInfo]:
        wanted = type_name(object_type)
        response = self._call(
            "locate",
            enums.Operation.LOCATE,
            payloads.LocateRequestPayload(
                attributes=[self._attributes.create_attribute(enums.AttributeType.NAME, self._tag)]
            ),
        )
        for object_id in sorted(response.unique_identifiers or [], key=lambda u: (len(u), u)):
            try:
                meta = self._meta(object_id)
            except NotFound:
                continue  # destroyed since the Locate
            if wanted is not None and meta.get("t") != wanted:
                continue
            yield _info(object_id, meta)


# The short keys ``_meta_of`` stores an object's metadata under, with the names of the record they stand for.
_LONG_NAMES = {"t": "type", "n": "name", "a": "algorithm", "b": "bit_length", "c": "created"}


def _info(object_id: str, meta: dict[str, Any]) -> ObjectInfo:
    return stored_info(object_id, {_LONG_NAMES[k]: v for k, v in meta.items() if k in _LONG_NAMES})


def _meta_of(obj: ManagedObject, form: str) -> dict[str, Any]:
    return {
        "t": obj.object_type,
        "n": obj.name,
        "a": getattr(obj, "algorithm", None),
        "b": getattr(obj, "bit_length", None),
        "f": form,
        "c": _now(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()
