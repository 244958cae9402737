"""Listing secrets (spec §2.3, §0.8): paging, links, filters, sort, isolation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import BASE, Api


def ids(body: dict[str, object]) -> list[str]:
    return [s["secret_ref"].rsplit("/", 1)[1] for s in body["secrets"]]  # type: ignore[attr-defined, index]


@pytest.fixture
def twelve(api: Api) -> list[str]:
    made = []
    for i in range(12):
        made.append(
            api.create_secret(
                name=f"s-{i:02d}",
                algorithm="aes" if i % 2 else "rsa",
                bit_length=128 if i < 6 else 256,
                mode="cbc" if i % 3 else "gcm",
                secret_type="symmetric" if i % 2 else "private",
            )
        )
    return made


def test_default_page_and_stable_order(api: Api, twelve: list[str]) -> None:
    body = api.get("/v1/secrets").json()
    assert body["total"] == 12
    assert ids(body) == twelve[:10]
    assert body["next"] == f"{BASE}/v1/secrets?limit=10&offset=10"
    assert "previous" not in body


def test_paging_links(api: Api, twelve: list[str]) -> None:
    body = api.get("/v1/secrets?limit=5&offset=5&name=s-%25").json()
    assert ids(body) == twelve[5:10]
    for link, offset in (("next", "10"), ("previous", "0")):
        query = parse_qs(urlsplit(body[link]).query)
        assert query == {"limit": ["5"], "offset": [offset], "name": ["s-%"]}
    last = api.get("/v1/secrets?limit=5&offset=10").json()
    assert ids(last) == twelve[10:] and "next" not in last


@pytest.mark.parametrize(
    "query,expected_len,expected_limit",
    [
        ("limit=0", 10, 10),
        ("limit=-3", 1, 1),
        ("limit=500", 12, 100),
        ("limit=abc", 10, 10),
        ("offset=-5", 10, 10),
        ("offset=xyz", 10, 10),
    ],
)
def test_paging_values_are_cleaned(
    api: Api, twelve: list[str], query: str, expected_len: int, expected_limit: int
) -> None:
    body = api.get(f"/v1/secrets?{query}").json()
    assert len(body["secrets"]) == expected_len
    if "next" in body:
        assert parse_qs(urlsplit(body["next"]).query)["limit"] == [str(expected_limit)]


def test_filters(api: Api, twelve: list[str]) -> None:
    assert ids(api.get("/v1/secrets?name=s-03").json()) == [twelve[3]]
    assert ids(api.get("/v1/secrets?name=s-1%25").json()) == twelve[10:12]
    assert len(ids(api.get("/v1/secrets?alg=aes").json())) == 6
    assert len(ids(api.get("/v1/secrets?bits=256&limit=100").json())) == 6
    assert api.get("/v1/secrets?bits=lots").json()["total"] == 12
    assert len(ids(api.get("/v1/secrets?mode=gcm").json())) == 4
    assert api.get("/v1/secrets?secret_type=private").json()["total"] == 6
    assert api.get("/v1/secrets?secret_type=nonsense").status_code == 400


def test_time_filters(api: Api, twelve: list[str]) -> None:
    created = [s["created"] for s in api.get("/v1/secrets?limit=100").json()["secrets"]]
    assert ids(api.get(f"/v1/secrets?created={created[4]}").json()) == [twelve[4]]
    between = api.get(f"/v1/secrets?created=gte:{created[2]},lt:{created[5]}").json()
    assert ids(between) == twelve[2:5]
    assert api.get(f"/v1/secrets?created=gt:{created[11]}").json()["total"] == 0
    for bad in (f"gt:{created[1]},gte:{created[2]}", f"{created[1]},lt:{created[3]}", "gt:yesterday"):
        r = api.get(f"/v1/secrets?created={bad}")
        assert (r.status_code, r.json()["description"]) == (400, "URI provided invalid query string parameters.")


def test_sort(api: Api, twelve: list[str]) -> None:
    body = api.get("/v1/secrets?sort=name:desc&limit=3").json()
    assert [s["name"] for s in body["secrets"]] == ["s-11", "s-10", "s-09"]
    by_bits = api.get("/v1/secrets?sort=bit_length:desc,name:asc&limit=2").json()
    assert [s["name"] for s in by_bits["secrets"]] == ["s-06", "s-07"]
    for bad in ("name:up", "colour", "name,name:desc"):
        assert api.get(f"/v1/secrets?sort={bad}").status_code == 400


def test_lists_are_per_project(api: Api, twelve: list[str]) -> None:
    other = api.other_project()
    other.create_secret(name="theirs")
    assert other.get("/v1/secrets").json()["total"] == 1
    assert api.get("/v1/secrets").json()["total"] == 12


def test_empty_list(api: Api) -> None:
    assert api.get("/v1/secrets").json() == {"secrets": [], "total": 0}
