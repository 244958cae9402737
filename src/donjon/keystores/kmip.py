"""The KMIP keystore: the root key is an AES-256 key held by a KMIP server, which does every wrap and unwrap.

The root key is created on the KMIP server (named ``key_name``, usage Encrypt|Decrypt) and never retrieved:
donjon sends a KEK to the server's Encrypt operation and gets it back from Decrypt. The mode is AES-256-GCM
with associated data (KMIP 1.4's Authenticated Encryption Additional Data and Tag), so integrity and the
binding to the context are checked by the server with the root key, in one round trip each way.

Blob (version 1): ``0x01 || nonce (12) || ciphertext || tag (16)``; associated data = ``0x01 || context``,
so a blob cannot be re-labelled as another format. The nonce is a fresh random 96 bits chosen here
(PyKMIP would otherwise make a 128-bit one), which keeps the format fixed.

Checked against PyKMIP 0.11's server (tests/test_keystore_kmip.py):
- GCM Encrypt/Decrypt with AAD works when the request is KMIP 1.4 (the server parses a request at the
  version in its header); at 1.2 the AAD and tag fields do not exist.
- The server accepts a *shortened* tag (it sets ``min_tag_length`` to the length received), so the tag
  is always cut at a fixed 16 bytes from the end of a blob of checked length: a truncated blob never
  turns into a shorter, weaker tag.
- A tag mismatch is a GENERAL_FAILURE with no detail; every refusal of a Decrypt (unknown key, wrong
  tag, a key that is not active) is the same opaque ``DecryptionFailed`` here.

Connections, mutual TLS, the connection options and why PyKMIP's own client is not used: ``donjon.drivers.kmip``.

``root_key_id()`` is ``kmip:<uid>``: a wrapped KEK names the key that wrapped it, so several roots coexist
and a rotation only adds a key.

A connection that fails mid-request is retried once on a fresh one (Encrypt, Decrypt, Locate and Get
Attributes change nothing on the server, and a repeated Activate is checked; Create is never retried).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

from donjon.crypto import DecryptionFailed
from donjon.drivers.kmip import KmipConnectionOptions, KmipUnavailable, OperationFailed, Pool, open_pool
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey
from donjon.options import Flag, parse_options

with warnings.catch_warnings():
    # Importing any of PyKMIP 0.11 loads its SQLAlchemy models, which warn about SQLAlchemy 2 on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.attributes import CryptographicParameters, UniqueIdentifier
    from kmip.core.factories.attributes import AttributeFactory
    from kmip.core.messages import payloads
    from kmip.core.objects import TemplateAttribute

log = logging.getLogger(__name__)

_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_ID_PREFIX = "kmip:"

_WHAT = "kmip keystore"


class KmipKeystoreOptions(KmipConnectionOptions):
    key_name: str = "donjon-root"  # the root key's Name on the server; empty means the default
    key_id: str | None = None  # a KMIP uid to use instead of looking the name up
    create: Flag = True  # create the key on first start


_GCM = CryptographicParameters(
    block_cipher_mode=enums.BlockCipherMode.GCM,
    cryptographic_algorithm=enums.CryptographicAlgorithm.AES,
    tag_length=_TAG_BYTES,
)
_USAGE = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]


def _parse_root_key_id(root_key_id: str) -> str | None:
    """The KMIP uid in ``kmip:<uid>``, or None for an id that is not ours."""
    if not root_key_id.startswith(_ID_PREFIX) or len(root_key_id) == len(_ID_PREFIX):
        return None
    return root_key_id[len(_ID_PREFIX) :]


class KmipKeystore:
    def __init__(self, pool: Pool, uid: str, endpoint: str) -> None:
        self._pool = pool
        self._uid = uid
        self._endpoint = endpoint

    def __repr__(self) -> str:
        return f"KmipKeystore(server={self._endpoint!r}, root_key_id={self.root_key_id()!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KmipKeystore:
        opts = parse_options(KmipKeystoreOptions, options, _WHAT)
        pool, endpoint = open_pool(opts, _WHAT)  # no connection yet: nothing to close if this fails
        try:
            if opts.key_id:
                uid = _check_key(pool, opts.key_id)
            else:
                uid = _find_or_create(pool, opts.key_name or "donjon-root", opts.create)
            keystore = cls(pool, uid, endpoint)
            keystore._self_test()
        except KmipUnavailable as exc:
            pool.close()
            raise ConfigurationError(f"kmip keystore: cannot use {exc}") from None
        except OperationFailed as exc:
            pool.close()
            raise ConfigurationError(f"kmip keystore: {exc}") from None
        except BaseException:
            pool.close()
            raise
        return keystore

    def root_key_id(self) -> str:
        return _ID_PREFIX + self._uid

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        if not key:
            raise ValueError("nothing to wrap")
        nonce = os.urandom(_NONCE_BYTES)
        try:
            response = self._pool.call(
                enums.Operation.ENCRYPT,
                payloads.EncryptRequestPayload(
                    unique_identifier=self._uid,
                    cryptographic_parameters=_GCM,
                    data=key,
                    iv_counter_nonce=nonce,
                    auth_additional_data=_VERSION + context,
                ),
            )
        except OperationFailed as exc:
            # Our own current root refusing to encrypt: the server changed under us, not a bad input.
            raise KmipUnavailable(str(exc)) from None
        ciphertext, tag = response.data, response.auth_tag
        if not ciphertext or len(ciphertext) != len(key) or not tag or len(tag) != _TAG_BYTES:
            raise KmipUnavailable("KMIP server returned a malformed GCM result")
        return WrappedKey(self.root_key_id(), _VERSION + nonce + ciphertext + tag)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        uid = _parse_root_key_id(wrapped.root_key_id)
        blob = wrapped.blob
        if uid is None or blob[:1] != _VERSION or len(blob) <= 1 + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed
        # Fixed offsets: the tag is always the last 16 bytes, so no shorter tag ever reaches the server.
        nonce = blob[1 : 1 + _NONCE_BYTES]
        ciphertext, tag = blob[1 + _NONCE_BYTES : -_TAG_BYTES], blob[-_TAG_BYTES:]
        try:
            response = self._pool.call(
                enums.Operation.DECRYPT,
                payloads.DecryptRequestPayload(
                    unique_identifier=uid,
                    cryptographic_parameters=_GCM,
                    data=ciphertext,
                    iv_counter_nonce=nonce,
                    auth_additional_data=_VERSION + context,
                    auth_tag=tag,
                ),
            )
        except OperationFailed as exc:
            # Wrong tag (GENERAL_FAILURE), unknown or foreign key, key no longer active: one opaque failure.
            log.debug("KMIP Decrypt refused: %s", getattr(exc.reason, "name", exc.reason))
            raise DecryptionFailed from None
        plaintext: bytes | None = response.data
        if not plaintext or len(plaintext) != len(ciphertext):
            raise DecryptionFailed
        return plaintext

    def close(self) -> None:
        self._pool.close()

    def _self_test(self) -> None:
        """A wrap and unwrap at start-up: a server without GCM fails here, not on a client's request."""
        probe = os.urandom(32)
        try:
            wrapped = self.wrap(probe, b"donjon/kmip/self-test")
            ok = self.unwrap(wrapped, b"donjon/kmip/self-test") == probe
        except DecryptionFailed:
            ok = False
        if not ok:
            raise ConfigurationError(f"kmip keystore: key {self.root_key_id()!r} does not wrap and unwrap with GCM")


