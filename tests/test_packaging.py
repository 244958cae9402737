"""What a plain install (no extras) must run: the README's first command installs donjon without extras and
starts `donjon server`, so nothing on that path may import a package that only an extra brings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _names(requirements: list[str]) -> set[str]:
    """Distribution names, normalised (PEP 503), of requirement strings."""
    out = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        out.add(re.sub(r"[-_.]+", "-", match.group(0)).lower())
    return out


def extra_only_modules() -> list[str]:
    """Top-level modules whose distribution only an extra (or the test extra) installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = _names(project["dependencies"])
    extras = set().union(*(_names(reqs) for reqs in project["optional-dependencies"].values())) - base
    modules = []
    for module, distributions in packages_distributions().items():
        if _names(distributions) & extras and not _names(distributions) & base:
            modules.append(module)
    return sorted(modules)


PLAIN_INSTALL = """
import sys, tempfile
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError("only an extra installs " + name)
sys.meta_path.insert(0, Block())
from click.testing import CliRunner
from donjon.cli.main import cli
for args in (["--help"], ["server", "--help"], ["manage", "--help"], ["secret", "--help"]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
# The embedded default, as `donjon server --dev` builds it: SQLite, key file, dev auth, audit on.
from starlette.testclient import TestClient
from donjon.api.app import create_app
from donjon.config import Settings
from donjon.storage import migrate
from donjon.storage.database import Database
data = tempfile.mkdtemp()
settings = Settings(data_dir=data, auth="dev")
db = Database(settings.effective_database_url, pool_size=1)
migrate.upgrade(db)
db.dispose()
with TestClient(create_app(settings)) as client:
    r = client.post("/v1/secrets", json={"payload": "x", "payload_content_type": "text/plain"},
                    headers={"X-Project-Id": "p"})
    assert r.status_code == 201, r.text
print("ok")
"""


def test_the_plain_install_serves_without_any_extra() -> None:
    blocked = extra_only_modules()
    # The extras' packages are installed here (the test extra), so the list is real, not empty.
    assert {"hvac", "kmip", "pkcs11", "psycopg", "pymysql", "oslo_messaging", "keystoneauth1"} <= set(blocked)
    assert "httpx" not in blocked  # the client commands are part of the plain install
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_INSTALL, ",".join(blocked)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


CLIENT_COMMANDS_ONLY = """
import sys
from click.testing import CliRunner
from donjon.cli.main import cli
for args in (["secret", "list", "--help"], ["order", "create", "--help"], ["container", "--help"],
             ["acl", "--help"], ["consumer", "--help"], ["import", "barbican", "--help"], ["completion", "bash"]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
print(",".join(sorted(name for name in sys.modules if name.split(".")[0] in sys.argv[1].split(",")
                      or name.startswith(("donjon.storage", "donjon.api", "donjon.services")))))
"""


def test_the_client_commands_start_without_the_server() -> None:
    # `donjon secret get` on a host that fetches its password should not pay for SQLAlchemy, Alembic and
    # oslo.policy (about 1.2 s of imports): the client commands load the SDK and httpx only.
    server_only = ["sqlalchemy", "alembic", "oslo_policy", "uvicorn", "starlette"]
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_COMMANDS_ONLY, ",".join(server_only)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ""
