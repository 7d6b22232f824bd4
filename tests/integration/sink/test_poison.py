"""Bad input: every poison kind is dead-lettered with its precise reason; its neighbours land.

One scenario per module (the broker needs ~5 s to form a consumer group, so every case shares
one produce and one sink run): good events interleaved with one message of each poison kind,
and a batch that PostgreSQL itself rejects (a CHECK constraint added to this test's database),
which the writer must bisect. Then a second sink in a *new* consumer group replays every
topic into the same database: nothing is dead-lettered or written twice.

Checked on both sides of a dead letter: the ``sink_dead_letters`` row (raw bytes identical to
what was produced, error class, reason, origin) and the dead-letter topic (value, key and the
Kafka Connect-style ``__connect.errors.*`` headers).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from debug_sink.metrics import OTHER_TOPIC
from debug_sink.sink import offsets
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.conftest import kafka_names

MAX_STATE_BYTES = 4096
MAX_DEPTH = 16
DLQ_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
)


@dataclass(frozen=True)
class Case:
    """One poison message, where it goes, and the rejection it must get."""

    name: str
    kind: EventKind | None  # None: a topic outside the six (but matching the pattern)
    value: bytes | None
    error_class: str
    reason: tuple[str, ...]  # fragments the reason must contain


def _bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        node = {"n": node}
    return node


def _cases(corr: str) -> list[Case]:
    E, SN, SU, ST, H = (
        EventKind.ERROR,
        EventKind.SNAPSHOT,
        EventKind.SUCCESS,
        EventKind.STEP,
        EventKind.HOOK,
    )
    missing = s.error(corr)
    del missing["error_type"]
    tag = uuid.uuid4().hex  # makes every raw value unique, so rows are matched unambiguously
    return [
        Case(
            "not_json",
            E,
            b'{"id": "' + tag.encode() + b'", "correlation_id": ',
            "not_json",
            ("not valid JSON",),
        ),
        Case(
            "invalid_utf8",
            E,
            b'{"error_message": "\xff\xfe' + tag.encode() + b'"}',
            "not_json",
            ("not valid UTF-8", "0xff"),
        ),
        Case(
            "json_array", E, orjson.dumps([1, 2, tag]), "not_object", ("JSON array, not an object",)
        ),
        Case("json_string", SU, orjson.dumps(tag), "not_object", ("JSON string",)),
        Case("empty_value", E, b"", "empty", ("empty",)),
        Case("null_value", SU, None, "empty", ("null (a tombstone)",)),
        Case("whitespace_value", H, b"  \n ", "empty", ("whitespace",)),
        Case(
            "unknown_topic",
            None,
            _bytes(s.error(corr)),
            "unknown_topic",
            ("is not a configured topic", "unknown"),
        ),
        Case("missing_field", E, _bytes(missing), "schema", ("error_type", "Field required")),
        Case(
            "mistyped_field",
            E,
            _bytes(s.error(corr, execution_step="5")),
            "schema",
            ("execution_step", "valid integer"),
        ),
        Case(
            "int_as_bool",
            E,
            _bytes(s.error(corr, is_recoverable=1)),
            "schema",
            ("is_recoverable", "valid boolean"),
        ),
        Case("bad_uuid", E, _bytes(s.error(corr, id="not-a-uuid")), "schema", ("id", "UUID")),
        Case(
            "bad_reference_uuid",
            SU,
            _bytes(s.success(corr, state_snapshot_id="1234")),
            "schema",
            ("state_snapshot_id", "UUID"),
        ),
        Case(
            "bad_timestamp",
            E,
            _bytes(s.error(corr, occurred_at="yesterday")),
            "schema",
            ("occurred_at", "got a string of 9 characters"),
        ),
        Case(
            "naive_timestamp",
            E,
            _bytes(s.error(corr, occurred_at="2025-10-11T14:03:27")),
            "schema",
            ("occurred_at", "timezone"),
        ),
        Case(
            "numeric_timestamp",
            E,
            _bytes(s.error(corr, occurred_at=1760191407)),
            "schema",
            ("occurred_at", "ISO 8601"),
        ),
        Case(
            "severity_outside_check",
            E,
            _bytes(s.error(corr, error_severity="urgent")),
            "schema",
            ("error_severity", "got a string of 6 characters"),
        ),
        Case(
            "step_status_outside_check",
            ST,
            _bytes(s.step(corr, 1, "running")),
            "schema",
            ("status", "got a string of 7 characters"),
        ),
        Case(
            "quality_score_above_1",
            SU,
            _bytes(s.success(corr, quality_score=1.5)),
            "schema",
            ("quality_score", "1.5"),
        ),
        Case(
            "negative_count",
            SU,
            _bytes(s.success(corr, execution_time_ms=-1)),
            "schema",
            ("execution_time_ms",),
        ),
        Case(
            "int4_overflow",
            E,
            _bytes(s.error(corr, execution_step=2**31)),
            "schema",
            ("execution_step",),
        ),
        Case(
            "extra_field",
            E,
            _bytes(s.error(corr, colour="red")),
            "schema",
            ("colour", "Extra inputs are not permitted"),
        ),
        Case(
            "schema_version_2",
            E,
            _bytes(s.error(corr, schema_version=2)),
            "schema_version",
            ("schema_version", "got 2"),
        ),
        Case(
            "nul_in_text",
            E,
            _bytes(s.error(corr, error_message="a\x00b")),
            "nul_character",
            ("error_message", "NUL"),
        ),
        Case(
            "nul_in_nested_key",
            SN,
            _bytes(s.snapshot(corr, {"outer": {"inner": {"k\x00": 1}}})),
            "nul_character",
            ("a key at", "agent_state.outer.inner"),
        ),
        Case(
            "nul_in_metadata_value",
            H,
            _bytes(s.hook(corr, metadata={"x": ["ok", "\x00"]})),
            "nul_character",
            ("metadata.x[1]",),
        ),
        Case(
            "string_over_column",
            E,
            _bytes(s.error(corr, agent_name="a" * 300)),
            "too_long",
            ("agent_name", "255", "got 300"),
        ),
        Case(
            "error_code_over_column",
            E,
            _bytes(s.error(corr, error_code="c" * 51)),
            "too_long",
            ("error_code", "50"),
        ),
        Case(
            "state_over_limit",
            SN,
            _bytes(s.snapshot(corr, {"blob": "x" * MAX_STATE_BYTES})),
            "state_too_large",
            (str(MAX_STATE_BYTES), "max_state_bytes"),
        ),
        Case(
            "nesting_too_deep",
            E,
            _bytes(s.error(corr, metadata=_nested(MAX_DEPTH + 2))),
            "too_deep",
            (f"deeper than {MAX_DEPTH}", "metadata"),
        ),
        Case(
            "hook_payload_not_object",
            H,
            _bytes(s.hook(corr, payload=[1, 2])),
            "schema",
            ("payload",),
        ),
    ]


#: Valid for validation, but 9999-12-31T23:59:59-01:00 is year 10000 in UTC: PostgreSQL and
#: Python's datetime cannot hold it as a timestamptz. It must be a dead letter, not a crash.
OUT_OF_RANGE_TIMESTAMP = "9999-12-31T23:59:59-01:00"


@dataclass
class Sent:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


async def _send(
    bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]
) -> list[Sent]:
    """Produce ``(topic, value, key, headers)``; return where each message landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=False)
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k, headers=h or None) for t, v, k, h in messages]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Sent(m.topic, m.partition, m.offset, k, v, list(h))
        for m, (_, v, k, h) in zip(metas, messages, strict=True)
    ]


