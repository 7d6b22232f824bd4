"""The writer's lookups use the indexes once the tables have grown, ANALYZE or not.

asyncpg prepares a statement once per connection and PostgreSQL soon reuses one generic plan
for it, made for the table sizes of that moment. On a fresh database that plan scans the
tables, and only an ANALYZE (autovacuum's, up to minutes later) made PostgreSQL plan it
again: until then every batch's lookups read every row written so far. The writer plans its
lookups again each time the rows it wrote double (``BatchWriter._lookup_sql``).

Here autovacuum is off for the event tables, so nothing else re-plans: the counters of
``pg_stat_user_tables`` say whether the lookups of the last batches scanned
``debug_state_snapshots`` or went through its indexes. Real PostgreSQL, no mocks.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest_asyncio

from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.events import TABLES, EventKind
from tests import support as s

SNAPSHOTS = TABLES[EventKind.SNAPSHOT]


@pytest_asyncio.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(db_dsn) as admin:
        for table in (*TABLES.values(), "sink_snapshot_aliases"):
            await admin.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    # One connection, so the writer's prepared statements and the stats flush share it.
    ours = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1, init=init_connection)
    try:
        yield ours
    finally:
        await ours.close()


def _snapshots(count: int, serial: Iterator[int]) -> list[tuple[EventKind, dict[str, object]]]:
    events = []
    for _ in range(count):
        n = next(serial)
        corr = str(uuid.UUID(int=n // 10 + 1))
        state = {"step": n, "notes": f"observation {n} " * 20}
        events.append((EventKind.SNAPSHOT, s.snapshot(corr, state)))
    return events


async def _scans(pool: asyncpg.Pool, db_dsn: str) -> tuple[int, int]:
    """(seq_scan, idx_scan) of the snapshots table, with the writer's connection's counters
    flushed first (pg_stat_force_next_flush, flushed before the reply)."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
    reader = await asyncpg.connect(db_dsn)
    try:
        row = await reader.fetchrow(
            "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = $1", SNAPSHOTS
        )
    finally:
        await reader.close()
    assert row is not None
    return row["seq_scan"], row["idx_scan"]


async def test_lookups_go_through_the_indexes_once_the_tables_have_grown(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    writer = BatchWriter(pool, group_id="plans", park_grace=600)
    serial, offsets = itertools.count(), itertools.count()
    written = 0
    # Small batches first: PostgreSQL settles on a generic plan (after five executions of a
    # statement) while the table is nearly empty.
    for _ in range(8):
        await writer.write(s.batch_of(_snapshots(10, serial), offsets))
        written += 10
    # The table grows past the writer's re-plans at 1,000, 2,000 and 4,000 rows written.
    while written < 6_000:
        await writer.write(s.batch_of(_snapshots(400, serial), offsets))
        written += 400
    seq_before, idx_before = await _scans(pool, db_dsn)

    # Batches that stay below the next re-plan (8,000 rows): they run the plan PostgreSQL
    # made after the re-plan at 4,000 (five custom plans, then a generic one).
    batches = 9
    for _ in range(batches):
        await writer.write(s.batch_of(_snapshots(200, serial), offsets))
        written += 200
    assert written < 8_000
    seq_after, idx_after = await _scans(pool, db_dsn)

    async with pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {SNAPSHOTS}") == written
    # Each batch's lookups probe the indexes (the ids, and the (correlation_id, state_hash)
    # keys); none reads the whole table. A plan made on the nearly empty table scans it
    # twice per batch.
    assert seq_after - seq_before == 0, (seq_before, seq_after)
    assert idx_after - idx_before >= batches, (idx_before, idx_after)
