"""The user's documents, run against the migrated schema: the quickstart's verification
queries verbatim, its example SQL, and the usage examples of debug-loop-schema.md section 6.

Where a document's SQL is itself defective it is adapted as little as possible, and each
adaptation says which defect (shared/spec/README.md) it works around.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from debug_sink.db.migrate import migrate_down, migrate_up

# --- migration-005-quickstart.md, "Verify Migration", verbatim ------------------------------
# Defect 16: `LIKE 'debug_%'` treats `_` as a wildcard (it matches "debugger" too). The
# verbatim queries must still return exactly the documented rows, so nothing else in the
# schema may be named debug<anything>. The precise query is `LIKE 'debug\_%'`.

CHECK_TABLES = """
-- Verify all 5 new tables exist
SELECT tablename
FROM pg_tables
WHERE tablename LIKE 'debug_%'
ORDER BY tablename;
"""

CHECK_VIEWS = """
-- Verify all 3 views exist
SELECT viewname
FROM pg_views
WHERE viewname LIKE 'debug_%'
ORDER BY viewname;
"""

CHECK_FUNCTIONS = """
-- Verify functions exist
SELECT proname
FROM pg_proc
WHERE proname IN ('capture_state_snapshot', 'get_workflow_debug_summary');
"""

CHECK_EXTENDED_TABLE = """
-- Verify agent_transformation_events has new columns
SELECT column_name, data_type
FROM information_schema.columns
WHERE table_name = 'agent_transformation_events'
AND column_name IN ('state_snapshot_id', 'error_event_id', 'success_event_id');
"""

VERIFY_ROLLBACK = "SELECT tablename FROM pg_tables WHERE tablename LIKE 'debug_%';"

CHECK_PREREQUISITES = """
SELECT version, description FROM schema_migrations ORDER BY version;
-- Should show versions 1, 2, 3, 4
"""

# --- migration-005-quickstart.md, "SQL Queries" -----------------------------------------------
# Adaptation: 'YOUR-CORRELATION-ID' is a placeholder, not a UUID; it is replaced by a real one.
PLACEHOLDER = "YOUR-CORRELATION-ID"

EXAMPLE_QUERIES = {
    "context": """
-- Get debug context for a workflow
SELECT * FROM debug_workflow_context
WHERE correlation_id = 'YOUR-CORRELATION-ID';
""",
    "errors": """
-- Get all errors for a workflow
SELECT error_type, error_severity, error_message, occurred_at
FROM debug_error_events
WHERE correlation_id = 'YOUR-CORRELATION-ID'
ORDER BY occurred_at;
""",
    "llm_calls": """
-- Get LLM calls for a workflow (from hook_events)
SELECT tool_name, quality_score, success_classification
FROM debug_llm_call_summary
WHERE correlation_id = 'YOUR-CORRELATION-ID'
ORDER BY call_timestamp;
""",
    "recovery": """
-- Get recovery patterns
SELECT * FROM debug_error_recovery_patterns
WHERE success_count >= 3
ORDER BY success_count DESC;
""",
}

PERFORMANCE_VERIFICATION = """
-- Test query performance
EXPLAIN ANALYZE
SELECT * FROM debug_workflow_context
WHERE correlation_id = (
  SELECT correlation_id FROM debug_workflow_steps LIMIT 1
);
"""

# --- debug-loop-schema.md section 6, "Usage Examples" -----------------------------------------
# Verbatim: the INSERT omits error_category (NOT NULL; defect 7), which migration 017 defaults.
CAPTURE_STATE_AT_ERROR = """
    INSERT INTO debug_error_events
    (correlation_id, agent_name, error_type, error_message, error_severity, state_snapshot_id)
    VALUES ($1, $2, $3, $4, $5,
      (SELECT capture_state_snapshot('error', $1, $2, $6::JSONB, $7))
    )
    RETURNING id
"""

START_STEP = """
    INSERT INTO debug_workflow_steps
    (correlation_id, step_number, step_type, agent_name, operation_name, status, started_at)
    VALUES ($1, $2, $3, $4, $5, 'started', NOW())
    RETURNING id
