"""Audit records on a loop: a busy loop gathers a few turns' records into one fdatasync, a quiet one starts at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from donjon.audit.chain import Head, head_path, load_audit_key
from donjon.audit.loop_sync import GATHER_ITERATIONS
from donjon.audit.sinks import FileSink
from donjon.audit.verify import verify


@pytest.fixture
def sink(tmp_path: Path) -> FileSink:
    return FileSink(tmp_path / "audit.log", load_audit_key(tmp_path / "audit.key", create=True), fsync=True)


async def _iterations(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)  # one turn of the loop


def test_a_lone_record_on_a_quiet_loop_is_appended_and_synced_at_once(sink: FileSink) -> None:
    async def lone() -> int:
        record = asyncio.ensure_future(sink.append_async({"id": "lone"}))
        await _iterations(3)  # the record's task ran, then the flush it asked for
        appended = sink.loop_batches
        await record
        return appended

    assert asyncio.run(lone()) == 1  # not held back GATHER_ITERATIONS turns: nobody else is coming
    sink.close()


def _batch_metric() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("donjon_audit_fdatasync_records_count") or 0.0
    return count, REGISTRY.get_sample_value("donjon_audit_fdatasync_records_sum") or 0.0


def test_a_busy_loop_gathers_the_records_of_the_next_iterations_into_one_fdatasync(sink: FileSink) -> None:
    async def busy() -> int:
        # Two records in one iteration: the loop is serving several requests.
        await asyncio.gather(sink.append_async({"id": "a"}), sink.append_async({"id": "b"}))
        before = sink.loop_batches
        metric_before = _batch_metric()

        async def arriving(turn: int) -> None:
            await _iterations(turn)
            await sink.append_async({"id": f"turn-{turn}"})

        # One record per turn of the loop: without the delay the first would go out alone, and the others
        # would wait for its fdatasync and share the next one.
        await asyncio.gather(*(arriving(turn) for turn in range(GATHER_ITERATIONS)))
        # The metric operators watch says so too: one more batch, of all of them.
        count, total = _batch_metric()
        assert (count - metric_before[0], total - metric_before[1]) == (1, GATHER_ITERATIONS)
        return sink.loop_batches - before

    assert asyncio.run(busy()) == 1
    sink.close()
    durable = Head.decode(sink._key, head_path(sink.path).read_bytes()[:256])
    assert durable.count == GATHER_ITERATIONS + 2 and verify(sink.path, sink._key).ok


def test_records_after_the_delay_go_out_in_the_next_batch(sink: FileSink) -> None:
    async def late() -> tuple[int, int]:
        await asyncio.gather(sink.append_async({"id": "a"}), sink.append_async({"id": "b"}))
        before = sink.loop_batches

        async def arriving(turn: int) -> int:
            await _iterations(turn)
            await sink.append_async({"id": f"turn-{turn}"})
            return sink.loop_batches - before  # the batches appended by the time this record was answered

        return await asyncio.gather(arriving(0), arriving(GATHER_ITERATIONS + 4))

    first, last = asyncio.run(late())
    assert (first, last) == (1, 2)  # the delay is bounded: a record that comes later waits for the next batch
    sink.close()
