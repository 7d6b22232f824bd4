"""Agents in through OpenTelemetry: OTLP traces messages, made by the real SDK and encoded as
the Collector's Kafka exporter writes them, through the sink into PostgreSQL.

Two parts:

- :class:`TestRecordParts` drives the BatchWriter directly (no broker): the events of one
  record that wait for a parent span are parked side by side (migration 014) and released
  together, and a batch written twice stores everything once;
- the module's scenario runs the real sink on the real broker over one topic holding an
  agent's trace (children first, the root in a later message, in both encodings, re-delivered
  and re-exported) between hostile messages, then the correlator, then ``debug-sink show``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio

from debug_sink.otlp import ids
from debug_sink.otlp.decode import ErrorClass
from debug_sink.settings import Settings
from debug_sink.sink.batch import Batch, BatchBuilder
from debug_sink.sink.expand import RecordExpander
from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.validation import ValidationConfig
from tests import otlp_support as o
from tests import support as s
from tests.conftest import kafka_names
from tests.sdk_support import correlate

TOPIC = "debug.otlp_spans"


class _Record:
    """What the fetcher hands the expander: an aiokafka ConsumerRecord's fields."""

    def __init__(self, value: bytes | None, offset: int, timestamp: int) -> None:
        self.topic, self.partition, self.offset = TOPIC, 0, offset
        self.key, self.value, self.headers, self.timestamp = None, value, (), timestamp


def _batch(expander: RecordExpander, *records: _Record) -> Batch:
    builder = BatchBuilder(100_000, 1 << 30, 60)
    for record in records:
        builder.add_record(expander.items(record))
    return builder.take()


@pytest_asyncio.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    try:
        yield pool
    finally:
        await pool.close()


