"""The sink's connection pool (``sink.tables.create_pool``): a released connection skips
asyncpg's session reset (a round trip per batch) but keeps its setup, and never hands an open
transaction to its next user."""

from __future__ import annotations

import asyncpg

from debug_sink.settings import Settings
from debug_sink.sink.tables import STEP_STAGE, create_pool
from tests import support as s


async def _pool(db_dsn: str) -> asyncpg.Pool:
    return await create_pool(Settings(postgres_dsn=s.as_writer(db_dsn)), max_size=1)


async def test_release_sends_no_reset_and_keeps_the_setup(db_dsn: str) -> None:
    pool = await _pool(db_dsn)
    queries: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: queries.append(record.query))
            await conn.execute(
                f"INSERT INTO {STEP_STAGE} (id) SELECT gen_random_uuid() WHERE false"
            )
        async with pool.acquire() as conn:  # the same connection (max_size=1)
            assert await conn.fetchval("SELECT to_regclass($1)::text", f"pg_temp.{STEP_STAGE}")
        assert queries, "the query logger saw nothing"
        assert not [q for q in queries if "RESET ALL" in q or "UNLISTEN" in q]
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_on_release(db_dsn: str) -> None:
    pool = await _pool(db_dsn)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute(
                "INSERT INTO sink_offsets (group_id, topic, partition, next_offset) "
                "VALUES ('g', 't', 0, 7)"
            )
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM sink_offsets") == 0
    finally:
        await pool.close()
