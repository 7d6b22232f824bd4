"""Rows PostgreSQL refuses, and how many times a batch is written for them.

The writer writes a batch in one go, with no savepoint; when PostgreSQL refuses a row (a data
error: SQLSTATE class 22 or 23, here a CHECK constraint that validation cannot know), the
transaction is rolled back and the batch written again, bisecting the offenders out
(``BatchWriter._write_once``). A producer whose every batch holds such a row must not cost two
writes per batch: after a batch with a refused row the next one is written isolating at once,
until one has nothing refused. Real PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter, WriteResult
from debug_sink.wire.events import EventKind
from tests import support as s


@pytest_asyncio.fixture
async def writer(db_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[BatchWriter]:
    await conn.execute(
        "ALTER TABLE debug_error_events ADD CONSTRAINT no_boom CHECK (error_message <> 'boom')"
    )
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    try:
        yield BatchWriter(pool, group_id="refused", park_grace=600)
    finally:
        await pool.close()


async def test_a_batch_is_written_again_only_while_rows_are_refused(
    writer: BatchWriter, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions: list[bool] = []  # the `isolate` of each transaction run
    real = BatchWriter._write_transaction

    async def recording(self: BatchWriter, batch: Any, *, isolate: bool) -> WriteResult:
        transactions.append(isolate)
        return await real(self, batch, isolate=isolate)

    monkeypatch.setattr(BatchWriter, "_write_transaction", recording)
    offsets = itertools.count()
    corr = s.uid()

    async def write(*messages: str) -> WriteResult:
        events = [(EventKind.ERROR, s.error(corr, error_message=m)) for m in messages]
        transactions.clear()
        return await writer.write(s.batch_of(events, offsets))

    # A refused row: the batch in one go fails, then is written isolating.
    first = await write("ok", "boom", "ok")
    assert transactions == [False, True]
    assert [d.error_class for d in first.dead_letters] == ["database"]
    # Another one right after: isolating at once, one transaction.
    second = await write("boom", "ok")
    assert transactions == [True]
    assert [d.error_class for d in second.dead_letters] == ["database"]
    # A clean batch is still written isolating (the last one had a refused row) ...
    third = await write("ok", "ok")
    assert transactions == [True]
    assert third.dead_letters == []
    # ... and the next in one go again.
    await write("ok")
    assert transactions == [False]

    assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 6
    assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 2