"""

COMPLETE_STEP = """
    UPDATE debug_workflow_steps
    SET status = 'completed', completed_at = NOW(),
        duration_ms = EXTRACT(EPOCH FROM (NOW() - started_at)) * 1000,
        success_event_id = $2
    WHERE id = $1
"""

ANALYZE_RECOVERY_PATTERNS = """
    SELECT
      e.error_type,
      c.recovery_strategy,
      count(*) as success_count,
      avg(c.recovery_duration_ms) as avg_duration_ms,
      avg(c.confidence_score) as avg_confidence
    FROM debug_error_success_correlation c
    JOIN debug_error_events e ON e.id = c.error_event_id
    WHERE c.confidence_score >= 0.7
    GROUP BY e.error_type, c.recovery_strategy
    ORDER BY success_count DESC
"""

# debug-loop-schema.md 3.1 and 3.3, the SQL of the integration examples.
GET_LLM_CALLS = """
        SELECT * FROM debug_llm_call_summary
        WHERE correlation_id = $1
        ORDER BY call_timestamp
"""
GET_DEBUG_CONTEXT = "SELECT * FROM debug_workflow_context WHERE correlation_id = $1"


async def _seed_workflow(conn: asyncpg.Connection, correlation_id: uuid.UUID) -> None:
    """A small workflow: 2 steps, 4 errors (3 recovered by 'retry'), 3 successes, 1 LLM call."""
    await conn.execute(
        """
        INSERT INTO debug_workflow_steps (correlation_id, step_number, step_type, agent_name,
                                          operation_name, status, started_at, completed_at)
        SELECT $1, n, 'execution', 'coder', 'write', 'completed',
               clock_timestamp(), clock_timestamp()
        FROM generate_series(1, 2) AS n;
        """,
        correlation_id,
    )
    errors = [
        await conn.fetchval(
            """
            INSERT INTO debug_error_events (correlation_id, agent_name, error_type,
                                            error_category, error_severity, error_message)
            VALUES ($1, 'coder', 'timeout', 'external', 'high', 'upstream timed out')
            RETURNING id
            """,
            correlation_id,
        )
        for _ in range(4)
    ]
    successes = [
        await conn.fetchval(
            """
            INSERT INTO debug_success_events (correlation_id, success_type, operation_name,
                                              agent_name, quality_score)
            VALUES ($1, 'recovery_success', 'write', 'coder', 0.9)
            RETURNING id
            """,
            correlation_id,
        )
        for _ in range(3)
    ]
    for error_id, success_id in zip(errors, successes, strict=False):
        await conn.execute(
            """
            INSERT INTO debug_error_success_correlation (error_event_id, success_event_id,
                correlation_id, recovery_duration_ms, recovery_strategy, confidence_score)
            VALUES ($1, $2, $3, 1500, 'retry', 0.9)
            """,
            error_id,
            success_id,
            correlation_id,
        )
    await conn.execute(
        """
        INSERT INTO hook_events (source, resource_id, payload, metadata)
        VALUES ('PostToolUse', 'Edit',
                '{"quality_metrics": {"quality_score": 0.8}, "success_classification": "full"}',
                jsonb_build_object('correlation_id', $1::text, 'session_id', 's-1'))
        """,
        str(correlation_id),
    )


class TestVerificationQueries:
    """The quickstart's "Verify Migration" queries, run verbatim, return exactly the rows it
    promises (at head, i.e. with every later migration applied too)."""

    async def test_check_tables(self, conn: asyncpg.Connection) -> None:
        """Check Tables lists the 5 new tables and nothing else."""
        rows = await conn.fetch(CHECK_TABLES)
        assert [r["tablename"] for r in rows] == [
            "debug_error_events",
            "debug_error_success_correlation",
            "debug_state_snapshots",
            "debug_success_events",
            "debug_workflow_steps",
        ]

    async def test_check_views(self, conn: asyncpg.Connection) -> None:
        """Check Views lists the 3 views and nothing else (defect 8: the third one exists)."""
        rows = await conn.fetch(CHECK_VIEWS)
        assert [r["viewname"] for r in rows] == [
            "debug_error_recovery_patterns",
            "debug_llm_call_summary",
            "debug_workflow_context",
        ]

    async def test_check_functions(self, conn: asyncpg.Connection) -> None:
        """Check Functions finds each function exactly once (one schema, no overloads); the
        query has no ORDER BY, so the rows are compared in sorted order."""
        rows = await conn.fetch(CHECK_FUNCTIONS)
        assert sorted(r["proname"] for r in rows) == [
            "capture_state_snapshot",
            "get_workflow_debug_summary",
        ]

    async def test_check_extended_table(self, conn: asyncpg.Connection) -> None:
        """Check Extended Table finds the 3 new uuid columns (no ORDER BY: compared sorted)."""
        rows = await conn.fetch(CHECK_EXTENDED_TABLE)
        assert sorted((r["column_name"], r["data_type"]) for r in rows) == [
            ("error_event_id", "uuid"),
            ("state_snapshot_id", "uuid"),
            ("success_event_id", "uuid"),
        ]

    async def test_prerequisite_versions_are_recorded(self, conn: asyncpg.Connection) -> None:
        """The troubleshooting query shows versions 1-4 (and every later one, contiguous),
        each with a non-negative execution time (defect 3)."""
        rows = await conn.fetch(CHECK_PREREQUISITES)
        versions = [r["version"] for r in rows]
        assert versions[:6] == [1, 2, 3, 4, 5, 6]
        assert versions == list(range(1, len(versions) + 1))
        durations = await conn.fetch("SELECT execution_time_ms FROM schema_migrations")
        assert all(r["execution_time_ms"] >= 0 for r in durations)

    async def test_verify_rollback_returns_no_rows(self, empty_db_dsn: str) -> None:
        """After rolling back to 4, the quickstart's "Verify rollback" query returns 0 rows."""
        await migrate_up(empty_db_dsn)
        await migrate_down(empty_db_dsn, to=4)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            assert await conn.fetch(VERIFY_ROLLBACK) == []
        finally:
            await conn.close()


