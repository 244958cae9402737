"""The secrets API tests (secrets, lists, metadata, consumers), collected here a second time so they run
against the vault and kmip stores of this directory's ``settings``."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.config import Settings
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from tests.conftest import Api
from tests.test_api_secret_extras import *  # noqa: F403
from tests.test_api_secret_lists import *  # noqa: F403
from tests.test_api_secrets import *  # noqa: F403


def test_the_suite_really_uses_the_external_store(api: Api, settings: Settings, app_client: TestClient) -> None:
    secret_id = api.create_secret(payload="kept elsewhere", payload_content_type="text/plain")
    db = Database(settings.effective_database_url, pool_size=1)
    try:
        with db.read() as conn:
            row = conn.execute(select(secrets).where(secrets.c.id == secret_id)).one()
    finally:
        db.dispose()
    assert (row.store, row.ciphertext, row.kek_id) == (settings.default_store, None, None) and row.store_ref
    r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"})
    assert (r.status_code, r.text) == (200, "kept elsewhere")
