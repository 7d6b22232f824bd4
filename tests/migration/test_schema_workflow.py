"""The read side of migration 005: debug_workflow_context, get_workflow_debug_summary(),
debug_llm_call_summary and debug_error_recovery_patterns - their rows, and that a lookup by
correlation_id is served by indexes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

T0 = datetime(2025, 10, 11, 12, 0, tzinfo=UTC)

CONTEXT_TABLES = (
    "debug_workflow_steps",
    "debug_error_events",
    "debug_success_events",
    "debug_state_snapshots",
)
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def scans_by_table(explain_json: str) -> dict[str, set[str]]:
    """{relation name: the scan node types that read it} of an EXPLAIN (FORMAT JSON)."""
    (top,) = json.loads(explain_json)
    scans: dict[str, set[str]] = {}
    for node in _nodes(top["Plan"]):
        if "Relation Name" in node:
            scans.setdefault(node["Relation Name"], set()).add(node["Node Type"])
    return scans


async def add_step(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    number: int,
    *,
    session_id: uuid.UUID | None = None,
    agent: str = "coder",
    status: str = "completed",
    started: datetime = T0,
    completed: datetime | None = None,
    attempt: int = 1,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_workflow_steps (correlation_id, session_id, step_number, attempt,
            step_type, agent_name, operation_name, status, started_at, completed_at)
        VALUES ($1, $2, $3, $4, 'execution', $5, 'op', $6, $7, $8) RETURNING id
        """,
        correlation_id,
        session_id,
        number,
        attempt,
        agent,
        status,
        started,
        completed,
    )


async def add_error(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    *,
    session_id: uuid.UUID | None = None,
    agent: str = "coder",
    at: datetime = T0,
    error_type: str = "timeout",
    recovered: bool | None = None,
    resolved: datetime | None = None,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_error_events (correlation_id, session_id, agent_name, error_type,
            error_category, error_severity, error_message, occurred_at, recovery_successful,
            resolved_at)
        VALUES ($1, $2, $3, $4, 'agent', 'high', 'boom', $5, $6, $7) RETURNING id
        """,
        correlation_id,
        session_id,
        agent,
        error_type,
        at,
        recovered,
        resolved,
    )


async def add_success(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    *,
    session_id: uuid.UUID | None = None,
    agent: str = "coder",
    at: datetime = T0,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_success_events (correlation_id, session_id, success_type,
            operation_name, agent_name, occurred_at)
        VALUES ($1, $2, 'task_completion', 'op', $3, $4) RETURNING id
        """,
        correlation_id,
        session_id,
        agent,
        at,
    )


async def add_snapshot(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    n: int,
    *,
    session_id: uuid.UUID | None = None,
    agent: str = "coder",
    at: datetime = T0,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, session_id,
            agent_name, agent_state, state_hash, captured_at)
        VALUES ('checkpoint', $1, $2, $3, jsonb_build_object('n', $4::int), md5($4::text), $5)
        RETURNING id
        """,
        correlation_id,
        session_id,
        agent,
        n,
        at,
    )


async def add_correlation(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    error_id: uuid.UUID,
    success_id: uuid.UUID,
    *,
    strategy: str = "retry",
    confidence: float = 0.9,
    duration_ms: int = 1000,
) -> None:
    await conn.execute(
        """
        INSERT INTO debug_error_success_correlation (error_event_id, success_event_id,
            correlation_id, recovery_strategy, confidence_score, recovery_duration_ms)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        error_id,
        success_id,
        correlation_id,
        strategy,
        confidence,
        duration_ms,
    )


async def add_llm_call(
    conn: asyncpg.Connection,
    correlation: str | None,
    *,
    source: str = "PostToolUse",
    tool: str = "Edit",
) -> None:
    metadata: dict[str, Any] = {"session_id": "sess"}
    if correlation is not None:
        metadata["correlation_id"] = correlation
    await conn.execute(
        "INSERT INTO hook_events (source, resource_id, payload, metadata) "
        "VALUES ($1, $2, '{}', $3::jsonb)",
        source,
        tool,
        json.dumps(metadata),
    )


