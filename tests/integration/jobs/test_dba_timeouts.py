"""Timeouts a DBA sets per role or database (``ALTER ROLE ... IN DATABASE ... SET
statement_timeout``, ``transaction_timeout``) do not leave work that is long by design --
a correlator run, a retention pass, a migration -- cancelled at every attempt.

Each job here has to wait longer than the timeout for a lock another session holds (as a
long correlator run, a retention batch or a concurrent ``migrate`` make it wait), then
finishes. Before, the timeout cancelled the wait: a TransientError whose retry, at the next
tick or ``migrate`` run, met the same timeout -- on a big backlog, the run's own statements
do, every time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_up
from debug_sink.jobs.correlator import Correlator
from debug_sink.jobs.locks import LOCK_CLASS, STATS_LOCK, lock_name
from debug_sink.jobs.retention import Retention
from tests import support as s

#: What the DBA allows; the lock is held for longer.
TIMEOUTS = {
    "statement_timeout": "300ms",
    "transaction_timeout": "300ms",
}
HELD_S = 1.5

T = TypeVar("T")


async def _limit(conn: asyncpg.Connection, role: str, setting: str) -> None:
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(
        f'ALTER ROLE "{role}" IN DATABASE "{database}" SET {setting} = {TIMEOUTS[setting]!r}'
    )


async def _holding(dsn: str, key: tuple[int, str], ready: asyncio.Event) -> None:
    """Hold the advisory lock ``key`` for :data:`HELD_S` seconds."""
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, hashtext($2))", *key)
        ready.set()
        await asyncio.sleep(HELD_S)
    finally:
        await holder.close()


async def _while_held(dsn: str, key: tuple[int, str], work: Awaitable[T]) -> T:
    ready = asyncio.Event()
    holder = asyncio.create_task(_holding(dsn, key, ready))
    await ready.wait()
    try:
        return await asyncio.wait_for(work, 30)
    finally:
        await holder


@pytest.mark.parametrize("setting", sorted(TIMEOUTS))
async def test_a_correlator_run_outlasts_the_dbas_timeouts(
    db_dsn: str, conn: asyncpg.Connection, setting: str
) -> None:
    await _limit(conn, s.WRITER_ROLE, setting)
    corr = s.uid()
    await conn.execute(
        "INSERT INTO debug_error_events (correlation_id, error_type, error_severity, "
        "error_message, agent_name, operation_name) "
        "VALUES ($1, 'TimeoutError', 'high', 'slow', 'a', 'op')",
        corr,
    )
    correlator = Correlator(s.as_writer(db_dsn))
    key = (LOCK_CLASS, lock_name("public", STATS_LOCK))
    result = await _while_held(db_dsn, key, correlator.run_once())
    assert result.ran
    assert result.new_errors == 1


@pytest.mark.parametrize("setting", sorted(TIMEOUTS))
async def test_a_retention_pass_outlasts_the_dbas_timeouts(
    db_dsn: str, conn: asyncpg.Connection, setting: str
) -> None:
    await _limit(conn, s.WRITER_ROLE, setting)
    await conn.execute(
        "INSERT INTO debug_error_events (correlation_id, error_type, error_severity, "
        "error_message, agent_name, occurred_at) "
        "VALUES ($1, 'TimeoutError', 'high', 'old', 'a', now() - interval '100 days')",
        s.uid(),
    )
    retention = Retention(s.as_writer(db_dsn))
    key = (LOCK_CLASS, lock_name("public", STATS_LOCK))
    result = await _while_held(db_dsn, key, retention.purge(timedelta(days=90)))
    assert result.deleted["debug_error_events"] == 1


@pytest.mark.parametrize("setting", sorted(TIMEOUTS))
async def test_a_migration_outlasts_the_dbas_timeouts(
    db_dsn: str, conn: asyncpg.Connection, setting: str
) -> None:
    owner = await conn.fetchval("SELECT current_user")
    await _limit(conn, owner, setting)
    # Another `migrate` holds the schema's lock (migrate's own, see db/migrate.py).
    key = (0x0DEB5001, "public")
    applied = await _while_held(db_dsn, key, migrate_up(db_dsn))
    assert applied == []
