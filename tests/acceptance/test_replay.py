"""`debug-sink replay` as an operator runs it: a rebuild from the topics reproduces the live
database exactly, a replay over a populated database changes nothing, `--dry-run` counts what
would be read, and `--since` starts at the first record at or after the time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from debug_sink.wire.events import EventKind
from tests import support as s

pytestmark = pytest.mark.timeout(120)

REPLAY = [*s.CLI, "replay"]

#: Columns that differ between two databases holding the same events, by design: the
#: writing transaction's id on errors, successes and steps (``ingest_xid``, the correlator's ingest
#: position), the dead-letter row's identity, arrival time and consumer group, and an
#: alias's arrival time. Every event column is the same: ids and timestamps come from the
#: events (or, when an event omits its own time, from the Kafka record timestamp, which a
#: replay reads again).
EXCLUDED = {
    "debug_error_events": ("ingest_xid",),
    "debug_success_events": ("ingest_xid",),
    "debug_workflow_steps": ("ingest_xid",),
    "sink_dead_letters": ("id", "received_at", "group_id"),
    "sink_snapshot_aliases": ("created_at",),
}
TABLES = (*s.EVENT_TABLES, "sink_snapshot_aliases", "sink_dead_letters", "sink_parked_events")


async def checksums(dsn: str) -> dict[str, tuple[int, str]]:
    """(row count, md5 of every row in a stable order) per table."""
    conn = await asyncpg.connect(dsn)
    try:
        result = {}
        for table in TABLES:
            minus = "".join(f" - '{column}'" for column in EXCLUDED.get(table, ()))
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(r, '|' ORDER BY r), '')) AS h "
                f"FROM (SELECT (to_jsonb(t){minus})::text AS r FROM {table} t) AS rows"
            )
            result[table] = (row["n"], row["h"])
        return result
    finally:
        await conn.close()


async def replay(settings: Any, *args: str, timeout: float = 90) -> tuple[int, Any, str]:
    # A short session: Tansu holds a group join for about half of it.
    settings = settings.model_copy(update={"kafka_session_timeout_ms": 3000})
    proc = await asyncio.create_subprocess_exec(
        *REPLAY,
        *args,
        "--json",
        env=s.sink_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    text = err.decode(errors="replace")
    parsed = orjson.loads(out) if proc.returncode == 0 else out.decode(errors="replace")
    return proc.returncode, parsed, text


async def live_run(db_dsn: str, kafka: Any) -> s.Workload:
    """Topics with a mixed workload and two poison messages, consumed by a live sink."""
    await s.create_topics(kafka, partitions=2)
    workload = s.mixed_workload(kafka, 40, seed=17)
    poison: list[tuple[str, Any]] = [
        (s.topic(kafka, EventKind.ERROR), b"{not json"),
        (s.topic(kafka, EventKind.HOOK), {**s.hook(s.uid()), "source": 42}),
    ]
    await s.produce(kafka, [*workload.messages, *poison])
    await s.run_sink(s.sink_settings(db_dsn, kafka, kafka_session_timeout_ms=3000), idle_grace=5.0)
    return workload


async def message_counts(kafka: Any) -> dict[tuple[str, int], int]:
    """Messages per partition of the six topics, counted by reading every one (independent
    of ListOffsets, which the replay plan uses)."""
    records = await s.read_partitions(
        kafka.bootstrap_servers, [s.topic(kafka, kind) for kind in EventKind]
    )
    return {(tp.topic, tp.partition): len(batch) for tp, batch in records.items()}


class TestRebuild:
    """A replay from the beginning rebuilds the database; over a full one it is a no-op."""

    async def test_replay_into_empty_database_reproduces_the_live_run(
        self, db_dsn: str, other_db: str, kafka: Any
    ) -> None:
        workload = await live_run(db_dsn, kafka)
        live = await checksums(db_dsn)
        assert live["sink_dead_letters"][0] == 2
        assert live["sink_parked_events"][0] == 0
        assert live["debug_state_snapshots"][0] == len(workload.expected["debug_state_snapshots"])

        code, summary, err = await replay(s.sink_settings(other_db, kafka), "--from-beginning")
        assert code == 0, err[-3000:]
        assert summary["group_id"].startswith("debug-sink-replay-")
        assert summary["events_read"] == summary["events_planned"] == len(workload.messages) + 2
        assert await checksums(other_db) == live
        assert summary["rows_added"]["debug_workflow_steps"] == len(
            workload.expected["debug_workflow_steps"]
        )

    async def test_replay_over_a_populated_database_changes_nothing(
        self, db_dsn: str, kafka: Any
    ) -> None:
        workload = await live_run(db_dsn, kafka)
        before = await checksums(db_dsn)
        conn = await asyncpg.connect(db_dsn)
        try:
            live_offsets = await conn.fetch(
                "SELECT topic, partition, next_offset FROM sink_offsets "
                "WHERE group_id = $1 ORDER BY 1, 2",
                kafka.group_id,
            )
        finally:
            await conn.close()

        code, summary, err = await replay(
            s.sink_settings(db_dsn, kafka), "--from-beginning", "--group-id", "rebuild-1"
        )
        assert code == 0, err[-3000:]
        assert summary["events_read"] == len(workload.messages) + 2
        assert set(summary["rows_added"].values()) == {0}
        assert await checksums(db_dsn) == before
        conn = await asyncpg.connect(db_dsn)
        try:
            assert (
                await conn.fetch(
                    "SELECT topic, partition, next_offset FROM sink_offsets "
                    "WHERE group_id = $1 ORDER BY 1, 2",
                    kafka.group_id,
                )
                == live_offsets
            ), "the live group's offsets must not move"
            replay_total = await conn.fetchval(
                "SELECT sum(next_offset) FROM sink_offsets WHERE group_id = 'rebuild-1'"
            )
        finally:
            await conn.close()
        assert replay_total == len(workload.messages) + 2

    async def test_replay_stops_at_the_planned_end_while_producers_keep_writing(
        self, db_dsn: str, kafka: Any
    ) -> None:
        await s.create_topics(kafka, partitions=2)
        hooks = s.topic(kafka, EventKind.HOOK)
        await s.produce(kafka, [(hooks, s.hook(s.uid())) for _ in range(300)])

        done = asyncio.Event()

        async def keep_producing() -> None:
            while not done.is_set():
                await s.produce(kafka, [(hooks, s.hook(s.uid())) for _ in range(20)])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.02)

        producer = asyncio.create_task(keep_producing())
        try:
            code, summary, err = await replay(s.sink_settings(db_dsn, kafka), "--from-beginning")
        finally:
            done.set()
            await producer
        assert code == 0, err[-3000:]
        assert summary["events_planned"] >= 300
        assert summary["events_read"] == summary["events_planned"]

    async def test_replay_refuses_the_live_group(self, db_dsn: str, kafka: Any) -> None:
        code, _, err = await replay(
            s.sink_settings(db_dsn, kafka), "--from-beginning", "--group-id", kafka.group_id
        )
        assert code == 1
        assert "live sink's consumer group" in err
        assert len(err.strip().splitlines()) == 1, err


class TestPlan:
    """`--dry-run` reads offsets only; `--from-offsets` and `--since` pick the start."""

    async def test_dry_run_counts_per_partition(self, db_dsn: str, kafka: Any) -> None:
        await s.create_topics(kafka, partitions=2)
        workload = s.mixed_workload(kafka, 10, seed=3)
        await s.produce(kafka, workload.messages)
        ends = await message_counts(kafka)
        settings = s.sink_settings(db_dsn, kafka)

        code, plan, err = await replay(settings, "--dry-run", "--from-beginning")
        assert code == 0, err
        assert plan["events"] == len(workload.messages) == sum(ends.values())
        assert {(p["topic"], p["partition"]): p["count"] for p in plan["partitions"]} == ends

        topic = s.topic(kafka, EventKind.STEP)
        code, plan, err = await replay(settings, "--dry-run", "--from-offsets", f"{topic}:1:3")
        assert code == 0, err
        counts = {(p["topic"], p["partition"]): p["count"] for p in plan["partitions"]}
        assert counts.pop((topic, 1)) == ends[(topic, 1)] - 3
        assert set(counts.values()) == {0}, "unlisted partitions are skipped"

        code, _, err = await replay(settings, "--dry-run", "--from-offsets", "nope:0:1")
        assert code == 1
        assert "do not exist" in err
        conn = await asyncpg.connect(db_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM sink_offsets") == 0
        finally:
            await conn.close()

    async def test_since_starts_at_the_first_record_at_or_after_the_time(
        self, db_dsn: str, kafka: Any
    ) -> None:
        await s.create_topics(kafka, partitions=1)
        hooks = s.topic(kafka, EventKind.HOOK)
        early = [s.hook(s.uid()) for _ in range(10)]
        late = [s.hook(s.uid()) for _ in range(5)]
        await s.produce(kafka, [(hooks, m) for m in early])
        # Acknowledged: every early record was stamped by the producer and appended by the
        # broker before now. The time lookup goes by the broker's append time on Tansu (by
        # the producer's timestamp on Kafka), so `produce(first_timestamp_ms=)` cannot place
        # records around `since`: the clock itself has to pass it between the two sends.
        since_ms = time.time_ns() // 1_000_000 + 5

        async def clock_passed_since() -> bool:
            return time.time_ns() // 1_000_000 > since_ms + 5

        await s.eventually(clock_passed_since, timeout=5, interval=0.001, what="the clock")
        await s.produce(kafka, [(hooks, m) for m in late])
        since = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=since_ms)
        settings = s.sink_settings(db_dsn, kafka)
        stamp = since.isoformat().replace("+00:00", "Z")

        code, plan, err = await replay(settings, "--dry-run", "--since", stamp)
        assert code == 0, err
        by_topic = {p["topic"]: p for p in plan["partitions"]}
        assert (by_topic[hooks]["start"], by_topic[hooks]["count"]) == (10, 5)
        assert plan["events"] == 5

        future = (since + timedelta(hours=1)).isoformat()
        code, plan, err = await replay(settings, "--dry-run", "--since", future)
        assert code == 0, err
        assert plan["events"] == 0

        code, summary, err = await replay(settings, "--since", stamp)
        assert code == 0, err[-3000:]
        assert summary["events_read"] == 5
        ids = await s.table_ids(db_dsn)
        assert ids["hook_events"] == {m["id"] for m in late}

    async def test_since_reads_records_of_a_producer_whose_clock_runs_ahead(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """Records dated after `since` by a producer whose clock runs 100 s ahead of the
        broker's are replayed, whenever the broker appended them. Tansu looks times up by
        its own append time: it answered the offset of the batch it appended after `since`
        (skipping the records dated 100 s ahead before it) or, with no batch appended that
        late, "nothing", and the plan left those records out."""
        await s.create_topics(kafka, partitions=1)
        hooks, errors = s.topic(kafka, EventKind.HOOK), s.topic(kafka, EventKind.ERROR)
        now = time.time_ns() // 1_000_000
        await s.produce(kafka, [(t, s.hook(s.uid())) for t in (hooks, errors) for _ in range(3)])
        ahead = [(t, s.hook(s.uid())) for t in (hooks, errors) for _ in range(4)]
        await s.produce(kafka, ahead, first_timestamp_ms=now + 100_000)
        since_ms = time.time_ns() // 1_000_000 + 5

        async def clock_passed_since() -> bool:
            return time.time_ns() // 1_000_000 > since_ms + 5

        await s.eventually(clock_passed_since, timeout=5, interval=0.001, what="the clock")
        # Appended after `since`, dated by the broker's clock: on the errors topic only.
        await s.produce(kafka, [(errors, s.hook(s.uid())) for _ in range(2)])
        since = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=since_ms)
        stamp = since.isoformat().replace("+00:00", "Z")

        code, plan, err = await replay(
            s.sink_settings(db_dsn, kafka), "--dry-run", "--since", stamp
        )
        assert code == 0, err
        by_topic = {p["topic"]: (p["start"], p["count"]) for p in plan["partitions"]}
        assert by_topic[hooks] == (3, 4)
        assert by_topic[errors] == (3, 6)


async def test_events_left_waiting_for_their_parents_are_reported(db_dsn: str, kafka: Any) -> None:
    # (From a red team's tests: a replay whose every event was parked, waiting for a parent
    # the selection did not include, said "every event was already stored: nothing changed".)
    await s.create_topics(kafka, partitions=1)
    await s.produce(kafka, s.mixed_workload(kafka, 5, seed=3).messages)
    transformations = s.topic(kafka, EventKind.TRANSFORMATION)
    only = ["--from-beginning", "--topics", "^" + transformations.replace(".", r"\.") + "$"]
    settings = s.sink_settings(db_dsn, kafka)

    code, summary, err = await replay(settings, *only)
    assert code == 0, err[-3000:]
    assert summary["events_read"] == 5
    assert summary["rows_added"]["agent_transformation_events"] == 0
    assert summary["rows_added"]["sink_parked_events"] == 5

    proc = await asyncio.create_subprocess_exec(
        *REPLAY,
        *only,
        env=s.sink_env(settings.model_copy(update={"kafka_session_timeout_ms": 3000})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err_bytes = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, err_bytes.decode()[-3000:]
    assert "nothing changed" not in text
    assert "5 events are parked" in text, text
