"""The conformance suite on the ``vault`` backend against a real OpenBao dev server (KV v2 + transit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from donjon.client import ConfigError, Forbidden, KeyManager, NotFound, Unauthorized, open_key_manager
from tests.client_conformance import KeyManagerConformance
from tests.components.openbao import OpenBao


@pytest.fixture
def km(openbao: OpenBao) -> Iterator[KeyManager]:  # noqa: F811
    config = {
        "type": "vault",
        "url": openbao.url,
        "token": openbao.token,
        "path": f"sdk-{uuid.uuid4()}",
        "transit_mount": "transit",
    }
    with open_key_manager(config) as km:
        yield km


class TestVault(KeyManagerConformance):
    consumers = False

    def test_an_id_outside_the_path_is_not_found(self, km: KeyManager) -> None:
        with pytest.raises(NotFound):
            km.get("../../sys/policy")


def test_a_wrong_token_is_unauthorized_or_forbidden(openbao: OpenBao) -> None:  # noqa: F811
    with open_key_manager({"type": "vault", "url": openbao.url, "token": "wrong"}) as km:
        with pytest.raises((Unauthorized, Forbidden)) as caught:
            list(km.list())
        assert "wrong" not in str(caught.value)


def test_unknown_option_is_refused(openbao: OpenBao) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"unknown option 'mount_point' \(did you mean 'mount'"):
        open_key_manager({"type": "vault", "url": openbao.url, "token": openbao.token, "mount_point": "x"})