class TestRecordParts:
    """One record, many events: parked side by side, released together, written once."""

    async def test_children_wait_for_a_root_span_exported_later(
        self, db_dsn: str, pool: asyncpg.Pool, conn: asyncpg.Connection
    ) -> None:
        recorder = o.Recorder()
        o.agent_loop(recorder)
        (root,) = recorder.named("invoke_agent planner")
        children = [span for span in recorder.spans if span is not root]
        now = int(recorder.spans[-1].end_time // 10**6)
        expander = RecordExpander(Settings(), ValidationConfig())
        writer = BatchWriter(pool, group_id="otlp", park_grace=600)

        first = _batch(expander, _Record(o.proto(children), 0, now))
        result = await writer.write(first)
        # Every step of the message waits: the planner's six children for its step, the
        # nested agent's two for the nested agent's (parked itself). Errors, the recovery,
        # LLM calls and the snapshot reference no step: written.
        assert result.parked == 8
        assert result.rows == {"hook": 4, "error": 1, "success": 1, "snapshot": 1}
        parked = await conn.fetch(
            'SELECT topic, partition, "offset", part FROM sink_parked_events ORDER BY part'
        )
        assert {(r["topic"], r["offset"]) for r in parked} == {(TOPIC, 0)}
        assert len({r["part"] for r in parked}) == 8

        # Written again (a crash before the Kafka commit): nothing is parked twice.
        await writer.write(_batch(expander, _Record(o.proto(children), 0, now)))
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 8

        second = await writer.write(_batch(expander, _Record(o.json([root]), 1, now)))
        assert second.released == 8
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
        counts = await s.fetch_counts(db_dsn)
        assert counts["debug_workflow_steps"] == 9
        assert counts["hook_events"] == 4
        assert counts["sink_dead_letters"] == 0
        stored = await conn.fetchval(
            "SELECT next_offset FROM sink_offsets WHERE group_id = 'otlp' AND topic = $1", TOPIC
        )
        assert stored == 2

    async def test_rejected_spans_of_a_record_are_one_letter_beside_its_events(
        self, pool: asyncpg.Pool, conn: asyncpg.Connection
    ) -> None:
        value = o.raw_message(o.raw_span(1), o.raw_span(2, trace_id=b""), o.raw_span(3))
        expander = RecordExpander(Settings(), ValidationConfig())
        writer = BatchWriter(pool, group_id="otlp", park_grace=600)
        result = await writer.write(_batch(expander, _Record(value, 7, o.NOW_MS)))
        assert result.rows == {"step": 2}
        (letter,) = await conn.fetch(
            'SELECT "offset", part, error_class, reason, value FROM sink_dead_letters'
        )
        assert (letter["offset"], letter["part"]) == (7, 2)
        assert letter["error_class"] == ErrorClass.SPAN
        assert "span #1 (no span id" not in letter["reason"]
        assert "no trace id" in letter["reason"]
        assert letter["value"] == value  # the whole message: a replay re-sends all of it


# -- the end-to-end scenario -----------------------------------------------------------------


def _hostile() -> list[tuple[bytes | None, bytes | None]]:
    """(key, value): messages no Collector should send, each a dead letter (the mixed one
    after its good spans)."""
    wide = {f"attr.{i}": "v" * 50 for i in range(10_000)}
    mixed = o.raw_message(
        o.raw_span(1, attributes=wide),  # 10,000 attributes: lands, bounded
        o.raw_span(2, trace_id=b""),  # no trace id
        o.raw_span(3, start_time_unix_nano=0),  # start time 0
        o.raw_span(4, end_time_unix_nano=2**63),  # year 2262
        o.raw_span(5),  # a plain neighbour: lands
    )
    return [
        (None, b"\x0a\x05abc"),  # malformed: a 5-byte field holding 3
        (b"gone", None),  # a tombstone
        (None, b'{"resourceSpans": "nope"}'),  # JSON, not OTLP
        (None, mixed),
    ]


@pytest_asyncio.fixture(scope="module")
async def scenario(module_db: str, kafka_bootstrap: str) -> s.ScenarioRun[dict[str, Any]]:
    return await s.ScenarioRun.capture(_run_scenario(module_db, kafka_bootstrap))


async def _run_scenario(dsn: str, bootstrap: str) -> dict[str, Any]:
    kafka = kafka_names(bootstrap)
    await o.create_otlp_topic(kafka)
    recorder = o.Recorder()
    o.agent_loop(recorder)
    (root,) = recorder.named("invoke_agent planner")
    children = [span for span in recorder.spans if span is not root]
    neighbour = o.Recorder(service="after-the-storm")
    with neighbour.tracer.start_as_current_span(
        "invoke_agent closer", attributes={"gen_ai.agent.name": "closer"}
    ):
        pass
    trace_key = f"{root.context.trace_id:032x}".encode()
    truncated = o.proto(children)[:-7]
    hostile = _hostile()
    messages: list[tuple[bytes | None, bytes | None]] = [
        (trace_key, o.proto(children)),  # children first, as a BatchSpanProcessor exports
        *hostile[:2],
        (None, truncated),
        (trace_key, o.json([root])),  # the root, later, as OTLP/JSON
        (trace_key, o.proto(children)),  # re-delivered
        *hostile[2:],
        (trace_key, o.proto(recorder.spans)),  # the whole trace exported again
        (None, o.json(neighbour.spans)),  # the loop goes on
    ]
    await o.produce_otlp(kafka, messages)
    settings = s.sink_settings(dsn, kafka)
    await s.run_sink(settings, timeout=90)
    await correlate(dsn)
    corr = uuid.UUID(int=root.context.trace_id)
    show = s.run_cli(
        "show", str(corr), "--width", "160", "--no-color", env=s.cli_env(s.as_reader(dsn))
    )
    show_json = s.run_cli("show", str(corr), "--json", env=s.cli_env(s.as_reader(dsn)))
    return {
        "dsn": dsn,
        "kafka": kafka,
        "recorder": recorder,
        "neighbour": neighbour,
        "corr": corr,
        "show": show,
        "show_json": show_json,
        "sent": len(messages),
    }


@pytest.fixture
def run(scenario: s.ScenarioRun[dict[str, Any]], request: pytest.FixtureRequest) -> dict[str, Any]:
    return scenario.result(request.node.nodeid)


def test_scenario_runs(scenario: s.ScenarioRun[dict[str, Any]], request: Any) -> None:
    scenario.raise_if_failed(request.node.nodeid)


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def _step_id(recorder: o.Recorder, name: str, index: int = 0) -> uuid.UUID:
    span = recorder.named(name)[index]
    return ids.step_id(
        span.context.trace_id.to_bytes(16, "big"), span.context.span_id.to_bytes(8, "big")
    )


class TestTheTrace:
    """The agent's trace, delivered children first, twice, and re-exported: each event one
    row, the step tree the span tree."""

    async def test_rows_once_each(self, run: dict[str, Any]) -> None:
        rows = await _fetch(
            run["dsn"],
            """SELECT 'step' AS t, count(*) FROM debug_workflow_steps WHERE correlation_id = $1
               UNION ALL SELECT 'error', count(*) FROM debug_error_events WHERE correlation_id = $1
               UNION ALL SELECT 'success', count(*) FROM debug_success_events
                          WHERE correlation_id = $1
               UNION ALL SELECT 'llm', count(*) FROM debug_llm_call_summary
                          WHERE correlation_id = $1
               UNION ALL SELECT 'snapshot', count(*) FROM debug_state_snapshots
                          WHERE correlation_id = $1""",
            run["corr"],
        )
        assert {r["t"]: r["count"] for r in rows} == {
            "step": 9,
            "error": 1,
            "success": 1,
            "llm": 4,
            "snapshot": 1,
        }
        assert (await _fetch(run["dsn"], "SELECT count(*) FROM sink_parked_events"))[0][0] == 0

    async def test_the_step_tree(self, run: dict[str, Any]) -> None:
        recorder = run["recorder"]
        rows = await _fetch(
            run["dsn"],
            "SELECT id, parent_step_id, step_type, agent_name, status, attempt, session_id "
            "FROM debug_workflow_steps WHERE correlation_id = $1",
            run["corr"],
        )
        steps = {r["id"]: r for r in rows}
        planner = _step_id(recorder, "invoke_agent planner")
        booker = _step_id(recorder, "invoke_agent booker")
        assert steps[planner]["parent_step_id"] is None
        assert steps[booker]["parent_step_id"] == planner
        assert steps[_step_id(recorder, "execute_tool book_flight")]["parent_step_id"] == booker
        children = sorted(
            (r["step_type"], r["agent_name"]) for r in rows if r["parent_step_id"] == planner
        )
        assert (
            children == [("agent", "booker")] + [("llm", "planner")] * 3 + [("tool", "planner")] * 2
        )
        failed = steps[_step_id(recorder, "execute_tool search_flights", 0)]
        retry = steps[_step_id(recorder, "execute_tool search_flights", 1)]
        assert (failed["status"], failed["attempt"]) == ("failed", 1)
        assert (retry["status"], retry["attempt"]) == ("completed", 2)
        assert {r["session_id"] for r in rows} == {ids.session_id("conv-42")}

    async def test_error_recovery_linked_by_the_correlator(self, run: dict[str, Any]) -> None:
        (link,) = await _fetch(
            run["dsn"],
            """SELECT e.error_type, e.recovery_successful, c.link_source, c.recovery_strategy,
                      s.success_type, s.operation_name
                 FROM debug_error_success_correlation c
                 JOIN debug_error_events e ON e.id = c.error_event_id
                 JOIN debug_success_events s ON s.id = c.success_event_id
                WHERE e.correlation_id = $1""",
            run["corr"],
        )
        assert dict(link) == {
            "error_type": "TimeoutError",
            "recovery_successful": True,
            "link_source": "stated",
            "recovery_strategy": "retry",
            "success_type": "recovery_success",
            "operation_name": "execute_tool search_flights",
        }

    async def test_llm_calls_in_the_summary_view(self, run: dict[str, Any]) -> None:
        rows = await _fetch(
            run["dsn"],
            "SELECT l.tool_name, l.success_classification, h.payload FROM debug_llm_call_summary l "
            "JOIN hook_events h ON h.id = l.hook_event_id WHERE l.correlation_id = $1 "
            "ORDER BY l.call_timestamp",
            run["corr"],
        )
        assert [r["tool_name"] for r in rows] == ["gpt-4o", "gpt-4o", "claude-sonnet-4", "gpt-4o"]
        assert {r["success_classification"] for r in rows} == {"success"}
        usage = [orjson.loads(r["payload"])["usage"]["total_tokens"] for r in rows]
        assert usage == [138, 172, 340, 460]

    async def test_no_secret_stored(self, run: dict[str, Any]) -> None:
        (leaks,) = await _fetch(
            run["dsn"],
            """SELECT (SELECT count(*) FROM debug_state_snapshots WHERE agent_state::text LIKE $1)
                    + (SELECT count(*) FROM debug_workflow_steps WHERE metadata::text LIKE $1)
                    + (SELECT count(*) FROM sink_dead_letters
                        WHERE encode(value, 'escape') LIKE $1 OR reason LIKE $1)""",
            f"%{o.LEAKED_KEY}%",
        )
        assert leaks[0] == 0
        (state,) = await _fetch(
            run["dsn"],
            "SELECT agent_state FROM debug_state_snapshots WHERE correlation_id = $1",
            run["corr"],
        )
        assert orjson.loads(state["agent_state"])["api_key"] == "[REDACTED]"

    def test_show(self, run: dict[str, Any]) -> None:
        result = run["show"]
        assert result.returncode == 0, result.stderr
        text = result.stdout
        for expected in (
            "invoke_agent planner (agent)",
            "invoke_agent booker (agent)",
            "execute_tool search_flights (tool)  failed",
            "span try 2",
            "TimeoutError: flight API timed out after 30 s",
            "recovered by retry -> recovery_success execute_tool search_flights",
            "gpt-4o",
            "claude-sonnet-4",
        ):
            assert expected in text, (expected, text)
        document = orjson.loads(run["show_json"].stdout)
        kinds = [entry["kind"] for entry in document["timeline"]]
        assert kinds.count("step") == 9
        assert kinds.count("llm_call") == 4
        order = [
            entry["data"].get("operation_name")
            for entry in document["timeline"]
            if entry["kind"] == "step"
        ]
        # Causal and clock order: the agent first, the retry after the failure, the nested
        # agent after the tool calls, the final model call last.
        assert order[0] == "invoke_agent planner"
        assert order.index("execute_tool search_flights") < order.index("invoke_agent booker")
        assert order[-1] == "chat gpt-4o"


class TestHostileMessages:
    """Malformed, truncated, empty, wrongly encoded messages and hostile spans: dead letters
    with reasons; their neighbours land; the sink goes on to the end of the topic."""

    async def test_dead_letters_with_reasons(self, run: dict[str, Any]) -> None:
        rows = await _fetch(
            run["dsn"],
            'SELECT "offset", part, error_class, reason FROM sink_dead_letters ORDER BY "offset"',
        )
        letters = [(r["error_class"], r["part"]) for r in rows]
        assert letters == [
            (ErrorClass.NOT_OTLP, 0),  # malformed protobuf
            (ErrorClass.EMPTY, 0),  # tombstone
            (ErrorClass.NOT_OTLP, 0),  # truncated real message
            (ErrorClass.NOT_OTLP, 0),  # JSON that is not OTLP
            (ErrorClass.SPAN, 2),  # after the mixed message's two good spans
        ]
        mixed = rows[-1]["reason"]
        assert mixed.startswith("3 problem(s) in 5 span(s)")
        for reason in ("no trace id", "start time is not set (0)", "more than a day after"):
            assert reason in mixed

    async def test_neighbours_land(self, run: dict[str, Any]) -> None:
        rows = await _fetch(
            run["dsn"],
            "SELECT agent_name, operation_name, metadata FROM debug_workflow_steps "
            "WHERE correlation_id <> $1 ORDER BY operation_name",
            run["corr"],
        )
        names = [(r["agent_name"], r["operation_name"]) for r in rows]
        assert names == [("closer", "invoke_agent closer"), ("svc", "step 1"), ("svc", "step 5")]
        wide = orjson.loads(rows[1]["metadata"])["otel"]
        assert len(wide["attributes"]) == 128
        assert wide["dropped_attributes"] == 10_000 - 128

    async def test_every_offset_stored(self, run: dict[str, Any]) -> None:
        (row,) = await _fetch(
            run["dsn"],
            "SELECT next_offset FROM sink_offsets WHERE group_id = $1",
            run["kafka"].group_id,
        )
        assert row["next_offset"] == run["sent"]
