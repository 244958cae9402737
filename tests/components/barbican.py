"""A real OpenStack Barbican 23.0.0 on loopback, unauthenticated (``X-Project-Id``), on SQLite.

``scripts/barbican-env`` provides the venv (barbican from PyPI + gunicorn, pinned; idempotent, kept in
``.cache/barbican/venv``). The fixture writes a private state dir for the session: ``barbican.conf``
(simple_crypto with a fresh Fernet KEK, ``[queue] enable=false`` so orders run inside the request, legacy
policy defaults as upstream's functional gate), the paste pipeline derived from the one the wheel installs
(``/v1`` on the unauthenticated pipeline, plus a work-around for an upstream bug, below), and a database
copied from a migrated template kept in ``.cache/barbican`` (``barbican-manage db upgrade`` takes seconds).
It serves ``barbican`` with one gunicorn sync worker: Barbican on SQLite answers concurrent writers with
``database is locked`` 500s, one worker serialises them.

Upstream bug worked around: since Barbican 22.0.0 (commit c480b665) ``UnauthenticatedContextMiddleware``
reads ``req.request_id``, which nothing sets any more, so every ``/v1`` request of the unauthenticated pipeline
is a 500. A 10-line paste filter copies oslo.middleware's request id onto the request first.

Use it from a test module with ``pytest_plugins = ["tests.components.barbican"]``.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "barbican"

NOAUTH_FIX = '''\
import webob.dec


class RequestIdAttr(object):
    """Sets req.request_id, which Barbican 22+'s unauthenticated-context filter reads and nothing sets."""

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        req.request_id = req.environ.get("openstack.request_id")
        return req.get_response(self.app)


def filter_factory(global_conf, **local_conf):
    return RequestIdAttr
