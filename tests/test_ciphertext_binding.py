"""Ciphertexts are bound to their secret: a row copied or altered in the database does not decrypt."""

from __future__ import annotations

from sqlalchemy import select, update

from donjon.config import Settings
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from tests.conftest import Api
from tests.openapi_conformance import server_errors_expected


def test_stored_ciphertext_is_not_the_plaintext_and_moved_rows_fail(api: Api, settings: Settings) -> None:
    a = api.create_secret(payload="alpha-secret-value", payload_content_type="text/plain")
    b = api.create_secret(payload="bravo-secret-value", payload_content_type="text/plain")
    db = Database(settings.effective_database_url)
    with db.read() as conn:
        row_a = conn.execute(select(secrets).where(secrets.c.id == a)).one()
    assert b"alpha-secret-value" not in row_a.ciphertext
    with db.write() as conn:  # an attacker with database access copies A's sealed payload onto B
        conn.execute(
            update(secrets)
            .where(secrets.c.id == b)
            .values(ciphertext=row_a.ciphertext, kek_id=row_a.kek_id, content_type=row_a.content_type)
        )
    with server_errors_expected():
        r = api.get(f"/v1/secrets/{b}/payload", headers={"Accept": "text/plain"})
    assert r.status_code == 500
    assert r.json()["description"] == "Secret payload retrieval failure seen - please contact site administrator."
    assert "alpha" not in r.text
    assert api.get(f"/v1/secrets/{a}/payload", headers={"Accept": "text/plain"}).text == "alpha-secret-value"

    flipped = bytearray(row_a.ciphertext)
    flipped[len(flipped) // 2] ^= 1
    with db.write() as conn:
        conn.execute(update(secrets).where(secrets.c.id == a).values(ciphertext=bytes(flipped)))
    with server_errors_expected():
        assert api.get(f"/v1/secrets/{a}/payload").status_code == 500
    db.dispose()


def test_same_id_in_another_project_does_not_decrypt(api: Api, settings: Settings) -> None:
    a = api.create_secret(payload="project-bound", payload_content_type="text/plain")
    db = Database(settings.effective_database_url)
    other = api.other_project()
    other.create_secret(name="gives the other project a KEK", payload="x", payload_content_type="text/plain")
    with db.write() as conn:  # re-home the row into the other project, keeping its sealed payload
        conn.execute(update(secrets).where(secrets.c.id == a).values(project_id=other.project_id))
    with server_errors_expected():
        assert other.get(f"/v1/secrets/{a}/payload").status_code == 500
    db.dispose()
