"""Migration 010: debug_error_recovery_patterns read from an aggregate that triggers keep equal
to migration 005's definition over the rows, whatever writes the links: inserts, updates,
deletes, cascades from deleted errors and successes, retyped errors, TRUNCATE, concurrent
writers; the backfill of existing rows, and the rollback to 005's view. Since migration 011
the same triggers count the stated links among them (stated_count, inferred_count)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_down, migrate_up
from tests import support as s
from tests.migration.test_migrate import fingerprint
from tests.migration.test_schema_workflow import scans_by_table

#: The last migration before 010.
BEFORE = 9

#: Migration 005's definition of the view: what it must return.
RECOVERY_PATTERNS_FROM_ROWS = """
SELECT e.error_type, c.recovery_strategy, count(*) AS success_count,
       avg(c.recovery_duration_ms) AS avg_recovery_duration_ms,
       avg(c.confidence_score) AS avg_confidence,
       count(DISTINCT c.correlation_id) AS workflow_count,
       max(c.correlated_at) AS last_correlated_at
  FROM debug_error_success_correlation c
  JOIN debug_error_events e ON e.id = c.error_event_id
 WHERE c.confidence_score >= 0.7
 GROUP BY e.error_type, c.recovery_strategy
"""

#: The view's columns that 005 defined.
COLUMNS_005 = (
    "error_type, recovery_strategy, success_count, avg_recovery_duration_ms, avg_confidence, "
    "workflow_count, last_correlated_at"
)

#: Migration 011's columns, from the rows.
SOURCES_FROM_ROWS = """
SELECT e.error_type, c.recovery_strategy,
       count(*) FILTER (WHERE c.link_source = 'stated') AS stated_count,
       count(*) FILTER (WHERE c.link_source = 'inferred') AS inferred_count
  FROM debug_error_success_correlation c
  JOIN debug_error_events e ON e.id = c.error_event_id
 WHERE c.confidence_score >= 0.7
 GROUP BY e.error_type, c.recovery_strategy
"""

WORKFLOWS_FROM_ROWS = """
SELECT e.error_type, c.recovery_strategy IS NULL, coalesce(c.recovery_strategy, ''),
       c.correlation_id, count(*), max(c.correlated_at)
  FROM debug_error_success_correlation c
  JOIN debug_error_events e ON e.id = c.error_event_id
 WHERE c.confidence_score >= 0.7
 GROUP BY 1, 2, 3, 4
"""

OBJECTS_SQL = """
SELECT relname FROM pg_class
 WHERE relnamespace = current_schema()::regnamespace AND relname LIKE 'recovery\\_pattern%'
UNION ALL
SELECT proname FROM pg_proc
 WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'recovery\\_pattern%'
UNION ALL
SELECT tgname FROM pg_trigger WHERE tgname LIKE 'recovery\\_pattern%'
"""

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ERROR_TYPES = ("TimeoutError", "RateLimitError", "ParseError")
STRATEGIES = (None, "", "retry", "fallback")
CONFIDENCES = (Decimal("0.5"), Decimal("0.6999"), Decimal("0.7"), Decimal("0.85"), Decimal("1"))


async def rows_as_text(conn: asyncpg.Connection, sql: str) -> list[str]:
    return sorted(r[0] for r in await conn.fetch(f"SELECT x::text FROM ({sql}) AS x"))


async def assert_recovery_patterns_match_rows(conn: asyncpg.Connection) -> None:
    """The view returns what 005's definition computes from the rows, compared as text (same
    values and numeric scales), and the per-workflow rows of the aggregate are exact; from
    migration 011 on, so are its stated and inferred counts."""
    want = await rows_as_text(conn, RECOVERY_PATTERNS_FROM_ROWS)
    got = await rows_as_text(conn, f"SELECT {COLUMNS_005} FROM debug_error_recovery_patterns")
    assert got == want
    if await conn.fetchval(
        "SELECT to_regclass('correlator_agreement') IS NOT NULL"
    ):  # migration 011
        assert await rows_as_text(
            conn,
            "SELECT error_type, recovery_strategy, stated_count, inferred_count "
            "FROM debug_error_recovery_patterns",
        ) == await rows_as_text(conn, SOURCES_FROM_ROWS)
    assert await rows_as_text(conn, WORKFLOWS_FROM_ROWS) == await rows_as_text(
        conn,
        "SELECT error_type, no_strategy, recovery_strategy, correlation_id, links, "
        "last_correlated_at FROM recovery_pattern_workflows",
    )


async def add_error(
    conn: asyncpg.Connection, correlation_id: uuid.UUID, error_type: str, id: uuid.UUID
) -> None:
    await conn.execute(
        "INSERT INTO debug_error_events (id, correlation_id, agent_name, error_type, "
        "error_category, error_severity, error_message) "
        "VALUES ($1, $2, 'planner', $3, 'agent', 'high', 'boom')",
        id,
        correlation_id,
        error_type,
    )


async def add_success(conn: asyncpg.Connection, correlation_id: uuid.UUID, id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO debug_success_events (id, correlation_id, success_type, agent_name, "
        "operation_name) VALUES ($1, $2, 'recovery_success', 'planner', 'fetch')",
        id,
        correlation_id,
    )


LINK_SQL = """
INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, correlation_id,
    recovery_duration_ms, recovery_strategy, confidence_score, correlated_at)
