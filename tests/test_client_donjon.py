"""The conformance suite on the ``donjon`` backend against a live donjon server (dev mode)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

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

    @pytest.fixture
    def pass_expiration(self, live_server: LiveServer) -> Callable[[str, datetime], None]:
        """The live server's database is the test's to reach: its expiration moves, nobody waits."""
        return lambda object_id, _when: live_server.expire_now(object_id.rsplit("/", 1)[-1])