_SNAPSHOT_SQL = {
    "sink_dead_letters": 'SELECT topic, partition, "offset", key, value, headers, '
    "error_class, reason, group_id FROM sink_dead_letters "
    'ORDER BY topic, partition, "offset"',
    "debug_error_events": "SELECT * FROM debug_error_events ORDER BY id",
    "debug_success_events": "SELECT * FROM debug_success_events ORDER BY id",
    "debug_state_snapshots": "SELECT * FROM debug_state_snapshots ORDER BY id",
    "debug_workflow_steps": "SELECT * FROM debug_workflow_steps ORDER BY id",
    "hook_events": "SELECT * FROM hook_events ORDER BY id",
    "sink_parked_events": 'SELECT kind, event_id, topic, partition, "offset" '
    "FROM sink_parked_events ORDER BY id",
}


async def _tables(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(r) for r in await conn.fetch(sql)] for name, sql in _SNAPSHOT_SQL.items()}


@dataclass
class Scenario:
    kafka: SimpleNamespace
    cases: dict[str, tuple[Case, Sent]]
    out_of_range: Sent
    boom: Sent
    good_ids: dict[EventKind, set[str]]
    bisect_ids: set[str]
    dead_rows: dict[tuple[str, int, int], dict[str, Any]]
    dlq: dict[tuple[str, int, int], Any]
    metrics: Any
    before_replay: dict[str, list[dict[str, Any]]]
    after_replay: dict[str, list[dict[str, Any]]]
    replay_offsets: dict[tuple[str, int], int]
    end_offsets: dict[tuple[str, int], int]


