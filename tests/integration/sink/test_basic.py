"""The sink end to end, in process: Kafka -> validation -> COPY/merge -> PostgreSQL."""

from __future__ import annotations

import hashlib

import asyncpg
import orjson

from debug_sink.wire.events import EventKind
from tests import support as s


class TestHappyPath:
    """Every topic's events land as rows, with offsets stored in the same database."""

    async def test_one_workflow_across_all_topics(self, db_dsn: str, kafka: s.Any) -> None:
        corr = s.uid()
        snap = s.snapshot(corr, {"goal": "answer", "password": "hunter2", "n": 1})
        err = s.error(corr, state_snapshot_id=snap["id"])
        ok = s.success(corr, state_snapshot_id=snap["id"])
        tr = s.transformation(corr, state_snapshot_id=snap["id"])
        start = s.step(corr, 1, "started", started_at=s.ts(0))
        end = s.step(
            corr, 1, "completed", id=start["id"], completed_at=s.ts(3), success_event_id=ok["id"]
        )
        hk = s.hook(corr)
        await s.produce(
            kafka,
            [
                (s.topic(kafka, EventKind.SNAPSHOT), snap),
                (s.topic(kafka, EventKind.ERROR), err),
                (s.topic(kafka, EventKind.SUCCESS), ok),
                (s.topic(kafka, EventKind.TRANSFORMATION), tr),
                (s.topic(kafka, EventKind.STEP), start),
                (s.topic(kafka, EventKind.STEP), end),
                (s.topic(kafka, EventKind.HOOK), hk),
            ],
        )
        sink = await s.run_sink(s.sink_settings(db_dsn, kafka))
        assert sink.committed_batches >= 1
        counts = await s.fetch_counts(db_dsn)
        assert counts == {
            "debug_state_snapshots": 1,
            "debug_error_events": 1,
            "debug_success_events": 1,
            "debug_workflow_steps": 1,
            "agent_transformation_events": 1,
            "hook_events": 1,
            "sink_dead_letters": 0,
            "sink_parked_events": 0,
        }
        conn = await asyncpg.connect(db_dsn)
        try:
            state = await conn.fetchval(
                "SELECT agent_state->>'password' FROM debug_state_snapshots"
            )
            assert state == "[REDACTED]"
            row = await conn.fetchrow(
                "SELECT status, started_at, completed_at, duration_ms, "
                "success_event_id FROM debug_workflow_steps"
            )
            assert row["status"] == "completed"
            assert row["duration_ms"] == 3000
            assert str(row["success_event_id"]) == ok["id"]
            llm = await conn.fetch(
                "SELECT * FROM debug_llm_call_summary WHERE correlation_id = $1::uuid", corr
            )
            assert len(llm) == 1
            offsets = await conn.fetch(
                "SELECT topic, next_offset FROM sink_offsets WHERE group_id = $1", kafka.group_id
            )
            assert sum(r["next_offset"] for r in offsets) == 7
        finally:
            await conn.close()


class TestStepFoldAcrossBatches:
    """A step's completion that lands in a later batch folds into its row and marks the row as
    new for the correlator (its ingest position moves to the folding transaction)."""

    async def test_fold_moves_the_ingest_position(self, db_dsn: str, kafka: s.Any) -> None:
        corr = s.uid()
        ok = s.success(corr)
        start = s.step(corr, 1, "started", started_at=s.ts(0))
        await s.create_topics(kafka, partitions=1)
        settings = s.sink_settings(db_dsn, kafka, kafka_session_timeout_ms=3000)
        await s.produce(kafka, [(s.topic(kafka, EventKind.STEP), start)])
        await s.run_sink(settings)
        conn = await asyncpg.connect(db_dsn)
        try:
            query = "SELECT status, ingest_xid::text::bigint AS xid FROM debug_workflow_steps"
            before = await conn.fetchrow(query)
            assert before["status"] == "started"
            assert before["xid"] is not None
            end = s.step(
                corr,
                1,
                "completed",
                id=start["id"],
                completed_at=s.ts(3),
                success_event_id=ok["id"],
            )
            await s.produce(
                kafka,
                [(s.topic(kafka, EventKind.SUCCESS), ok), (s.topic(kafka, EventKind.STEP), end)],
            )
            await s.run_sink(settings)
            after = await conn.fetchrow(query)
            assert after["status"] == "completed"
            assert after["xid"] > before["xid"]
        finally:
            await conn.close()


