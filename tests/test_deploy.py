"""The deployment examples in docs/deploy (issue 13, item 5): the systemd unit passes ``systemd-analyze verify``
(and its offline security review) where systemd-analyze is installed, and the example TOML is valid Settings
that the listener accepts in token mode with TLS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from donjon import listener
from donjon.config import Settings
from donjon.errors import ConfigurationError
from tests.live_server import DONJON
from tests.tls_certs import TestCA

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("DONJON_")]:
        monkeypatch.delenv(name)
    path = DEPLOY / "donjon.toml"
    monkeypatch.setenv("DONJON_CONFIG", str(path))
    return path


def test_the_example_toml_is_token_mode_with_tls(example: Path) -> None:
    settings = Settings()
    assert settings.auth == "token" and settings.host == "0.0.0.0"  # noqa: S104 - a network service
    assert settings.tls.cert_file == Path("/etc/donjon/tls/server.crt")
    assert settings.tls.key_file == Path("/etc/donjon/tls/server.key")
    assert not settings.tls.behind_proxy
    assert settings.data_dir == Path("/var/lib/donjon")
    assert settings.keystore_options()["path"] == "/var/lib/donjon/root.key"


def test_the_listener_accepts_the_example_with_its_certificate_and_not_without(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = TestCA(tmp_path).issue("kms.example.org")
    monkeypatch.setenv("DONJON_TLS__CERT_FILE", str(pair.cert_file))
    monkeypatch.setenv("DONJON_TLS__KEY_FILE", str(pair.key_file))
    assert listener.check_transport(Settings()) is None
    monkeypatch.setenv("DONJON_TLS__CERT_FILE", str(tmp_path / "missing.crt"))
    with pytest.raises(ConfigurationError, match="tls.cert_file"):
        listener.check_transport(Settings())


def test_the_unit_runs_what_the_example_configures() -> None:
    unit = (DEPLOY / "donjon.service").read_text()
    assert "Environment=DONJON_CONFIG=/etc/donjon/donjon.toml" in unit
    assert re.search(r"^ExecStart=/opt/donjon/bin/donjon server$", unit, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    assert re.search(r"^StateDirectory=donjon$", unit, re.M)  # /var/lib/donjon, the example's data_dir


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit_and_rates_it_hardened(tmp_path: Path) -> None:
    # The unit's ExecStart must exist for verify: the same unit, run from this checkout's virtualenv.
    unit = tmp_path / "donjon.service"
    unit.write_text((DEPLOY / "donjon.service").read_text().replace("/opt/donjon/bin/donjon", DONJON))
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for donjon.service: ([0-9.]+) (\w+)", security.stdout)
    assert found, security.stdout + security.stderr
    # systemd's scale: 0 (fully confined) to 10 (unprotected); "OK" is below 2.
    assert float(found.group(1)) < 2.0 and found.group(2) == "OK", found.group(0)