async def _run_scenario(module_db: str, kafka_bootstrap: str) -> Scenario:
    """Produce good and poison messages, run the sink, read both dead-letter channels, then
    replay every topic in a new consumer group (see the module docstring)."""
    kafka = kafka_names(kafka_bootstrap)
    corr = s.uid()
    cases = _cases(corr)
    good_ids: dict[EventKind, set[str]] = {kind: set() for kind in EventKind}
    builders = {
        EventKind.ERROR: lambda: s.error(corr),
        EventKind.SUCCESS: lambda: s.success(corr),
        EventKind.SNAPSHOT: lambda: s.snapshot(corr, {"n": uuid.uuid4().hex}),
        EventKind.STEP: lambda: s.step(corr, 2, "started", started_at=s.ts(0)),
        EventKind.HOOK: lambda: s.hook(corr),
    }
    headers = [("trace-id", b"abc-123")]
    messages: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def good(kind: EventKind) -> None:
        event = builders[kind]()
        good_ids[kind].add(event["id"])
        messages.append((s.topic(kafka, kind), _bytes(event), corr.encode(), []))

    index: dict[str, int] = {}
    for case in cases:
        kind = case.kind or EventKind.ERROR
        good(kind)  # a neighbour before ...
        index[case.name] = len(messages)
        topic = kafka.topic_prefix + "unknown" if case.kind is None else s.topic(kafka, kind)
        messages.append((topic, case.value, corr.encode(), headers))
        good(kind)  # ... and one after, on the same topic
    index["out_of_range"] = len(messages)
    messages.append(
        (
            s.topic(kafka, EventKind.ERROR),
            _bytes(s.error(corr, occurred_at=OUT_OF_RANGE_TIMESTAMP)),
            corr.encode(),
            [],
        )
    )
    good(EventKind.ERROR)
    # PostgreSQL rejects 'boom' (CHECK added below); validation cannot know: bisect.
    bisect = [s.error(corr, error_message=f"fine {i}") for i in range(20)]
    boom = s.error(corr, error_message="boom")
    bisect.insert(10, boom)
    for event in bisect:
        if event is boom:
            index["boom"] = len(messages)
        messages.append((s.topic(kafka, EventKind.ERROR), _bytes(event), corr.encode(), []))
    bisect_ids = {e["id"] for e in bisect if e is not boom}

    conn = await asyncpg.connect(module_db)
    try:
        await conn.execute(
            "ALTER TABLE debug_error_events ADD CONSTRAINT no_boom CHECK (error_message <> 'boom')"
        )
        sent = await _send(kafka_bootstrap, messages)
        settings = s.sink_settings(
            module_db, kafka, max_state_bytes=MAX_STATE_BYTES, max_depth=MAX_DEPTH
        )
        sink = await s.run_sink(settings)
        dead_rows = {
            (r["topic"], r["partition"], r["offset"]): dict(r)
            for r in await conn.fetch("SELECT * FROM sink_dead_letters")
        }
        dlq_messages = await s.read_topic(kafka_bootstrap, kafka.dead_letter_topic)
        before = await _tables(conn)
        # Replay: a new consumer group reads every topic again into the same database.
        replay = s.sink_settings(
            module_db,
            kafka,
            group_id=kafka.group_id + "-replay",
            max_state_bytes=MAX_STATE_BYTES,
            max_depth=MAX_DEPTH,
        )
        await s.run_sink(replay)
        after = await _tables(conn)
        replay_offsets = await offsets.of_group(conn, replay.group_id)
    finally:
        await conn.close()
    end_offsets: dict[tuple[str, int], int] = {}
    for m in sent:
        key = (m.topic, m.partition)
        end_offsets[key] = max(end_offsets.get(key, 0), m.offset + 1)
    dlq = {}
    for msg in dlq_messages:
        h = dict(msg.headers)
        dlq.setdefault(
            (h[DLQ_HEADERS[0]].decode(), int(h[DLQ_HEADERS[1]]), int(h[DLQ_HEADERS[2]])), msg
        )
    return Scenario(
        kafka=kafka,
        cases={c.name: (c, sent[index[c.name]]) for c in cases},
        out_of_range=sent[index["out_of_range"]],
        boom=sent[index["boom"]],
        good_ids=good_ids,
        bisect_ids=bisect_ids,
        dead_rows=dead_rows,
        dlq=dlq,
        metrics=sink.metrics,
        before_replay=before,
        after_replay=after,
        replay_offsets=replay_offsets,
        end_offsets=end_offsets,
    )


