"""The conformance suite on the ``donjon`` backend against a live donjon server (dev mode)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from donjon.client import KeyManager, open_key_manager
from tests.client_conformance import KeyManagerConformance
from tests.live_server import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture
def km(live_server: LiveServer) -> Iterator[KeyManager]:
    with open_key_manager({"type": "donjon", "url": live_server.url, "project_id": f"sdk-{uuid.uuid4()}"}) as km:
        yield km


class TestDonjon(KeyManagerConformance):
    consumers = True
    expires = True
