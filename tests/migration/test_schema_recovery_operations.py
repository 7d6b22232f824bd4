"""Migration 015: correlator_operations, filled from the successes the correlator has already
counted (so that its next run counts the rest, each success once); and the rollback to 014."""

from __future__ import annotations

import uuid

import asyncpg

from debug_sink.db.migrate import migrate_down, migrate_up
from debug_sink.jobs.correlator import Correlator
from tests.integration.jobs.test_correlator import assert_aggregate_matches_rows
from tests.migration.test_migrate import fingerprint

#: The last migration before 015.
BEFORE = 14


async def add_success(conn: asyncpg.Connection, operation: str, success_type: str) -> None:
    await conn.execute(
        "INSERT INTO debug_success_events (id, correlation_id, success_type, agent_name, "
        "operation_name) VALUES ($1, $2, $3, 'researcher', $4)",
        uuid.uuid4(),
        uuid.uuid4(),
        success_type,
        operation,
    )


async def counts(conn: asyncpg.Connection) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT operation_name, successes, typed_recoveries FROM correlator_operations"
    )
    return {r[0]: (r[1], r[2]) for r in rows}


class TestMigration015:
    async def test_up_counts_what_the_correlator_counted_and_down_restores_014(
        self, empty_db_dsn: str
    ) -> None:
        await migrate_up(empty_db_dsn, to=BEFORE)
        before = await fingerprint(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await add_success(conn, "search_cached", "recovery_success")
            await add_success(conn, "search_cached", "task_completion")
            # What a run of the correlator at 014 leaves: the snapshot whose rows it counted.
            await conn.execute("UPDATE correlator_state SET counted = pg_current_snapshot()")
            await add_success(conn, "search_cached", "recovery_success")  # not counted yet

            await migrate_up(empty_db_dsn)

            assert await counts(conn) == {"search_cached": (2, 1)}
            await Correlator(empty_db_dsn).run_once()
            assert await counts(conn) == {"search_cached": (3, 2)}
            await assert_aggregate_matches_rows(conn)

            await migrate_down(empty_db_dsn, to=BEFORE)

            assert await fingerprint(empty_db_dsn) == before
            assert await conn.fetchval("SELECT to_regclass('correlator_operations')") is None
            assert await conn.fetchval("SELECT count(*) FROM debug_success_events") == 3
        finally:
            await conn.close()

    async def test_before_any_run_nothing_is_counted(self, empty_db_dsn: str) -> None:
        """A database the correlator never ran on: its first run counts every success."""
        await migrate_up(empty_db_dsn, to=BEFORE)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await add_success(conn, "search_cached", "recovery_success")

            await migrate_up(empty_db_dsn)

            assert await counts(conn) == {}
            await Correlator(empty_db_dsn).run_once()
            assert await counts(conn) == {"search_cached": (1, 1)}
        finally:
            await conn.close()