async def seed_background(conn: asyncpg.Connection, workflows: int = 300) -> None:
    """Thousands of rows over many workflows, analysed: enough that the planner prefers
    indexes for one workflow without being forced to."""
    await conn.execute(
        f"""
        CREATE TEMP TABLE wf AS SELECT gen_random_uuid() AS c FROM generate_series(1, {workflows});
        INSERT INTO debug_workflow_steps (correlation_id, step_number, step_type, agent_name,
                                          operation_name, status, started_at, completed_at)
        SELECT c, n, 'execution', 'agent-' || n % 3, 'op', 'completed',
               now() - interval '1 day' + n * interval '1 s', now()
        FROM wf, generate_series(1, 10) AS n;
        INSERT INTO debug_error_events (correlation_id, agent_name, error_type, error_category,
                                        error_severity, error_message)
        SELECT c, 'agent-1', 'timeout', 'agent', 'low', 'e' FROM wf, generate_series(1, 4);
        INSERT INTO debug_success_events (correlation_id, success_type, operation_name,
                                          agent_name)
        SELECT c, 'task_completion', 'op', 'agent-2' FROM wf, generate_series(1, 4);
        INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name,
                                           agent_state, state_hash)
        SELECT 'checkpoint', c, 'agent-0', jsonb_build_object('n', n), md5(c::text || n)
        FROM wf, generate_series(1, 10) AS n;
        INSERT INTO hook_events (source, resource_id, metadata)
        SELECT CASE WHEN n % 2 = 0 THEN 'PostToolUse' ELSE 'PreToolUse' END, 'Edit',
               jsonb_build_object('correlation_id', c::text)
        FROM wf, generate_series(1, 10) AS n;
        ANALYZE;
        """
    )


async def seed_big_workflow(conn: asyncpg.Connection, correlation_id: uuid.UUID) -> None:
    """Defect 10's example: 50 steps, 20 errors, 20 successes and 50 snapshots."""
    for n in range(1, 51):
        await add_step(
            conn,
            correlation_id,
            n,
            started=T0 + timedelta(seconds=n),
            completed=T0 + timedelta(seconds=n + 1),
        )
        await add_snapshot(conn, correlation_id, n, at=T0 + timedelta(seconds=n))
    for n in range(20):
        await add_error(conn, correlation_id, at=T0 + timedelta(seconds=n), agent="tester")
        await add_success(conn, correlation_id, at=T0 + timedelta(seconds=n), agent="reviewer")


class TestWorkflowContext:
    """debug_workflow_context: exactly one row per workflow, whatever its tables hold, with
    per-table counts (no join blow-up), and a lookup by correlation_id uses indexes."""

    async def test_one_row_for_several_sessions(self, conn: asyncpg.Connection) -> None:
        """A workflow whose events carry three session ids is one row (defect 10): session_id
        is the session of its earliest event, session_ids all of them, sorted."""
        correlation_id = uuid.uuid4()
        s1, s2, s3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await add_step(conn, correlation_id, 1, session_id=s2, started=T0)
        await add_step(
            conn,
            correlation_id,
            2,
            session_id=s1,
            started=T0 + timedelta(seconds=5),
            completed=T0 + timedelta(seconds=9),
            agent="planner",
        )
        await add_error(conn, correlation_id, session_id=s3, at=T0 + timedelta(seconds=3))
        await add_step(conn, correlation_id, 3, started=T0 + timedelta(seconds=6))

        rows = await conn.fetch(
            "SELECT * FROM debug_workflow_context WHERE correlation_id = $1", correlation_id
        )
        assert len(rows) == 1
        row = rows[0]
        assert row["session_id"] == s2
        assert row["session_ids"] == sorted([s1, s2, s3])
        assert row["agents_involved"] == ["coder", "planner"]
        assert (
            row["total_steps"],
            row["error_count"],
            row["success_count"],
            row["snapshot_count"],
        ) == (3, 1, 0, 0)
        assert row["workflow_started"] == T0
        assert row["workflow_completed"] == T0 + timedelta(seconds=9)
        assert row["duration_ms"] == 9000

    async def test_errors_without_steps(self, conn: asyncpg.Connection) -> None:
        """A workflow that only has errors (and a snapshot) still has its row."""
        correlation_id = uuid.uuid4()
        await add_error(conn, correlation_id, at=T0)
        await add_error(conn, correlation_id, at=T0 + timedelta(seconds=2), agent="tester")
        await add_snapshot(conn, correlation_id, 1, at=T0 + timedelta(seconds=1))
        row = await conn.fetchrow(
            "SELECT * FROM debug_workflow_context WHERE correlation_id = $1", correlation_id
        )
        assert row is not None
        assert (
            row["total_steps"],
            row["error_count"],
            row["success_count"],
            row["snapshot_count"],
        ) == (0, 2, 0, 1)
        assert row["agents_involved"] == ["coder", "tester"]
        assert row["session_id"] is None
        assert row["session_ids"] == []
        assert row["duration_ms"] == 2000

    async def test_every_workflow_once(self, conn: asyncpg.Connection) -> None:
        """Without a predicate the view has one row per correlation_id found in any of its
        four tables."""
        only_steps, only_successes, only_snapshots = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await add_step(conn, only_steps, 1)
        await add_step(conn, only_steps, 1, attempt=2)
        await add_success(conn, only_successes)
        await add_snapshot(conn, only_snapshots, 1)
        rows = await conn.fetch("SELECT correlation_id FROM debug_workflow_context")
        assert sorted(r["correlation_id"] for r in rows) == sorted(
            [only_steps, only_successes, only_snapshots]
        )

    async def test_counts_of_a_big_workflow_and_index_use(self, conn: asyncpg.Connection) -> None:
        """50 steps, 20 errors, 20 successes, 50 snapshots: exact counts in one row, and the
        lookup reads every table through an index, for the literal and the generic plan."""
        await seed_background(conn)
        correlation_id = uuid.uuid4()
        await seed_big_workflow(conn, correlation_id)
        await conn.execute("ANALYZE")

        rows = await conn.fetch(
            "SELECT * FROM debug_workflow_context WHERE correlation_id = $1", correlation_id
        )
        assert len(rows) == 1
        row = rows[0]
        assert (
            row["total_steps"],
            row["error_count"],
            row["success_count"],
            row["snapshot_count"],
        ) == (50, 20, 20, 50)
        assert row["agents_involved"] == ["coder", "reviewer", "tester"]

        literal = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT * FROM debug_workflow_context "
            f"WHERE correlation_id = '{correlation_id}'"
        )
        await conn.execute(
            "PREPARE ctx(uuid) AS SELECT * FROM debug_workflow_context WHERE correlation_id = $1;"
            "SET plan_cache_mode = force_generic_plan"
        )
        generic = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE ctx('{correlation_id}')")
        for plan in (literal, generic):
            scans = scans_by_table(plan)
            for table in CONTEXT_TABLES:
                assert scans.get(table), (table, plan)
                assert scans[table] <= INDEX_SCANS, (table, scans[table])


