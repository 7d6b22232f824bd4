"""A lock the sink cannot get within ``lock_timeout`` (an operator's ``LOCK TABLE``, a long
migration, with the timeout a DBA commonly sets) is an outage to wait out, like a restart:
the batch fails as DatabaseUnavailable, which the committer retries, and lands once the lock
is gone. Through the BatchWriter on real PostgreSQL (no broker)."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from debug_sink.errors import DatabaseUnavailable
from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from tests import support as s
from tests.support import ER


@pytest.mark.parametrize("table", ["debug_error_events", "sink_offsets"])
async def test_a_lock_timeout_is_transient(
    db_dsn: str, conn: asyncpg.Connection, table: str
) -> None:
    await conn.execute(
        f"ALTER DATABASE {await conn.fetchval('SELECT current_database()')} "
        "SET lock_timeout = '200ms'"
    )
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    operator = await asyncpg.connect(db_dsn)
    try:
        writer = BatchWriter(pool, group_id="locks", park_grace=600)
        event = s.error(s.uid())
        batch = s.batch_of([(ER, event)], itertools.count())
        lock = operator.transaction()
        await lock.start()
        await operator.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            await writer.write(batch)
        await lock.rollback()
        await writer.write(batch)  # the committer's retry, once the lock is gone
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM debug_error_events WHERE id = $1::uuid", event["id"]
            )
            == 1
        )
    finally:
        await operator.close()
        await pool.close()
