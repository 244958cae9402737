"""A real Keystone 30 on loopback for the keystone-mode tests, started once per session.

``scripts/keystone-env`` provides the venv (Keystone, gunicorn, python-openstackclient and
python-barbicanclient, pinned; idempotent). The fixture writes a private state dir (keystone.conf with
SQLite, fernet tokens, bcrypt cost 4, in-process cache), runs ``keystone-manage`` db_sync, fernet_setup,
credential_setup and bootstrap, serves ``keystone.wsgi.api`` with gunicorn (one process, threads: one
token cache, so a revocation is seen at once) and provisions over Keystone's REST API:

- projects ``A`` and ``B`` (names suffixed per session) with one user per role: ``a-admin``, ``a-member``,
  ``a-reader``, ``a-creator``, ``a-observer``, ``a-audit``, ``a-guest`` (a role donjon's policy does not
  know), ``a-owner`` (member and legacy creator; creates the resources under test in either policy mode),
  ``b-member``, ``b-owner`` (as ``a-owner``), ``acl-user`` (member of B, put in A's ACLs by the tests);
- ``a-service-admin`` (``key-manager:service-admin`` on A, Barbican's legacy cloud-wide admin);
- ``nobody`` (no role anywhere: only an unscoped token), ``domain-reader`` (reader on domain Default);
- ``sys-admin`` (admin on system ``all``);
- donjon's service user (``service`` role on project ``service``) and the ``key-manager`` catalog entry
  pointing at the port reserved for donjon (``Keystone.donjon_port``) before donjon starts.

Keystone publishes its notifications (``Keystone.notification_topic``, exchange ``keystone``) on the machine's
RabbitMQ, for the project-deletion listener's tests. tests/conftest.py registers this module as a plugin, so
one Keystone, started on first use, serves every module of the session.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_URL = "rabbit://guest:guest@127.0.0.1:5672/"  # the machine's RabbitMQ (scripts/test starts it)
ADMIN_PASSWORD = "admin-pw"  # noqa: S105 - a throwaway Keystone on loopback
SERVICE_PASSWORD = "donjon-svc-pw"  # noqa: S105
PROJECT_ROLES = ("admin", "member", "reader", "creator", "observer", "audit", "guest")
LEGACY_ROLES = ("creator", "observer", "audit", "guest", "key-manager:service-admin")


@dataclass
class User:
    name: str
    password: str = field(repr=False)
    id: str = ""
    project: str | None = None  # the project name its token is scoped to by default


@dataclass
class Keystone:
    venv: Path
    state: Path
    port: int
    donjon_port: int
    suffix: str
    process: subprocess.Popen[bytes] | None = None
    projects: dict[str, str] = field(default_factory=dict)  # name -> id
    users: dict[str, User] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @property
    def notification_topic(self) -> str:
        """Keystone publishes its notifications here (exchange "keystone") on the local RabbitMQ."""
        return f"donjon-keystone-{self.suffix}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def donjon_url(self) -> str:
        return f"http://127.0.0.1:{self.donjon_port}"

    def project(self, letter: str) -> str:
        """The name of project ``A`` or ``B``."""
        return f"donjon-{letter.lower()}-{self.suffix}"

    def project_id(self, letter: str) -> str:
        return self.projects[self.project(letter)]

    # ---- tokens ----
    def issue(self, user: str, scope: str = "project") -> str:
        """A fresh token for ``user``: scope ``project`` (its project), ``system``, ``domain`` or ``unscoped``."""
        u = self.users[user]
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": u.name, "domain": {"id": "default"}, "password": u.password}},
            }
        }
        if scope == "project":
            auth["scope"] = {"project": {"name": u.project, "domain": {"id": "default"}}}
        elif scope == "system":
            auth["scope"] = {"system": {"all": True}}
        elif scope == "domain":
            auth["scope"] = {"domain": {"id": "default"}}
        r = httpx.post(f"{self.url}/auth/tokens", json={"auth": auth}, timeout=30)
        r.raise_for_status()
        return r.headers["X-Subject-Token"]

    def token(self, user: str, scope: str = "project") -> str:
        """A token for ``user``, issued once per session and scope."""
        key = (user, scope)
        if key not in self._tokens:
            self._tokens[key] = self.issue(user, scope)
        return self._tokens[key]

    def revoke(self, token: str) -> None:
        r = httpx.delete(
            f"{self.url}/auth/tokens",
            headers={"X-Auth-Token": self.token("sys-admin", "system"), "X-Subject-Token": token},
            timeout=30,
        )
        assert r.status_code == 204, r.text

    def openrc(self, user: str) -> dict[str, str]:
        """Environment for the keystone venv's ``openstack`` CLI, password auth as ``user``."""
        u = self.users[user]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_URL=self.url,
            OS_IDENTITY_API_VERSION="3",
            OS_AUTH_TYPE="password",
            OS_USERNAME=u.name,
            OS_PASSWORD=u.password,
            OS_PROJECT_NAME=u.project or "",
            OS_USER_DOMAIN_NAME="Default",
            OS_PROJECT_DOMAIN_NAME="Default",
            OS_REGION_NAME="RegionOne",
            OS_INTERFACE="public",
            PYTHONWARNINGS="ignore",
        )
        return env

    def openstack(self, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.venv / "bin" / "openstack"), *args],
            env=self.openrc(user),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def donjon_env(self) -> dict[str, str]:
        """What a donjon server in keystone mode needs (the service password through a 0600 file)."""
        password_file = self.state / "donjon-service-password"
        if not password_file.exists():
            password_file.write_text(SERVICE_PASSWORD + "\n")
            password_file.chmod(0o600)
        return {
            "DONJON_AUTH": "keystone",
            "DONJON_KEYSTONE__AUTH_URL": self.url,
            "DONJON_KEYSTONE__USERNAME": self.users["donjon-service"].name,
            "DONJON_KEYSTONE__PASSWORD_FILE": str(password_file),
            "DONJON_KEYSTONE__PROJECT_NAME": self.users["donjon-service"].project or "",
            "DONJON_KEYSTONE__CACHE_SECONDS": "30",
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def _venv() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "keystone-env")], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/keystone-env failed:\n{out.stderr}")
    return Path(out.stdout.strip().splitlines()[-1])


