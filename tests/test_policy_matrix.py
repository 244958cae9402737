"""Who may do what: every endpoint x every kind of caller x {project A's resource, project B's resource},
from ONE table, checked in token mode (donjon-issued tokens, in-process) and in keystone mode (a live server
against the real Keystone), each with the secure-RBAC defaults and with Barbican's legacy rules
(``enforce_new_defaults = false``).

Callers (columns). Project A's users, each holding one role (Keystone's implied roles apply: admin implies
member implies reader; the legacy roles imply nothing):

    admin  member  reader  creator  observer  audit  guest
    ^ guest holds only a role donjon's policy does not know ("no role": Keystone issues no project token
      to a user without any role on the project)

and three more:

    other  a member of project B
    acl    a member of project B named in the read ACL of project A's secret and container
    sys    a Keystone system-scoped admin (role admin on system "all"); keystone mode only

Resources are created by a plain member (and legacy creator) of their project (``owner``), never by the
caller, so owner-only rules do not hide what a role grants. Resource rows are checked twice: against project
A's resource (the caller's own project for the A columns) and against project B's.

Cells: ``ok`` (any 2xx), ``403`` (denied; the caller may know the resource exists: same project, or named in
its ACL), ``404`` (not found: another project's resource the caller may not see looks exactly like a
missing one, donjon's no-existence-oracle rule). For ``/v1/secret-stores`` ``ok`` is the 404 "multiple
backends support is not enabled" that follows a successful policy check.
The last column is the legacy run (Barbican's legacy rules alone, as Barbican evaluates them with
``enforce_new_defaults = false``; tests/test_policy_barbican.py checks each rule string against Barbican's).

Where this departs from Barbican (docs/api-compatibility.md): 404 instead of 403 for other projects'
resources; project A's admin has no power over project B's secrets and containers (Barbican's
``secret:get``/``secret:delete`` grant any project's admin); a system-scoped admin is admitted for the
cloud-wide project-quotas and secret-stores rules, where Barbican refuses every token without a project.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings
from donjon.storage import migrate
from donjon.storage.database import Database
from tests.conftest import BASE
from tests.live_server import LiveServer
from tests.openapi_conformance import check_responses

if TYPE_CHECKING:
    from tests.components.keystone import Keystone


COLUMNS = ["admin", "member", "reader", "creator", "observer", "audit", "guest", "other", "acl", "sys"]

# Shorthands for the seven project-A columns (admin member reader creator observer audit guest):
M = "ok ok 403 403 403 403 403"  # secure RBAC: project admin and member ("M", "M+A" in Barbican's rules)
Q = "ok 403 403 403 403 403 403"  # admin only
RD = "ok ok ok 403 403 403 403"  # secure RBAC: role:reader (admin and member imply it)
# Legacy mode is Barbican's legacy rules alone: member and reader (and what admin implies) grant nothing.
LR = "ok 403 403 ok ok ok 403"  # legacy reads, all_users: admin, creator, observer, audit
LD = "ok 403 403 ok ok 403 403"  # legacy all_but_audit: admin, creator, observer
LW = "ok 403 403 ok 403 403 403"  # legacy writes: admin or creator
LA = "ok 403 403 403 403 403 403"  # legacy: admin (or the creator who made it: never the caller here)
N = "403 403 403 403 403 403 403"  # nobody: project-quotas need key-manager:service-admin in legacy mode
_ = "404 404 404 404 404 404 404"  # project B's resource, seen from project A: not found, whatever the role

# fmt: off
MATRIX: list[tuple[str, str | None, str, str]] = [
    # endpoint, resource, secure RBAC ("project A's seven | other acl sys"), legacy run ("=": the same)
    ("GET /v1/secrets",                      None, f"{M} | ok ok 403",      f"{LD} | 403 403 403"),
    ("POST /v1/secrets",                     None, f"{M} | ok ok 403",      f"{LW} | 403 403 403"),
    ("GET /v1/secrets/{s}",                  "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/secrets/{s}",                  "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/secrets/{s}/payload",          "A",  f"{M} | 404 ok 404",     f"{LD} | 404 ok 404"),
    ("GET /v1/secrets/{s}/payload",          "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PUT /v1/secrets/{s}",                  "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PUT /v1/secrets/{s}",                  "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/secrets/{s}",               "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("DELETE /v1/secrets/{s}",               "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    # donjon lifecycle extensions: the rules of the Barbican operation each one extends
    ("GET /v1/secrets/{s}/lifecycle",        "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/secrets/{s}/lifecycle",        "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/secrets/{s}/versions",        "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("POST /v1/secrets/{s}/versions",        "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/secrets/{s}/wrap",            "A",  f"{M} | 404 ok 404",     f"{LD} | 404 ok 404"),
    ("POST /v1/secrets/{s}/wrap",            "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/secrets/{s}/metadata",         "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/secrets/{s}/metadata",         "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PUT /v1/secrets/{s}/metadata",         "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PUT /v1/secrets/{s}/metadata",         "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/secrets/{s}/metadata",        "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("POST /v1/secrets/{s}/metadata",        "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/secrets/{s}/metadata/k",    "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("DELETE /v1/secrets/{s}/metadata/k",    "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/secrets/{s}/consumers",        "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/secrets/{s}/consumers",        "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/secrets/{s}/consumers",       "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("POST /v1/secrets/{s}/consumers",       "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    # acl: the consumer was registered by project A's owner, not B's to remove (Barbican: 403)
    ("DELETE /v1/secrets/{s}/consumers",     "A",  f"{M} | 404 403 404",    f"{LR} | 404 403 404"),
    ("DELETE /v1/secrets/{s}/consumers",     "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/secrets/{s}/acl",              "A",  f"{M} | 404 403 404",    f"{LD} | 404 403 404"),
    ("GET /v1/secrets/{s}/acl",              "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PUT /v1/secrets/{s}/acl",              "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PUT /v1/secrets/{s}/acl",              "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PATCH /v1/secrets/{s}/acl",            "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PATCH /v1/secrets/{s}/acl",            "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/secrets/{s}/acl",           "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("DELETE /v1/secrets/{s}/acl",           "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/containers",                   None, f"{M} | ok ok 403",      f"{LD} | 403 403 403"),
    ("POST /v1/containers",                  None, f"{M} | ok ok 403",      f"{LW} | 403 403 403"),
    ("GET /v1/containers/{c}",               "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/containers/{c}",               "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/containers/{c}",            "A",  f"{M} | 404 403 404",    f"{LA} | 404 403 404"),
    ("DELETE /v1/containers/{c}",            "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/containers/{c}/secrets",      "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("POST /v1/containers/{c}/secrets",      "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/containers/{c}/secrets",    "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("DELETE /v1/containers/{c}/secrets",    "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/containers/{c}/consumers",     "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("GET /v1/containers/{c}/consumers",     "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("POST /v1/containers/{c}/consumers",    "A",  f"{M} | 404 ok 404",     f"{LR} | 404 ok 404"),
    ("POST /v1/containers/{c}/consumers",    "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    # acl: the consumer was registered by project A's owner, not B's to remove (Barbican: 403)
    ("DELETE /v1/containers/{c}/consumers",  "A",  f"{M} | 404 403 404",    f"{LR} | 404 403 404"),
    ("DELETE /v1/containers/{c}/consumers",  "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/containers/{c}/acl",           "A",  f"{M} | 404 403 404",    f"{LD} | 404 403 404"),
    ("GET /v1/containers/{c}/acl",           "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PUT /v1/containers/{c}/acl",           "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PUT /v1/containers/{c}/acl",           "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("PATCH /v1/containers/{c}/acl",         "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("PATCH /v1/containers/{c}/acl",         "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/containers/{c}/acl",        "A",  f"{M} | 404 403 404",    f"{LW} | 404 403 404"),
    ("DELETE /v1/containers/{c}/acl",        "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/orders",                       None, f"{M} | ok ok 403",      f"{LD} | 403 403 403"),
    ("POST /v1/orders",                      None, f"{M} | ok ok 403",      f"{LW} | 403 403 403"),
    ("GET /v1/orders/{o}",                   "A",  f"{M} | 404 404 404",    f"{LR} | 404 404 404"),
    ("GET /v1/orders/{o}",                   "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("DELETE /v1/orders/{o}",                "A",  f"{M} | 404 404 404",    f"{LA} | 404 404 404"),
    ("DELETE /v1/orders/{o}",                "B",  f"{_} | ok ok 404",      f"{_} | 403 403 404"),
    ("GET /v1/quotas",                       None, f"{RD} | ok ok 403",     f"{LR} | 403 403 403"),
    ("GET /v1/project-quotas",               None, f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("GET /v1/project-quotas/{p}",           "A",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("GET /v1/project-quotas/{p}",           "B",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("PUT /v1/project-quotas/{p}",           "A",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("PUT /v1/project-quotas/{p}",           "B",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("DELETE /v1/project-quotas/{p}",        "A",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    ("DELETE /v1/project-quotas/{p}",        "B",  f"{Q} | 403 403 ok",     f"{N} | 403 403 403"),
    # donjon extension: the project's audit records and the chain's verdict (project admins; legacy: audit)
    ("GET /v1/audit/records",                None, f"{Q} | 403 403 403",    "ok 403 403 403 403 ok 403 | 403 403 403"),
    ("GET /v1/audit/verify",                 None, f"{Q} | 403 403 403",    "ok 403 403 403 403 ok 403 | 403 403 403"),
    # transport keys: cloud-wide rows (no project), written by admins (legacy: key-manager:service-admin)
    ("GET /v1/transport_keys",               None, f"{RD} | ok ok 403",     f"{LR} | 403 403 403"),
    ("POST /v1/transport_keys",              None, f"{Q} | 403 403 403",    f"{N} | 403 403 403"),
    ("GET /v1/transport_keys/{t}",           "A",  f"{RD} | ok ok 403",     f"{LR} | 403 403 403"),
    ("DELETE /v1/transport_keys/{t}",        "A",  f"{Q} | 403 403 403",    f"{N} | 403 403 403"),
    # passes policy (reader / legacy all_users), then 404: "multiple backends support is not enabled"
    ("GET /v1/secret-stores",                None, f"{RD} | ok ok ok",      f"{LR} | 403 403 ok"),
]
# fmt: on


def expected(row: tuple[str, str | None, str, str], legacy: bool) -> dict[str, str]:
    cells = (row[3] if legacy and row[3] != "=" else row[2]).replace("|", " ").split()
    assert len(cells) == len(COLUMNS), row
    return dict(zip(COLUMNS, cells, strict=True))


def test_the_table_covers_every_route(tmp_path: Path) -> None:
    """Every API route that takes a token has a row."""
    app = create_app(Settings(data_dir=tmp_path, database_url="sqlite://"))
    rows = {(e.split()[0], e.split()[1]) for e, *_ in MATRIX}
    tested = {(m, p.replace("{s}", "{secret_id}").replace("{c}", "{container_id}")) for m, p in rows}
    tested |= {(m, p.replace("{o}", "{order_id}").replace("{p}", "{project_id}")) for m, p in tested}
    tested |= {(m, p.replace("/metadata/k", "/metadata/{key}").replace("{t}", "{transport_key_id}")) for m, p in tested}
    # /v1/unwrap takes no token: the wrap token is its only credential (tests/test_wraps.py).
    skipped = {"/", "/healthcheck", "/livez", "/readyz", "/openapi.json", "/v1", "/v1/secret-stores/{path:path}"}
    skipped |= {"/v1/unwrap"}
    # Prometheus scrapes /metrics without a token, from metrics.allow_from only (tests/test_observability.py).
    skipped |= {"/metrics"}
    # The web console's pages and helpers (tests/test_console*.py): they only call the API.
    skipped |= {"/ui", "/ui/unwrap", "/ui/assets/{path:path}", "/ui/api/config", "/ui/api/whoami"}
    skipped |= {"/ui/api/keystone/tokens"}
    missing = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path in skipped:
            continue
        for method in getattr(route, "methods", None) or ():
            if method == "HEAD":
                continue
            if (method, path) not in tested:
                missing.append(f"{method} {path}")
    # Covered elsewhere (test_api_secret_extras): single metadata key reads/updates, and PUT /v1/orders.
    assert sorted(missing) == [
        "GET /v1/secrets/{secret_id}/metadata/{key}",
        "PUT /v1/orders",
        "PUT /v1/secrets/{secret_id}/metadata/{key}",
    ]


# ---- the two auth modes behind one interface ----


@dataclass
class Backend:
    client: httpx.Client
    tokens: dict[str, str]  # column or "owner-A"/"owner-B"/"admin-quota" -> token
    user_ids: dict[str, str]
    projects: dict[str, str]  # "A"/"B" -> project id
    has_system: bool
    legacy: bool

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.tokens[who], "Accept": "application/json", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def ok(self, who: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(who, method, path, **kw)
        assert r.status_code < 300, f"setup {method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


def _token_backend(data_dir: Path, legacy: bool) -> Iterator[Backend]:
    # One database is enough here: who may do what does not depend on it (the API tests run on all three).
    database_url = f"sqlite:///{data_dir / 'matrix.sqlite'}"
    db = Database(database_url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    settings = Settings(
        auth="token",
        database_url=database_url,
        data_dir=data_dir,
        host_href=BASE,
        enforce_new_defaults=not legacy,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
    )
    app = create_app(settings)
    with TestClient(app, base_url=BASE) as client:
        check_responses(client)
        service = app.state.ctx.tokens
        run = uuid.uuid4().hex[:8]
        projects = {"A": f"proj-a-{run}", "B": f"proj-b-{run}"}
        who: dict[str, tuple[str, str, list[str]]] = {
            **{role: ("A", f"a-{role}", [role]) for role in COLUMNS[:7]},
            "other": ("B", "b-member", ["member"]),
            "acl": ("B", "acl-user", ["member"]),
            # Owners are also Barbican's legacy creators, so they create in either policy mode.
            "owner-A": ("A", "a-owner", ["member", "creator"]),
            "owner-B": ("B", "b-owner", ["member", "creator"]),
            "svc-admin": ("A", "a-service-admin", ["key-manager:service-admin"]),
        }
        tokens, user_ids = {}, {}
        for name, (project, user, roles) in who.items():
            issued = service.issue(
                project_id=projects[project], user_id=f"{user}-{run}", roles=roles, ttl=timedelta(hours=1)
            )
            tokens[name], user_ids[name] = issued.token, issued.record.user_id
        yield Backend(client, tokens, user_ids, projects, has_system=False, legacy=legacy)


def _keystone_backend(keystone: Keystone, server: LiveServer, legacy: bool) -> Iterator[Backend]:
    who = {
        **{role: f"a-{role}" for role in COLUMNS[:7]},
        "other": "b-member",
        "acl": "acl-user",
        "owner-A": "a-owner",
        "owner-B": "b-owner",
        "svc-admin": "a-service-admin",
    }
    tokens = {name: keystone.token(user) for name, user in who.items()}
    tokens["sys"] = keystone.token("sys-admin", "system")
    user_ids = {name: keystone.users[user].id for name, user in who.items()}
    projects = {"A": keystone.project_id("A"), "B": keystone.project_id("B")}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield Backend(client, tokens, user_ids, projects, has_system=True, legacy=legacy)


@pytest.fixture(scope="module", params=["token", "token-legacy", "keystone", "keystone-legacy"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    legacy = request.param.endswith("-legacy")
    if request.param.startswith("token"):
        yield from _token_backend(tmp_path_factory.mktemp("matrix-token"), legacy)
        return
    keystone: Keystone = request.getfixturevalue("keystone")
    if not legacy:
        yield from _keystone_backend(keystone, request.getfixturevalue("keystone_donjon"), legacy)
        return
    env = {**keystone.donjon_env(), "DONJON_ENFORCE_NEW_DEFAULTS": "false"}
    server = LiveServer(tmp_path_factory.mktemp("donjon-keystone-legacy"), env=env, dev=False, workers=1).start()
    try:
        yield from _keystone_backend(keystone, server, legacy)
    finally:
        server.stop()


# ---- fixtures of each row, made fresh for every cell by the resource's owner ----


def _id(ref: str) -> str:
    return ref.rstrip("/").rsplit("/", 1)[1]


def _setup(b: Backend, endpoint: str, project: str | None) -> dict[str, str]:
    """Create what ``endpoint`` acts on, in ``project``, as that project's owner (A's named in ACLs)."""
    if project is None:
        return {}
    owner = f"owner-{project}"
    ids: dict[str, str] = {"p": b.projects[project]}
    acl = {"read": {"users": [b.user_ids["acl"]], "project-access": True}}
    path = endpoint.split()[1]
    method = endpoint.split()[0]
    if "{s}" in path:
        body: dict[str, Any] = {"name": "m"}
        if not (method == "PUT" and path == "/v1/secrets/{s}"):  # the two-step PUT needs a secret without payload
            body.update(payload="v", payload_content_type="text/plain")
        ids["s"] = _id(b.ok(owner, "POST", "/v1/secrets", json=body)["secret_ref"])
        if project == "A":
            b.ok(owner, "PUT", f"/v1/secrets/{ids['s']}/acl", json=acl)
        if path.endswith("/consumers") and method == "DELETE":
            b.ok(owner, "POST", f"/v1/secrets/{ids['s']}/consumers", json=SECRET_CONSUMER)
        if path.endswith("/metadata/k"):
            b.ok(owner, "POST", f"/v1/secrets/{ids['s']}/metadata", json={"key": "k", "value": "v"})
    if "{c}" in path:
        ids["c"] = _id(b.ok(owner, "POST", "/v1/containers", json={"type": "generic", "name": "m"})["container_ref"])
        if project == "A":
            b.ok(owner, "PUT", f"/v1/containers/{ids['c']}/acl", json=acl)
        if path.endswith("/secrets"):
            body = {"name": "m", "payload": "v", "payload_content_type": "text/plain"}
            ids["ref"] = b.ok(owner, "POST", "/v1/secrets", json=body)["secret_ref"]
            if method == "DELETE":
                b.ok(owner, "POST", f"/v1/containers/{ids['c']}/secrets", json={"name": "x", "secret_ref": ids["ref"]})
        if path.endswith("/consumers") and method == "DELETE":
            b.ok(owner, "POST", f"/v1/containers/{ids['c']}/consumers", json=CONTAINER_CONSUMER)
    if "{o}" in path:
        order = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "name": "m"}}
        ids["o"] = _id(b.ok(owner, "POST", "/v1/orders", json=order)["order_ref"])
    if "{t}" in path:  # cloud-wide: made by an admin (legacy: Barbican's key-manager:service-admin)
        made = b.ok("svc-admin" if b.legacy else "admin", "POST", "/v1/transport_keys", json=TRANSPORT_KEY)
        ids["t"] = _id(made["transport_key_ref"])
    if "{p}" in path and method in ("GET", "DELETE") and not b.legacy:  # legacy: nobody here may set them
        b.ok("admin", "PUT", f"/v1/project-quotas/{ids['p']}", json=UNLIMITED)
    return ids


SECRET_CONSUMER = {"service": "image", "resource_type": "image", "resource_id": "img-1"}
CONTAINER_CONSUMER = {"name": "lb", "URL": "http://lb/1"}
TRANSPORT_KEY = {"plugin_name": "matrix", "transport_key": "-----BEGIN PUBLIC KEY-----"}
UNLIMITED = {"project_quotas": {"secrets": -1, "orders": -1, "containers": -1, "consumers": -1}}


def _request(b: Backend, who: str, endpoint: str, ids: dict[str, str]) -> httpx.Response:
    method, template = endpoint.split()
    path = template.format(**ids) if "{" in template else template
    kw: dict[str, Any] = {}
    if template == "/v1/secrets":
        kw["json"] = {"name": "x", "payload": "v", "payload_content_type": "text/plain"}
    elif template == "/v1/secrets/{s}" and method == "PUT":
        kw = {"content": b"v", "headers": {"Content-Type": "text/plain"}}
    elif template == "/v1/secrets/{s}/payload":
        kw["headers"] = {"Accept": "text/plain"}
    elif template == "/v1/secrets/{s}/metadata":
        kw["json"] = {"metadata": {"k": "v"}} if method == "PUT" else {"key": "k2", "value": "v"}
    elif template == "/v1/secrets/{s}/versions":
        kw["json"] = {"payload": "v2", "payload_content_type": "text/plain"}
    elif template == "/v1/secrets/{s}/consumers":
        kw["json"] = SECRET_CONSUMER
    elif template == "/v1/containers":
        kw["json"] = {"type": "generic", "name": "x"}
    elif template == "/v1/containers/{c}/secrets":
        kw["json"] = {"name": "x", "secret_ref": ids["ref"]}
    elif template == "/v1/containers/{c}/consumers":
        kw["json"] = CONTAINER_CONSUMER
    elif template.endswith("/acl") and method in ("PUT", "PATCH"):
        kw["json"] = {"read": {"users": [b.user_ids["acl"]]}}
    elif template == "/v1/orders":
        kw["json"] = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}
    elif template == "/v1/transport_keys" and method == "POST":
        kw["json"] = TRANSPORT_KEY
    elif template == "/v1/project-quotas/{p}" and method == "PUT":
        kw["json"] = UNLIMITED
    return b.call(who, method, path, **kw)


def _outcome(endpoint: str, status: int) -> str:
    if endpoint == "GET /v1/secret-stores" and status == 404:
        return "ok"  # allowed: the answer of a donjon (and a Barbican) with a single secret store
    return "ok" if 200 <= status < 300 else str(status)


@pytest.mark.parametrize("row", MATRIX, ids=[f"{e} [{r or '-'}]" for e, r, *_ in MATRIX])
def test_policy_matrix(backend: Backend, row: tuple[str, str | None, str, str], request: pytest.FixtureRequest) -> None:
    endpoint, project, *_ = row
    legacy = request.node.callspec.params["backend"].endswith("-legacy")
    want = expected(row, legacy)
    got: dict[str, str] = {}
    for column in COLUMNS:
        if column == "sys" and not backend.has_system:
            continue
        ids = _setup(backend, endpoint, project)
        got[column] = _outcome(endpoint, _request(backend, column, endpoint, ids).status_code)
    if not backend.has_system:
        want.pop("sys")
    assert got == want, _diff(endpoint, project, want, got)


def _diff(endpoint: str, project: str | None, want: dict[str, str], got: dict[str, str]) -> str:
    wrong = {c: f"want {want[c]}, got {got[c]}" for c in want if want[c] != got.get(c)}
    return f"{endpoint} on {project or '-'}: {wrong}"


# ---- authorisation before validation (issue 15, item 7) ----


def _sends_body(endpoint: str) -> bool:
    method, path = endpoint.split()
    return method in ("POST", "PUT", "PATCH") or (method == "DELETE" and path.endswith(("/consumers", "/secrets")))


BODY_ROWS = [row for row in MATRIX if _sends_body(row[0])]
# Refused after the policy passed, by what only a valid body names: the ACL user's DELETE of A's consumer.
_DECIDED_ON_THE_BODY = {
    ("DELETE /v1/secrets/{s}/consumers", "A", "acl"),
    ("DELETE /v1/containers/{c}/consumers", "A", "acl"),
}


def _bad_request(b: Backend, who: str, endpoint: str, ids: dict[str, str]) -> httpx.Response:
    """The row's request with a body every endpoint refuses: a JSON array (the raw PUT: a JSON content type)."""
    method, template = endpoint.split()
    path = template.format(**ids) if "{" in template else template
    if template == "/v1/secrets/{s}" and method == "PUT":
        return b.call(who, method, path, content=b"[]", headers={"Content-Type": "application/json"})
    return b.call(who, method, path, json=[])


@pytest.mark.parametrize("row", BODY_ROWS, ids=[f"{e} [{r or '-'}]" for e, r, *_ in BODY_ROWS])
def test_policy_is_decided_before_the_body(
    backend: Backend, row: tuple[str, str | None, str, str], request: pytest.FixtureRequest
) -> None:
    """A caller who may not act gets the 403/404 a valid body gets, never a validation message (Barbican:
    policy, then content type, then the body); a caller who may act gets the refusal (400 or 415)."""
    endpoint, project, *_ = row
    legacy = request.node.callspec.params["backend"].endswith("-legacy")
    want = expected(row, legacy)
    wrong = {}
    for column in COLUMNS:
        if column == "sys" and not backend.has_system:
            continue
        status = _bad_request(backend, column, endpoint, _setup(backend, endpoint, project)).status_code
        allowed = want[column] == "ok" or (endpoint, project, column) in _DECIDED_ON_THE_BODY
        if (status not in (400, 415)) if allowed else (str(status) != want[column]):
            wrong[column] = f"valid body: {want[column]}, bad body: {status}"
    assert not wrong, f"{endpoint} on {project or '-'}: {wrong}"