class TestQuickstartExamples:
    """The quickstart's example SQL queries run and return the workflow's data."""

    async def test_example_queries(self, conn: asyncpg.Connection) -> None:
        """Each example query runs with a real correlation id and finds the seeded rows."""
        correlation_id = uuid.uuid4()
        await _seed_workflow(conn, correlation_id)
        results = {
            name: await conn.fetch(sql.replace(PLACEHOLDER, str(correlation_id)))
            for name, sql in EXAMPLE_QUERIES.items()
        }

        (context,) = results["context"]
        assert (context["total_steps"], context["error_count"], context["success_count"]) == (
            2,
            4,
            3,
        )
        assert [r["error_type"] for r in results["errors"]] == ["timeout"] * 4
        assert [tuple(r) for r in results["llm_calls"]] == [("Edit", "0.8", "full")]
        (pattern,) = results["recovery"]
        assert (pattern["error_type"], pattern["recovery_strategy"]) == ("timeout", "retry")
        assert pattern["success_count"] == 3

    async def test_performance_verification_query(self, conn: asyncpg.Connection) -> None:
        """The quickstart's EXPLAIN ANALYZE of debug_workflow_context runs well under 200 ms
        for a workflow of 50 steps, 20 errors, 20 successes and 50 snapshots."""
        correlation_id = uuid.uuid4()
        await conn.execute(
            """
            INSERT INTO debug_workflow_steps (correlation_id, step_number, step_type, agent_name,
                                              operation_name, status, started_at)
            SELECT $1, n, 'execution', 'coder', 'write', 'started', clock_timestamp()
            FROM generate_series(1, 50) AS n;
            INSERT INTO debug_error_events (correlation_id, agent_name, error_type,
                                            error_category, error_severity, error_message)
            SELECT $1, 'coder', 'timeout', 'external', 'high', 'e' FROM generate_series(1, 20);
            INSERT INTO debug_success_events (correlation_id, success_type, operation_name,
                                              agent_name)
            SELECT $1, 'task_completion', 'write', 'coder' FROM generate_series(1, 20);
            INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name,
                                               agent_state, state_hash)
            SELECT 'checkpoint', $1, 'coder', jsonb_build_object('n', n), md5(n::text)
            FROM generate_series(1, 50) AS n;
            """.replace("$1", f"'{correlation_id}'::uuid"),
        )
        lines = [r[0] for r in await conn.fetch(PERFORMANCE_VERIFICATION)]
        (execution,) = [line for line in lines if line.startswith("Execution Time:")]
        assert float(execution.split()[2]) < 200, lines