def _write_config(ks: Keystone) -> Path:
    s = ks.state
    for d in ("fernet-keys", "credential-keys", "log"):
        (s / d).mkdir(parents=True, exist_ok=True)
    conf = s / "keystone.conf"
    conf.write_text(
        f"""[DEFAULT]
log_file = {s}/log/keystone.log
[database]
connection = sqlite:///{s}/keystone.db
[token]
provider = fernet
expiration = 7200
[fernet_tokens]
key_repository = {s}/fernet-keys/
[fernet_receipts]
key_repository = {s}/fernet-keys/
[credential]
key_repository = {s}/credential-keys/
[identity]
# test-only: bcrypt cost 4 (before any user exists): password auth ~10x faster
password_hash_rounds = 4
[cache]
enabled = true
backend = oslo_cache.dict
[oslo_policy]
enforce_new_defaults = true
[oslo_messaging_notifications]
driver = messagingv2
transport_url = {RABBITMQ_URL}
topics = {ks.notification_topic}
# Bounded: an unreachable broker must not hang Keystone's requests (the default retries forever).
retry = 3
"""
    )
    # Keystone's oslo.config reads the server process's argv, so gunicorn takes no arguments: all of its
    # settings live here, in the directory it is started from.
    (s / "gunicorn.conf.py").write_text(
        f"""wsgi_app = "keystone.wsgi.api:application"
bind = "127.0.0.1:{ks.port}"
workers = 1
worker_class = "gthread"
threads = 8
timeout = 60
accesslog = "{s}/log/access.log"
errorlog = "{s}/log/gunicorn.log"
control_socket_disable = True
raw_env = ["OS_KEYSTONE_CONFIG_FILES={conf}"]
"""
    )
    return conf


