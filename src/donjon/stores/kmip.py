"""The KMIP secret store: each payload is a managed object of its own type on a KMIP server.

Symmetric keys become Symmetric Key objects (with their algorithm), private keys Private Key (PKCS#8),
public keys Public Key (X.509 SubjectPublicKeyInfo), certificates X.509 Certificate, passphrases Secret
Data (password); anything else, and any key or certificate whose typed form would not give back the
client's exact bytes (see ``donjon.crypto.encodings``), an Opaque Object. The secret's row keeps the object's
uid. Deleting the secret destroys the object on the server (Barbican's KMIP plugin leaves it behind).

Each object is registered with the name ``donjon:<project id>/<secret id>``; a read checks that name, so a
row pointed at another secret's object is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from donjon.crypto import encodings
from donjon.drivers.kmip import KmipConnectionOptions, KmipUnavailable, OperationFailed, Pool, open_pool
from donjon.errors import ConfigurationError
from donjon.options import parse_options
from donjon.stores import ExternalStore, PayloadInfo, PayloadMissing, StoredPayload, StoreUnavailable, reference

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.attributes import UniqueIdentifier
    from kmip.core.factories.attributes import AttributeFactory
    from kmip.core.messages import payloads
    from kmip.core.objects import TemplateAttribute
    from kmip.pie import factory as pie_factory
    from kmip.pie import objects as pie

_WHAT = "kmip secret store"
_SYMMETRIC = {
    "aes": enums.CryptographicAlgorithm.AES,
    "des": enums.CryptographicAlgorithm.DES,
    "3des": enums.CryptographicAlgorithm.TRIPLE_DES,
    "tripledes": enums.CryptographicAlgorithm.TRIPLE_DES,
    "hmacsha1": enums.CryptographicAlgorithm.HMAC_SHA1,
    "hmacsha256": enums.CryptographicAlgorithm.HMAC_SHA256,
    "hmacsha384": enums.CryptographicAlgorithm.HMAC_SHA384,
    "hmacsha512": enums.CryptographicAlgorithm.HMAC_SHA512,
}
_ASYMMETRIC = {
    "RSA": enums.CryptographicAlgorithm.RSA,
    "EC": enums.CryptographicAlgorithm.EC,
    "DSA": enums.CryptographicAlgorithm.DSA,
}
# How the payload's bytes relate to the object's value, recorded after the uid in the reference.
_RAW, _PEM, _DER = "raw", "pem", "der"


def object_name(info: PayloadInfo) -> str:
    return f"donjon:{info.project_id}/{info.secret_id}"


def managed_object(info: PayloadInfo, payload: bytes) -> tuple[pie.ManagedObject, str]:
    """The typed KMIP object for a payload, and how to turn its value back into the payload."""
    name = object_name(info)
    if info.secret_type == "symmetric" and (info.algorithm or "").lower() in _SYMMETRIC:
        algorithm = _SYMMETRIC[(info.algorithm or "").lower()]
        masks = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]
        return pie.SymmetricKey(algorithm, len(payload) * 8, payload, masks=masks, name=name), _RAW
    if info.secret_type == "private" and (typed := encodings.private_key(payload)) is not None:
        form = _PEM if typed.pem else _DER
        key = pie.PrivateKey(
            _ASYMMETRIC[typed.algorithm], typed.bit_length, typed.der, enums.KeyFormatType.PKCS_8, name=name
        )
        return key, form
    if info.secret_type == "public" and (typed := encodings.public_key(payload)) is not None:
        form = _PEM if typed.pem else _DER
        key = pie.PublicKey(_ASYMMETRIC[typed.algorithm], typed.bit_length, typed.der, name=name)
        return key, form
    if info.secret_type == "certificate" and (typed := encodings.certificate(payload)) is not None:
        return pie.X509Certificate(typed.der, name=name), _PEM if typed.pem else _DER
    if info.secret_type == "passphrase":
        return pie.SecretData(payload, enums.SecretDataType.PASSWORD, name=name), _RAW
    return pie.OpaqueObject(payload, enums.OpaqueDataType.NONE, name=name), _RAW


def payload_of(obj: pie.ManagedObject, form: str) -> bytes:
    value = bytes(obj.value)
    if form == _RAW:
        return value
    pem = form == _PEM
    if isinstance(obj, pie.PrivateKey):
        return encodings.private_key_from_der(value, pem)
    if isinstance(obj, pie.PublicKey):
        return encodings.public_key_from_der(value, pem)
    if isinstance(obj, pie.X509Certificate):
        return encodings.certificate_from_der(value, pem)
    raise PayloadMissing("the KMIP object's type does not match its reference")


class KmipSecretStore(ExternalStore):
    kind = "kmip"

    def __init__(self, pool: Pool, endpoint: str) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._objects = pie_factory.ObjectFactory()
        self._attributes = AttributeFactory()

    def __repr__(self) -> str:
        return f"KmipSecretStore(server={self._endpoint!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KmipSecretStore:
        # The connection options are all it takes.
        pool, endpoint = open_pool(parse_options(KmipConnectionOptions, options, _WHAT), _WHAT)
        store = cls(pool, endpoint)
        try:
            # One round trip at start-up: a wrong address or certificate fails here, not on a client's request.
            pool.call(
                enums.Operation.QUERY,
                payloads.QueryRequestPayload(query_functions=[enums.QueryFunction.QUERY_OPERATIONS]),
            )
        except (KmipUnavailable, OperationFailed) as exc:
            pool.close()
            raise ConfigurationError(f"{_WHAT}: cannot use {exc}") from None
        return store

    def put(self, info: PayloadInfo, payload: bytes) -> StoredPayload:
        obj, form = managed_object(info, payload)
        names = [
            self._attributes.create_attribute(enums.AttributeType.NAME, n)
            for n in getattr(obj, "names", None) or [object_name(info)]
        ]
        masks = getattr(obj, "cryptographic_usage_masks", None)
        if masks:
            names.append(self._attributes.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, masks))
        request = payloads.RegisterRequestPayload(
            object_type=obj.object_type,
            template_attribute=TemplateAttribute(attributes=names),
            managed_object=self._objects.convert(obj),
        )
        # Never retried: a Register that reached the server before the connection broke would leave a twin.
        response = self._call("register", enums.Operation.REGISTER, request, retry=False)
        return StoredPayload(ref=f"{response.unique_identifier}/{form}")

    def get(self, info: PayloadInfo, stored: StoredPayload) -> bytes:
        uid, form = self._parse(reference(stored))
        names = self._names(uid)
        if object_name(info) not in names:
            raise PayloadMissing(f"secret {info.secret_id} points at another KMIP object")
        response = self._call("get", enums.Operation.GET, payloads.GetRequestPayload(unique_identifier=uid))
        return payload_of(self._objects.convert(response.secret), form)

    def delete(self, info: PayloadInfo, stored: StoredPayload) -> None:
        uid, _ = self._parse(reference(stored))
        try:
            names = self._names(uid)
        except PayloadMissing:
            return  # already destroyed
        if object_name(info) not in names:
            raise PayloadMissing(f"secret {info.secret_id} points at another KMIP object")
        try:
            self._call(
                "destroy",
                enums.Operation.DESTROY,
                payloads.DestroyRequestPayload(unique_identifier=UniqueIdentifier(uid)),
            )
        except PayloadMissing:
            pass  # a retried Destroy whose first attempt went through

    def close(self) -> None:
        self._pool.close()

    def _names(self, uid: str) -> list[str]:
        response = self._call(
            "get attributes",
            enums.Operation.GET_ATTRIBUTES,
            payloads.GetAttributesRequestPayload(unique_identifier=uid, attribute_names=["Name"]),
        )
        return [str(a.attribute_value.name_value.value) for a in response.attributes or []]

    @staticmethod
    def _parse(ref: str) -> tuple[str, str]:
        uid, _, form = ref.partition("/")
        if not uid or form not in (_RAW, _PEM, _DER):
            raise PayloadMissing("not a KMIP object reference")
        return uid, form

    def _call(self, what: str, operation: enums.Operation, payload: Any, *, retry: bool = True) -> Any:
        try:
            return self._pool.call(operation, payload, retry=retry)
        except OperationFailed as exc:
            if exc.reason == enums.ResultReason.ITEM_NOT_FOUND:
                raise PayloadMissing("the KMIP object is gone") from None
            raise StoreUnavailable(f"{_WHAT}: {self._endpoint} refused to {what}: {exc}") from None
        except KmipUnavailable as exc:
            raise StoreUnavailable(f"{_WHAT}: {exc}") from None
