"""The retention purge against a real PostgreSQL (and a running sink): batched deletes, no
orphans, the known-fixes aggregate kept equal to the retained rows, single runner."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from debug_sink.dev import fill, synthetic
from debug_sink.dev.workloads import pipelines
from debug_sink.jobs.correlator import Correlator
from debug_sink.jobs.locks import LOCK_CLASS
from debug_sink.jobs.retention import PURGE_ORDER, Retention, retention_job
from debug_sink.settings import Settings
from debug_sink.sink.runner import Sink
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.integration.jobs.test_correlator import assert_aggregate_matches_rows

NINETY_DAYS = timedelta(days=90)

ORPHANS_SQL = """
SELECT
  (SELECT count(*) FROM debug_error_success_correlation c
    WHERE NOT EXISTS (SELECT 1 FROM debug_error_events e WHERE e.id = c.error_event_id)
       OR NOT EXISTS (SELECT 1 FROM debug_success_events x WHERE x.id = c.success_event_id))
  + (SELECT count(*) FROM debug_workflow_steps w
      WHERE (w.error_event_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM debug_error_events e WHERE e.id = w.error_event_id))
         OR (w.success_event_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM debug_success_events x WHERE x.id = w.success_event_id))
         OR (w.parent_step_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM debug_workflow_steps p WHERE p.id = w.parent_step_id))
         OR (w.pre_state_snapshot_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM debug_state_snapshots n WHERE n.id = w.pre_state_snapshot_id)))
  + (SELECT count(*) FROM debug_error_events e WHERE e.state_snapshot_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM debug_state_snapshots n WHERE n.id = e.state_snapshot_id))
  + (SELECT count(*) FROM debug_success_events x WHERE x.state_snapshot_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM debug_state_snapshots n WHERE n.id = x.state_snapshot_id))
  + (SELECT count(*) FROM sink_snapshot_aliases a
      WHERE NOT EXISTS (SELECT 1 FROM debug_state_snapshots n WHERE n.id = a.snapshot_id))
  + (SELECT count(*) FROM debug_state_snapshots n WHERE n.transformation_event_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM agent_transformation_events t
                       WHERE t.id = n.transformation_event_id))
"""

#: $1 hook events and $1 hand-overs, one per workflow of the snapshots, 1 ms apart; the
#: first $2 of each $3 days old. Every snapshot references its workflow's hand-over.
HOOKS_AND_HANDOVERS_SQL = """
WITH rows AS (
  SELECT n, clock_timestamp() - CASE WHEN n <= $2 THEN make_interval(days => $3) ELSE '0'
         END - n * interval '1 ms' AS at
    FROM generate_series(1, $1::int) AS n
), hooks AS (
  INSERT INTO hook_events (source, resource_id, payload, metadata, created_at)
  SELECT 'PostToolUse', 'gpt-4o', '{"quality_metrics": {"quality_score": 0.9}}',
         jsonb_build_object('correlation_id', gen_random_uuid()), at
    FROM rows
), handovers AS (
  INSERT INTO agent_transformation_events (correlation_id, source_agent, target_agent,
                                           created_at)
  SELECT gen_random_uuid(), 'router', 'coder', at FROM rows
  RETURNING id, created_at
), ranked AS (
  SELECT id, row_number() OVER (ORDER BY created_at DESC) AS r FROM handovers
), snaps AS (
  SELECT id, row_number() OVER (ORDER BY captured_at DESC) AS r FROM debug_state_snapshots
)
UPDATE debug_state_snapshots AS s SET transformation_event_id = ranked.id
  FROM snaps JOIN ranked USING (r) WHERE s.id = snaps.id
"""

OLDEST_SQL = """
SELECT least((SELECT min(created_at) FROM hook_events),
             (SELECT min(created_at) FROM agent_transformation_events),
             (SELECT min(started_at) FROM debug_workflow_steps),
             (SELECT min(occurred_at) FROM debug_error_events),
             (SELECT min(occurred_at) FROM debug_success_events),
             (SELECT min(captured_at) FROM debug_state_snapshots))
