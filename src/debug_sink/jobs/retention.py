"""The retention purge: delete debug events older than N days, in small transactions.

Owns deleting old rows of every table the sink writes -- the six event tables and the sink's
own -- and keeping the known-fixes aggregate equal to the retained rows.

Which time decides a row's age:

==================================  ===================================================
hook_events                         ``created_at`` (LLM and tool calls)
agent_transformation_events         ``created_at`` (hand-overs; references to them from
                                    snapshots become NULL)
debug_workflow_steps                ``started_at``
debug_error_events                  ``occurred_at`` (its links go with it)
debug_success_events                ``occurred_at`` (its links go with it)
debug_error_success_correlation     with its error or its success, whichever goes first
debug_state_snapshots               ``captured_at`` (references to it become NULL,
                                    its ``sink_snapshot_aliases`` rows go with it)
sink_dead_letters                   ``received_at`` (their own retention, ``dead_letter_days``)
sink_parked_events                  ``parked_at``, once past ``expires_at`` (``parked_days``)
==================================  ===================================================

Event times come from the agents; a skewed clock moves a row's purge by the skew, which is
irrelevant at a scale of days.

How: children before parents (LLM calls, hand-overs, steps, links, errors, successes,
snapshots), and the ON DELETE rules of migration 006 for the references that remain (SET NULL).
Every table is read through an index on its time column (migrations 006 and 012). Each batch
(``batch_size`` rows, default 5,000) is one short transaction: pick the oldest rows from where
the previous batch ended (keyset on the time column's index, so deleted entries are not
rescanned), lock them ``FOR UPDATE SKIP LOCKED`` (rows a writer holds are left for the next
run), delete. No lock is held between batches, so the sink keeps writing at full speed.
Batches touching errors, successes or snapshots also take the correlator's aggregate lock
(:data:`~debug_sink.jobs.correlator.STATS_LOCK`) for their few milliseconds: they decrement
``known_fix_occurrences`` / ``known_fix_stats`` (and the correlator's agreement totals) for
what they delete, and must not interleave with a correlator run.

Single runner: a session advisory lock per schema (``pg_try_advisory_lock``); a second purge
finds it taken and returns ``ran=False``. A purge that dies midway has committed whole batches
only; the next run continues.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from debug_sink.db import sqlfiles
from debug_sink.db.pg import close_quietly, connect, lift_timeouts, translating
from debug_sink.errors import ConfigurationError, PermanentError
from debug_sink.jobs.examples import keys_of, refresh_examples
from debug_sink.jobs.locks import RETENTION_LOCK, STATS_LOCK, lock_in_transaction, try_lock, unlock
from debug_sink.jobs.periodic import Job
from debug_sink.settings import Settings

__all__ = ["PURGE_ORDER", "PurgeResult", "Retention", "retention_job"]

log = structlog.get_logger("debug_sink.jobs.retention")

#: Tables in purge order (children first), as reported in :attr:`PurgeResult.deleted`.
PURGE_ORDER: Final = (
    "hook_events",
    "agent_transformation_events",
    "debug_workflow_steps",
    "debug_error_success_correlation",
    "debug_error_events",
    "debug_success_events",
    "debug_state_snapshots",
    "sink_dead_letters",
    "sink_parked_events",
)
#: How often the ``run`` service purges.
DEFAULT_INTERVAL_S: Final = 3600.0
_LOCK_RETRIES: Final = 5


@dataclass(slots=True)
class PurgeResult:
    """Rows deleted per table (or, for a dry run, that would be). ``ran`` is False when
    another purge held the lock."""

    ran: bool
    cutoff: datetime | None = None
    dry_run: bool = False
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURGE_ORDER, 0))
    batches: int = 0
    skipped_tables: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "dry_run": self.dry_run,
            "deleted": dict(self.deleted),
            "total": self.total,
            "batches": self.batches,
            "skipped_tables": list(self.skipped_tables),
            "duration_s": round(self.duration_s, 3),
        }


class _Busy(Exception):
    """A lock could not be had within lock_timeout, _LOCK_RETRIES times in a row."""


class Retention:
    """Purges rows older than a cutoff; :meth:`purge` is one complete pass."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        ssl: Any = None,
        batch_size: int = 5000,
        dead_letter_days: float | None = None,
        parked_days: float | None = None,
        lock_timeout_s: float = 5.0,
        stats_lock_timeout_s: float = 120.0,
        pause_s: float = 0.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self._dsn = dsn
        self._schema = schema
        self._ssl = ssl
        self._batch = batch_size
        self._dead_letter_days = dead_letter_days
        self._parked_days = parked_days
        self._lock_timeout_ms = int(lock_timeout_s * 1000)
        self._stats_timeout_ms = int(stats_lock_timeout_s * 1000)
        self._pause = pause_s

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Retention:
        return cls(
            settings.require_dsn(),
            schema=settings.db_schema,
            ssl=settings.postgres_ssl(),
            **options,
        )

    async def purge(self, older_than: timedelta, *, dry_run: bool = False) -> PurgeResult:
        """Delete (or, with ``dry_run``, count) rows older than ``older_than``."""
        if older_than <= timedelta(0):
            raise ConfigurationError("the retention age must be positive")
        conn = await connect(
            self._dsn, schema=self._schema, ssl=self._ssl, application_name="debug-sink-retention"
        )
        try:
            with translating(self._dsn):
                # A batch cancelled by a DBA's statement timeout would be the first batch
                # of every later pass too: the purge could never get past it.
                await lift_timeouts(conn)
                if not await try_lock(conn, self._schema, RETENTION_LOCK):
                    log.info("retention_skipped", reason="another purge is running")
                    return PurgeResult(ran=False)
                try:
                    return await self._purge(conn, older_than, dry_run)
                finally:
                    await unlock(conn, self._schema, RETENTION_LOCK)
        finally:
            await close_quietly(conn)

    async def _purge(
        self, conn: asyncpg.Connection, older_than: timedelta, dry_run: bool
    ) -> PurgeResult:
        q = sqlfiles.load("retention.sql")
        started = time.perf_counter()
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        cutoff = _before(now, older_than)
        sink_cutoff = {
            "sink_dead_letters": (
                _before(now, timedelta(days=self._dead_letter_days))
                if self._dead_letter_days is not None
                else cutoff
            ),
            "sink_parked_events": (
                _before(now, timedelta(days=self._parked_days))
                if self._parked_days is not None
                else cutoff
            ),
        }
        result = PurgeResult(ran=True, cutoff=cutoff, dry_run=dry_run)
        if dry_run:
            row = await conn.fetchrow(q["count_old"], cutoff, sink_cutoff["sink_dead_letters"])
            assert row is not None
            result.deleted = {table: int(row[table]) for table in PURGE_ORDER}
            if sink_cutoff["sink_parked_events"] != sink_cutoff["sink_dead_letters"]:
                result.deleted["sink_parked_events"] = int(
                    await conn.fetchval(
                        "SELECT count(*) FROM sink_parked_events "
                        "WHERE parked_at < $1 AND expires_at < $1",
                        sink_cutoff["sink_parked_events"],
                    )
                )
            result.duration_s = time.perf_counter() - started
            log.info("retention_dry_run", **result.as_dict())
            return result
        await conn.execute(f"SET lock_timeout = {self._lock_timeout_ms}")
        plan: list[tuple[str, Callable[..., Awaitable[tuple[int, datetime | None]]]]] = [
            ("hook_events", self._simple(q["purge_hooks"], stats=False)),
            ("agent_transformation_events", self._simple(q["purge_transformations"], stats=False)),
            ("debug_workflow_steps", self._simple(q["purge_steps"], stats=False)),
            ("debug_error_events", functools.partial(self._linked, side="errors")),
            ("debug_success_events", functools.partial(self._linked, side="successes")),
            ("debug_state_snapshots", self._simple(q["purge_snapshots"], stats=True)),
            ("sink_dead_letters", self._simple(q["purge_dead_letters"], stats=False)),
            ("sink_parked_events", self._simple(q["purge_parked"], stats=False)),
        ]
        for table, batch in plan:
            limit = sink_cutoff.get(table, cutoff)
            before = dict(result.deleted)
            try:
                await self._drain(conn, table, batch, limit, result)
            except _Busy:
                result.skipped_tables.append(table)
                log.warning(
                    "retention_table_skipped",
                    table=table,
                    reason="rows or the aggregate lock stayed busy",
                )
            log.info(
                "retention_table",
                table=table,
                deleted=result.deleted[table] - before[table],
                **(
                    {
                        "links_deleted": result.deleted["debug_error_success_correlation"]
                        - before["debug_error_success_correlation"]
                    }
                    if table in ("debug_error_events", "debug_success_events")
                    else {}
                ),
            )
        result.duration_s = time.perf_counter() - started
        log.info("retention_purge", **result.as_dict())
        return result

    async def _drain(
        self,
        conn: asyncpg.Connection,
        table: str,
        batch: Callable[..., Awaitable[tuple[int, datetime | None]]],
        cutoff: datetime,
        result: PurgeResult,
    ) -> None:
        start = datetime.min.replace(tzinfo=cutoff.tzinfo)
        failures = 0
        while True:
            try:
                picked, last_at = await batch(conn, start, cutoff, result, table)
            except asyncpg.LockNotAvailableError:
                failures += 1
                if failures >= _LOCK_RETRIES:
                    raise _Busy from None
                await asyncio.sleep(0.2 * failures)
                continue
            failures = 0
            result.batches += 1
            if picked < self._batch or last_at is None:
                return
            start = last_at
            if self._pause:
                await asyncio.sleep(self._pause)

    async def _stats_lock(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET LOCAL lock_timeout = {self._stats_timeout_ms}")
        await lock_in_transaction(conn, self._schema, STATS_LOCK)
        await conn.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}")

    def _simple(
        self, sql: str, *, stats: bool
    ) -> Callable[..., Awaitable[tuple[int, datetime | None]]]:
        async def batch(
            conn: asyncpg.Connection,
            start: datetime,
            cutoff: datetime,
            result: PurgeResult,
            table: str,
        ) -> tuple[int, datetime | None]:
            async with conn.transaction():
                if stats:
                    await self._stats_lock(conn)
                row = await conn.fetchrow(sql, start, cutoff, self._batch)
            assert row is not None
            result.deleted[table] += row["deleted"]
            return int(row["picked"]), row["last_at"]

        return batch

    async def _linked(
        self,
        conn: asyncpg.Connection,
        start: datetime,
        cutoff: datetime,
        result: PurgeResult,
        table: str,
        *,
        side: str,
    ) -> tuple[int, datetime | None]:
        """One batch of errors or successes, with their links (and, in the stats lock, their
        share of the known-fixes aggregate)."""
        q = sqlfiles.load("retention.sql")
        async with conn.transaction():
            await self._stats_lock(conn)
            picked = await conn.fetchrow(q[f"pick_{side}"], start, cutoff, self._batch)
            assert picked is not None
            ids: list[UUID] = picked["ids"]
            if ids:
                error_ids, success_ids = (ids, []) if side == "errors" else ([], ids)
                links = await conn.fetchrow(q["purge_links"], error_ids, success_ids)
                assert links is not None
                result.deleted["debug_error_success_correlation"] += links["deleted"]
                await refresh_examples(conn, keys_of(links["keys"]))
                if error_ids:
                    await conn.fetchrow(q["purge_agreement"], error_ids)
                gone = await conn.fetchrow(q[f"purge_{side}"], ids)
                assert gone is not None
                result.deleted[table] += gone["deleted"]
        return int(picked["picked"]), picked["last_at"]


def _before(now: datetime, age: timedelta) -> datetime:
    """``now - age``, or the earliest date there is when that is before year 1 (an age of a
    million days keeps everything; it is not an error)."""
    try:
        return now - age
    except OverflowError:
        return datetime.min.replace(tzinfo=now.tzinfo)


def retention_job(settings: Settings, *, interval: float = DEFAULT_INTERVAL_S) -> Job | None:
    """The ``run`` service's periodic purge (every ``interval`` seconds, rows older than
    ``retention_days``), or None when ``retention_days`` is 0. Transient failures
    (:class:`~debug_sink.errors.TransientError`) propagate: the service retries at the next
    tick; a permanent one is logged and the sink keeps ingesting."""
    if settings.retention_days <= 0:
        return None
    retention = Retention.from_settings(settings)
    age = timedelta(days=settings.retention_days)

    async def job() -> None:
        try:
            await retention.purge(age)
        except PermanentError as exc:
            log.error("retention_failed", error=str(exc))

    return Job("retention", interval, job)
