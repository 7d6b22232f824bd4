"""Exactly once with TWO `debug-sink run` processes in one consumer group, one of
them SIGKILLed -- mid-drain, or in the middle of a rebalance -- then a replacement started.

Expectation (README "How exactly-once works", "Scaling out"): every valid event is one row,
no row missing, each poison message one dead letter, nothing left parked, and the offsets
stored in PostgreSQL are the end of every partition. Covered elsewhere: SIGKILL of the only
sink (tests/acceptance/test_sink_faults.py), a second sink joining without a kill.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
import orjson
import pytest

from tests import support as s
from tests.acceptance.test_sink_faults import SinkProcess, budget
from tests.support import ER, SN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PARTITIONS = 4


async def _produce(kafka: Any, messages: list[tuple[str, Any]]) -> dict[tuple[str, int], int]:
    """Produce (key = correlation_id for events, a rotating key for poison) and return the end
    offset of every partition written, from the producer's acknowledgements."""
    producer = await s.start_producer(kafka.bootstrap_servers)
    ends: dict[tuple[str, int], int] = {}
    try:
        futures = []
        for n, (topic, value) in enumerate(messages):
            if isinstance(value, dict):
                key, data = value["correlation_id"].encode(), orjson.dumps(value)
            else:
                key, data = f"poison-{n}".encode(), value
            futures.append(await producer.send(topic, data, key=key))
        for meta in await asyncio.gather(*futures):
            where = (meta.topic, meta.partition)
            ends[where] = max(ends.get(where, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


def _workload(
    kafka: Any, workflows: int, seed: int
) -> tuple[s.Workload, list[tuple[str, Any]], int]:
    workload = s.mixed_workload(kafka, workflows, seed=seed, state_bytes=300)
    messages: list[tuple[str, Any]] = list(workload.messages)
    poison = 0
    # Poison spread through the stream (not JSON; a schema error), each one dead letter.
    step = max(1, len(messages) // 40)
    for index in range(step, len(messages), step):
        bad = (
            (s.topic(kafka, ER), b'{"not": "an error"')
            if poison % 2
            else (s.topic(kafka, SN), orjson.dumps({"id": "nope", "schema_version": 1}))
        )
        messages.insert(index + poison, bad)
        poison += 1
    return workload, messages, poison


async def _assert_exact(
    dsn: str, kafka: Any, workload: s.Workload, poison: int, ends: dict[tuple[str, int], int]
) -> None:
    stored = await s.table_ids(dsn)
    diff = {
        t: {"missing": len(workload.expected[t] - ids), "extra": len(ids - workload.expected[t])}
        for t, ids in stored.items()
        if ids != workload.expected[t]
    }
    assert diff == {}, diff
    conn = await asyncpg.connect(dsn)
    try:
        letters = await conn.fetchval("SELECT count(*) FROM sink_dead_letters")
        origins = await conn.fetchval(
            'SELECT count(DISTINCT (topic, partition, "offset", part)) FROM sink_dead_letters'
        )
        parked = await conn.fetchval("SELECT count(*) FROM sink_parked_events")
        aliases = await conn.fetchval("SELECT count(*) FROM sink_snapshot_aliases")
        open_steps = await conn.fetchval(
            "SELECT count(*) FROM debug_workflow_steps WHERE status = 'started'"
        )
        dangling = await conn.fetchval(
            "SELECT count(*) FROM debug_error_events e LEFT JOIN debug_state_snapshots s "
            "ON s.id = e.state_snapshot_id WHERE s.id IS NULL"
        )
    finally:
        await conn.close()
    assert (letters, origins) == (poison, poison)
    assert parked == 0
    assert aliases == len(workload.expected["debug_error_events"])  # one duplicate per workflow
    assert open_steps == 0
    assert dangling == 0
    assert await s.stored_offsets(dsn, kafka.group_id) == ends


async def _drained(
    dsn: str, group: str, ends: dict[tuple[str, int], int], left: Any, *sinks: SinkProcess
) -> None:
    async def done() -> bool:
        for sink in sinks:
            if sink.proc.returncode is not None:
                pytest.fail(f"a sink exited: {sink.output[-3000:]}")
        return await s.stored_offsets(dsn, group) == ends

    await s.eventually(
        done,
        timeout=left(),
        interval=0.5,
        what="every partition's end offset stored in PostgreSQL",
        details=lambda: "\n---\n".join(x.output[-1500:] for x in sinks),
    )


async def _stop(*sinks: SinkProcess) -> None:
    for sink in sinks:
        if sink.proc.returncode is None:
            sink.proc.send_signal(signal.SIGTERM)
    for sink in sinks:
        code, err = await sink.finish(60)
        assert code == 0, err[-3000:]


class TestTwoSinks:
    async def test_sigkill_one_of_two_mid_drain(self, db_dsn: str, kafka: Any) -> None:
        """Two sinks share 4-partition topics; once both have written, one is SIGKILLed;
        a replacement joins; the group drains: exact contents."""
        await s.create_topics(kafka, partitions=PARTITIONS)
        workload, messages, poison = _workload(kafka, 300, seed=101)
        ends = await _produce(kafka, messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=100)
        left = budget(150)
        a = await SinkProcess.start(settings)
        b = await SinkProcess.start(settings)
        try:
            assert await a.wait_for_log("batch_committed", count=2, timeout=left())
            assert await b.wait_for_log("batch_committed", count=1, timeout=left())
            assert a.proc.returncode is None
            await a.kill()
            # The kill was mid-drain: work was left for the others.
            assert await s.stored_offsets(db_dsn, kafka.group_id) != ends
            c = await SinkProcess.start(settings)
            await _drained(db_dsn, kafka.group_id, ends, left, b, c)
            await _stop(b, c)
        finally:
            for sink in (a, b):
                await sink.kill()
        await _assert_exact(db_dsn, kafka, workload, poison, ends)

    @pytest.mark.parametrize("victim", ["joining", "incumbent"])
    async def test_sigkill_during_rebalance(self, db_dsn: str, kafka: Any, victim: str) -> None:
        """A writes alone; B joins; at the rebalance (B's `partitions_assigned`, or A's
        `partitions_revoked`) one of them is SIGKILLed at once; C replaces it: exact
        contents."""
        await s.create_topics(kafka, partitions=PARTITIONS)
        workload, messages, poison = _workload(kafka, 300, seed=202)
        ends = await _produce(kafka, messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=100)
        left = budget(170)
        a = await SinkProcess.start(settings)
        b: SinkProcess | None = None
        try:
            assert await a.wait_for_log("batch_committed", count=1, timeout=left())
            revoked_before = a.count("partitions_revoked")
            b = await SinkProcess.start(settings)
            if victim == "joining":
                assert await b.wait_for_log("partitions_assigned", timeout=left())
                await b.kill()
                survivor = a
            else:
                assert await a.wait_for_log(
                    "partitions_revoked", count=revoked_before + 1, timeout=left()
                )
                await a.kill()
                survivor = b
            assert await s.stored_offsets(db_dsn, kafka.group_id) != ends  # mid-drain
            c = await SinkProcess.start(settings)
            await _drained(db_dsn, kafka.group_id, ends, left, survivor, c)
            await _stop(survivor, c)
        finally:
            await a.kill()
            if b is not None:
                await b.kill()
        await _assert_exact(db_dsn, kafka, workload, poison, ends)