class TestWorkflowDebugSummary:
    """get_workflow_debug_summary(): always exactly one row; per-table counts of one
    workflow."""

    async def test_unknown_workflow_is_one_row_of_zeros(self, conn: asyncpg.Connection) -> None:
        """An id nobody used: zeros, empty arrays, NULL times."""
        unknown = uuid.uuid4()
        rows = await conn.fetch("SELECT * FROM get_workflow_debug_summary($1)", unknown)
        assert len(rows) == 1
        row = dict(rows[0])
        assert row.pop("correlation_id") == unknown
        assert row.pop("session_ids") == []
        assert row.pop("agents_involved") == []
        assert row.pop("first_event_at") is None
        assert row.pop("last_event_at") is None
        assert row.pop("duration_ms") is None
        assert set(row.values()) == {0}, row

    async def test_known_workflow(self, conn: asyncpg.Connection) -> None:
        """Counts per table, unrecovered errors (not marked recovered, not resolved, not linked
        to a success), LLM calls and transformations of this workflow only."""
        await seed_background(conn, workflows=20)
        correlation_id = uuid.uuid4()
        session = uuid.uuid4()
        await add_step(
            conn,
            correlation_id,
            1,
            session_id=session,
            started=T0,
            completed=T0 + timedelta(seconds=1),
        )
        await add_step(conn, correlation_id, 2, status="failed", started=T0 + timedelta(seconds=2))
        await add_step(
            conn,
            correlation_id,
            2,
            attempt=2,
            started=T0 + timedelta(seconds=3),
            completed=T0 + timedelta(seconds=4),
        )
        linked = await add_error(conn, correlation_id, at=T0 + timedelta(seconds=2))
        await add_error(conn, correlation_id, at=T0 + timedelta(seconds=2), recovered=True)
        await add_error(
            conn, correlation_id, at=T0 + timedelta(seconds=2), resolved=T0 + timedelta(seconds=3)
        )
        await add_error(conn, correlation_id, at=T0 + timedelta(seconds=2), agent="tester")
        await add_error(conn, correlation_id, at=T0 + timedelta(seconds=2), recovered=False)
        success = await add_success(
            conn, correlation_id, at=T0 + timedelta(seconds=4), agent="reviewer"
        )
        await add_correlation(conn, correlation_id, linked, success)
        await add_snapshot(conn, correlation_id, 1, at=T0 + timedelta(seconds=5))
        for _ in range(3):
            await add_llm_call(conn, str(correlation_id))
        await add_llm_call(conn, str(correlation_id), source="PreToolUse")
        await conn.execute(
            "INSERT INTO agent_transformation_events (correlation_id, source_agent, "
            "target_agent) VALUES ($1, 'planner', 'coder')",
            correlation_id,
        )

        summary = await conn.fetchrow(
            "SELECT * FROM get_workflow_debug_summary($1)", correlation_id
        )
        assert summary is not None
        assert dict(summary) == {
            "correlation_id": correlation_id,
            "session_ids": [session],
            "agents_involved": ["coder", "reviewer", "tester"],
            "step_count": 3,
            "failed_step_count": 1,
            "error_count": 5,
            "unrecovered_error_count": 2,
            "success_count": 1,
            "recovery_count": 1,
            "snapshot_count": 1,
            "llm_call_count": 3,
            "transformation_count": 1,
            "first_event_at": T0,
            "last_event_at": T0 + timedelta(seconds=5),
            "duration_ms": 5000,
        }

    async def test_agrees_with_the_context_view(self, conn: asyncpg.Connection) -> None:
        """The function and the view count the same workflow the same way."""
        correlation_id = uuid.uuid4()
        await seed_big_workflow(conn, correlation_id)
        summary = await conn.fetchrow(
            "SELECT * FROM get_workflow_debug_summary($1)", correlation_id
        )
        context = await conn.fetchrow(
            "SELECT * FROM debug_workflow_context WHERE correlation_id = $1", correlation_id
        )
        assert summary is not None
        assert context is not None
        assert (
            summary["step_count"],
            summary["error_count"],
            summary["success_count"],
            summary["snapshot_count"],
            summary["first_event_at"],
            summary["last_event_at"],
            summary["agents_involved"],
        ) == (
            context["total_steps"],
            context["error_count"],
            context["success_count"],
            context["snapshot_count"],
            context["workflow_started"],
            context["workflow_completed"],
            context["agents_involved"],
        )