class TestValuesAtTheEdges:
    """Schema-valid values at the edges of the columns land as sent (or as the README says),
    never as a dead letter the producer cannot understand."""

    async def test_derived_durations_fit_the_integer_column(
        self, db_dsn: str, kafka: s.Any
    ) -> None:
        """A duration derived from started_at/completed_at (none sent) is clamped into
        [0, 2**31 - 1], when one event carries both times (COPY) and when the terminal event
        folds into a stored start (the SQL merge): a 30- or 60-day step is completed, a step
        that ended before it started took 0 ms."""
        corr = s.uid()
        long_start = s.step(corr, 1, "started", started_at="2025-01-01T00:00:00Z")
        skew_start = s.step(corr, 2, "started", started_at="2025-01-01T00:00:05Z")
        one_event = s.step(
            corr,
            3,
            "completed",
            started_at="2025-01-01T00:00:00Z",
            completed_at="2025-01-31T00:00:00Z",
        )
        long_end = s.step(
            corr, 1, "completed", id=long_start["id"], completed_at="2025-03-02T00:00:00Z"
        )
        skew_end = s.step(
            corr, 2, "completed", id=skew_start["id"], completed_at="2025-01-01T00:00:00Z"
        )
        topic = s.topic(kafka, EventKind.STEP)
        settings = s.sink_settings(db_dsn, kafka)
        await s.produce(kafka, [(topic, long_start), (topic, skew_start), (topic, one_event)])
        await s.run_sink(settings)
        await s.produce(kafka, [(topic, long_end), (topic, skew_end)])
        await s.run_sink(settings)
        conn = await asyncpg.connect(db_dsn)
        try:
            assert await conn.fetch("SELECT reason FROM sink_dead_letters") == []
            rows = await conn.fetch(
                "SELECT step_number, status, duration_ms FROM debug_workflow_steps "
                "ORDER BY step_number"
            )
            assert [tuple(r) for r in rows] == [
                (1, "completed", 2**31 - 1),
                (2, "completed", 0),
                (3, "completed", 2**31 - 1),
            ]
        finally:
            await conn.close()

    async def test_big_numbers_are_stored_exactly(self, db_dsn: str, kafka: s.Any) -> None:
        """Integers beyond 64 bits and a number beyond a double's range, in metadata and in
        a state: jsonb holds their digits, and the stored state's canonical JSON in SQL is
        the bytes the sink hashed."""
        corr = s.uid()
        snap = s.snapshot(corr, {"ticket": 0, "x": 1})
        err = s.error(corr, metadata={"order_id": 0, "big": 1})
        snap_raw = orjson.dumps(snap).replace(b'"ticket":0', b'"ticket":100000000000000000000')
        snap_raw = snap_raw.replace(b'"x":1', b'"x":1e400')
        err_raw = orjson.dumps(err).replace(b'"order_id":0', b'"order_id":18446744073709551616')
        err_raw = err_raw.replace(b'"big":1', b'"big":-123456789012345678901234567890')
        await s.produce(
            kafka,
            [
                (s.topic(kafka, EventKind.SNAPSHOT), snap_raw),
                (s.topic(kafka, EventKind.ERROR), err_raw),
            ],
        )
        await s.run_sink(s.sink_settings(db_dsn, kafka))
        conn = await asyncpg.connect(db_dsn)
        try:
            assert await conn.fetch("SELECT reason FROM sink_dead_letters") == []
            row = await conn.fetchrow(
                "SELECT metadata->>'order_id' AS o, metadata->>'big' AS b FROM debug_error_events"
            )
            assert (row["o"], row["b"]) == (str(2**64), "-123456789012345678901234567890")
            state = await conn.fetchrow(
                "SELECT convert_to(debug_canonical_json(agent_state), 'UTF8') AS canonical, "
                "state_hash, state_size_bytes FROM debug_state_snapshots"
            )
            expected = b'{"ticket":100000000000000000000,"x":1' + b"0" * 400 + b"}"
            assert state["canonical"] == expected
            assert state["state_hash"] == hashlib.sha256(expected).hexdigest()
            assert state["state_size_bytes"] == len(expected)
        finally:
            await conn.close()


class TestSchemaCheck:
    """The sink refuses to start on a schema that lacks its migrations."""

    async def test_schema_behind_this_version_is_refused(
        self, empty_db_dsn: str, kafka: s.Any
    ) -> None:
        import pytest

        from debug_sink.db.grants import grant
        from debug_sink.db.migrate import head_version, migrate_up
        from debug_sink.errors import MigrationError

        head = head_version()
        await migrate_up(empty_db_dsn, to=head - 1)
        # The later migration's tables are covered by the owner's default privileges.
        await grant(empty_db_dsn, writer=s.WRITER_ROLE, reader=s.READER_ROLE)
        with pytest.raises(
            MigrationError,
            match=rf"at migration {head - 1}; .* needs migration {head}: run `debug-sink migrate",
        ):
            await s.run_sink(s.sink_settings(empty_db_dsn, kafka), timeout=30)
        await migrate_up(empty_db_dsn)
        await s.run_sink(s.sink_settings(empty_db_dsn, kafka), timeout=60, idle_grace=1.0)
