"""Reading the audit log back for the API (``GET /v1/audit/records``, ``GET /v1/audit/verify``).

The log is one chain per host (``sinks``): the records of every project, interleaved. A project's reader
gets the outcome records whose initiator is a caller of that project, newest first, each checked against
its MAC (a record that fails it is not shown: ``verify`` names it). Pending records carry no caller, so
they are not a project's; the outcome record of the same request follows them.

The log is read backwards from its end in blocks, so the last records cost what they weigh, not what the
whole log weighs; a project with no recent activity makes the reader walk back to the first line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from donjon.audit.chain import BadRecord, load_audit_key, open_record
from donjon.audit.verify import Verdict, verify

_BLOCK = 64 * 1024


@dataclass(frozen=True)
class AuditLog:
    """The local audit log and the key that sealed it."""

    path: Path
    key_file: Path
    # A verification reads the whole log (~50 µs a record here): one at a time per process, the others wait.
    _verifying: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def key(self) -> bytes:
        return load_audit_key(self.key_file, create=False)

    def last_records(self, project_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records of ``project_id``'s callers, newest first: ``{"seq", "event"}``."""
        if not project_id or limit <= 0:
            return []
        key = self.key()
        # Records are written by orjson (no spaces): a line of this project's holds exactly these bytes.
        needle = b'"project_id":' + orjson.dumps(project_id)
        found: list[dict[str, Any]] = []
        for line in _lines_backwards(self.path):
            if needle not in line:
                continue  # another project's, or a pending record (no caller yet): not opened at all
            try:
                record = open_record(key, line)
            except BadRecord:
                continue
            event = record["event"]
            initiator = event.get("initiator") if isinstance(event, dict) else None
            if isinstance(initiator, dict) and initiator.get("project_id") == project_id:
                found.append({"seq": record["seq"], "event": event})
                if len(found) >= limit:
                    break
        return found

    def verify(self) -> Verdict:
        """The whole chain checked: every MAC, every link, the length against the head state."""
        if not self.path.exists():
            return Verdict(True, 0)
        with self._verifying:
            return verify(self.path, self.key())


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The lines of ``path`` from the last to the first, without their newlines."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        position = os.fstat(fd).st_size
        tail = b""
        while position > 0:
            size = min(_BLOCK, position)
            position -= size
            chunk = os.pread(fd, size, position) + tail
            lines = chunk.split(b"\n")
            tail = lines[0]  # may continue in the block before this one
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if tail:
            yield tail
    finally:
        os.close(fd)
