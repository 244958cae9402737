from tests.conftest import Api


def test_text_secret_round_trip(api: Api) -> None:
    sid = api.create_secret(name="n", payload="hello\n", payload_content_type="text/plain")
    r = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert r.status_code == 200
    assert r.content == b"hello\n"
