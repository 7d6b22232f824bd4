"""Migration 011: what successes state they recover, where links come from, stated counts in
debug_error_recovery_patterns and known_fixes(), the agreement table; and the rollback to 010,
which restores its functions and view exactly."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_down, migrate_up
from tests.migration.test_migrate import fingerprint
from tests.migration.test_schema_recovery_patterns import (
    COLUMNS_005,
    assert_recovery_patterns_match_rows,
    rows_as_text,
)

#: The last migration before 011.
BEFORE = 10


async def add_pair(
    conn: asyncpg.Connection, *, recovers: bool = False
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    corr, error, success = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO debug_error_events (id, correlation_id, agent_name, error_type, "
        "error_category, error_severity, error_message) "
        "VALUES ($1, $2, 'planner', 'TimeoutError', 'external', 'high', 'boom')",
        error,
        corr,
    )
    await conn.execute(
        "INSERT INTO debug_success_events (id, correlation_id, success_type, agent_name, "
        "operation_name) VALUES ($1, $2, 'recovery_success', 'planner', 'fetch')",
        success,
        corr,
    )
    if recovers:  # a column of migration 011 only
        await conn.execute(
            "UPDATE debug_success_events SET recovers_error_ids = ARRAY[$2::uuid] WHERE id = $1",
            success,
            error,
        )
    return corr, error, success


async def link(
    conn: asyncpg.Connection, pair: tuple[uuid.UUID, uuid.UUID, uuid.UUID], source: str | None
) -> None:
    corr, error, success = pair
    column, value = ("", "") if source is None else (", link_source", f", '{source}'")
    await conn.execute(
        "INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, "
        f"correlation_id, recovery_duration_ms, recovery_strategy, confidence_score{column}) "
        f"VALUES ($1, $2, $3, 1000, 'retry', 0.9{value})",
        error,
        success,
        corr,
    )


class TestSchema:
    """The new columns and their rules, at the head migration."""

    async def test_link_source_defaults_to_inferred_and_is_checked(
        self, conn: asyncpg.Connection
    ) -> None:
        await link(conn, await add_pair(conn), None)
        assert await conn.fetchval("SELECT link_source FROM debug_error_success_correlation") == (
            "inferred"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await link(conn, await add_pair(conn), "guessed")

    async def test_former_columns_first_then_stated_and_inferred(
        self, conn: asyncpg.Connection
    ) -> None:
        """Users' queries on debug_error_recovery_patterns and known_fixes() keep working:
        the columns they know come first, in their order."""
        await link(conn, await add_pair(conn, recovers=True), "stated")
        await link(conn, await add_pair(conn), "inferred")
        view = await conn.fetchrow("SELECT * FROM debug_error_recovery_patterns")
        assert view is not None
        assert list(view.keys()) == [
            *COLUMNS_005.split(", "),
            "stated_count",
            "inferred_count",
        ]
        assert (view["success_count"], view["stated_count"], view["inferred_count"]) == (2, 1, 1)
        await conn.execute(
            "INSERT INTO known_fix_occurrences VALUES ('TimeoutError', 'planner', '', 4, now())"
        )
        await conn.execute(
            "INSERT INTO known_fix_stats (error_type, agent_name, operation_name, "
            "recovery_strategy, recovered, confident, confidence_sum, stated) "
            "VALUES ('TimeoutError', 'planner', '', 'retry', 2, 2, 1.8, 1)"
        )
        fixes = await conn.fetch("SELECT * FROM known_fixes('TimeoutError')")
        assert [list(r.keys()) for r in fixes] == [
            [
                "recovery_strategy",
                "success_count",
                "success_rate",
                "avg_recovery_ms",
                "avg_confidence",
                "example_correlation_ids",
                "stated_count",
                "inferred_count",
            ]
        ]
        assert (fixes[0]["success_rate"], fixes[0]["stated_count"], fixes[0]["inferred_count"]) == (
            Decimal("0.5000"),
            1,
            1,
        )


class TestMigration011:
    """Existing links are inferred; the rollback restores 010 exactly and keeps the links."""

    async def test_up_down_up(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn, to=BEFORE)
        before = await fingerprint(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await link(conn, await add_pair(conn), None)
            at_010 = await rows_as_text(conn, "SELECT * FROM debug_error_recovery_patterns")

            await migrate_up(empty_db_dsn, to=11)

            assert await conn.fetchval(
                "SELECT link_source FROM debug_error_success_correlation"
            ) == ("inferred")
            assert (
                await rows_as_text(conn, f"SELECT {COLUMNS_005} FROM debug_error_recovery_patterns")
                == at_010
            )
            await link(conn, await add_pair(conn, recovers=True), "stated")
            await assert_recovery_patterns_match_rows(conn)
            assert await conn.fetchval(
                "SELECT stated_count FROM debug_error_recovery_patterns"
            ) == (1)

            await migrate_down(empty_db_dsn, to=BEFORE)

            assert await fingerprint(empty_db_dsn) == before
            assert await conn.fetchval("SELECT count(*) FROM debug_error_success_correlation") == 2
            assert await conn.fetchval("SELECT to_regclass('correlator_agreement')") is None
            await assert_recovery_patterns_match_rows(conn)  # 010's triggers still count
            await link(conn, await add_pair(conn), None)

            await migrate_up(empty_db_dsn)

            await assert_recovery_patterns_match_rows(conn)
            assert await conn.fetchval(
                "SELECT stated_count FROM debug_error_recovery_patterns"
            ) == (0)  # the source of rolled-back stated links is forgotten
        finally:
            await conn.close()
