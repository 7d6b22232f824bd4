"""OTLP records (one record -> many events, children parked until their root span
arrives in a later record) through TWO `debug-sink run` processes, one SIGKILLed mid-drain,
a replacement started. The existing fault tests kill sinks on JSON topics only.

Expectation: every span one step, every failed span one error, every model span one LLM call,
nothing left parked, each garbage record one dead letter, stored offsets = partition ends.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import pytest

from tests import otlp_support as o
from tests import support as s
from tests.acceptance.test_sink_faults import SinkProcess, budget
from tests.acceptance.test_two_sinks_sigkill import _drained, _stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PARTITIONS = 4
TRACES = 160
CHILDREN = 8


def _trace_id(n: int) -> bytes:
    return (0xC0DE0000 + n).to_bytes(4, "big") + bytes(range(1, 13))


def _messages() -> tuple[list[tuple[bytes | None, bytes | None]], dict[str, int]]:
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    now = time.time_ns() - 600 * 10**9
    messages: list[tuple[bytes | None, bytes | None]] = []
    expected = {"steps": 0, "errors": 0, "llm": 0}
    for n in range(TRACES):
        trace = _trace_id(n)
        key = trace.hex().encode()
        base = now + n * 10**9
        root_id = (1).to_bytes(8, "big")
        children = []
        for c in range(CHILDREN):
            fields: dict[str, Any] = {
                "trace_id": trace,
                "parent_span_id": root_id,
                "start_time_unix_nano": base + (c + 1) * 10**6,
                "end_time_unix_nano": base + (c + 1) * 10**6 + 500_000,
                "name": f"child {c}",
            }
            attributes = {}
            if c % 3 == 0:
                attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1"}
                expected["llm"] += 1
            if c % 4 == 1:
                fields["status"] = Status(code=2, message="boom")
                expected["errors"] += 1
            children.append(o.raw_span(c + 2, attributes=attributes, **fields))
        root = o.raw_span(
            1,
            trace_id=trace,
            start_time_unix_nano=base,
            end_time_unix_nano=base + 20 * 10**6,
            name="root",
        )
        # children first (a BatchSpanProcessor exports them first), the root later
        messages.append((key, o.raw_message(*children)))
        messages.append((key, o.raw_message(root)))
        expected["steps"] += CHILDREN + 1
        if n % 16 == 0:
            messages.append((key, b"\x0a\x05abc"))  # not OTLP: one dead letter
    return messages, expected


async def _produce(
    kafka: Any, messages: list[tuple[bytes | None, bytes | None]]
) -> dict[tuple[str, int], int]:
    producer = await s.start_producer(kafka.bootstrap_servers)
    ends: dict[tuple[str, int], int] = {}
    try:
        futures = [await producer.send(o.otlp_topic(kafka), v, key=k) for k, v in messages]
        for future in futures:
            meta = await future
            where = (meta.topic, meta.partition)
            ends[where] = max(ends.get(where, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


async def test_otlp_sigkill_one_of_two_sinks_mid_drain(db_dsn: str, kafka: Any) -> None:
    await o.create_otlp_topic(kafka, partitions=PARTITIONS)
    messages, expected = _messages()
    garbage = sum(1 for _, v in messages if v == b"\x0a\x05abc")
    ends = await _produce(kafka, messages)
    settings = s.sink_settings(db_dsn, kafka, batch_max_events=100)
    left = budget(170)
    a = await SinkProcess.start(settings)
    b = await SinkProcess.start(settings)
    try:
        assert await a.wait_for_log("batch_committed", count=3, timeout=left())
        assert a.proc.returncode is None
        await a.kill()
        assert await s.stored_offsets(db_dsn, kafka.group_id) != ends  # killed mid-drain
        c = await SinkProcess.start(settings)
        await _drained(db_dsn, kafka.group_id, ends, left, b, c)

        # Parked children are released by the batch that writes their root, or by the
        # periodic release: give that a moment before stopping.
        async def nothing_parked() -> bool:
            conn = await asyncpg.connect(db_dsn)
            try:
                return await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
            finally:
                await conn.close()

        await s.eventually(
            nothing_parked, timeout=min(30, left()), interval=0.5, what="no parked events"
        )
        await _stop(b, c)
    finally:
        await a.kill()
        await b.kill()
    conn = await asyncpg.connect(db_dsn)
    try:
        got = {
            "steps": await conn.fetchval("SELECT count(*) FROM debug_workflow_steps"),
            "errors": await conn.fetchval("SELECT count(*) FROM debug_error_events"),
            "llm": await conn.fetchval("SELECT count(*) FROM hook_events"),
        }
        letters = await conn.fetchval("SELECT count(*) FROM sink_dead_letters")
        orphans = await conn.fetchval(
            "SELECT count(*) FROM debug_workflow_steps WHERE operation_name <> 'root' "
            "AND parent_step_id IS NULL"
        )
    finally:
        await conn.close()
    assert got == expected
    assert letters == garbage
    assert orphans == 0
