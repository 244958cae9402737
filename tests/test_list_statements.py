"""The list query's statements are built once per shape and filled with the query's values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from donjon.storage import secrets as repo
from donjon.storage.secrets import SecretQuery, TimeBound

NOW = datetime(2026, 12, 2, tzinfo=UTC)
QUERIES = {
    "plain": SecretQuery(project_id="p", now=NOW),
    "private": SecretQuery(project_id="p", now=NOW, private_visible_to="u"),
    "acl only": SecretQuery(project_id="p", now=NOW, acl_user="u"),
    "every filter": SecretQuery(
        project_id="p",
        now=NOW,
        name="a\\b%",
        algorithm="aes",
        mode="cbc",
        bit_length=256,
        secret_type="symmetric",
        time_bounds={"created_at": [TimeBound("gt", NOW), TimeBound("lte", NOW)], "expiration": [TimeBound("eq", NOW)]},
        sort=[("name", True)],
        private_visible_to="u",
    ),
}


@pytest.mark.parametrize("name", QUERIES)
def test_every_bound_parameter_gets_its_value(name: str) -> None:
    query = QUERIES[name]
    counting, paging = repo._statements(query)
    params = repo._parameters(query)
    assert set(counting.compile().params) == set(params)
    assert set(paging.compile().params) == set(params) | {"offset", "limit"}
    assert repo._statements(query) == (counting, paging)  # the same objects: built once


def test_queries_of_one_shape_share_statements_and_differ_by_values() -> None:
    first = SecretQuery(project_id="p1", now=NOW, name="x", bit_length=128)
    second = SecretQuery(project_id="p2", now=NOW, name="y\\", bit_length=256, offset=10)
    assert repo._statements(first) == repo._statements(second)
    assert repo._parameters(second) == {"now": NOW, "project_id": "p2", "name": "y\\\\", "bit_length": 256}
    assert repo._statements(SecretQuery(project_id="p", now=NOW, name="x")) != repo._statements(first)
