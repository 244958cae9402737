"""The tamper-evident record format: a hash chain of HMAC-sealed JSON lines, and its signed head state.

A record is one line::

    {"v":1,"seq":N,"prev":"<sha256 of the previous line>","event":{...CADF...},"mac":"<HMAC-SHA256>"}

``mac`` is HMAC-SHA256(audit key, "donjon-audit-record" ‖ the record without ``mac``, keys sorted), so an
edited field fails its own MAC; ``prev`` chains each line to the bytes of the one before, so a deleted or
reordered line breaks the chain at the next one. A log cut after its last record is still a valid chain:
the head state (``<log>.head``: count, last hash, size, under its own HMAC) says how long it must be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from donjon.errors import ConfigurationError
from donjon.files import read_private, write_private_once

VERSION = 1
GENESIS = "0" * 64
HEAD_SIZE = 256  # the head file is rewritten in place, always this long
_KEY_BYTES = 32
_RECORD = b"donjon-audit-record\x00"
_HEAD = b"donjon-audit-head\x00"


def load_audit_key(path: Path, *, create: bool) -> bytes:
    """The audit HMAC key from its 0600 file, created (once, atomically) when ``create`` and missing."""
    if not path.exists():
        if not create:
            raise ConfigurationError(f"audit key file {path} does not exist")
        write_private_once(path, base64.b64encode(os.urandom(_KEY_BYTES)) + b"\n")
    try:
        key = base64.b64decode(read_private(path).strip(), validate=True)
    except ValueError:
        raise ConfigurationError(f"audit key file {path} is not base64") from None
    if len(key) != _KEY_BYTES:
        raise ConfigurationError(f"audit key file {path} does not hold a 32-byte key")
    return key


def line_hash(line: bytes) -> str:
    """The hash the next record's ``prev`` carries: SHA-256 of the line's bytes, newline excluded."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _mac(key: bytes, domain: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, domain + orjson.dumps(body, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()


def seal(key: bytes, seq: int, prev: str, event: dict[str, Any]) -> bytes:
    """One record line (with its newline)."""
    body = {"v": VERSION, "seq": seq, "prev": prev, "event": event}
    return orjson.dumps({**body, "mac": _mac(key, _RECORD, body)}) + b"\n"


class BadRecord(ValueError):
    """A line that is not a well-formed record or whose MAC does not match."""


def open_record(key: bytes, line: bytes) -> dict[str, Any]:
    """The record of ``line`` if its MAC is right; raises BadRecord otherwise."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BadRecord("not JSON") from None
    if not isinstance(record, dict) or set(record) != {"v", "seq", "prev", "event", "mac"}:
        raise BadRecord("not an audit record")
    mac = record.pop("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, _RECORD, record)):
        raise BadRecord("MAC mismatch (edited, or sealed under another key)")
    return dict(record)


@dataclass(frozen=True)
class Head:
    """Where the chain ends: how many records, the last one's hash, and the log's size after it."""

    count: int
    hash: str
    size: int

    def encode(self, key: bytes) -> bytes:
        body = {"v": VERSION, "count": self.count, "hash": self.hash, "size": self.size}
        raw = orjson.dumps({**body, "mac": _mac(key, _HEAD, body)})
        assert len(raw) < HEAD_SIZE
        return raw.ljust(HEAD_SIZE - 1) + b"\n"

    @classmethod
    def decode(cls, key: bytes, raw: bytes) -> Head:
        """Raises BadRecord if ``raw`` is not a head state sealed under ``key``."""
        try:
            body = orjson.loads(raw.strip() or b"null")
        except orjson.JSONDecodeError:
            raise BadRecord("head state is not JSON") from None
        if not isinstance(body, dict) or set(body) != {"v", "count", "hash", "size", "mac"}:
            raise BadRecord("not a head state")
        mac = body.pop("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, _HEAD, body)):
            raise BadRecord("head state MAC mismatch")
        return cls(count=int(body["count"]), hash=str(body["hash"]), size=int(body["size"]))


EMPTY = Head(count=0, hash=GENESIS, size=0)


def head_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".head")
