"""Where a token's PIN comes from: a file or an environment variable, read only at login and then dropped."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator

from donjon.errors import ConfigurationError
from donjon.options import PluginOptions, Text, invalid


@dataclass(frozen=True)
class PinSource:
    """Where the PIN comes from, for messages; the PIN itself is read only at login and then dropped."""

    pin_file: Path | None
    pin_env: str

    def describe(self) -> str:
        return f"pin_file {self.pin_file}" if self.pin_file else f"environment variable {self.pin_env}"

    def read(self, what: str) -> str:
        if self.pin_file is not None:
            try:
                mode = self.pin_file.stat().st_mode
                if mode & stat.S_IRWXO:
                    # Group may read (root:donjon 0640), others may not: as the vault keystore's token file.
                    raise ConfigurationError(
                        f"{what}: pin_file {self.pin_file} is readable by others (mode {oct(mode & 0o777)}); chmod 600"
                    )
                text = self.pin_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"{what}: cannot read pin_file {self.pin_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigurationError(f"{what}: pin_file {self.pin_file} is not UTF-8 text") from None
            return text.rstrip("\r\n")
        value = os.environ.get(self.pin_env)
        if value is None:
            raise ConfigurationError(f"{what}: no PIN: set the environment variable {self.pin_env} or pin_file")
        return value


class PinOptions(PluginOptions):
    """The PIN options of every user of a token: ``pin_file`` or ``pin_env`` (each user has its default)."""

    pin_file: Path | None = None
    pin_env: Text | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PinOptions:
        if self.pin_file is not None and self.pin_env is not None:
            raise invalid("give pin_file or pin_env, not both")
        return self

    def pin_source(self, default_env: str) -> PinSource:
        return PinSource(self.pin_file, self.pin_env or default_env)


# A per-process key for comparing PINs given to users sharing one logged-in token, so no PIN is kept.
_PIN_MAC_KEY = os.urandom(32)


def pin_digest(pin: str) -> bytes:
    return hmac.new(_PIN_MAC_KEY, pin.encode(), hashlib.sha256).digest()
