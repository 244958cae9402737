"""The conformance suite on the ``kmip`` backend against a real PyKMIP server (mutual TLS)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from donjon.client import ConfigError, KeyManager, PrivateKey, SymmetricKey, open_key_manager
from tests.client_conformance import PRIVATE_PEM, KeyManagerConformance
from tests.components.kmip import KmipServer


def options(server: KmipServer, namespace: str) -> dict[str, object]:
    return {"type": "kmip", **server.options(), "namespace": namespace}


@pytest.fixture
def km(kmip_server: KmipServer) -> Iterator[KeyManager]:
    with open_key_manager(options(kmip_server, f"sdk-{uuid.uuid4()}")) as km:
        yield km


class TestKmip(KeyManagerConformance):
    consumers = False

    def unknown_id(self) -> str:
        return "999999999"


def test_namespaces_do_not_see_each_other(kmip_server: KmipServer) -> None:
    with open_key_manager(options(kmip_server, "one")) as one, open_key_manager(options(kmip_server, "two")) as two:
        object_id = one.store(SymmetricKey(data=b"k" * 16, algorithm="aes"))
        assert object_id not in {i.id for i in two.list()}
        with pytest.raises(Exception) as caught:
            two.get(object_id)
        assert type(caught.value).__name__ == "NotFound"


def test_key_bytes_never_reach_a_log(kmip_server: KmipServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with open_key_manager(options(kmip_server, f"log-{uuid.uuid4()}")) as km:
        km.get(km.store(PrivateKey(data=PRIVATE_PEM, algorithm="ec", bit_length=256)))
    assert b"PRIVATE" not in caplog.text.encode() and PRIVATE_PEM[40:80].decode() not in caplog.text


def test_missing_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="required"):
        open_key_manager({"type": "kmip", "host": "127.0.0.1"})