class TestLlmCallSummary:
    """debug_llm_call_summary: correlation_id is a uuid (defect 13) backed by an index."""

    async def test_correlation_id_is_uuid(self, conn: asyncpg.Connection) -> None:
        """The view's column type, from the catalog."""
        data_type = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'debug_llm_call_summary' AND column_name = 'correlation_id'"
        )
        assert data_type == "uuid"

    async def test_only_post_tool_use_with_a_uuid(self, conn: asyncpg.Connection) -> None:
        """A hook event whose correlation_id is not a UUID is stored (never rejected) with a
        NULL correlation_id and is not an LLM call; upper-case and braced UUIDs parse."""
        correlation_id = uuid.uuid4()
        await add_llm_call(conn, str(correlation_id))
        await add_llm_call(conn, str(correlation_id).upper())
        await add_llm_call(conn, "{" + str(correlation_id) + "}")
        await add_llm_call(conn, str(correlation_id), source="PreToolUse")
        await add_llm_call(conn, "not-a-uuid")
        await add_llm_call(conn, "12345678-1234-1234-1234-1234567890zz")
        await add_llm_call(conn, None)
        stored = await conn.fetch("SELECT correlation_id FROM hook_events")
        assert len(stored) == 7
        assert sum(r["correlation_id"] is None for r in stored) == 3
        calls = await conn.fetch("SELECT correlation_id FROM debug_llm_call_summary")
        assert [r["correlation_id"] for r in calls] == [correlation_id] * 3

    async def test_lookup_uses_an_index(self, conn: asyncpg.Connection) -> None:
        """SELECT ... WHERE correlation_id = $1 reads hook_events through an index."""
        await seed_background(conn)
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT * FROM debug_llm_call_summary "
            f"WHERE correlation_id = '{uuid.uuid4()}'"
        )
        assert scans_by_table(plan)["hook_events"] <= INDEX_SCANS, plan
        assert "idx_hook_events_llm_correlation" in plan


class TestErrorRecoveryPatterns:
    """debug_error_recovery_patterns: confident recoveries per (error_type, strategy)."""

    async def test_quickstart_usage(self, conn: asyncpg.Connection) -> None:
        """`WHERE success_count >= 3 ORDER BY success_count DESC` returns the frequent
        strategies with their averages; correlations under 0.7 confidence do not count."""
        correlation_id = uuid.uuid4()

        async def recoveries(error_type: str, strategy: str, count: int, confidence: float) -> None:
            for n in range(count):
                error = await add_error(conn, correlation_id, error_type=error_type)
                success = await add_success(conn, correlation_id)
                await add_correlation(
                    conn,
                    correlation_id,
                    error,
                    success,
                    strategy=strategy,
                    confidence=confidence,
                    duration_ms=1000 * (n + 1),
                )

        await recoveries("timeout", "retry", 5, 0.9)
        await recoveries("timeout", "fallback", 3, 0.8)
        await recoveries("validation_error", "retry", 2, 0.95)
        await recoveries("rate_limit", "backoff", 6, 0.5)
        rows = await conn.fetch(
            "SELECT * FROM debug_error_recovery_patterns WHERE success_count >= 3 "
            "ORDER BY success_count DESC"
        )
        assert [(r["error_type"], r["recovery_strategy"], r["success_count"]) for r in rows] == [
            ("timeout", "retry", 5),
            ("timeout", "fallback", 3),
        ]
        assert rows[0]["avg_recovery_duration_ms"] == 3000
        assert float(rows[0]["avg_confidence"]) == 0.9
        assert float(rows[1]["avg_confidence"]) == 0.8
