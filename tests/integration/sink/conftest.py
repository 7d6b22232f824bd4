"""Fixtures of the sink's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from debug_sink.sink.tables import init_connection
from tests.integration.sink.writing import Sink


@pytest_asyncio.fixture
async def sink(db_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[Sink]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    try:
        yield Sink(pool, conn)
    finally:
        await pool.close()
