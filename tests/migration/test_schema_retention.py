"""Migration 006 and the write path: every foreign key indexed, ON DELETE behaviour that lets
old rows be purged, deferrable foreign keys for the sink's batches, the jsonb_path_ops GIN
index, a rollback that restores 005 exactly - and the column-level fixes of 005."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_down, migrate_up

# Every foreign key of the schema, with the indexes whose leading columns are its columns.
# A partial index counts only when its predicate is "<fk column> IS NOT NULL", which every
# referential lookup (`col = $1`) implies.
FK_INDEX_SQL = """
SELECT con.conrelid::regclass::text AS table_name,
       con.conname,
       array(SELECT a.attname::text FROM unnest(con.conkey) AS k(n)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n) AS columns,
       array(SELECT i.indexrelid::regclass::text FROM pg_index i
              WHERE i.indrelid = con.conrelid
                AND i.indisvalid
                AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1]::int2[]
                    @> con.conkey
                AND (i.indpred IS NULL
                     OR pg_get_expr(i.indpred, i.indrelid) IN (
                          SELECT '(' || a.attname || ' IS NOT NULL)'
                            FROM pg_attribute a
                           WHERE a.attrelid = con.conrelid AND a.attnum = con.conkey[1])))
         AS indexes,
       con.confdeltype::text AS on_delete,
       con.condeferrable AS deferrable,
       con.condeferred AS deferred
FROM pg_constraint con
WHERE con.contype = 'f' AND con.connamespace = current_schema()::regnamespace
ORDER BY 1, 2
"""

CATALOG_SQL = """
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
       || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c
    ON c.oid = i.indexrelid WHERE c.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
   AND NOT a.attisdropped
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p
 WHERE p.pronamespace = current_schema()::regnamespace
UNION ALL
SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v'
ORDER BY 1
"""

# The foreign keys of 005 and the action 006 gives each on delete.
#   a = NO ACTION (005), n = SET NULL, c = CASCADE
EXPECTED_ON_DELETE = {
    "agent_transformation_events_error_event_id_fkey": "n",
    "agent_transformation_events_state_snapshot_id_fkey": "n",
    "agent_transformation_events_success_event_id_fkey": "n",
    "debug_error_events_state_snapshot_id_fkey": "n",
    "debug_error_success_correlation_error_event_id_fkey": "c",
    "debug_error_success_correlation_success_event_id_fkey": "c",
    "debug_state_snapshots_parent_snapshot_id_fkey": "n",
    "debug_state_snapshots_transformation_event_id_fkey": "n",
    "debug_success_events_state_snapshot_id_fkey": "n",
    "debug_workflow_steps_error_event_id_fkey": "n",
    "debug_workflow_steps_parent_step_id_fkey": "n",
    "debug_workflow_steps_post_state_snapshot_id_fkey": "n",
    "debug_workflow_steps_pre_state_snapshot_id_fkey": "n",
    "debug_workflow_steps_success_event_id_fkey": "n",
}


async def _snapshot(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    n: int,
    *,
    parent: uuid.UUID | None = None,
    transformation: uuid.UUID | None = None,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name,
            agent_state, state_hash, parent_snapshot_id, transformation_event_id)
        VALUES ('checkpoint', $1, 'a', jsonb_build_object('n', $2::int), md5($2::text), $3, $4)
        RETURNING id
        """,
        correlation_id,
        n,
        parent,
        transformation,
    )


async def _error(
    conn: asyncpg.Connection, correlation_id: uuid.UUID, snapshot: uuid.UUID | None = None
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_error_events (correlation_id, agent_name, error_type, error_category,
            error_severity, error_message, state_snapshot_id)
        VALUES ($1, 'a', 'timeout', 'agent', 'low', 'e', $2) RETURNING id
        """,
        correlation_id,
        snapshot,
    )


async def _success(
    conn: asyncpg.Connection, correlation_id: uuid.UUID, snapshot: uuid.UUID | None = None
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_success_events (correlation_id, success_type, operation_name,
            agent_name, state_snapshot_id)
        VALUES ($1, 'task_completion', 'op', 'a', $2) RETURNING id
        """,
        correlation_id,
        snapshot,
    )


