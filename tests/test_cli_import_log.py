"""The import log under Ctrl-C: each finished copy is logged once, none is lost (no servers: copies are local)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from donjon.cli.client_import import ImportLog, Item, copy_all


class InterruptedAfterWriting(ImportLog):
    """Ctrl-C lands right after the n-th copy's line reached the disk, before copy_all counted it."""

    def __init__(self, path: Path, interrupt_at: int) -> None:
        super().__init__(path, "barbican", "http://source")
        self.interrupt_at = interrupt_at
        self.calls = 0

    def copied(self, source: str, target: str) -> None:
        super().copied(source, target)
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt


def item(i: int) -> Item:
    def copy(_target: object, _verify: bool) -> str:
        return f"t{i}"

    return Item(f"s{i}", copy)


def items(count: int) -> list[Item]:
    return [item(i) for i in range(count)]


def logged(path: Path) -> list[dict[str, Any]]:
    return [entry for entry in map(json.loads, path.read_text().splitlines()) if "target" in entry]


@pytest.mark.parametrize("interrupt_at", [1, 3])
def test_an_interrupt_after_a_line_is_written_does_not_log_it_twice(tmp_path: Path, interrupt_at: int) -> None:
    path = tmp_path / "import.jsonl"
    log = InterruptedAfterWriting(path, interrupt_at)
    with pytest.raises(KeyboardInterrupt):
        copy_all(None, items(6), log, verify=False, label="secrets", jobs=1)  # type: ignore[arg-type]
    log.close()

    entries = logged(path)
    sources = [entry["source"] for entry in entries]
    assert len(sources) == len(set(sources)) >= interrupt_at, sources
    assert all(entry["target"] == "t" + entry["source"][1:] for entry in entries)

    # Resumed: what was logged counts as done, and only the rest is copied.
    resumed = ImportLog(path, "barbican", "http://source")
    assert set(resumed.done) == set(sources)
    copied, skipped, failed = copy_all(None, items(6), resumed, False, "secrets")  # type: ignore[arg-type]
    resumed.close()
    assert (copied, skipped, failed) == (6 - len(sources), len(sources), 0)
    assert sorted(entry["source"] for entry in logged(path)) == [f"s{i}" for i in range(6)]
