"""A consumer belongs to the project that registered it (issue 15, item 3; Barbican's controllers/consumers.py).

Project B's user, named in the read ACL of project A's secret or container, may register consumers on it and
remove its own, but not A's: 403 "Not Allowed. Sorry, only the creator of a consumer can delete it.", and
the consumer stays. Project A (the resource's project) may remove any consumer of its resource, B's too.
"""

from __future__ import annotations

import pytest

from tests.conftest import Api

KINDS = {
    "secret": {"service": "image", "resource_type": "image", "resource_id": "img-1"},
    "container": {"name": "lb", "URL": "http://lb/1"},
}


def _shared(api: Api, kind: str, reader: Api) -> str:
    """Project A's secret or container, with B's ``reader`` in its read ACL; returns its path."""
    if kind == "secret":
        path = f"/v1/secrets/{api.create_secret(name='shared', payload='p', payload_content_type='text/plain')}"
    else:
        ref = api.post("/v1/containers", json={"type": "generic", "name": "shared"}).json()["container_ref"]
        path = f"/v1/containers/{ref.rsplit('/', 1)[1]}"
    assert api.put(f"{path}/acl", json={"read": {"users": [reader.user_id]}}).status_code == 200
    return path


def _consumers(api: Api, path: str) -> list[dict[str, str]]:
    consumers: list[dict[str, str]] = api.get(f"{path}/consumers").json()["consumers"]
    return consumers


@pytest.mark.parametrize("kind", KINDS)
def test_another_project_cannot_remove_a_projects_consumer(api: Api, kind: str) -> None:
    other = api.other_project()
    path = _shared(api, kind, other)
    consumer = KINDS[kind]
    assert api.post(f"{path}/consumers", json=consumer).status_code == 200
    assert len(_consumers(other, path)) == 1, "the ACL user sees it"

    r = other.request("DELETE", f"{path}/consumers", json=consumer)
    assert r.status_code == 403
    assert r.json() == {
        "code": 403,
        "title": "Forbidden",
        "description": "Not Allowed. Sorry, only the creator of a consumer can delete it.",
    }
    assert len(_consumers(api, path)) == 1, "nothing removed"
    # A consumer that does not exist is still 404 for them, as in Barbican (policy, then look-up, then owner).
    missing = {k: f"{v}-missing" for k, v in consumer.items()}
    assert other.request("DELETE", f"{path}/consumers", json=missing).status_code == 404


@pytest.mark.parametrize("kind", KINDS)
def test_the_registering_project_and_the_resources_project_may_remove_it(api: Api, kind: str) -> None:
    other = api.other_project()
    path = _shared(api, kind, other)
    mine, theirs = KINDS[kind], {k: f"{v}-b" for k, v in KINDS[kind].items()}
    assert other.post(f"{path}/consumers", json=mine).status_code == 200
    assert other.post(f"{path}/consumers", json=theirs).status_code == 200
    assert other.request("DELETE", f"{path}/consumers", json=mine).status_code == 200, "B registered it"
    assert api.request("DELETE", f"{path}/consumers", json=theirs).status_code == 200, "A owns the resource"
    assert _consumers(api, path) == []
