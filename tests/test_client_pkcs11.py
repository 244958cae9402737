"""The conformance suite on the ``pkcs11`` backend against a real SoftHSM2 token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from donjon.client import ConfigError, KeyManager, SymmetricKey, open_key_manager
from tests.client_conformance import KeyManagerConformance

if TYPE_CHECKING:
    from tests.components.softhsm import SoftHsmToken

# Registered as a plugin (as test_keystore_pkcs11 does): one SoftHSM2 token for the whole session.
pytest_plugins = ["tests.components.softhsm"]


@pytest.fixture
def km(softhsm: SoftHsmToken) -> Iterator[KeyManager]:
    with open_key_manager({"type": "pkcs11", **softhsm.options(), "namespace": f"sdk-{uuid.uuid4()}"}) as km:
        yield km


class TestPkcs11(KeyManagerConformance):
    consumers = False


def test_generated_aes_key_is_a_token_secret_key(softhsm: SoftHsmToken) -> None:
    from pkcs11 import Attribute, KeyType, ObjectClass

    with open_key_manager({"type": "pkcs11", **softhsm.options(), "namespace": "gen"}) as km:
        key_id = km.create_key(bit_length=128)
        assert isinstance(km.get(key_id), SymmetricKey)
        token = km._token  # type: ignore[attr-defined]
        with token.borrow() as pooled:
            [key] = pooled.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_id})
            assert key[Attribute.KEY_TYPE] == KeyType.AES and key[Attribute.TOKEN]


def test_wrong_pin_is_a_config_error(softhsm: SoftHsmToken, tmp_path: object) -> None:
    import pathlib

    pin = pathlib.Path(str(tmp_path)) / "pin"
    pin.write_text("wrong-pin\n")
    pin.chmod(0o600)
    with pytest.raises(ConfigError, match="rejected the PIN"):
        open_key_manager({"type": "pkcs11", **softhsm.options(), "pin_file": str(pin)})
