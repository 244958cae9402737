"""``/v1/secret-stores`` with external stores configured (a real OpenBao KV store), and without any."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings, StoreConfig
from tests.components.openbao import OpenBao
from tests.conftest import BASE, Api
from tests.openapi_conformance import check_responses

ADMIN = {"X-Roles": "admin"}


@pytest.fixture
def stores_api(
    openbao: OpenBao,  # noqa: F811
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        stores={"vault-kv": StoreConfig(type="vault", options={"url": openbao.url, "prefix": "api-test"})},
        orders={"run_in_server": False},
    )
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield Api(check_responses(client), f"project-{uuid.uuid4()}")


def test_without_external_stores_every_route_is_disabled(api: Api) -> None:
    for method, path in [
        ("GET", "/v1/secret-stores"),
        ("GET", "/v1/secret-stores/global-default"),
        ("GET", "/v1/secret-stores/preferred"),
        ("GET", f"/v1/secret-stores/{uuid.uuid4()}"),
        ("POST", f"/v1/secret-stores/{uuid.uuid4()}/preferred"),
    ]:
        r = api.request(method, path, headers=ADMIN)
        assert r.status_code == 404, (method, path)
        assert (
            r.json()["description"] == "Not Found. Multiple backends support is not enabled in service configuration."
        )


def test_list_get_and_global_default(stores_api: Api) -> None:
    listed = stores_api.get("/v1/secret-stores", headers={"X-Roles": "reader"}).json()["secret_stores"]
    assert [(s["name"], s["secret_store_plugin"], s["crypto_plugin"], s["global_default"]) for s in listed] == [
        ("database", "store_crypto", "simple_crypto", True),
        ("vault-kv", "vault_plugin", None, False),
    ]
    assert {s["status"] for s in listed} == {"ACTIVE"}
    vault = listed[1]
    assert stores_api.get(vault["secret_store_ref"]).json() == vault
    assert stores_api.get("/v1/secret-stores/global-default").json()["name"] == "database"
    r = stores_api.get(f"/v1/secret-stores/{uuid.uuid4()}")
    assert r.status_code == 404


def test_preferred_store_per_project(stores_api: Api) -> None:
    vault_ref = stores_api.get("/v1/secret-stores").json()["secret_stores"][1]["secret_store_ref"]
    r = stores_api.get("/v1/secret-stores/preferred")
    assert (r.status_code, r.json()["description"]) == (
        404,
        "Not Found. No preferred secret store defined for this project.",
    )

    assert stores_api.post(f"{vault_ref}/preferred", headers={"X-Roles": "member"}).status_code == 403
    assert stores_api.post(f"{vault_ref}/preferred", headers=ADMIN).status_code == 204
    assert stores_api.get("/v1/secret-stores/preferred").json()["name"] == "vault-kv"
    assert stores_api.other_project().get("/v1/secret-stores/preferred").status_code == 404

    assert stores_api.delete(f"{vault_ref}/preferred", headers=ADMIN).status_code == 204
    assert stores_api.get("/v1/secret-stores/preferred").status_code == 404
    assert stores_api.delete(f"{vault_ref}/preferred", headers=ADMIN).status_code == 404


def test_other_methods_are_refused(stores_api: Api) -> None:
    vault_ref = stores_api.get("/v1/secret-stores").json()["secret_stores"][1]["secret_store_ref"]
    assert stores_api.post(vault_ref, headers=ADMIN).status_code == 405
    assert stores_api.delete(vault_ref, headers=ADMIN).status_code == 405