"""


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in PURGE_ORDER}


class TestPurge:
    """What goes, what stays, and in which order."""

    async def test_half_of_a_large_database_while_the_sink_writes(
        self, db_dsn: str, conn: asyncpg.Connection, kafka: Any
    ) -> None:
        """10,000 workflows (121,000 rows: LLM calls and hand-overs too), the older half past
        retention: the purge deletes exactly that half in 5,000-row batches, leaves no
        orphans, and a sink writing new events (LLM calls among them) meanwhile loses
        nothing. (The 1M-row case is run by hand; see the report.)"""
        filled = await fill.bulk_fill(conn, 10_000, old=5_000, old_days=91)
        assert sum(filled.values()) == 101_000
        await conn.execute(HOOKS_AND_HANDOVERS_SQL, 10_000, 5_000, 91)
        before = await table_counts(conn)
        expected = {
            "hook_events": 5_000,
            "agent_transformation_events": 5_000,
            "debug_workflow_steps": 20_000,
            "debug_error_success_correlation": 5_000,
            "debug_error_events": 10_000,
            "debug_success_events": 10_000,
            "debug_state_snapshots": 5_000,
            "sink_dead_letters": 0,
            "sink_parked_events": 0,
        }
        dry = await Retention(db_dsn).purge(NINETY_DAYS, dry_run=True)
        assert dry.deleted == expected
        assert await table_counts(conn) == before

        await s.create_topics(kafka)
        sink = Sink(s.sink_settings(db_dsn, kafka), exit_when_idle=False)
        sink_task = asyncio.create_task(sink.run())
        produced = 0
        stop = asyncio.Event()

        async def produce(rounds: int) -> None:
            nonlocal produced
            for _ in range(rounds):
                if stop.is_set():
                    return
                batch = []
                for _ in range(20):
                    corr = s.uid()
                    batch += [
                        (s.topic(kafka, EventKind.ERROR), s.error(corr)),
                        (s.topic(kafka, EventKind.SUCCESS), s.success(corr)),
                        (s.topic(kafka, EventKind.HOOK), s.hook(corr)),
                    ]
                produced += await s.produce(kafka, batch)
                await asyncio.sleep(0.05)

        async def sink_rows() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM debug_error_events WHERE error_message = "
                    "'upstream timed out'"
                )
            )

        async def sink_hooks() -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM hook_events WHERE resource_id = 'web_search'"
                )
            )

        async def all_landed() -> bool:
            return await sink_rows() * 3 == produced and await sink_hooks() * 3 == produced

        try:
            await produce(3)
            # the sink is consuming before the purge starts
            await s.eventually(sink_rows, timeout=30, interval=0.1, what="the sink's first rows")
            producer = asyncio.create_task(produce(10_000))
            written_at_start = await sink_rows()
            started = time.perf_counter()
            result = await Retention(db_dsn, batch_size=5000).purge(NINETY_DAYS)
            elapsed = time.perf_counter() - started
            written_during = await sink_rows() - written_at_start
            stop.set()
            await producer
            await s.eventually(all_landed, timeout=30, interval=0.1, what="every produced row")
        finally:
            sink.stop()
            await asyncio.wait_for(sink_task, 60)

        print(
            f"\npurged {result.total} rows in {elapsed:.2f}s ({result.batches} batches); "
            f"the sink wrote {written_during} error rows meanwhile"
        )
        assert result.ran
        assert result.deleted == expected
        assert result.skipped_tables == []
        # hooks, hand-overs, steps, errors, successes, snapshots, the sink's tables
        assert result.batches >= 2 + 2 + 2 + 2 + 2 + 1 + 2
        assert written_during > 0
        assert await sink_rows() * 3 == produced
        assert await sink_hooks() * 3 == produced
        assert await conn.fetchval(ORPHANS_SQL) == 0
        cutoff = result.cutoff
        assert cutoff is not None
        assert await conn.fetchval(OLDEST_SQL) >= cutoff
        after = await table_counts(conn)
        assert after["debug_state_snapshots"] == before["debug_state_snapshots"] - 5_000
        assert await conn.fetchval("SELECT count(*) FROM sink_snapshot_aliases") == 500
        # the young snapshots kept their (young) hand-overs; no reference was left dangling
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM debug_state_snapshots WHERE transformation_event_id "
                "IS NOT NULL"
            )
            == after["agent_transformation_events"]
        )

    async def test_known_fixes_follow_the_retained_rows(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """Errors, links and their share of the aggregate go together; what stays is what a
        recomputation gives."""
        now = await conn.fetchval("SELECT clock_timestamp()")
        old = synthetic.generate(
            synthetic.SyntheticConfig(
                workflows=80, seed=5, waves=1, start=now - timedelta(days=120)
            )
        )
        young = synthetic.generate(
            synthetic.SyntheticConfig(workflows=80, seed=6, waves=1, start=now - timedelta(days=10))
        )
        await fill.load(conn, old.waves[0])
        await fill.load(conn, young.waves[0])
        await Correlator(db_dsn).run_once()
        assert (
            await conn.fetchval("SELECT sum(occurred) FROM known_fix_occurrences")
            == old.errors + young.errors
        )

        result = await Retention(db_dsn, batch_size=100).purge(NINETY_DAYS)

        assert result.deleted["debug_error_events"] == old.errors
        assert result.deleted["debug_success_events"] == old.successes
        assert result.deleted["debug_error_success_correlation"] > 0
        assert (
            await conn.fetchval("SELECT sum(occurred) FROM known_fix_occurrences") == young.errors
        )
        await assert_aggregate_matches_rows(conn)
        # and the correlator carries on from there
        assert (await Correlator(db_dsn).run_once()).new_errors == 0
        await assert_aggregate_matches_rows(conn)

    async def test_purged_examples_are_replaced_by_retained_ones(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """Old events that arrive late are linked last and become the newest examples; when
        the purge takes them, the examples are the recoveries that remain, not none."""
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        correlator = Correlator(db_dsn)

        async def recovered(when: datetime) -> uuid.UUID:
            corr = uuid.uuid4()
            await conn.execute(
                "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
                "error_severity, error_message, agent_name, operation_name, "
                "recovery_attempted, recovery_strategy, occurred_at) VALUES "
                "($1, 'TimeoutError', 'external', 'high', 'm', 'planner', 'fetch', true, "
                "'retry', $2)",
                corr,
                when,
            )
            await conn.execute(
                "INSERT INTO debug_success_events (correlation_id, success_type, "
                "operation_name, agent_name, retry_count, occurred_at) "
                "VALUES ($1, 'recovery_success', 'fetch', 'planner', 1, $2)",
                corr,
                when + timedelta(seconds=2),
            )
            return corr

        recent = {await recovered(now - timedelta(days=1)) for _ in range(3)}
        assert (await correlator.run_once()).links_made == 3
        for _ in range(5):  # an agent offline for months flushes its old events now
            await recovered(now - timedelta(days=100))
        assert (await correlator.run_once()).links_made == 5

        purged = await Retention(db_dsn, batch_size=2).purge(NINETY_DAYS)

        assert purged.deleted["debug_error_events"] == 5
        fixes = await conn.fetch("SELECT * FROM known_fixes('TimeoutError')")
        assert [(f["recovery_strategy"], f["success_count"]) for f in fixes] == [("retry", 3)]
        assert set(fixes[0]["example_correlation_ids"]) == recent
        await assert_aggregate_matches_rows(conn)

    async def test_a_huge_retention_setting_keeps_the_service_running(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """A million days reaches before year 1: the service's purge deletes nothing and
        returns, instead of raising OverflowError (which would stop the sink)."""
        await conn.execute(
            "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, occurred_at) "
            "VALUES ($1, 'E', 'agent', 'low', 'm', 'a', now() - interval '1000 years')",
            uuid.uuid4(),
        )
        job = retention_job(Settings(postgres_dsn=db_dsn, retention_days=1_000_000))
        assert job is not None
        await job.run()
        assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 1

    async def test_stated_links_and_agreement_follow_the_retained_rows(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """Purged errors take their agreement rows with them and leave the totals, the
        stated counts of known_fix_stats and the view equal to a recomputation."""
        now = await conn.fetchval("SELECT clock_timestamp()")
        for days, seed in ((120, 3), (10, 4)):
            workload = pipelines.generate(
                pipelines.PipelineConfig(
                    workflows=15,
                    seed=seed,
                    waves=1,
                    stated_fraction=0.5,
                    start=now - timedelta(days=days),
                    workflow_spread_s=600,
                )
            )
            await fill.load(conn, workload.waves[0])
        await Correlator(db_dsn).run_once()
        old = now - timedelta(days=90)
        assert await conn.fetchval(
            "SELECT count(*) FROM correlator_agreement WHERE occurred_at < $1", old
        )
        assert await conn.fetchval("SELECT sum(stated) FROM known_fix_stats")

        await Retention(db_dsn, batch_size=100).purge(NINETY_DAYS)

        assert (
            await conn.fetchval(
                "SELECT count(*) FROM correlator_agreement WHERE occurred_at < $1", old
            )
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM correlator_agreement") > 0
        await assert_aggregate_matches_rows(conn)

    async def test_dead_letters_and_parked_events_by_their_own_time(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        now = await conn.fetchval("SELECT clock_timestamp()")
        for age_days in (100, 5):
            received = now - timedelta(days=age_days)
            await conn.execute(
                'INSERT INTO sink_dead_letters (received_at, topic, partition, "offset", '
                "error_class, reason, group_id) VALUES ($1, 't', 0, $2, 'schema', 'bad', 'g')",
                received,
                age_days,
            )
            await conn.execute(
                "INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, "
                'waiting_for, parked_at, expires_at, topic, partition, "offset") '
                "VALUES ('error', $1, $1, '{}', '{}', $2, $3, 't', 0, $4)",
                uuid.uuid4(),
                received,
                received + timedelta(minutes=10),
                age_days,
            )
        # parked long ago but still waiting (an operator raised the grace period): kept
        await conn.execute(
            "INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for, "
            'parked_at, expires_at, topic, partition, "offset") '
            "VALUES ('error', $1, $1, '{}', '{}', $2, $3, 't', 0, 7)",
            uuid.uuid4(),
            now - timedelta(days=100),
            now + timedelta(days=1),
        )

        result = await Retention(db_dsn).purge(NINETY_DAYS)
        assert (result.deleted["sink_dead_letters"], result.deleted["sink_parked_events"]) == (1, 1)
        assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 1
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 2

        shorter = await Retention(db_dsn, dead_letter_days=1).purge(NINETY_DAYS)
        assert shorter.deleted["sink_dead_letters"] == 1

    async def test_locked_rows_are_skipped_not_waited_for(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """A row a sink batch holds (the KEY SHARE lock of a foreign-key check on a parent)
        is left for the next run; the purge does not wait for it."""
        await fill.bulk_fill(conn, 20, old=20, old_days=91, links=False)
        holder = await asyncpg.connect(db_dsn)
        waited: set[int] = set()
        try:
            tx = holder.transaction()
            await tx.start()
            held = await holder.fetchval(
                "SELECT id FROM debug_error_events ORDER BY occurred_at LIMIT 1 FOR KEY SHARE"
            )
            purge = asyncio.create_task(Retention(db_dsn, batch_size=7).purge(NINETY_DAYS))

            # Any wait for the held row lasts as long as the holder's transaction (or the
            # purge's lock_timeout): sampled every 10 ms, it cannot go unseen.
            async def done_or_waiting() -> bool:
                waited.update(
                    r["pid"]
                    for r in await conn.fetch(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE $1::int = ANY(pg_blocking_pids(pid))",
                        holder.get_server_pid(),
                    )
                )
                return purge.done() or bool(waited)

            try:
                await s.eventually(done_or_waiting, timeout=60, interval=0.01, what="the purge")
            finally:
                if not purge.done():
                    purge.cancel()
            assert waited == set(), "the purge waited for the held row"
            result = await purge
            await tx.rollback()
        finally:
            await holder.close()

        assert result.deleted["debug_error_events"] == 39
        assert result.skipped_tables == []
        assert await conn.fetchval("SELECT id FROM debug_error_events") == held

    async def test_dry_run_and_single_runner(self, db_dsn: str, conn: asyncpg.Connection) -> None:
        await fill.bulk_fill(conn, 10, old=4, old_days=91)
        other = await asyncpg.connect(db_dsn)
        try:
            await other.execute(
                "SELECT pg_advisory_lock($1, hashtext('public:retention'))", LOCK_CLASS
            )
            busy = await Retention(db_dsn).purge(NINETY_DAYS)
        finally:
            await other.close()
        dry = await Retention(db_dsn).purge(NINETY_DAYS, dry_run=True)
        done = await Retention(db_dsn).purge(NINETY_DAYS)

        assert not busy.ran
        assert busy.total == 0
        assert dry.dry_run
        assert dry.deleted == done.deleted
        assert done.deleted["debug_error_events"] == 8
        assert (await Retention(db_dsn).purge(NINETY_DAYS)).total == 0

    async def test_timestamps_are_compared_with_the_cutoff(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """An event just inside retention stays; one just outside goes."""
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        corr = uuid.uuid4()
        for days in (89.9, 90.1):
            await conn.execute(
                "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
                "error_severity, error_message, agent_name, occurred_at) "
                "VALUES ($1, 'E', 'agent', 'low', 'm', 'a', $2)",
                corr,
                now - timedelta(days=days),
            )
        result = await Retention(db_dsn).purge(NINETY_DAYS)
        assert result.deleted["debug_error_events"] == 1
        kept = await conn.fetchval("SELECT occurred_at FROM debug_error_events")
        assert kept.astimezone(UTC) > now - NINETY_DAYS