def _manage(ks: Keystone, conf: Path, *args: str) -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [str(ks.venv / "bin" / "keystone-manage"), "--config-file", str(conf), *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"keystone-manage {args[0]} failed:\n{out.stdout}\n{out.stderr}")


def _setup(ks: Keystone) -> None:
    conf = _write_config(ks)
    user_group = ["--keystone-user", _whoami()[0], "--keystone-group", _whoami()[1]]
    t0 = time.monotonic()
    # Key repositories do not need the database: all three run at once.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(_manage, ks, conf, "db_sync"),
            pool.submit(_manage, ks, conf, "fernet_setup", *user_group),
            pool.submit(_manage, ks, conf, "credential_setup", *user_group),
        ]
        for job in jobs:
            job.result()
    ks.timings["db_sync+key repos"] = time.monotonic() - t0
    t0 = time.monotonic()
    url = f"http://127.0.0.1:{ks.port}/v3/"
    _manage(
        ks,
        conf,
        "bootstrap",
        "--bootstrap-password",
        ADMIN_PASSWORD,
        "--bootstrap-username",
        "admin",
        "--bootstrap-project-name",
        "admin",
        "--bootstrap-admin-url",
        url,
        "--bootstrap-internal-url",
        url,
        "--bootstrap-public-url",
        url,
        "--bootstrap-region-id",
        "RegionOne",
    )
    ks.timings["bootstrap"] = time.monotonic() - t0