def _find_or_create(pool: Pool, name: str, create: bool) -> str:
    """The usable AES-256 key called ``name``; with ``create``, made if there is none.

    Concurrent first starts converge: each creates, then every one takes the lowest identifier among the
    pre-active or active keys of that name (PyKMIP numbers objects in creation order) and activates it.
    """
    uid = _lowest_usable(pool, name)
    if uid is None:
        if not create:
            raise ConfigurationError(f"kmip keystore: no usable key named {name!r} on the server and create is false")
        factory = AttributeFactory()
        template = TemplateAttribute(
            attributes=[
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, _USAGE),
                factory.create_attribute(enums.AttributeType.NAME, name),
            ]
        )
        created = pool.call(
            enums.Operation.CREATE,
            payloads.CreateRequestPayload(object_type=enums.ObjectType.SYMMETRIC_KEY, template_attribute=template),
            retry=False,  # a retried Create could leave a second key; the look-up below copes, but why make one
        ).unique_identifier
        log.info("created KMIP key %s named %r", created, name)
        uid = _lowest_usable(pool, name) or created
    return _check_key(pool, uid)


def _lowest_usable(pool: Pool, name: str) -> str | None:
    factory = AttributeFactory()
    found = pool.call(
        enums.Operation.LOCATE,
        payloads.LocateRequestPayload(
            attributes=[
                factory.create_attribute(enums.AttributeType.NAME, name),
                factory.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
            ]
        ),
    ).unique_identifiers
    usable = [
        uid
        for uid in (found or [])
        if _attributes(pool, uid).get("State") in (enums.State.PRE_ACTIVE, enums.State.ACTIVE)
    ]
    return min(usable, key=_uid_order) if usable else None


def _uid_order(uid: str) -> tuple[int, str]:
    return (len(uid), uid)  # numeric order for PyKMIP's integer ids, a fixed order for any other


def _attributes(pool: Pool, uid: str) -> dict[str, Any]:
    response = pool.call(
        enums.Operation.GET_ATTRIBUTES,
        payloads.GetAttributesRequestPayload(
            unique_identifier=uid,
            attribute_names=["State", "Object Type", "Cryptographic Algorithm", "Cryptographic Length"]
            + ["Cryptographic Usage Mask"],
        ),
    )
    return {a.attribute_name.value: a.attribute_value.value for a in response.attributes}


def _check_key(pool: Pool, uid: str) -> str:
    """``uid`` if it is an AES-256 key allowed Encrypt and Decrypt; activated if it was still pre-active."""
    try:
        attributes = _attributes(pool, uid)
    except OperationFailed as exc:
        raise ConfigurationError(f"kmip keystore: key {uid!r} is not usable: {exc}") from None
    mask = attributes.get("Cryptographic Usage Mask") or 0
    if (
        attributes.get("Object Type") != enums.ObjectType.SYMMETRIC_KEY
        or attributes.get("Cryptographic Algorithm") != enums.CryptographicAlgorithm.AES
        or attributes.get("Cryptographic Length") != 256
        or any(not mask & bit.value for bit in _USAGE)
    ):
        raise ConfigurationError(f"kmip keystore: key {uid!r} is not an AES-256 key allowed Encrypt and Decrypt")
    state = attributes.get("State")
    if state == enums.State.PRE_ACTIVE:
        try:
            pool.call(
                enums.Operation.ACTIVATE, payloads.ActivateRequestPayload(unique_identifier=UniqueIdentifier(uid))
            )
        except OperationFailed:
            state = _attributes(pool, uid).get("State")  # another starter activated it first
        else:
            state = enums.State.ACTIVE
    if state != enums.State.ACTIVE:
        raise ConfigurationError(f"kmip keystore: key {uid!r} is {getattr(state, 'name', state)}, not active")
    return uid
