"""Exactly once into PostgreSQL: re-sent messages, a crash before the Kafka commit, a replay.

One scenario, three sinks over the same database and 3-partition topics keyed by
correlation_id (the broker needs ~5 s to form a consumer group, so the cases share them):

1. sink 1 (group G) consumes set A, which holds every event of some workflows three times,
   a duplicate-state snapshot, a poison message and a child whose parent never comes; its
   Kafka commit is disabled, as if it crashed right after each PostgreSQL commit;
2. set B is produced; sink 2 (group G again) must resume at the offsets stored in
   PostgreSQL -- consuming exactly set B -- although Kafka has no committed offset for G;
3. the orphan's grace period ends and it is written with a dangling reference;
4. sink 3 (a new group) replays every topic from the beginning into the same database:
   no table changes at all.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from debug_sink.sink import offsets
from debug_sink.sink.runner import Sink
from debug_sink.sink.tables import create_pool
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.conftest import kafka_names
from tests.support import ER, HK, SN, ST, SU, TR

PARTITIONS = 3
#: Every table a sink writes, with the columns that identify its contents.
DIGESTS = {
    **{
        table: f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t"
        for table in s.EVENT_TABLES
    },
    "sink_dead_letters": "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) "
    "FROM sink_dead_letters t",
    "sink_parked_events": "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) "
    "FROM sink_parked_events t",
    "sink_snapshot_aliases": "SELECT md5(coalesce(string_agg(t::text, '|' "
    "ORDER BY t.alias_id), '')) FROM sink_snapshot_aliases t",
}


@dataclass
class Workflow:
    """One workflow's events; every reference points inside it."""

    corr: str
    events: list[tuple[EventKind, dict[str, Any]]]

    @property
    def by_kind(self) -> dict[EventKind, dict[str, Any]]:
        first: dict[EventKind, dict[str, Any]] = {}
        for kind, event in self.events:
            first.setdefault(kind, event)
        return first


def _workflow(n: int) -> Workflow:
    corr = s.uid()
    snap = s.snapshot(corr, {"workflow": n, "items": list(range(n % 5))})
    err = s.error(corr, state_snapshot_id=snap["id"], error_code=str(n))
    ok = s.success(corr, state_snapshot_id=snap["id"], quality_score=0.5 + n / 100)
    tr = s.transformation(corr, state_snapshot_id=snap["id"], confidence_score=0.75)
    start = s.step(corr, 1, "started", started_at=s.ts(n))
    end = s.step(
        corr, 1, "completed", id=start["id"], completed_at=s.ts(n + 2), success_event_id=ok["id"]
    )
    hk = s.hook(corr)
    return Workflow(
        corr, [(SN, snap), (ER, err), (SU, ok), (TR, tr), (ST, start), (ST, end), (HK, hk)]
    )


async def _produce(
    kafka: SimpleNamespace, messages: list[tuple[str, Any]], ends: dict[tuple[str, int], int]
) -> None:
    """Produce like ``support.produce`` (key = correlation_id) and record the end offset of
    every partition written (Tansu's ListOffsets under-reports the high watermark, so the
    producer's acknowledgements are the reference)."""
    producer = await s.start_producer(kafka.bootstrap_servers)
    try:
        futures = []
        for topic_name, value in messages:
            if isinstance(value, dict):
                key, data = value["correlation_id"].encode(), orjson.dumps(value)
            else:
                key, data = None, value
            futures.append(await producer.send(topic_name, data, key=key))
        for meta in await asyncio.gather(*futures):
            where = (meta.topic, meta.partition)
            ends[where] = max(ends.get(where, 0), meta.offset + 1)
    finally:
        await producer.stop()


async def _kafka_committed(
    bootstrap: str, group_id: str, topics: list[str]
) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        found = {}
        for t in topics:
            for p in range(PARTITIONS):
                offset = await consumer.committed(TopicPartition(t, p))
                if offset is not None:
                    found[(t, p)] = offset
    finally:
        await consumer.stop()
    return found


async def _digests(conn: asyncpg.Connection) -> dict[str, str]:
    return {table: await conn.fetchval(sql) for table, sql in DIGESTS.items()}