class TestSchemaDocUsageExamples:
    """debug-loop-schema.md section 6 (and the SQL of sections 3.1 / 3.3) runs."""

    async def test_capture_state_at_error(self, conn: asyncpg.Connection) -> None:
        """The error INSERT, verbatim, captures the state through capture_state_snapshot()
        in the same statement and links it. Defect 7 (it names no error_category, which is
        NOT NULL) is fixed by migration 017's default, the SDK's: 'agent'."""
        correlation_id = uuid.uuid4()
        agent_state = {"context": "data", "attempt": 2}
        error_id = await conn.fetchval(
            CAPTURE_STATE_AT_ERROR,
            correlation_id,
            "my-agent",
            "ValueError",
            "bad value",
            "high",
            json.dumps(agent_state),
            "parse the input",
        )
        row = await conn.fetchrow(
            """
            SELECT s.snapshot_type, s.agent_state, s.task_description, s.correlation_id,
                   e.error_category
            FROM debug_error_events e JOIN debug_state_snapshots s ON s.id = e.state_snapshot_id
            WHERE e.id = $1
            """,
            error_id,
        )
        assert row is not None
        assert row["snapshot_type"] == "error"
        assert json.loads(row["agent_state"]) == agent_state
        assert row["task_description"] == "parse the input"
        assert row["correlation_id"] == correlation_id
        assert row["error_category"] == "agent"

    async def test_track_workflow_step(self, conn: asyncpg.Connection) -> None:
        """Start a step, then complete it with a success event, as the document does."""
        correlation_id = uuid.uuid4()
        step_id = await conn.fetchval(
            START_STEP, correlation_id, 1, "execution", "my-agent", "write_file"
        )
        success_event_id = await conn.fetchval(
            """
            INSERT INTO debug_success_events (correlation_id, success_type, operation_name,
                                              agent_name)
            VALUES ($1, 'task_completion', 'write_file', 'my-agent') RETURNING id
            """,
            correlation_id,
        )
        await conn.execute(COMPLETE_STEP, step_id, success_event_id)
        row = await conn.fetchrow(
            "SELECT status, completed_at, duration_ms, success_event_id "
            "FROM debug_workflow_steps WHERE id = $1",
            step_id,
        )
        assert row is not None
        assert row["status"] == "completed"
        assert row["completed_at"] is not None
        assert row["duration_ms"] >= 0
        assert row["success_event_id"] == success_event_id

    async def test_analyze_recovery_patterns_matches_the_view(
        self, conn: asyncpg.Connection
    ) -> None:
        """The document's recovery analysis query and debug_error_recovery_patterns agree."""
        await _seed_workflow(conn, uuid.uuid4())
        by_query = await conn.fetch(ANALYZE_RECOVERY_PATTERNS)
        by_view = await conn.fetch(
            "SELECT error_type, recovery_strategy, success_count, avg_recovery_duration_ms, "
            "avg_confidence FROM debug_error_recovery_patterns ORDER BY success_count DESC"
        )
        assert [tuple(r) for r in by_query] == [tuple(r) for r in by_view]
        assert by_query[0]["success_count"] == 3

    async def test_integration_lookups_by_correlation_id(self, conn: asyncpg.Connection) -> None:
        """Sections 3.1 and 3.3: LLM calls and the debug context of one workflow. 3.1 passes
        the correlation id as a str; the uuid column accepts it."""
        correlation_id = uuid.uuid4()
        await _seed_workflow(conn, correlation_id)
        calls = await conn.fetch(GET_LLM_CALLS, str(correlation_id))
        assert [(r["tool_name"], r["correlation_id"]) for r in calls] == [("Edit", correlation_id)]
        context = await conn.fetchrow(GET_DEBUG_CONTEXT, correlation_id)
        assert context is not None
        assert context["correlation_id"] == correlation_id