'''

WSGI_APP = """\
import os

from barbican.api import app as _barbican_app  # noqa: F401  (same import order as barbican.wsgi.api)
from paste import deploy

application = deploy.loadapp("config:%s" % os.environ["BARBICAN_PASTE_INI"])
"""


@dataclass
class Barbican:
    venv: Path
    state: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0  # seconds from spawn to a healthy GET /v1/secrets
    setup_seconds: float = 0.0  # scripts/barbican-env + config + database, before the spawn

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "logs" / "barbican-api.log"

    def expire_now(self, secret_id: str) -> None:
        """Move a secret's expiration to just past, in Barbican's own SQLite database.

        Barbican reads its machine's clock, which a test cannot move; rather than wait for an expiration,
        the test brings the expiration to the clock. Barbican filters expired secrets by that column on
        every read (its SecretRepo), so what it answers is the same as after waiting.
        """
        past = (datetime.now(UTC) - timedelta(seconds=1)).replace(tzinfo=None)
        with closing(sqlite3.connect(self.state / "data" / "barbican.sqlite")) as conn, conn:
            changed = conn.execute(
                "UPDATE secrets SET expiration = ? WHERE id = ?", (past.isoformat(sep=" "), secret_id)
            ).rowcount
        if changed != 1:
            raise LookupError(f"no secret {secret_id} in Barbican's database")

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "DONJON_"))}
        env.update(
            HOME=str(self.state / "home"),  # oslo.config finds ~/.barbican/barbican.conf
            BARBICAN_PASTE_INI=str(self.state / "etc" / "barbican-api-paste.ini"),
            PYTHONWARNINGS="ignore",
        )
        return env

    def configure(self) -> None:
        s = self.state
        for sub in ("home/.barbican", "data", "logs", "etc"):
            (s / sub).mkdir(parents=True, exist_ok=True)
        (s / "etc" / "noauth_fix.py").write_text(NOAUTH_FIX)
        (s / "etc" / "wsgi_app.py").write_text(WSGI_APP)
        text = (self.venv / "etc" / "barbican" / "barbican-api-paste.ini").read_text()
        for old, new in (
            ("/v1: barbican-api-keystone", "/v1: barbican_api"),
            ("http_proxy_to_wsgi unauthenticated-context", "http_proxy_to_wsgi reqid-attr unauthenticated-context"),
            (
                "[filter:unauthenticated-context]",
                "[filter:reqid-attr]\npaste.filter_factory = noauth_fix:filter_factory\n\n"
                "[filter:unauthenticated-context]",
            ),
        ):
            if old not in text:
                raise RuntimeError(f"unexpected upstream barbican-api-paste.ini: {old!r} not found")
            text = text.replace(old, new, 1)
        text = text.replace("/etc/barbican/", f"{s}/etc/")
        (s / "etc" / "barbican-api-paste.ini").write_text(text)
        kek = base64.urlsafe_b64encode(os.urandom(32)).decode()
        conf = s / "home" / ".barbican" / "barbican.conf"
        conf.write_text(
            "[DEFAULT]\n"
            f"host_href = {self.url}\n"
            "debug = false\n"
            f"log_file = {self.log}\n"
            "db_auto_create = false\n"
            "[database]\n"
            f"connection = sqlite:///{s}/data/barbican.sqlite\n"
            "[queue]\n"
            "enable = false\n"
            "[secretstore]\n"
            "namespace = barbican.secretstore.plugin\n"
            "enabled_secretstore_plugins = store_crypto\n"
            "[crypto]\n"
            "namespace = barbican.crypto.plugin\n"
            "enabled_crypto_plugins = simple_crypto\n"
            "[simple_crypto_plugin]\n"
            f"kek = {kek}\n"
            "[oslo_policy]\n"
            "enforce_scope = false\n"
            "enforce_new_defaults = false\n"
        )
        conf.chmod(0o600)
        self._database()

    def _database(self) -> None:
        """Copy the migrated template database, making it once per venv (stamped like the venv)."""
        stamp = (self.venv / ".donjon-barbican").read_text()
        template = CACHE / "template.sqlite"
        template_stamp = CACHE / "template.stamp"
        if not template.is_file() or not template_stamp.is_file() or template_stamp.read_text() != stamp:
            target = self.state / "data" / "barbican.sqlite"
            result = subprocess.run(
                [str(self.venv / "bin" / "barbican-manage"), "db", "upgrade"],
                env=self._env(),
                capture_output=True,
                timeout=300,
            )
            if result.returncode != 0:
                raise RuntimeError(f"barbican-manage db upgrade failed:\n{result.stderr.decode()[-3000:]}")
            CACHE.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, template)
            template_stamp.write_text(stamp)
        else:
            shutil.copyfile(template, self.state / "data" / "barbican.sqlite")

    def start(self, timeout: float = 90.0) -> Barbican:
        started = time.monotonic()
        out = (self.state / "logs" / "gunicorn.log").open("ab")
        with out:
            self.process = subprocess.Popen(
                [
                    str(self.venv / "bin" / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "120",
                    "--pythonpath",
                    str(self.state / "etc"),
                    "--chdir",
                    str(self.state),
                    "wsgi_app:application",
                ],
                env=self._env(),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"barbican exited with {self.process.returncode}:\n{self._tail()}")
            status = self._status("/v1/secrets?limit=1")
            if status is not None:
                if status >= 500:
                    self.stop()
                    raise RuntimeError(f"barbican answers GET /v1/secrets with {status}:\n{self._tail()}")
                self.started_in = time.monotonic() - started
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"barbican did not answer within {timeout}s:\n{self._tail()}")

    def _status(self, path: str) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", path, headers={"X-Project-Id": "startcheck"})
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # gunicorn's master and its worker
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(15)

    def _tail(self) -> str:
        parts = []
        for path in (self.state / "logs" / "gunicorn.log", self.log):
            if path.exists():
                parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)


def barbican_venv() -> Path:
    """The venv from ``scripts/barbican-env`` (installs it on first use: ~20 s with a warm pip cache)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "barbican-env")], capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/barbican-env failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def barbican(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Barbican]:
    t0 = time.monotonic()
    server = Barbican(venv=barbican_venv(), state=tmp_path_factory.mktemp("barbican"), port=free_port())
    server.configure()
    server.setup_seconds = time.monotonic() - t0
    server.start()
    yield server
    server.stop()
