"""Check an audit log end to end: every MAC, every link of the chain, and its length against the head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from donjon.audit.chain import GENESIS, HEAD_SIZE, BadRecord, Head, head_path, line_hash, open_record


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int  # records checked good before the first problem (all of them when ok)
    line: int | None = None  # 1-based line of the first problem, when it has one
    problem: str = ""
    note: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.count} records" + (f" ({self.note})" if self.note else "")
        where = f"line {self.line}: " if self.line is not None else ""
        return f"FAILED at {where}{self.problem} ({self.count} good records before it)"


def verify(path: Path, key: bytes, head_file: Path | None = None) -> Verdict:
    """The first problem in the log at ``path`` sealed under ``key``, or ok with its record count."""
    head_file = head_file or head_path(path)
    prev, count, hash_at_head = GENESIS, 0, None
    try:
        with head_file.open("rb") as f:
            raw_head = f.read(HEAD_SIZE)  # the durable head; the second slot is the writers' tail
    except FileNotFoundError:
        raw_head = b""
    head: Head | None = None
    if raw_head.strip():
        try:
            head = Head.decode(key, raw_head)
        except BadRecord as exc:
            return Verdict(False, 0, None, f"head state {head_file}: {exc}")
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return Verdict(False, count, number, "torn record (no end of line): a write was cut short")
            try:
                record = open_record(key, line[:-1])
            except BadRecord as exc:
                return Verdict(False, count, number, str(exc))
            if record["seq"] != count + 1:
                return Verdict(
                    False,
                    count,
                    number,
                    f"sequence {record['seq']}, expected {count + 1}: a record was removed or moved",
                )
            if record["prev"] != prev:
                return Verdict(False, count, number, "does not chain to the line before it: removed, moved or edited")
            prev = line_hash(line)
            count += 1
            if head is not None and count == head.count:
                hash_at_head = prev
    if head is None:
        if count == 0:
            return Verdict(True, 0)
        return Verdict(False, count, None, f"head state {head_file} is missing: a cut tail could not be detected")
    if count < head.count:
        return Verdict(
            False, count, count + 1, f"the log ends after {count} records, its head state says {head.count}: truncated"
        )
    if hash_at_head != head.hash:
        return Verdict(False, count, head.count, "record does not match the head state: the log was rewritten")
    note = (
        f"{count - head.count} records after the head state: a crash before it was updated"
        if count > head.count
        else ""
    )
    return Verdict(True, count, note=note)