def _whoami() -> tuple[str, str]:
    import grp
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def _serve(ks: Keystone) -> None:
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONWARNINGS="ignore", OS_KEYSTONE_CONFIG_FILES=str(ks.state / "keystone.conf"))
    log = (ks.state / "log" / "gunicorn.out").open("ab")
    ks.process = subprocess.Popen(
        [str(ks.venv / "bin" / "gunicorn")], cwd=ks.state, env=env, stdout=log, stderr=log, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ks.process.poll() is not None:
            raise RuntimeError(f"keystone exited: {(ks.state / 'log' / 'gunicorn.log').read_text()[-3000:]}")
        try:
            if httpx.get(ks.url, timeout=2).status_code == 200:
                ks.timings["serve"] = time.monotonic() - t0
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    ks.stop()
    raise RuntimeError("keystone did not answer within 60 s")


class _Admin:
    """Keystone's REST API as the bootstrap admin (system scope)."""

    def __init__(self, ks: Keystone) -> None:
        self.ks = ks
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}},
                },
                "scope": {"system": {"all": True}},
            }
        }
        r = httpx.post(f"{ks.url}/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.client = httpx.Client(base_url=ks.url, headers={"X-Auth-Token": r.headers["X-Subject-Token"]}, timeout=30)
        self.roles = {r["name"]: r["id"] for r in self.get("/roles")["roles"]}

    def get(self, path: str) -> Any:
        r = self.client.get(path)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.client.post(path, json=body)
        if r.status_code >= 300:
            raise AssertionError(f"POST {path}: {r.status_code} {r.text}")
        return r.json()

    def put(self, path: str) -> None:
        r = self.client.put(path)
        if r.status_code >= 300:
            raise AssertionError(f"PUT {path}: {r.status_code} {r.text}")

    def role(self, name: str) -> str:
        if name not in self.roles:
            self.roles[name] = self.post("/roles", {"role": {"name": name}})["role"]["id"]
        return self.roles[name]

    def project(self, name: str) -> str:
        pid: str = self.post("/projects", {"project": {"name": name, "domain_id": "default"}})["project"]["id"]
        self.ks.projects[name] = pid
        return pid

    def user(self, key: str, project: str | None, password: str | None = None) -> User:
        u = User(f"{key}-{self.ks.suffix}", password or f"{key}-pw", project=project)
        u.id = self.post("/users", {"user": {"name": u.name, "password": u.password, "domain_id": "default"}})["user"][
            "id"
        ]
        self.ks.users[key] = u
        return u


def _provision(ks: Keystone) -> None:
    t0 = time.monotonic()
    admin = _Admin(ks)
    for role in LEGACY_ROLES:
        admin.role(role)
    admin.role("service")  # bootstrap creates it in Keystone 30; created here if not
    a = admin.project(ks.project("A"))
    b = admin.project(ks.project("B"))
    service = admin.project(f"service-{ks.suffix}")

    assignments: list[str] = []
    for role in PROJECT_ROLES:
        u = admin.user(f"a-{role}", ks.project("A"))
        assignments.append(f"/projects/{a}/users/{u.id}/roles/{admin.role(role)}")
    for key, pid, name in (("a-owner", a, "A"), ("b-member", b, "B"), ("b-owner", b, "B"), ("acl-user", b, "B")):
        u = admin.user(key, ks.project(name))
        assignments.append(f"/projects/{pid}/users/{u.id}/roles/{admin.role('member')}")
        if key.endswith("-owner"):  # also Barbican's legacy creator: with enforce_new_defaults = false too
            assignments.append(f"/projects/{pid}/users/{u.id}/roles/{admin.role('creator')}")
    u = admin.user("a-service-admin", ks.project("A"))  # Barbican's legacy cloud admin (transport keys, quotas)
    assignments.append(f"/projects/{a}/users/{u.id}/roles/{admin.role('key-manager:service-admin')}")
    admin.user("nobody", None)
    u = admin.user("domain-reader", None)
    assignments.append(f"/domains/default/users/{u.id}/roles/{admin.role('reader')}")
    u = admin.user("sys-admin", None)
    assignments.append(f"/system/users/{u.id}/roles/{admin.role('admin')}")
    svc = admin.user("donjon-service", f"service-{ks.suffix}", SERVICE_PASSWORD)
    assignments.append(f"/projects/{service}/users/{svc.id}/roles/{admin.role('service')}")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(admin.put, assignments))

    # donjon in the catalog, at the port reserved for it.
    sid = admin.post("/services", {"service": {"type": "key-manager", "name": "barbican", "enabled": True}})["service"][
        "id"
    ]
    for interface in ("public", "internal"):
        admin.post(
            "/endpoints",
            {"endpoint": {"service_id": sid, "interface": interface, "url": ks.donjon_url, "region_id": "RegionOne"}},
        )
    admin.client.close()
    ks.timings["provision"] = time.monotonic() - t0


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    t0 = time.monotonic()
    venv = _venv()
    ks = Keystone(
        venv=venv,
        state=tmp_path_factory.mktemp("keystone"),
        port=free_port(),
        donjon_port=free_port(),
        suffix=uuid.uuid4().hex[:6],
    )
    ks.timings["venv"] = time.monotonic() - t0
    try:
        _setup(ks)
        _serve(ks)
        _provision(ks)
        ks.timings["total"] = time.monotonic() - t0
        # With -s or -rP this shows where the fixture's time goes.
        print("keystone fixture:", ", ".join(f"{k} {v:.1f}s" for k, v in ks.timings.items()), file=sys.stderr)
        yield ks
    finally:
        ks.stop()
        if os.environ.get("DONJON_TEST_KEEP_KEYSTONE") != "1":
            shutil.rmtree(ks.state / "fernet-keys", ignore_errors=True)


@pytest.fixture(scope="session")
def keystone_donjon(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A donjon server in keystone mode, at the URL registered in Keystone's catalog."""
    server = LiveServer(
        tmp_path_factory.mktemp("donjon-keystone"), port=keystone.donjon_port, env=keystone.donjon_env(), dev=False
    )
    server.start()
    yield server
    server.stop()
