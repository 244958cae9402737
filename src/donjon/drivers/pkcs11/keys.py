"""Finding secret keys in a token, and the non-extractable AES-256 key a keystore's wraps are rooted in."""

from __future__ import annotations

import os
from typing import Any

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.types import SecretKey, Session

from donjon.errors import ConfigurationError

AES_256_BYTES = 32
KEY_ID_BYTES = 16


def find_secret_keys(session: Session, label: str, key_id: bytes | None) -> list[SecretKey]:
    """The secret keys labelled ``label`` (with ``key_id`` as CKA_ID if given; ``b""``: those without one)."""
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
    if key_id:
        template[Attribute.ID] = key_id
    found = [k for k in session.get_objects(template) if isinstance(k, SecretKey)]
    if key_id is not None and not key_id:
        found = [k for k in found if not key_id_of(k)]
    return found


def key_id_of(key: SecretKey) -> bytes:
    """The key's CKA_ID, ``b""`` if it has none."""
    try:
        value = key[Attribute.ID]
    except p11e.PKCS11Error:
        return b""
    return bytes(value) if value else b""


def secret_key_template(*, extractable: bool) -> dict[Attribute, Any]:
    """A private token key that encrypts and decrypts; ``extractable`` ones are also not sensitive (a key
    manager hands them back), the others never leave the token."""
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: not extractable,
        Attribute.EXTRACTABLE: extractable,
        Attribute.MODIFIABLE: False,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
    }


def _root_key_template() -> dict[Attribute, Any]:
    # Least privilege: the key only seals and opens KEK blobs.
    denied = (Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN, Attribute.VERIFY, Attribute.DERIVE)
    return secret_key_template(extractable=False) | dict.fromkeys(denied, False)


def _check_root_key(key: SecretKey, what: str, label: str) -> None:
    """An existing key is only used if it is what we would have created: AES-256, sensitive, never leaving."""

    def attr(a: Attribute) -> Any:
        try:
            return key[a]
        except p11e.PKCS11Error:
            return None

    problems = []
    if attr(Attribute.KEY_TYPE) != KeyType.AES or attr(Attribute.VALUE_LEN) != AES_256_BYTES:
        problems.append("not an AES-256 key")
    if attr(Attribute.EXTRACTABLE) is not False:
        problems.append("extractable")
    if attr(Attribute.SENSITIVE) is not True:
        problems.append("not sensitive")
    if attr(Attribute.ENCRYPT) is not True or attr(Attribute.DECRYPT) is not True:
        problems.append("lacks CKA_ENCRYPT/CKA_DECRYPT")
    if problems:
        raise ConfigurationError(f"{what}: root key {label!r} is unusable: {', '.join(problems)}")


def find_or_create_root_key(session: Session, label: str, create: bool, what: str) -> bytes:
    """The CKA_ID of the root key labelled ``label``, generating it in the token if absent and allowed.

    If several keys carry the label (two processes' first starts raced), the lowest CKA_ID wins, so processes
    opened later agree; wraps by either key keep opening anywhere, as the root key id names the exact key.
    """
    try:
        found = find_secret_keys(session, label, None)
        if not found:
            if not create:
                raise ConfigurationError(f"{what}: no root key labelled {label!r} in the token (create = false)")
            session.generate_key(
                KeyType.AES,
                8 * AES_256_BYTES,
                id=os.urandom(KEY_ID_BYTES),
                label=label,
                store=True,
                template=_root_key_template(),
            )
            found = find_secret_keys(session, label, None)
    except p11e.PKCS11Error as exc:
        raise ConfigurationError(f"{what}: cannot find or create root key {label!r}: {type(exc).__name__}") from None
    key = min(found, key=key_id_of)
    _check_root_key(key, what, label)
    return key_id_of(key)
