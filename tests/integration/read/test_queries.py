"""DebugQueries on real PostgreSQL, over rows written by the sink's own write path."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import timedelta

import asyncpg
import orjson
import pytest

from debug_sink.errors import ConfigurationError
from debug_sink.read.queries import DebugQueries, load_queries
from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from tests import support as s
from tests.sdk_support import (
    T0,
    correlate,
    memory_manager,
    record_review,
    settings_for,
    write_direct,
)


@pytest.fixture
async def review(db_dsn: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """The recorded review workflow, stored, with its recovery correlated."""
    settings = settings_for(db_dsn)
    corr = uuid.UUID("5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21")
    messages, ids = await record_review(settings, corr)
    await write_direct(settings, messages)
    await correlate(db_dsn)
    return corr, ids


@pytest.fixture
async def queries(db_dsn: str) -> DebugQueries:
    q = await DebugQueries.connect(s.as_reader(db_dsn))
    yield q  # type: ignore[misc]
    await q.close()


class TestWorkflow:
    """Summary and context of one workflow."""

    async def test_summary(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, _ = review
        summary = await queries.get_workflow_debug_summary(corr)
        assert {
            k: summary[k]
            for k in (
                "step_count",
                "failed_step_count",
                "error_count",
                "unrecovered_error_count",
                "success_count",
                "recovery_count",
                "llm_call_count",
                "transformation_count",
            )
        } == {
            "step_count": 4,
            "failed_step_count": 1,
            "error_count": 1,
            "unrecovered_error_count": 0,
            "success_count": 3,
            "recovery_count": 1,
            "llm_call_count": 2,
            "transformation_count": 1,
        }
        assert summary["agents_involved"] == ["linter", "reviewer", "router"]
        assert isinstance(summary["duration_ms"], float)

    async def test_unknown_workflow(self, queries: DebugQueries) -> None:
        corr = uuid.uuid4()
        summary = await queries.get_workflow_debug_summary(corr)
        assert summary["error_count"] == 0
        assert await queries.get_workflow_context(corr) is None
        assert await queries.timeline(corr) == []
        assert not await queries.workflow_exists(corr)
        with pytest.raises(ValueError, match="not a valid correlation id"):
            await queries.get_workflow_debug_summary("nope")

    async def test_context(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, _ = review
        context = await queries.get_workflow_context(corr)
        assert context is not None
        assert context["total_steps"] == 4
        assert context["error_count"] == 1


class TestErrorsAndCalls:
    async def test_errors(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, ids = review
        (error,) = await queries.get_errors(corr)
        assert error["id"] == ids["error"]
        assert error["error_type"] == "TimeoutError"
        assert error["recovered"] is True
        assert error["metadata"] is None
        assert await queries.get_errors(corr, error_type="KeyError") == []
        assert len(await queries.get_errors(since=T0)) == 1
        assert await queries.get_errors(since=T0 + timedelta(hours=1)) == []

    async def test_error_groups(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, _ = review
        (group,) = await queries.get_error_groups(T0)
        assert group["error_type"] == "TimeoutError"
        assert group["error_count"] == 1
        assert group["recovered_count"] == 1
        assert group["worst_severity"] == "high"
        assert group["agents"] == ["reviewer"]
        assert group["last_correlation_id"] == corr

    async def test_llm_calls(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, ids = review
        calls = await queries.get_llm_calls(corr)
        assert [c["hook_event_id"] for c in calls] == [ids["llm_1"], ids["llm_2"]]
        assert [c["quality_score"] for c in calls] == [0.4, 0.92]
        assert [c["execution_step"] for c in calls] == [1, 2]
        assert calls[1]["latency_ms"] == 1840.0
        assert calls[1]["agent_name"] == "reviewer"
        assert calls[1]["payload"]["usage"]["total_tokens"] == 3532


class TestRecovery:
    async def test_recovery_patterns(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        assert await queries.get_recovery_patterns() == []
        (pattern,) = await queries.get_recovery_patterns(min_success_count=1)
        assert pattern["error_type"] == "TimeoutError"
        assert pattern["recovery_strategy"] == "retry"
        assert pattern["success_count"] == 1
        assert pattern["avg_confidence"] >= 0.7

    async def test_known_fixes(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        """known_fixes() (migration 008) returns what recovered the error type before."""
        corr, _ = review
        assert await queries.function_exists("known_fixes"), "migration 008 ships known_fixes()"
        (fix,) = await queries.known_fixes("TimeoutError")
        assert fix["recovery_strategy"] == "retry"
        assert fix["success_count"] == 1
        assert fix["success_rate"] == 1.0
        assert fix["example_correlation_ids"] == [corr]
        assert await queries.known_fixes(
            "TimeoutError", agent_name="reviewer", operation_name="fetch_diff"
        ) == [fix]
        assert await queries.known_fixes("TimeoutError", agent_name="linter") == []
        assert await queries.known_fixes("NoSuchError") == []

    async def test_missing_function_is_a_configuration_error(self, db_dsn: str) -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute("DROP FUNCTION IF EXISTS known_fixes(text, text, text, int)")
        finally:
            await conn.close()
        async with await DebugQueries.connect(s.as_reader(db_dsn)) as q:
            with pytest.raises(ConfigurationError, match="migrate"):
                await q.known_fixes("TimeoutError")


class TestTimeline:
    """The stored workflow comes back in causal order, despite the linter's skewed clock."""

    async def test_order(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, ids = review
        timeline = await queries.timeline(corr)
        shape = [
            (e.kind, e.step_number, e.data.get("snapshot_type") or e.data.get("status"))
            for e in timeline
        ]
        assert shape == [
            ("snapshot", None, "pre_transform"),
            ("transformation", None, None),
            ("step", 1, "failed"),
            ("snapshot", 1, "checkpoint"),
            ("llm_call", 1, None),
            ("snapshot", 1, "error"),
            ("error", 1, None),
            ("step", 1, "completed"),
            ("snapshot", 1, "checkpoint"),
            ("snapshot", 1, "success"),
            ("success", 1, None),
            ("step", 2, "completed"),
            ("llm_call", 2, None),
            ("success", 2, None),
            ("step", 3, "completed"),  # the linter: its clock says 30 s earlier
            ("success", 3, None),
        ]
        by_id = {e.id: e for e in timeline}
        assert by_id[ids["step_1"]].attempt == 1
        assert by_id[ids["retry"]].attempt == 2
        error = by_id[ids["error"]]
        assert error.data["recoveries"][0]["recovery_strategy"] == "retry"
        assert error.data["recoveries"][0]["success_event_id"] == str(ids["recovery"])
        assert by_id[ids["lint"]].at < by_id[ids["step_1"]].at + timedelta(seconds=10)

    async def test_order_is_stable(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, _ = review
        first = [e.id for e in await queries.timeline(corr)]
        assert [e.id for e in await queries.timeline(corr)] == first


class TestStates:
    """Snapshot states and their diffs."""

    async def test_error_diff_against_last_good_snapshot(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], queries: DebugQueries
    ) -> None:
        corr, ids = review
        timeline = await queries.timeline(corr)
        diffs = await queries.error_diffs(timeline)
        diff = diffs[ids["error"]].diff
        assert diff is not None
        assert [(c.op, c.where, c.after) for c in diff] == [
            ("added", "api_token", "[REDACTED]"),
            ("added", "last_error", "timeout"),
        ]

    async def test_diff_states_by_id_and_alias(self, db_dsn: str, queries: DebugQueries) -> None:
        """diff_states takes snapshot ids; the id of a duplicate the sink dropped resolves
        to the kept snapshot."""
        settings = settings_for(db_dsn)
        manager = memory_manager(settings)
        corr = uuid.uuid4()
        first = await manager.capture_snapshot(corr, "a", {"n": 1, "deep": {"x": [1, 2]}})
        duplicate = await manager.capture_snapshot(corr, "a", {"n": 1, "deep": {"x": [1, 2]}})
        changed = await manager.capture_snapshot(
            corr, "a", {"n": 1, "deep": {"x": [1, 3]}, "new": True}
        )
        await manager.flush(5)
        await write_direct(settings, manager.emitter.messages)  # type: ignore[attr-defined]
        found = await queries.get_snapshots([first, duplicate, changed])
        assert found[duplicate]["id"] == first
        assert not await queries.diff_states(first, duplicate)
        diff = await queries.diff_states(duplicate, changed)
        assert [(c.op, c.where) for c in diff] == [("changed", "deep.x[1]"), ("added", "new")]
        mixed = await queries.diff_states({"n": 2}, str(first))
        assert [c.where for c in mixed] == ["deep", "n"]
        with pytest.raises(LookupError):
            await queries.diff_states(first, uuid.uuid4())


class TestForeignPool:
    """A pool the caller owns works too, and is left open."""

    async def test_foreign_pool(
        self, review: tuple[uuid.UUID, dict[str, uuid.UUID]], db_dsn: str
    ) -> None:
        corr, _ = review
        pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
        try:
            async with DebugQueries(pool, schema="public") as q:
                calls = await q.get_llm_calls(corr)
                assert calls[0]["payload"]["quality_metrics"]["quality_score"] == 0.4
                timeline = await q.timeline(corr)
                assert timeline[0].data["snapshot_type"] == "pre_transform"
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()


class TestArguments:
    """Arguments no query can use are a ValueError naming them, before PostgreSQL: a None
    limit would read every row, a negative one was an SQL error, a NUL an encoding error."""

    @pytest.mark.parametrize("limit", [None, 0, -1, 2.5, True])
    async def test_limits(self, queries: DebugQueries, limit: object) -> None:
        since = T0 - timedelta(days=3650)
        for call in (
            lambda: queries.workflows(since, limit=limit),  # type: ignore[arg-type]
            lambda: queries.get_errors(limit=limit),  # type: ignore[arg-type]
            lambda: queries.get_error_groups(since, limit=limit),  # type: ignore[arg-type]
            lambda: queries.known_fixes("TimeoutError", limit=limit),  # type: ignore[arg-type]
            lambda: queries.workflow_page(limit=limit),  # type: ignore[arg-type]
            lambda: queries.workflow_page(scan_events=limit),  # type: ignore[arg-type]
            lambda: queries.error_type_names(limit),  # type: ignore[arg-type]
            lambda: queries.agent_names(limit),  # type: ignore[arg-type]
            lambda: queries.known_fixes_overview(limit),  # type: ignore[arg-type]
        ):
            with pytest.raises(ValueError, match="at least 1"):
                await call()
        with pytest.raises(ValueError, match="min_success_count"):
            await queries.get_recovery_patterns(None)  # type: ignore[arg-type]

    async def test_a_nul_in_a_filter(
        self, queries: DebugQueries, review: tuple[uuid.UUID, dict[str, uuid.UUID]]
    ) -> None:
        with pytest.raises(ValueError, match="NUL"):
            await queries.get_errors(error_type="Timeout\x00Error")
        assert await queries.get_errors(limit=1)  # the review's error is there


async def _write_events(dsn: str, events: list) -> None:
    """Wire-format ``events`` through the sink's BatchWriter, as the writer role."""
    pool = await asyncpg.create_pool(s.as_writer(dsn), min_size=1, max_size=2, init=init_connection)
    try:
        await BatchWriter(pool, group_id="large", park_grace=600).write(
            s.batch_of(events, itertools.count())
        )
    finally:
        await pool.close()


class TestLargeWorkflows:
    """A workflow of thousands of events, or of large states: the bounded reads."""

    async def test_timeline_head_reads_the_first_events(
        self, db_dsn: str, queries: DebugQueries
    ) -> None:
        corr = uuid.uuid4()
        await s.store_completed_steps(db_dsn, corr, 3000)
        entries, more = await queries.timeline_head(corr, 100)
        assert more
        assert [e.step_number for e in entries] == list(range(1, 101))
        entries, more = await queries.timeline_head(corr, 3000)
        assert not more
        assert len(entries) == 3000
        assert len(await queries.timeline(corr)) == 3000

    async def test_error_diffs_read_states_within_the_budget(
        self, db_dsn: str, queries: DebugQueries
    ) -> None:
        """Four errors, each with its own 20 KB state after a good snapshot of 20 KB: a
        budget of 70 KB reads the states of the first two errors (and the good one) only;
        the others say their diff was skipped."""
        corr = str(uuid.uuid4())
        good = s.snapshot(corr, {"k": "g" * 20_000}, captured_at=s.ts(0))
        events: list = [(s.SN, good)]
        error_ids = []
        for n in range(4):
            state = s.snapshot(
                corr, {"k": str(n) * 20_000}, snapshot_type="error", captured_at=s.ts(n + 1)
            )
            error = s.error(corr, state_snapshot_id=state["id"], occurred_at=s.ts(n + 1))
            events += [(s.SN, state), (s.ER, error)]
            error_ids.append(uuid.UUID(error["id"]))
        await _write_events(db_dsn, events)
        ordered = await queries.timeline(corr)
        asked: list[int] = []
        get_snapshots = queries.get_snapshots

        async def counting(ids):  # type: ignore[no-untyped-def]
            asked.append(len(ids))
            return await get_snapshots(ids)

        queries.get_snapshots = counting  # type: ignore[method-assign]
        diffs = await queries.error_diffs(ordered, max_state_bytes=70_000)
        assert asked == [3]
        assert [diffs[e].diff is not None for e in error_ids] == [True, True, False, False]
        assert [diffs[e].skipped for e in error_ids] == [False, False, True, True]
        assert diffs[error_ids[2]].as_dict()["skipped"] is True
        everything = await queries.error_diffs(ordered)
        assert all(everything[e].diff for e in error_ids)


async def test_error_groups_of_many_long_messages(db_dsn: str, queries: DebugQueries) -> None:
    """17,000 errors of one type with 64 KiB messages in the window (an hour of a fleet's
    timeouts): ``errors`` failed with PostgreSQL's "array size exceeds the maximum allowed"
    (it built an array of every message of the group to take the latest)."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, occurred_at) "
            "SELECT md5(g::text)::uuid, 'TimeoutError', 'external', 'high', "
            "repeat(md5(g::text), 2048), 'agent', $1::timestamptz - g * interval '10 ms' "
            "FROM generate_series(1, 17000) AS g",
            s.T0,
        )
    finally:
        await conn.close()
    groups = await queries.get_error_groups(s.T0 - timedelta(hours=1))
    assert len(groups) == 1
    group = groups[0]
    assert group["error_count"] == 17_000
    latest = uuid.UUID(hashlib.md5(b"1").hexdigest())
    assert group["last_correlation_id"] == latest
    assert group["last_message"] == hashlib.md5(b"1").hexdigest() * 2048


async def test_timeline_does_not_read_the_states(db_dsn: str) -> None:
    """A workflow of 40 snapshots with ~1 MB states (about 5,000 pages of TOAST): its
    timeline shows no state, and must not read them (it built each row's JSON with the state
    and removed it after: 0.5 s for 300 such snapshots, 3.5 s for a page of 2,000)."""
    corr = uuid.uuid4()
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO debug_state_snapshots (correlation_id, snapshot_type, agent_name, "
            "agent_state, state_hash, captured_at) "
            "SELECT $1::uuid, 'checkpoint', 'a', jsonb_build_object('k', (SELECT "
            "string_agg(md5(i::text || g::text), '') FROM generate_series(1, 30000) AS i)), "
            "md5(g::text), $2::timestamptz + g * interval '1 ms' "
            "FROM generate_series(1, 40) AS g",
            corr,
            s.T0,
        )
        await conn.execute("ANALYZE debug_state_snapshots")
        sql = load_queries()["timeline"].strip().rstrip(";")
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", corr, 2000)
    finally:
        await conn.close()
    top = orjson.loads(plan)[0]["Plan"]
    assert top["Actual Rows"] == 40
    pages = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    assert pages < 500, pages