async def _step(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    number: int,
    *,
    pre: uuid.UUID | None = None,
    post: uuid.UUID | None = None,
    error: uuid.UUID | None = None,
    success: uuid.UUID | None = None,
    parent: uuid.UUID | None = None,
    attempt: int = 1,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO debug_workflow_steps (correlation_id, step_number, attempt, step_type,
            agent_name, operation_name, status, started_at, pre_state_snapshot_id,
            post_state_snapshot_id, error_event_id, success_event_id, parent_step_id)
        VALUES ($1, $2, $3, 'execution', 'a', 'op', 'completed', clock_timestamp(),
                $4, $5, $6, $7, $8)
        RETURNING id
        """,
        correlation_id,
        number,
        attempt,
        pre,
        post,
        error,
        success,
        parent,
    )


async def _transformation(
    conn: asyncpg.Connection,
    correlation_id: uuid.UUID,
    *,
    snapshot: uuid.UUID | None = None,
    error: uuid.UUID | None = None,
    success: uuid.UUID | None = None,
) -> uuid.UUID:
    return await conn.fetchval(
        """
        INSERT INTO agent_transformation_events (correlation_id, source_agent, target_agent,
            state_snapshot_id, error_event_id, success_event_id)
        VALUES ($1, 'planner', 'coder', $2, $3, $4) RETURNING id
        """,
        correlation_id,
        snapshot,
        error,
        success,
    )


class TestForeignKeys:
    """Every foreign key is indexed, deferrable (initially immediate), and has the ON DELETE
    action that makes purging old rows possible (defect 11)."""

    async def test_every_foreign_key_column_is_indexed(self, conn: asyncpg.Connection) -> None:
        """Catalog check: each FK column set is the leading prefix of a valid index."""
        rows = await conn.fetch(FK_INDEX_SQL)
        assert len(rows) >= len(EXPECTED_ON_DELETE)
        unindexed = [(r["table_name"], r["columns"]) for r in rows if not r["indexes"]]
        assert unindexed == []

    async def test_actions_and_deferrability(self, conn: asyncpg.Connection) -> None:
        """The 14 foreign keys of 005: SET NULL for optional references, CASCADE for the
        correlation rows, all DEFERRABLE INITIALLY IMMEDIATE."""
        rows = {r["conname"]: r for r in await conn.fetch(FK_INDEX_SQL)}
        assert {name: rows[name]["on_delete"] for name in EXPECTED_ON_DELETE} == (
            EXPECTED_ON_DELETE
        )
        for name in EXPECTED_ON_DELETE:
            assert (rows[name]["deferrable"], rows[name]["deferred"]) == (True, False), name

    async def test_deleting_a_snapshot_nulls_its_references(self, conn: asyncpg.Connection) -> None:
        """Errors, successes, steps, transformations and child snapshots keep their rows and
        lose the reference."""
        correlation_id = uuid.uuid4()
        transformation = await _transformation(conn, correlation_id)
        snapshot = await _snapshot(conn, correlation_id, 1, transformation=transformation)
        child = await _snapshot(conn, correlation_id, 2, parent=snapshot)
        error = await _error(conn, correlation_id, snapshot)
        success = await _success(conn, correlation_id, snapshot)
        step = await _step(conn, correlation_id, 1, pre=snapshot, post=snapshot)
        await _transformation(conn, correlation_id, snapshot=snapshot)

        await conn.execute("DELETE FROM debug_state_snapshots WHERE id = $1", snapshot)

        refs = await conn.fetchrow(
            """
            SELECT (SELECT parent_snapshot_id FROM debug_state_snapshots WHERE id = $1) AS p,
                   (SELECT state_snapshot_id FROM debug_error_events WHERE id = $2) AS e,
                   (SELECT state_snapshot_id FROM debug_success_events WHERE id = $3) AS s,
                   (SELECT pre_state_snapshot_id FROM debug_workflow_steps WHERE id = $4) AS pre,
                   (SELECT post_state_snapshot_id FROM debug_workflow_steps WHERE id = $4)
                     AS post,
                   (SELECT count(*) FROM agent_transformation_events
                     WHERE state_snapshot_id IS NOT NULL) AS t,
                   (SELECT count(*) FROM agent_transformation_events) AS t_rows
            """,
            child,
            error,
            success,
            step,
        )
        assert refs is not None
        assert dict(refs) == {
            "p": None,
            "e": None,
            "s": None,
            "pre": None,
            "post": None,
            "t": 0,
            "t_rows": 2,
        }

    async def test_deleting_an_error_removes_its_correlations(
        self, conn: asyncpg.Connection
    ) -> None:
        """A correlation row goes with its error (or its success); steps and transformations
        that referenced the error keep their rows with a NULL reference."""
        correlation_id = uuid.uuid4()
        error = await _error(conn, correlation_id)
        other_error = await _error(conn, correlation_id)
        success = await _success(conn, correlation_id)
        for error_id in (error, other_error):
            await conn.execute(
                "INSERT INTO debug_error_success_correlation (error_event_id, success_event_id,"
                " correlation_id, confidence_score) VALUES ($1, $2, $3, 0.9)",
                error_id,
                success,
                correlation_id,
            )
        step = await _step(conn, correlation_id, 1, error=error, success=success)
        transformation = await _transformation(conn, correlation_id, error=error, success=success)

        await conn.execute("DELETE FROM debug_error_events WHERE id = $1", error)
        remaining = await conn.fetch("SELECT error_event_id FROM debug_error_success_correlation")
        assert [r["error_event_id"] for r in remaining] == [other_error]
        assert (
            await conn.fetchval(
                "SELECT error_event_id FROM debug_workflow_steps WHERE id = $1", step
            )
            is None
        )
        assert (
            await conn.fetchval(
                "SELECT error_event_id FROM agent_transformation_events WHERE id = $1",
                transformation,
            )
            is None
        )

        await conn.execute("DELETE FROM debug_success_events WHERE id = $1", success)
        assert await conn.fetchval("SELECT count(*) FROM debug_error_success_correlation") == 0
        assert (
            await conn.fetchval(
                "SELECT success_event_id FROM debug_workflow_steps WHERE id = $1", step
            )
            is None
        )

    async def test_deleting_a_parent_step_keeps_the_child(self, conn: asyncpg.Connection) -> None:
        """The self-reference of steps is SET NULL too."""
        correlation_id = uuid.uuid4()
        parent = await _step(conn, correlation_id, 1)
        child = await _step(conn, correlation_id, 2, parent=parent)
        await conn.execute("DELETE FROM debug_workflow_steps WHERE id = $1", parent)
        assert (
            await conn.fetchval(
                "SELECT parent_step_id FROM debug_workflow_steps WHERE id = $1", child
            )
            is None
        )

    async def test_deferred_within_a_batch(self, conn: asyncpg.Connection) -> None:
        """With SET CONSTRAINTS ALL DEFERRED children may be written before their parents -
        including the snapshot <-> transformation cycle - and are checked at commit."""
        correlation_id = uuid.uuid4()
        snapshot_id, transformation_id, error_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with conn.transaction():
            await conn.execute("SET CONSTRAINTS ALL DEFERRED")
            await conn.execute(
                "INSERT INTO debug_error_events (id, correlation_id, agent_name, error_type, "
                "error_category, error_severity, error_message, state_snapshot_id) "
                "VALUES ($1, $2, 'a', 't', 'agent', 'low', 'm', $3)",
                error_id,
                correlation_id,
                snapshot_id,
            )
            await conn.execute(
                "INSERT INTO agent_transformation_events (id, correlation_id, source_agent, "
                "target_agent, state_snapshot_id) VALUES ($1, $2, 'a', 'b', $3)",
                transformation_id,
                correlation_id,
                snapshot_id,
            )
            await conn.execute(
                "INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, "
                "agent_name, agent_state, state_hash, transformation_event_id) "
                "VALUES ($1, 'pre_transform', $2, 'a', '{}', 'h', $3)",
                snapshot_id,
                correlation_id,
                transformation_id,
            )
        assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 1

    async def test_immediate_by_default(self, conn: asyncpg.Connection) -> None:
        """Without SET CONSTRAINTS a dangling reference still fails at once."""
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await _error(conn, uuid.uuid4(), snapshot=uuid.uuid4())


class TestSnapshotIndexes:
    """The write-cost decisions of 006 on debug_state_snapshots."""

    async def test_containment_query_uses_the_path_ops_index(
        self, conn: asyncpg.Connection
    ) -> None:
        """agent_state @> '{...}' is served by GIN (agent_state jsonb_path_ops), the only GIN
        index left on the table (defect 14)."""
        await conn.execute(
            """
            INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name,
                                               agent_state, state_hash)
            SELECT 'checkpoint', gen_random_uuid(), 'a',
                   jsonb_build_object('context', jsonb_build_object('model', 'm' || n % 50),
                                      'n', n),
                   md5(n::text)
            FROM generate_series(1, 5000) AS n;
            ANALYZE debug_state_snapshots;
            """
        )
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT id FROM debug_state_snapshots "
            """WHERE agent_state @> '{"context": {"model": "m7"}}'"""
        )
        assert "idx_debug_state_snapshots_state_path_ops" in plan
        gin = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def "
            "FROM pg_index WHERE indrelid = 'debug_state_snapshots'::regclass "
            "AND pg_get_indexdef(indexrelid) LIKE '%USING gin%'"
        )
        assert [r["name"] for r in gin] == ["idx_debug_state_snapshots_state_path_ops"]
        assert "jsonb_path_ops" in gin[0]["def"]

    async def test_redundant_indexes_are_gone(self, conn: asyncpg.Connection) -> None:
        """The plain state_hash index and the correlation table's error_event_id index are
        dropped; the unique indexes that cover their use remain."""
        names = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT relname FROM pg_class WHERE relkind = 'i' "
                "AND relnamespace = current_schema()::regnamespace"
            )
        }
        assert "idx_debug_state_snapshots_hash" not in names
        assert "idx_debug_error_success_correlation_error" not in names
        assert {
            "idx_debug_state_snapshots_correlation_hash",
            "debug_error_success_correlation_unique",
        } <= names


class TestRollback006:
    """Rolling back 006 restores exactly the catalog of 005."""

    async def test_down_to_5_restores_005(self, empty_db_dsn: str) -> None:
        """Constraints, indexes, columns, functions and views after up(head) -> down(5) equal
        those after up(5)."""
        await migrate_up(empty_db_dsn, to=5)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            at_5 = [r[0] for r in await conn.fetch(CATALOG_SQL)]
            await migrate_up(empty_db_dsn)
            at_head = [r[0] for r in await conn.fetch(CATALOG_SQL)]
            await migrate_down(empty_db_dsn, to=5)
            back_at_5 = [r[0] for r in await conn.fetch(CATALOG_SQL)]
        finally:
            await conn.close()
        assert at_head != at_5
        assert back_at_5 == at_5


class TestColumnFixes:
    """Column-level fixes of 005 (defects 15 and 16)."""

    async def test_retried_step_is_a_new_row(self, conn: asyncpg.Connection) -> None:
        """Defect 16: the same step_number again, with attempt 2, is accepted as its own row;
        attempt starts at 1 and cannot be 0."""
        correlation_id = uuid.uuid4()
        first = await _step(conn, correlation_id, 3)
        retry = await _step(conn, correlation_id, 3, attempt=2)
        assert first != retry
        attempts = await conn.fetch(
            "SELECT attempt FROM debug_workflow_steps WHERE correlation_id = $1 "
            "AND step_number = 3 ORDER BY attempt",
            correlation_id,
        )
        assert [r["attempt"] for r in attempts] == [1, 2]
        with pytest.raises(asyncpg.CheckViolationError):
            await _step(conn, correlation_id, 3, attempt=0)

    async def test_long_error_type_fits(self, conn: asyncpg.Connection) -> None:
        """Defect 16: a fully qualified exception class name of 255 characters is stored."""
        error_type = "pkg." * 60 + "VeryLongExceptionName"[:15]
        assert len(error_type) == 255
        stored = await conn.fetchval(
            "INSERT INTO debug_error_events (correlation_id, agent_name, error_type, "
            "error_category, error_severity, error_message) "
            "VALUES ($1, 'a', $2, 'agent', 'low', 'm') RETURNING error_type",
            uuid.uuid4(),
            error_type,
        )
        assert stored == error_type

    async def test_defaults_are_clock_time(self, conn: asyncpg.Connection) -> None:
        """Defect 15: rows written in one transaction get distinct, increasing timestamps."""
        correlation_id = uuid.uuid4()
        async with conn.transaction():
            for _ in range(3):
                await _error(conn, correlation_id)
        times = [
            r["occurred_at"]
            for r in await conn.fetch(
                "SELECT occurred_at FROM debug_error_events ORDER BY occurred_at"
            )
        ]
        assert len(set(times)) == 3

    async def test_snapshot_metadata_column(self, conn: asyncpg.Connection) -> None:
        """debug_state_snapshots.metadata holds the sink's bookkeeping (dangling references)."""
        dangling = {"dangling_refs": {"parent_snapshot_id": str(uuid.uuid4())}}
        snapshot = await conn.fetchval(
            "INSERT INTO debug_state_snapshots (snapshot_type, correlation_id, agent_name, "
            "agent_state, state_hash, metadata) VALUES ('checkpoint', $1, 'a', '{}', 'h', $2) "
            "RETURNING id",
            uuid.uuid4(),
            json.dumps(dangling),
        )
        stored = await conn.fetchval(
            "SELECT metadata FROM debug_state_snapshots WHERE id = $1", snapshot
        )
        assert json.loads(stored) == dangling
