"""Migration 009: sink_parked_waits, the index of what parked events wait for, kept equal to
sink_parked_events.waiting_for by triggers whatever writes the parked rows; its backfill; its
rollback."""

from __future__ import annotations

import uuid

import asyncpg

from debug_sink.db.migrate import migrate_down, migrate_up
from tests import support as s

PARK_SQL = """
INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for, expires_at,
                                topic, partition, "offset")
SELECT 'error', gen_random_uuid(), gen_random_uuid(), '{}', w::uuid[],
       clock_timestamp() + interval '1h', 't', 0, o
  FROM unnest($1::text[], $2::bigint[]) AS u(w, o)
RETURNING id
"""


def _literal(ids: list[uuid.UUID]) -> str:
    return "{" + ",".join(str(i) for i in ids) + "}"


async def park(
    conn: asyncpg.Connection, *waits: list[uuid.UUID], first_offset: int = 0
) -> list[int]:
    """Park one event per list of awaited ids, in ONE statement; their parked ids."""
    rows = await conn.fetch(
        PARK_SQL,
        [_literal(w) for w in waits],
        list(range(first_offset, first_offset + len(waits))),
    )
    return [r["id"] for r in rows]


class TestTriggers:
    """Every way a parked row is written, changed or removed keeps sink_parked_waits equal to
    the (parent, parked event) pairs of waiting_for."""

    async def test_insert_single_and_multi_row_statements(self, conn: asyncpg.Connection) -> None:
        """One statement parking several rows (the sink) and one row per statement (an older
        sink) both add one wait per distinct awaited id; a duplicate id counts once."""
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        first, second = await park(conn, [a], [a, b, b])
        (third,) = await park(conn, [c], first_offset=10)
        assert await s.parked_waits(conn) == {(a, first), (a, second), (b, second), (c, third)}

    async def test_update_of_waiting_for_replaces_the_waits(self, conn: asyncpg.Connection) -> None:
        """A re-park (waiting_for changed) drops the waits it no longer has and adds the new
        ones; rows whose waiting_for is unchanged, or updates of other columns, keep theirs."""
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        first, second = await park(conn, [a, b], [a])
        await conn.execute(
            "UPDATE sink_parked_events p SET waiting_for = u.w::uuid[] "
            "FROM unnest($1::bigint[], $2::text[]) AS u(id, w) WHERE p.id = u.id",
            [first, second],
            [_literal([b, c]), _literal([a])],
        )
        assert await s.parked_waits(conn) == {(b, first), (c, first), (a, second)}
        await conn.execute("UPDATE sink_parked_events SET expires_at = clock_timestamp()")
        assert await s.parked_waits(conn) == {(b, first), (c, first), (a, second)}

    async def test_delete_cascades(self, conn: asyncpg.Connection) -> None:
        """However a parked row goes (released, expired, dead-lettered, purged), its waits go."""
        a = uuid.uuid4()
        first, second = await park(conn, [a], [a])
        await conn.execute("DELETE FROM sink_parked_events WHERE id = $1", first)
        assert await s.parked_waits(conn) == {(a, second)}


class TestUpgradeAndRollback:
    """Rows parked before 009 get their waits from the backfill; 009's rollback removes the
    table, its triggers and function and restores 007's GIN index, parked rows untouched."""

    async def test_backfill_and_rollback(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn, to=8)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            a, b = uuid.uuid4(), uuid.uuid4()
            parked = await park(conn, [a], [a, b], [b])
            await migrate_up(empty_db_dsn, to=9)
            assert await s.parked_waits(conn) == {
                (a, parked[0]),
                (a, parked[1]),
                (b, parked[1]),
                (b, parked[2]),
            }
            assert await objects(conn) == (True, True, 2, False)

            await migrate_down(empty_db_dsn, to=8)
            assert await objects(conn) == (False, False, 0, True)
            assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 3
            # Parking works without the triggers (an older sink after a rollback) ...
            (later,) = await park(conn, [a], first_offset=10)

            # ... and upgrading again picks those rows up too.
            await migrate_up(empty_db_dsn, to=9)
            assert (a, later) in await s.parked_waits(conn)
        finally:
            await conn.close()


async def objects(conn: asyncpg.Connection) -> tuple[bool, bool, int, bool]:
    """(waits table exists, trigger function exists, triggers on sink_parked_events, GIN index
    on waiting_for exists)."""
    row = await conn.fetchrow(
        """
        SELECT to_regclass('sink_parked_waits') IS NOT NULL,
               to_regprocedure('sink_parked_waits_sync()') IS NOT NULL,
               (SELECT count(*) FROM pg_trigger
                 WHERE tgrelid = 'sink_parked_events'::regclass AND NOT tgisinternal),
               to_regclass('idx_sink_parked_events_waiting') IS NOT NULL
        """
    )
    assert row is not None
    return (row[0], row[1], row[2], row[3])
