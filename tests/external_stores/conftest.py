"""The secrets API suite again, with every payload kept by an external store (real OpenBao KV, real PyKMIP).

``settings`` is overridden here: the app of ``app_client`` gets the store as ``default_store``, so every
secret the reused tests create goes there; the routing itself is tested in ``tests/test_store_routing.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings, StoreConfig
from tests.components.kmip import KmipServer
from tests.components.openbao import OpenBao
from tests.conftest import BASE

STORES = ("vault", "kmip")


@pytest.fixture(scope="package", params=STORES)
def settings(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    kind = request.param
    data_dir = tmp_path_factory.mktemp(f"data-{kind}-store")
    with pytest.MonkeyPatch.context() as env:
        if kind == "vault":
            bao: OpenBao = request.getfixturevalue("openbao")
            env.setenv("DONJON_VAULT_TOKEN", bao.token)
            store = StoreConfig(type="vault", options={"url": bao.url, "prefix": "api-suite"})
        else:
            kmip: KmipServer = request.getfixturevalue("kmip_server")
            store = StoreConfig(type="kmip", options=kmip.options())
        yield Settings(
            database_url=database_url,
            data_dir=data_dir,
            host_href=BASE,
            keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
            stores={kind: store},
            default_store=kind,
        )


@pytest.fixture(scope="package")
def app_client(settings: Settings) -> Iterator[TestClient]:
    # A fixture of this directory's own: the root one is cached for the whole session, and an app made with
    # these settings would otherwise be handed to later modules on the same database.
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield client