SELECT x.e, x.s, x.w, x.d, x.st, x.c, coalesce(x.at, clock_timestamp())
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::numeric[],
              $7::timestamptz[]) AS x(e, s, w, d, st, c, at)
ON CONFLICT (error_event_id, success_event_id) DO NOTHING
"""


class Workload:
    """Random writes of every kind against a small set of workflows (seeded: reproducible)."""

    def __init__(self, conn: asyncpg.Connection, seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.workflows = [self.new_id() for _ in range(4)]

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    def at(self) -> datetime | None:
        # few distinct times: ties for the max; None: clock_timestamp()
        return None if self.rng.random() < 0.3 else T0 + timedelta(seconds=self.rng.randrange(8))

    async def ids(self, table: str) -> list[uuid.UUID]:
        return [r[0] for r in await self.conn.fetch(f"SELECT id FROM {table} ORDER BY id")]

    async def add_events(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            wf = self.rng.choice(self.workflows)
            await add_error(self.conn, wf, self.rng.choice(ERROR_TYPES), self.new_id())
            await add_success(self.conn, wf, self.new_id())

    async def link(self, n: int | None = None) -> None:
        errors = await self.ids("debug_error_events")
        successes = await self.ids("debug_success_events")
        if not errors or not successes:
            return
        rows = [
            (
                self.rng.choice(errors),
                self.rng.choice(successes),
                self.rng.choice(self.workflows),
                self.rng.choice((None, 500, 1000, 2500)),
                self.rng.choice(STRATEGIES),
                self.rng.choice(CONFIDENCES),
                self.at(),
            )
            for _ in range(n or self.rng.randint(1, 6))
        ]
        await self.conn.execute(LINK_SQL, *map(list, zip(*rows, strict=True)))

    async def update_links(self) -> None:
        links = await self.ids("debug_error_success_correlation")
        if not links:
            return
        picked = self.rng.sample(links, min(len(links), self.rng.randint(1, 4)))
        column, values = self.rng.choice(
            (
                ("confidence_score", CONFIDENCES),
                ("recovery_strategy", STRATEGIES),
                ("recovery_duration_ms", (None, 700, 3000)),
                ("correlated_at", (T0, T0 + timedelta(seconds=9), T0 - timedelta(seconds=1))),
                ("correlation_id", self.workflows),
                ("recovery_path", ("unchanged aggregate",)),
                ("link_source", ("stated", "inferred")),
            )
        )
        await self.conn.execute(
            f"UPDATE debug_error_success_correlation SET {column} = $2 WHERE id = ANY ($1)",
            picked,
            self.rng.choice(values),
        )

    async def move_link_to_another_error(self) -> None:
        links = await self.ids("debug_error_success_correlation")
        errors = await self.ids("debug_error_events")
        if not links:
            return
        try:
            async with self.conn.transaction():
                await self.conn.execute(
                    "UPDATE debug_error_success_correlation SET error_event_id = $2 WHERE id = $1",
                    self.rng.choice(links),
                    self.rng.choice(errors),
                )
        except asyncpg.UniqueViolationError:
            pass

    async def delete_links(self) -> None:
        links = await self.ids("debug_error_success_correlation")
        picked = self.rng.sample(links, min(len(links), self.rng.randint(1, 3)))
        await self.conn.execute(
            "DELETE FROM debug_error_success_correlation WHERE id = ANY ($1)", picked
        )

    async def delete_newest_of_a_group(self) -> None:
        """The row holding a group's last_correlated_at."""
        await self.conn.execute(
            "DELETE FROM debug_error_success_correlation WHERE id = ("
            "  SELECT c.id FROM debug_error_success_correlation c"
            "  JOIN debug_error_events e ON e.id = c.error_event_id"
            "  WHERE c.confidence_score >= 0.7 AND e.error_type = $1"
            "  ORDER BY c.correlated_at DESC LIMIT 1)",
            self.rng.choice(ERROR_TYPES),
        )

    async def replace_link(self) -> None:
        """The correlator's move: delete one link and insert another in one statement."""
        links = await self.conn.fetch(
            "SELECT id, error_event_id FROM debug_error_success_correlation"
        )
        successes = await self.ids("debug_success_events")
        if not links:
            return
        link = self.rng.choice(links)
        await self.conn.execute(
            "WITH gone AS (DELETE FROM debug_error_success_correlation WHERE id = $1) "
            "INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, "
            "correlation_id, recovery_duration_ms, recovery_strategy, confidence_score) "
            "VALUES ($2, $3, $4, 100, 'retry', 0.9) ON CONFLICT DO NOTHING",
            link["id"],
            link["error_event_id"],
            self.rng.choice(successes),
            self.rng.choice(self.workflows),
        )

    async def delete_errors(self) -> None:
        errors = await self.ids("debug_error_events")
        picked = self.rng.sample(errors, min(len(errors), self.rng.randint(1, 2)))
        await self.conn.execute("DELETE FROM debug_error_events WHERE id = ANY ($1)", picked)

    async def delete_a_success(self) -> None:
        successes = await self.ids("debug_success_events")
        if successes:
            await self.conn.execute(
                "DELETE FROM debug_success_events WHERE id = $1", self.rng.choice(successes)
            )

    async def retype_errors(self) -> None:
        errors = await self.ids("debug_error_events")
        picked = self.rng.sample(errors, min(len(errors), self.rng.randint(1, 3)))
        await self.conn.execute(
            "UPDATE debug_error_events SET error_type = $2 WHERE id = ANY ($1)",
            picked,
            self.rng.choice(ERROR_TYPES),
        )

    async def delete_errors_then_link_in_one_transaction(self) -> None:
        async with self.conn.transaction():
            await self.delete_errors()
            await self.link(2)
            await self.delete_errors()

    async def rolled_back(self) -> None:
        tx = self.conn.transaction()
        await tx.start()
        await self.link()
        await self.delete_errors()
        await tx.rollback()

    async def truncate(self) -> None:
        await self.conn.execute("TRUNCATE debug_error_success_correlation")

    def operations(self) -> list[tuple[Callable[[], Awaitable[None]], int]]:
        return [
            (self.add_events, 6),
            (self.link, 10),
            (self.update_links, 8),
            (self.move_link_to_another_error, 2),
            (self.delete_links, 4),
            (self.delete_newest_of_a_group, 4),
            (self.replace_link, 3),
            (self.delete_errors, 3),
            (self.delete_a_success, 2),
            (self.retype_errors, 3),
            (self.delete_errors_then_link_in_one_transaction, 2),
            (self.rolled_back, 1),
            (self.truncate, 1),
        ]


