"""What a newcomer runs, run as they would: the real ``donjon`` executable in a subprocess. The banner's
next steps work as printed; server-state commands share --config/--data-dir and refuse contradictions;
unknown roles and configuration mistakes name the closest valid name."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.live_server import DONJON, LiveServer

pytestmark = pytest.mark.live


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env["PATH"] = ""  # the banner's export line must be what makes `donjon` found
    env["HOME"] = env.get("HOME", "/nonexistent")
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, timeout=60)


def _shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(["/bin/bash", "-c", script], env)


def _banner_lines(server: LiveServer) -> list[str]:
    """The indented command lines of the banner (what the user is told to paste)."""
    text = server.log.read_text()
    return [line.strip() for line in text.splitlines() if line.startswith("    ")]


def test_dev_banner_says_where_donjon_is_and_its_commands_work_as_printed(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", workers=1).start()
    try:
        log = server.log.read_text()
        assert f"The donjon command is {DONJON}" in log
        assert f"Data dir (database, root key, token and audit keys, audit log): {tmp_path / 'data'}" in log
        assert f"{server.url}/healthcheck" in log and f"{server.url}/ui" in log
        lines = _banner_lines(server)
        assert any(line.startswith("export PATH=") for line in lines)
        assert f"export DONJON_URL={server.url}" in lines
        # Paste the lines into a shell whose PATH does not have donjon (bash itself by its full path).
        script = "\n".join(["set -e", *lines, "donjon secret list -f json"])
        done = _shell(script, _env())
        assert done.returncode == 0, done.stderr
        names = [row["name"] for row in json.loads(_last_json(done.stdout))]
        assert names == ["first-secret"]
    finally:
        server.stop()


def _last_json(stdout: str) -> str:
    """The JSON document at the end of the output (after the store command's table)."""
    return stdout[stdout.index("\n[") + 1 :]


def test_token_mode_banner_issues_a_token_for_this_servers_data_dir(tmp_path: Path) -> None:
    # Not the default data dir: the printed bootstrap command must name this one.
    server = LiveServer(tmp_path / "data", env={"DONJON_AUTH": "token"}, dev=False, workers=1).start()
    try:
        lines = _banner_lines(server)
        bootstrap = [line for line in lines if "token bootstrap" in line]
        assert bootstrap and f"--data-dir {tmp_path / 'data'}" in bootstrap[0]
        script = "\n".join(["set -e", *lines, 'test -n "$DONJON_TOKEN"', "donjon secret list -f json"])
        done = _shell(script, _env(HOME=str(tmp_path)))
        assert done.returncode == 0, done.stderr
        assert "first-secret" in done.stdout
    finally:
        server.stop()


def test_dev_flag_contradicting_token_auth_is_refused(tmp_path: Path) -> None:
    done = _run([DONJON, "server", "--dev", "--data-dir", str(tmp_path), "--port", "1"], _env(DONJON_AUTH="token"))
    assert done.returncode == 1
    assert "--dev (auth = dev) conflicts with DONJON_AUTH=token" in done.stderr
    config = tmp_path / "donjon.toml"
    config.write_text('auth = "token"\n')
    done = _run([DONJON, "server", "--dev", "--config", str(config), "--port", "1"], _env())
    assert done.returncode == 1 and f"conflicts with auth = 'token' in {config}" in done.stderr


@pytest.mark.parametrize(
    ("command", "args"),
    [
        (["token", "list"], []),
        (["token", "create"], ["--project", "p", "--role", "member"]),
        (["audit", "verify"], []),
        (["manage", "db", "current"], []),
        (["manage", "rotate-kek"], ["--all-projects"]),
        (["manage", "purge-project"], ["p", "--yes"]),
        (["manage", "migrate-store"], ["--from", "database", "--to", "database"]),
    ],
)
def test_state_commands_take_data_dir_and_refuse_a_contradiction(
    tmp_path: Path, command: list[str], args: list[str]
) -> None:
    assert "--data-dir" in _run([DONJON, *command, "--help"], _env()).stdout
    given = [DONJON, *command, *args, "--data-dir", str(tmp_path / "a")]
    done = _run(given, _env(DONJON_DATA_DIR=str(tmp_path / "b")))
    assert done.returncode == 1
    assert f"--data-dir {tmp_path / 'a'} conflicts with DONJON_DATA_DIR={tmp_path / 'b'}" in done.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_token_commands_use_the_given_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    first = _run([DONJON, "token", "bootstrap", "--data-dir", str(data)], _env(HOME=str(tmp_path)))
    assert first.returncode == 0, first.stderr
    assert (data / "token.key").is_file() and (data / "donjon.sqlite").is_file()
    assert not (tmp_path / ".local").exists()  # nothing in the default data dir
    listing = _run([DONJON, "token", "list", "--data-dir", str(data)], _env(HOME=str(tmp_path)))
    assert "roles=admin" in listing.stdout


def test_an_unknown_role_names_the_closest_one(tmp_path: Path) -> None:
    args = [DONJON, "token", "create", "--data-dir", str(tmp_path), "--project", "p", "--role", "membr"]
    done = _run(args, _env())
    assert done.returncode == 2
    assert "unknown role 'membr': did you mean 'member'?" in done.stderr
    assert not (tmp_path / "donjon.sqlite").exists()  # refused before anything was written
    done = _run([*args[:-1], "reader", "--role", "nobody"], _env())
    assert done.returncode == 2 and "the roles are admin" in done.stderr
    # A role that the operator's policy file checks is known.
    policy = tmp_path / "policy.yaml"
    policy.write_text('"secrets:get": "role:auditor"\n')
    ok = _run([*args[:-1], "auditor"], _env(DONJON_POLICY_FILE=str(policy)))
    assert ok.returncode == 0, ok.stderr


def test_a_config_mistake_names_the_file_the_key_and_the_closest_key(tmp_path: Path) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text('keystor = "file"\nport = "nine"\n[limits]\nmax_request_byte = 10\n')
    done = _run([DONJON, "server", "--config", str(config)], _env())
    assert done.returncode == 1
    err = done.stderr
    assert f"unknown setting 'keystor' (in {config}; did you mean 'keystore'?)" in err
    assert f"unknown setting 'limits.max_request_byte' (in {config}, limits; did you mean 'max_request_bytes'?)" in err
    assert f"setting 'port' (in {config}) must be a whole number" in err
    assert "validation error" not in err and "pydantic" not in err  # not pydantic's dump
    env = _env(DONJON_AUDIT__FSNYC="never")
    done = _run([DONJON, "token", "list", "--data-dir", str(tmp_path)], env)
    expected = "unknown setting 'audit.fsnyc' (environment variable DONJON_AUDIT__FSNYC; did you mean 'fsync'?)"
    assert expected in done.stderr


def test_a_database_password_in_a_bad_setting_is_not_echoed(tmp_path: Path) -> None:
    env = _env(DONJON_DATABASE_URL="postgresql://u:hunter2@db/x", DONJON_WORKERS="many")
    done = _run([DONJON, "token", "list", "--data-dir", str(tmp_path)], env)
    assert done.returncode == 1 and "setting 'workers'" in done.stderr
    assert "hunter2" not in done.stderr
