"""schemathesis over ``/openapi.json`` against a live ``donjon server``: no 5xx, and no answer that the document
does not describe (status, content type, headers, body schema).

In ``./scripts/test``: a bounded run on SQLite and PostgreSQL (those of ``DONJON_TEST_DATABASES``), dev mode,
``DONJON_FUZZ_SECONDS`` (default 20) each, split by schemathesis between its coverage, fuzzing and stateful
phases (the stateful phase chains operations through the links it infers from ``Location`` headers and
refs: create a secret, then read, share, wrap and delete it). The seed is random and printed with any
failure; ``--seed`` reproduces it. By hand, longer and wider (docs/api-compatibility.md, "Fuzzing")::

    DONJON_FUZZ_SECONDS=600 DONJON_FUZZ_DATABASES=sqlite,postgresql,mariadb DONJON_FUZZ_AUTH=dev,token \
        .venv/bin/pytest tests/test_fuzz.py -s

Checks left out, and why: ``positive_data_acceptance`` / ``negative_data_rejection`` (the document does not
encode every rule the server checks, and Barbican's paging deliberately takes anything: ``limit=abc`` is
the default); ``use_after_free`` (``DELETE …/acl`` resets the ACL to its defaults, which stay readable, as in
Barbican); ``ignored_auth`` and ``object_level_authorization`` (tests/test_policy_matrix.py covers
authorisation). The server's audit log is on, without fsync (speed), and its log must not show any
unexpected error.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests import databases
from tests.live_server import LiveServer

pytestmark = pytest.mark.live

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ensure_resource_availability",
    ]
)


def _listed(variable: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(variable, default).split(",") if item.strip()]


FUZZED = _listed("DONJON_FUZZ_DATABASES", ",".join(k for k in databases.selected() if k in ("sqlite", "postgresql")))
MODES = _listed("DONJON_FUZZ_AUTH", "dev")


def schemathesis_command(base_url: str, seconds: int, seed: int, config: Path, headers: dict[str, str]) -> list[str]:
    """The run; ``headers`` are fixed (never generated), so that requests reach past authentication."""
    config.write_text("[parameters]\n" + "".join(f'"header.{k}" = "{v}"\n' for k, v in headers.items()))
    command = [SCHEMATHESIS, "--config-file", str(config), "run", f"{base_url}/openapi.json", "--checks", CHECKS]
    # One worker: schemathesis's threads trip a CPython 3.11 race in hypothesis's lambda descriptions.
    command += ["--max-time", str(seconds), "--seed", str(seed), "--workers", "1"]
    return [*command, "--generation-database", "none", "--no-color"]


def start_server(kind: str, mode: str, tmp_path: Path) -> tuple[LiveServer, dict[str, str], str | None]:
    """A server on a fresh database of ``kind``, and the headers that make a request an admin's."""
    url = databases.fresh_database(kind, tmp_path) if kind != "sqlite" else None
    env = {"DONJON_AUDIT__FSYNC": "never", **({"DONJON_DATABASE_URL": url} if url else {})}
    if mode == "dev":
        # The caller's project and roles are fixed, X-User-Id and the other headers are generated.
        return LiveServer(tmp_path / "data", env=env).start(), {"X-Project-Id": "fuzz", "X-Roles": "admin"}, url
    env["DONJON_AUTH"] = "token"
    server = LiveServer(tmp_path / "data", env=env, dev=False).start()
    bootstrap = subprocess.run(
        [str(Path(sys.executable).with_name("donjon")), "token", "bootstrap", "--project", "fuzz"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DONJON_")},
            **env,
            "DONJON_DATA_DIR": str(server.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return server, {"X-Auth-Token": bootstrap.stdout.strip()}, url


@pytest.mark.skipif(not FUZZED, reason="no database selected for fuzzing")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", FUZZED)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(kind: str, mode: str, tmp_path: Path) -> None:
    seconds = int(os.environ.get("DONJON_FUZZ_SECONDS", "20"))
    seed = random.SystemRandom().randrange(2**64)
    server, headers, url = start_server(kind, mode, tmp_path)
    try:
        result = subprocess.run(
            schemathesis_command(server.url, seconds, seed, tmp_path / "schemathesis.toml", headers),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=seconds + 300,
            check=False,
        )
    finally:
        server.stop()
        if url:
            databases.drop_database(kind, url)
    print(result.stdout[-1500:])  # the summary (-s shows it): cases generated, phases
    assert result.returncode == 0, f"seed {seed}\n{result.stdout[-20000:]}\n{result.stderr[-3000:]}"
    server_log = server.log.read_text()
    assert "unexpected" not in server_log, server_log[-5000:]