def _consumed(sink: Sink) -> float:
    return sum(
        sample.value
        for metric in sink.metrics.registry.collect()
        if metric.name == "debug_sink_events_consumed"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@dataclass
class Scenario:
    kafka: SimpleNamespace
    topics: list[str]
    workflows: list[Workflow]
    twin: dict[str, Any]
    twin_of: dict[str, Any]
    orphan: dict[str, Any]
    missing_parent: str
    aliases: dict[str, str]
    sent_a: int
    sent_b: int
    kafka_committed_after_crash: dict[tuple[str, int], int]
    offsets_after_crash: dict[tuple[str, int], int]
    ends_after_a: dict[tuple[str, int], int]
    ends: dict[tuple[str, int], int]
    sink2_consumed: float
    sink2_batches: int
    offsets_g: dict[tuple[str, int], int]
    rows: dict[str, dict[str, dict[str, Any]]]
    dead_letters: list[dict[str, Any]]
    expired: int
    before_replay: dict[str, str]
    after_replay: dict[str, str]
    offsets_g_after_replay: dict[tuple[str, int], int]
    offsets_replay: dict[tuple[str, int], int]
    replay_consumed: float


async def _run_scenario(module_db: str, kafka_bootstrap: str) -> Scenario:
    """Steps 1-4 of the module docstring."""
    kafka = kafka_names(kafka_bootstrap)
    await s.create_topics(kafka, partitions=PARTITIONS)
    topics = [s.topic(kafka, kind) for kind in EventKind]
    workflows = [_workflow(n) for n in range(24)]
    tripled = workflows[:8]
    # Set A: every workflow once, the first 8 again twice (a producer retrying), a snapshot
    # of an already-sent state under another id, a poison message, an orphan.
    set_a: list[tuple[str, Any]] = []
    for wf in workflows:
        set_a += [(s.topic(kafka, k), e) for k, e in wf.events]
    for _ in range(2):
        for wf in tripled:
            set_a += [(s.topic(kafka, k), e) for k, e in wf.events]
    twin_of = workflows[3].by_kind[SN]
    twin = s.snapshot(workflows[3].corr, dict(twin_of["agent_state"]))
    set_a.append((s.topic(kafka, SN), twin))
    missing_parent = s.uid()
    orphan = s.error(workflows[5].corr, state_snapshot_id=missing_parent)
    set_a.append((s.topic(kafka, ER), orphan))
    set_a.append((s.topic(kafka, ER), b'{"not": "an error"'))
    # Set B: new workflows, plus A events re-sent once more.
    late = [_workflow(n) for n in range(24, 30)]
    set_b: list[tuple[str, Any]] = []
    for wf in late:
        set_b += [(s.topic(kafka, k), e) for k, e in wf.events]
    set_b += [(s.topic(kafka, k), e) for k, e in workflows[10].events]

    settings = s.sink_settings(module_db, kafka)
    conn = await asyncpg.connect(module_db)
    try:
        ends: dict[tuple[str, int], int] = {}
        await _produce(kafka, set_a, ends)
        ends_after_a = dict(ends)

        async def no_kafka_commit(*args: Any) -> None:
            return None

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(offsets, "mirror_to_kafka", no_kafka_commit)
            await s.run_sink(settings)
        committed = await _kafka_committed(kafka_bootstrap, kafka.group_id, topics)
        offsets_after_crash = await offsets.of_group(conn, kafka.group_id)

        await _produce(kafka, set_b, ends)
        sink2 = await s.run_sink(settings)
        offsets_g = await offsets.of_group(conn, kafka.group_id)

        # The orphan's grace period ends (as if 10 minutes had passed); a release pass writes
        # it with its reference NULL.
        await conn.execute("UPDATE sink_parked_events SET expires_at = clock_timestamp()")
        pool = await create_pool(settings)
        try:
            released = await BatchWriter(
                pool, group_id=kafka.group_id, park_grace=600
            ).release_parked()
        finally:
            await pool.close()

        rows = {}
        for table in s.EVENT_TABLES:
            rows[table] = {
                str(r["id"]): dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")
            }
        dead = [dict(r) for r in await conn.fetch("SELECT * FROM sink_dead_letters")]
        aliases = {
            str(r["alias_id"]): str(r["snapshot_id"])
            for r in await conn.fetch("SELECT alias_id, snapshot_id FROM sink_snapshot_aliases")
        }
        before = await _digests(conn)

        replay = s.sink_settings(module_db, kafka, group_id=kafka.group_id + "-replay")
        sink3 = await s.run_sink(replay)
        after = await _digests(conn)
        offsets_g_after = await offsets.of_group(conn, kafka.group_id)
        offsets_replay = await offsets.of_group(conn, replay.group_id)
    finally:
        await conn.close()
    return Scenario(
        kafka=kafka,
        topics=topics,
        workflows=workflows + late,
        twin=twin,
        twin_of=twin_of,
        orphan=orphan,
        missing_parent=missing_parent,
        aliases=aliases,
        sent_a=len(set_a),
        sent_b=len(set_b),
        kafka_committed_after_crash=committed,
        offsets_after_crash=offsets_after_crash,
        ends_after_a=ends_after_a,
        ends=ends,
        sink2_consumed=_consumed(sink2),
        sink2_batches=sink2.committed_batches,
        offsets_g=offsets_g,
        rows=rows,
        dead_letters=dead,
        expired=released.dangling,
        before_replay=before,
        after_replay=after,
        offsets_g_after_replay=offsets_g_after,
        offsets_replay=offsets_replay,
        replay_consumed=_consumed(sink3),
    )


scenario_run, scenario, test_scenario_runs = s.scenario_fixtures(
    _run_scenario, "three sinks, the release pass, the digests"
)


class TestDuplicates:
    """A message sent three times, or re-sent after it was written, is one row."""

    async def test_one_row_per_event_id(self, scenario: Scenario) -> None:
        """Every table holds exactly the ids of the workflows' events (steps: one row for
        start and end), whatever was sent three times; the orphan once, the twin not."""
        expected: dict[str, set[str]] = {t: set() for t in s.EVENT_TABLES}
        table_of = {
            SN: "debug_state_snapshots",
            ER: "debug_error_events",
            SU: "debug_success_events",
            ST: "debug_workflow_steps",
            TR: "agent_transformation_events",
            HK: "hook_events",
        }
        for wf in scenario.workflows:
            for kind, event in wf.events:
                expected[table_of[kind]].add(event["id"])
        expected["debug_error_events"].add(scenario.orphan["id"])
        for table in s.EVENT_TABLES:
            assert set(scenario.rows[table]) == expected[table], table

    async def test_row_contents(self, scenario: Scenario) -> None:
        """Rows of a thrice-sent workflow are what one sending gives: references intact,
        the step folded (completed, 2 s), values as sent."""
        for wf in scenario.workflows:
            ev = wf.by_kind
            snap_id = uuid.UUID(ev[SN]["id"])
            err = scenario.rows["debug_error_events"][ev[ER]["id"]]
            assert (err["state_snapshot_id"], err["error_code"]) == (snap_id, ev[ER]["error_code"])
            ok = scenario.rows["debug_success_events"][ev[SU]["id"]]
            assert ok["state_snapshot_id"] == snap_id
            assert float(ok["quality_score"]) == pytest.approx(ev[SU]["quality_score"])
            tr = scenario.rows["agent_transformation_events"][ev[TR]["id"]]
            assert tr["state_snapshot_id"] == snap_id
            stp = scenario.rows["debug_workflow_steps"][ev[ST]["id"]]
            assert (stp["status"], stp["duration_ms"], stp["success_event_id"]) == (
                "completed",
                2000,
                uuid.UUID(ev[SU]["id"]),
            )
            assert stp["started_at"] == datetime.fromisoformat(ev[ST]["started_at"])
            snap = scenario.rows["debug_state_snapshots"][ev[SN]["id"]]
            assert orjson.loads(snap["agent_state"]) == ev[SN]["agent_state"]

    async def test_same_state_other_id_is_an_alias(self, scenario: Scenario) -> None:
        """The snapshot of an already-stored state under a new id is an alias, not a row."""
        assert scenario.aliases == {scenario.twin["id"]: scenario.twin_of["id"]}

    async def test_one_dead_letter_for_the_poison(self, scenario: Scenario) -> None:
        """The poison message is one dead letter, whatever was replayed."""
        assert len(scenario.dead_letters) == 1
        assert scenario.dead_letters[0]["error_class"] == "not_json"

    async def test_orphan_written_once_with_dangling_reference(self, scenario: Scenario) -> None:
        """The orphan was parked, then written at expiry with its reference in metadata."""
        row = scenario.rows["debug_error_events"][scenario.orphan["id"]]
        assert row["state_snapshot_id"] is None
        assert orjson.loads(row["metadata"]) == {
            "dangling_references": {"state_snapshot_id": scenario.missing_parent}
        }
        assert scenario.expired == 1


class TestCrashBeforeKafkaCommit:
    """A sink that dies after its PostgreSQL commit but before its Kafka commit loses and
    repeats nothing: the next member of the group resumes at the offsets stored in
    PostgreSQL."""

    async def test_crash_left_kafka_without_offsets(self, scenario: Scenario) -> None:
        """Precondition: Kafka has no committed offset for the group, PostgreSQL has the
        end of every partition set A touched."""
        assert scenario.kafka_committed_after_crash == {}
        assert scenario.offsets_after_crash == scenario.ends_after_a

    async def test_next_sink_reads_only_new_messages(self, scenario: Scenario) -> None:
        """Sink 2 consumed exactly set B: not one message of set A again."""
        assert scenario.sink2_consumed == scenario.sent_b
        assert scenario.sink2_batches >= 1

    async def test_offsets_stored_per_partition(self, scenario: Scenario) -> None:
        """sink_offsets holds the end offset of every partition of every topic (3 per topic,
        keyed by correlation_id, so every partition got messages)."""
        assert scenario.offsets_g == scenario.ends
        assert len(scenario.ends) == 6 * PARTITIONS


class TestReplay:
    """A new consumer group re-reading every topic into the same database."""

    async def test_replay_changes_no_table(self, scenario: Scenario) -> None:
        """Events, dead letters, parked events and snapshot aliases are exactly as before
        (md5 of every row of every table)."""
        assert scenario.replay_consumed == scenario.sent_a + scenario.sent_b
        changed = {t for t in DIGESTS if scenario.after_replay[t] != scenario.before_replay[t]}
        assert changed == set()

    async def test_replay_group_has_its_own_offsets(self, scenario: Scenario) -> None:
        """The replaying group stored the end offsets under its own id; the first group's
        offsets are untouched."""
        assert scenario.offsets_replay == scenario.ends
        assert scenario.offsets_g_after_replay == scenario.offsets_g