scenario_run, scenario, test_scenario_runs = s.scenario_fixtures(
    _run_scenario, "produce, both sink runs, both dead-letter channels read back"
)


CASE_NAMES = [c.name for c in _cases(str(uuid.uuid4()))]


def _origin(sent: Sent) -> tuple[str, int, int]:
    return (sent.topic, sent.partition, sent.offset)


class TestEveryPoisonKind:
    """Each poison kind is rejected before COPY, precisely, on both dead-letter channels."""

    @pytest.mark.parametrize("name", CASE_NAMES)
    async def test_dead_letter_row(self, scenario: Scenario, name: str) -> None:
        """The dead-letter table holds the raw bytes as produced, the key, the headers, the
        precise error class, a reason naming the problem, and the origin."""
        case, sent = scenario.cases[name]
        row = scenario.dead_rows.get(_origin(sent))
        assert row is not None, f"{name}: no dead letter at {_origin(sent)}"
        assert row["value"] == sent.value
        assert row["key"] == sent.key
        assert row["error_class"] == case.error_class, row["reason"]
        for fragment in case.reason:
            assert fragment in row["reason"], (fragment, row["reason"])
        assert row["group_id"] == scenario.kafka.group_id
        assert orjson.loads(row["headers"]) == {"trace-id": "abc-123"}
        assert row["record_time"] is not None
        assert row["received_at"] is not None

    @pytest.mark.parametrize("name", CASE_NAMES)
    async def test_dead_letter_topic(self, scenario: Scenario, name: str) -> None:
        """The dead-letter topic gets the same bytes and key, the original headers, and the
        Kafka Connect error headers: topic, partition, offset, error class and reason."""
        case, sent = scenario.cases[name]
        msg = scenario.dlq.get(_origin(sent))
        assert msg is not None, f"{name}: not on the dead-letter topic"
        assert msg.value == sent.value
        assert msg.key == sent.key
        headers = dict(msg.headers)
        assert headers["trace-id"] == b"abc-123"
        assert headers[DLQ_HEADERS[0]] == sent.topic.encode()
        assert headers[DLQ_HEADERS[1]] == str(sent.partition).encode()
        assert headers[DLQ_HEADERS[2]] == str(sent.offset).encode()
        assert headers[DLQ_HEADERS[3]] == case.error_class.encode()
        row = scenario.dead_rows[_origin(sent)]
        assert headers[DLQ_HEADERS[4]].decode() == row["reason"]

    async def test_exactly_the_poison_is_dead_lettered(self, scenario: Scenario) -> None:
        """Nothing but the poison messages is dead-lettered, and nothing is parked."""
        expected = {_origin(sent) for _, sent in scenario.cases.values()}
        expected |= {_origin(scenario.out_of_range), _origin(scenario.boom)}
        assert set(scenario.dead_rows) == expected
        assert scenario.before_replay["sink_parked_events"] == []

    async def test_neighbours_land(self, scenario: Scenario) -> None:
        """Every valid event produced next to a poison message is a row, exactly once."""
        tables = {
            EventKind.ERROR: "debug_error_events",
            EventKind.SUCCESS: "debug_success_events",
            EventKind.SNAPSHOT: "debug_state_snapshots",
            EventKind.STEP: "debug_workflow_steps",
            EventKind.HOOK: "hook_events",
        }
        rows = scenario.before_replay
        for kind, table in tables.items():
            got = sorted(str(r["id"]) for r in rows[table])
            expected = set(scenario.good_ids[kind])
            if kind is EventKind.ERROR:
                expected |= scenario.bisect_ids
            assert got == sorted(expected), table

    async def test_dead_letter_metrics(self, scenario: Scenario) -> None:
        """debug_sink_dead_letters counts every dead letter by topic and error class."""
        registry = scenario.metrics.registry
        expected: dict[tuple[str, str], int] = {}
        for case, sent in scenario.cases.values():
            # A topic the settings do not name is labelled "(other)": producers may create
            # topics, which must not grow the label set.
            label = OTHER_TOPIC if case.kind is None else sent.topic
            key = (label, case.error_class)
            expected[key] = expected.get(key, 0) + 1
        # The timestamp past year 9999 in UTC is rejected by validation, as a schema error.
        key = (scenario.out_of_range.topic, "schema")
        expected[key] = expected.get(key, 0) + 1
        for (topic_name, error_class), count in expected.items():
            value = registry.get_sample_value(
                "debug_sink_dead_letters_total", {"topic": topic_name, "error_class": error_class}
            )
            assert value == count, (topic_name, error_class)


