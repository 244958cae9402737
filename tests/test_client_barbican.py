"""The conformance suite on the ``donjon`` backend against a real Barbican 23.0.0 (unauthenticated)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from donjon.client import KeyManager, open_key_manager
from tests.client_conformance import KeyManagerConformance

if TYPE_CHECKING:
    from tests.components.barbican import Barbican

pytest_plugins = ["tests.components.barbican"]
pytestmark = pytest.mark.live


@pytest.fixture
def km(barbican: Barbican) -> Iterator[KeyManager]:
    with open_key_manager({"type": "barbican", "url": barbican.url, "project_id": f"sdk-{uuid.uuid4()}"}) as km:
        yield km


class TestBarbican(KeyManagerConformance):
    consumers = True
    expires = True

    @pytest.fixture
    def pass_expiration(self, barbican: Barbican) -> Callable[[str, datetime], None]:
        """Barbican's database is the test's to reach: the expiration moves, nobody waits."""
        return lambda object_id, _when: barbican.expire_now(object_id.rsplit("/", 1)[-1])
