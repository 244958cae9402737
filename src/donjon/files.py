"""Private files created once: key material that must never be half-written or readable by others."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

from donjon.errors import ConfigurationError


def write_private_once(path: Path, content: bytes) -> bool:
    """Create ``path`` (mode 0600) with ``content`` atomically; False if it already existed.

    Concurrent starters (several worker processes) never see a partial file: the content is written and
    synced under a temporary name, then linked into place, which fails if another process won the race.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)


def read_private(path: Path) -> bytes:
    """Read a key file, refusing one that others may read (as ssh does)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"key file {path} is readable by others (mode {oct(mode & 0o777)}); chmod 600")
    return path.read_bytes()


def load_key_file(path: Path, *, create: bool, what: str, size: int = 32) -> bytes:
    """A ``size``-byte key, base64 in a 0600 file, created (once, atomically) from urandom when ``create`` and
    missing. ``what`` names the key in errors ("audit key", "token key"); the key itself never appears in one.
    """
    if not path.exists():
        if not create:
            raise ConfigurationError(f"{what} file {path} does not exist")
        write_private_once(path, base64.b64encode(os.urandom(size)) + b"\n")
    try:
        key = base64.b64decode(read_private(path).strip(), validate=True)
    except ValueError:
        raise ConfigurationError(f"{what} file {path} is not base64") from None
    if len(key) != size:
        raise ConfigurationError(f"{what} file {path} does not hold a {size}-byte key")
    return key