class TestAggregateEqualsTheRows:
    """After any sequence of writes the view equals 005's definition over the rows."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_random_writes(self, conn: asyncpg.Connection, seed: int) -> None:
        workload = Workload(conn, seed)
        operations, weights = zip(*workload.operations(), strict=True)
        for _ in range(3):
            await workload.add_events()
        await workload.link(8)
        for _ in range(70):
            operation = workload.rng.choices(operations, weights)[0]
            await operation()
            await assert_recovery_patterns_match_rows(conn)
        await workload.add_events()
        await workload.link(8)
        await assert_recovery_patterns_match_rows(conn)
        assert await conn.fetchval("SELECT count(*) FROM debug_error_recovery_patterns") > 0

        incremental = await rows_as_text(conn, "SELECT * FROM recovery_pattern_stats")
        await conn.execute("SELECT recovery_patterns_rebuild()")
        assert await rows_as_text(conn, "SELECT * FROM recovery_pattern_stats") == incremental

    async def test_truncating_the_errors_empties_it(self, conn: asyncpg.Connection) -> None:
        workload = Workload(conn, 4)
        await workload.add_events()
        await workload.link(6)
        await conn.execute("TRUNCATE debug_error_events CASCADE")
        assert await conn.fetchval("SELECT count(*) FROM recovery_pattern_stats") == 0
        assert await conn.fetchval("SELECT count(*) FROM recovery_pattern_workflows") == 0

    async def test_the_view_reads_only_the_aggregate(self, conn: asyncpg.Connection) -> None:
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT * FROM debug_error_recovery_patterns "
            "WHERE success_count >= 3 ORDER BY success_count DESC"
        )
        assert set(scans_by_table(plan)) == {"recovery_pattern_stats"}

    async def test_a_link_before_its_error_is_refused(self, conn: asyncpg.Connection) -> None:
        """With deferred constraints a link may not precede its error: its error_type is
        needed when it is written."""
        correlation_id = uuid.uuid4()
        success = uuid.uuid4()
        await add_success(conn, correlation_id, success)
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")
        link = [[uuid.uuid4()], [success], [correlation_id], [1], ["retry"], [Decimal("0.9")]]
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not exist"):
            await conn.execute(LINK_SQL, *link, [None])
        await tx.rollback()

    async def test_rebuild_after_writes_without_triggers(self, conn: asyncpg.Connection) -> None:
        """Writes that bypass the triggers (a bulk load) are counted by a rebuild."""
        workload = Workload(conn, 5)
        await workload.add_events()
        await conn.execute(
            "ALTER TABLE debug_error_success_correlation DISABLE TRIGGER recovery_patterns_insert"
        )
        await workload.link(6)
        await conn.execute(
            "ALTER TABLE debug_error_success_correlation ENABLE TRIGGER recovery_patterns_insert"
        )
        await conn.execute("SELECT recovery_patterns_rebuild()")
        await assert_recovery_patterns_match_rows(conn)


class TestConcurrentWriters:
    """Two transactions writing links of one group lose no update."""

    async def test_inserts_and_deletes_of_one_group(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        correlation_id = uuid.uuid4()
        for _ in range(4):
            await add_error(conn, correlation_id, "TimeoutError", uuid.uuid4())
            await add_success(conn, correlation_id, uuid.uuid4())
        errors = await conn.fetch("SELECT id FROM debug_error_events ORDER BY id")
        successes = await conn.fetch("SELECT id FROM debug_success_events ORDER BY id")

        def link_args(i: int, at: datetime) -> list[list[object]]:
            return [
                [errors[i][0]],
                [successes[i][0]],
                [uuid.uuid4()],
                [1000],
                ["retry"],
                [Decimal("0.9")],
                [at],
            ]

        other = await asyncpg.connect(db_dsn)
        observer = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(LINK_SQL, *link_args(0, T0 + timedelta(seconds=5)))
            # a deletes the group's newest link while b adds one; then both add one
            tx = conn.transaction()
            await tx.start()
            await conn.execute("DELETE FROM debug_error_success_correlation")
            await conn.execute(LINK_SQL, *link_args(1, T0))
            waiting = asyncio.create_task(
                other.execute(LINK_SQL, *link_args(2, T0 + timedelta(seconds=1)))
            )
            # b waits for the group's row, which a's open transaction holds
            await s.wait_until_blocked(
                observer, other.get_server_pid(), by=conn.get_server_pid(), task=waiting
            )
            assert not waiting.done()
            await tx.commit()
            await waiting
            await other.execute(LINK_SQL, *link_args(3, T0 - timedelta(seconds=1)))
        finally:
            await observer.close()
            await other.close()

        await assert_recovery_patterns_match_rows(conn)
        row = await conn.fetchrow("SELECT * FROM debug_error_recovery_patterns")
        assert row is not None
        assert (row["success_count"], row["workflow_count"]) == (3, 3)
        assert row["last_correlated_at"] == T0 + timedelta(seconds=1)


class TestMigration010:
    """The backfill counts the links that exist; the rollback restores 005's view."""

    async def test_backfill_and_rollback(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn, to=BEFORE)
        before = await fingerprint(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            workload = Workload(conn, 6)
            for _ in range(3):
                await workload.add_events()
            await workload.link(12)
            by_005 = await rows_as_text(conn, "SELECT * FROM debug_error_recovery_patterns")
            assert by_005

            await migrate_up(empty_db_dsn, to=10)

            assert await conn.fetchval("SELECT count(*) FROM recovery_pattern_stats") > 0
            assert await rows_as_text(conn, "SELECT * FROM debug_error_recovery_patterns") == (
                by_005
            )
            await assert_recovery_patterns_match_rows(conn)
            await workload.delete_errors()
            await workload.link(4)
            await assert_recovery_patterns_match_rows(conn)

            await migrate_down(empty_db_dsn, to=BEFORE)

            assert await fingerprint(empty_db_dsn) == before
            assert await conn.fetch(OBJECTS_SQL) == []
            assert await conn.fetchval("SELECT to_regtype('recovery_pattern_delta')") is None
            assert await rows_as_text(conn, "SELECT * FROM debug_error_recovery_patterns") == (
                await rows_as_text(conn, RECOVERY_PATTERNS_FROM_ROWS)
            )
            # rows written while rolled back are counted when 010 is applied again
            await workload.link(4)
            await migrate_up(empty_db_dsn)
            await assert_recovery_patterns_match_rows(conn)
        finally:
            await conn.close()