class TestDatabaseRejection:
    """A row PostgreSQL rejects (SQLSTATE class 22/23) that validation cannot catch is
    isolated by bisecting the batch: it alone is dead-lettered, the rest lands."""

    async def test_check_violation_is_bisected_out(self, scenario: Scenario) -> None:
        """20 valid errors land around the one that violates a CHECK constraint, which is a
        'database' dead letter with its SQLSTATE and constraint in the reason, on both
        channels."""
        row = scenario.dead_rows[_origin(scenario.boom)]
        assert row["error_class"] == "database"
        assert "23514" in row["reason"]
        assert "no_boom" in row["reason"]
        assert row["value"] == scenario.boom.value
        assert row["key"] == scenario.boom.key
        ids = {str(r["id"]) for r in scenario.before_replay["debug_error_events"]}
        assert scenario.bisect_ids <= ids
        assert orjson.loads(scenario.boom.value or b"")["id"] not in ids
        msg = scenario.dlq[_origin(scenario.boom)]
        assert msg.value == scenario.boom.value
        assert dict(msg.headers)[DLQ_HEADERS[3]] == b"database"

    async def test_timestamp_out_of_range_in_utc_is_dead_lettered(self, scenario: Scenario) -> None:
        """A timestamp that validation accepts but that leaves the datetime range once
        converted to UTC is a dead letter (not a crash of the sink), on both channels."""
        row = scenario.dead_rows.get(_origin(scenario.out_of_range))
        assert row is not None
        assert row["value"] == scenario.out_of_range.value
        assert "occurred_at" in row["reason"] or "out of range" in row["reason"]
        assert _origin(scenario.out_of_range) in scenario.dlq

    async def test_timestamp_out_of_range_is_rejected_by_validation(
        self, scenario: Scenario
    ) -> None:
        """The issue asks for bad timestamps to be rejected before COPY, precisely."""
        row = scenario.dead_rows[_origin(scenario.out_of_range)]
        assert row["error_class"] == "schema"
        assert "occurred_at" in row["reason"]


class TestReplay:
    """A new consumer group re-reading every topic into the same database changes nothing."""

    async def test_no_duplicate_dead_letters_or_rows(self, scenario: Scenario) -> None:
        """Dead letters are unique per origin; rows are unique per event id: the replay leaves
        every table exactly as it was."""
        assert scenario.after_replay == scenario.before_replay

    async def test_replay_group_offsets_reach_the_end(self, scenario: Scenario) -> None:
        """The replaying group stored its own offsets, at the end of every partition."""
        assert scenario.replay_offsets == scenario.end_offsets
