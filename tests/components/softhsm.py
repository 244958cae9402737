"""A fresh SoftHSM2 token for the session: its own config and token directory, nothing shared with the host.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised, so the fixture sets it in this process's
environment for the whole session (and so for any ``donjon server`` the tests start).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class SoftHsmToken:
    conf: Path
    token_label: str
    pin: str = field(repr=False)
    pin_file: Path
    library: str = LIBRARY

    def options(self, **extra: Any) -> dict[str, Any]:
        """Options of a ``pkcs11`` keystore on this token."""
        return {"library": self.library, "token_label": self.token_label, "pin_file": str(self.pin_file), **extra}


def init_token(directory: Path, label: str = "donjon-test", pin: str | None = None) -> SoftHsmToken:
    pin = pin or secrets.token_urlsafe(12)
    so_pin = secrets.token_urlsafe(12)
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    pin_file = directory / "user.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    return SoftHsmToken(conf=conf, token_label=label, pin=pin, pin_file=pin_file)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    if not shutil.which("softhsm2-util") or not Path(LIBRARY).is_file():
        pytest.skip("SoftHSM2 is not installed (apt install softhsm2; ./scripts/test does it)")
    token = init_token(tmp_path_factory.mktemp("softhsm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(token.conf))
        yield token
