"""The write path: one PostgreSQL transaction per batch.

This docstring is the correctness contract of debug-sink; :meth:`BatchWriter.write` runs it,
its steps marked ``# Step N`` in the code. For each batch:

1. sort: accepted events become rows to plan; messages rejected by validation
   (:mod:`debug_sink.wire.validation`) become dead letters. Then, in ONE transaction:
2. plan (:mod:`debug_sink.sink.plan`): dedupe snapshots by (correlation_id, state_hash)
   against the batch and the database, resolve references, park children whose parents are
   missing (:mod:`debug_sink.sink.parking`);
3. write (:mod:`debug_sink.sink.tables`): binary COPY of each kind's new rows (ids the
   lookups of step 2 did not find) straight into the real tables, parents first, with the
   foreign keys deferred to the end of the transaction. Every event is insert-once except
   workflow-step lifecycle events, which fold into one row: a step whose row is stored
   already is COPYed into a temporary staging table and merged (``INSERT ... SELECT ... ON
   CONFLICT (id) DO UPDATE``); a stored row of any other kind is skipped. The batch is
   written in one go, its foreign keys checked before step 4. A data error (SQLSTATE
   classes 22, 23) rolls that transaction back, and the batch is written again, bisecting
   the events inside the transaction (savepoints) until the offenders are isolated; they
   become dead letters and the rest lands;
4. release parked events whose parents this transaction wrote (through the index
   ``sink_parked_waits``; repeated while any are released), at most ``release_limit`` in
   all: the periodic release writes the rest, whose parents are stored by then;
5. dead letters (:mod:`debug_sink.sink.deadletters`): produced to the dead-letter topic, then
   stored in the table;
6. offsets (:mod:`debug_sink.sink.offsets`): the next offset of every partition in the batch;
7. commit. Only then:
8. mirror the offsets to Kafka, for lag tools only (never read back).

Result: after any crash, restart, rebalance, replay or re-sent message each valid event is
exactly one row, because the rows and the offsets that say "these messages are done" commit
atomically, and every row is keyed by the producer's event id.

A race lost to another writer (it stored the same event, or a snapshot of the same state,
after this transaction's lookups, so the insert fails on a unique key) rolls the transaction
back and runs it again at once; its lookups then find the row. Transient errors (connection
loss, restart, a race lost five times in a row) propagate as
:class:`~debug_sink.errors.DatabaseUnavailable`: nothing was committed, the caller retries
the same batch. Other database errors are translated at the boundary of
:mod:`debug_sink.db.pg`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn, is_data_error, translating
from debug_sink.errors import DatabaseUnavailable
from debug_sink.sink import deadletters, offsets, parking
from debug_sink.sink.batch import Batch, Item
from debug_sink.sink.deadletters import DeadLetter, DeadLetterPublisher, Letters
from debug_sink.sink.offsets import PartitionKey
from debug_sink.sink.plan import (
    PARENT_KINDS,
    WRITE_ORDER,
    Lookups,
    Pending,
    Plan,
    lookups_needed,
    make_plan,
    split_stored,
)
from debug_sink.sink.tables import (
    COLUMNS,
    LOOKUP_KINDS,
    LOOKUP_SQL,
    STEP_MERGE_SQL,
    STEP_STAGE,
    record_of,
)
from debug_sink.wire.events import TABLES, EventKind
from debug_sink.wire.validation import Accepted, Rejected

__all__ = ["BatchWriter", "OffsetMirror", "WriteResult"]

log = structlog.get_logger("debug_sink")

#: The tables of the events (a unique violation in one of them is a lost race).
_EVENT_TABLES = frozenset(TABLES.values())
#: Transactions tried in a row when each loses a race to another writer (_is_lost_race).
_RACE_ATTEMPTS = 5
#: How many rounds of "release what waited for what was just written" one transaction runs.
_RELEASE_ROUNDS = 16
#: At most this many parked events released by one transaction's rounds (BatchWriter's
#: ``release_limit``): the rest, their parents stored, are the periodic release's.
_RELEASE_LIMIT = 5000

#: The lookups are planned again each time the rows a writer has written double, from this
#: many rows on (:meth:`BatchWriter._lookup_sql`).
_REPLAN_FROM = 1000

#: Called with a batch's stored offsets after its transaction committed (step 8).
OffsetMirror = Callable[[Mapping[tuple[str, int], int]], Awaitable[None]]


def _sql(name: str) -> str:
    return sqlfiles.load("writer.sql")[name]


@dataclass(slots=True)
class WriteResult:
    """What one transaction did."""

    #: New rows per kind (what the tables gained).
    rows: dict[str, int] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    parked: int = 0
    released: int = 0
    duplicates: int = 0
    dangling: int = 0
    hash_replaced: int = 0
    redacted: int = 0
    duration_s: float = 0.0
    #: Ids of the rows (and snapshot aliases) written so far that parked events may await
    #: (of the kinds in plan.PARENT_KINDS).
    written: set[UUID] = field(default_factory=set)
    #: A release that took as many parked events as its limit allowed: more may be ready.
    more: bool = False

    def add_plan(self, plan: Plan) -> None:
        for kind, rows in plan.rows.items():
            # New rows only: a re-delivered event, or a step's later event merged into its
            # row, adds none (debug_sink_rows_written_total counts rows the tables gained).
            new, _ = split_stored(plan, kind)
            if new:
                self.rows[kind.value] = self.rows.get(kind.value, 0) + len(new)
            if kind in PARENT_KINDS:
                self.written.update(event.id for event in rows)
        self.written.update(alias for alias, _ in plan.aliases)
        self.parked += sum(1 for p in plan.parked if p.pending.parked_id is None)
        self.released += len(plan.released)
        self.duplicates += plan.duplicates
        self.dangling += plan.dangling


@dataclass(slots=True)
class BatchWriter:
    """Writes batches (and parked events) to PostgreSQL, exactly once. See the module doc.

    ``pool``: connections set up by :func:`~debug_sink.sink.tables.init_connection`;
    ``group_id``: whose offsets it stores; ``park_grace``: seconds an event waits for a
    missing parent; ``publish_dead_letters``: step 5's topic half (None: table only);
    ``mirror_offsets``: step 8 (None: no Kafka mirror); ``letters``: how dead letters are
    made (redacted, bounded); ``release_limit``: at most this many parked events released
    by one transaction's step 4 (memory and time bounded, however many events a parent
    written has waiting; the periodic release writes the rest).
    """

    pool: asyncpg.Pool
    _: KW_ONLY
    group_id: str
    park_grace: float
    publish_dead_letters: DeadLetterPublisher | None = None
    mirror_offsets: OffsetMirror | None = None
    letters: Letters = field(default_factory=Letters)
    release_limit: int = _RELEASE_LIMIT
    _rows_written: int = field(default=0, init=False, repr=False)
    #: PostgreSQL refused a row of the last batch written isolating (_write_once).
    _isolating: bool = field(default=False, init=False, repr=False)

    async def write(self, batch: Batch) -> WriteResult:
        """Write one batch and store its offsets, in one transaction (steps 1-8)."""
        started = time.perf_counter()
        with _database_failures("writing the batch"):
            result = await _retrying_lost_races(lambda: self._write_once(batch))
        self._rows_written += sum(result.rows.values())
        # Step 8: the Kafka mirror, for lag tools.
        if self.mirror_offsets is not None:
            await self.mirror_offsets(batch.next_offsets)
        result.duration_s = time.perf_counter() - started
        return result

    async def _write_once(self, batch: Batch) -> WriteResult:
        if not self._isolating:
            try:
                return await self._write_transaction(batch, isolate=False)
            except asyncpg.PostgresError as exc:
                if not is_data_error(exc) or _is_lost_race(exc):
                    raise
            # PostgreSQL refused a row of the batch (rare: validation catches nearly all),
            # and the transaction is rolled back. Again, isolating the offenders this time.
            log.info("batch_rewritten_isolating", events=len(batch.items))
        # Batches are written isolating for as long as PostgreSQL refuses rows in them, so
        # that a producer sending such rows in every batch costs one write per batch, not two.
        return await self._write_transaction(batch, isolate=True)

    async def _write_transaction(self, batch: Batch, *, isolate: bool) -> WriteResult:
        result = WriteResult()
        # Step 1: accepted events are planned, rejected messages are dead letters.
        pending = self._sort(batch.items, result)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_sql("defer_constraints"))
            # Steps 2 and 3: plan and write. First in one go, with no savepoint (3 round
            # trips fewer); a data error then fails the transaction and the batch is written
            # again, bisecting what PostgreSQL rejects (isolate).
            if isolate:
                rejected = await self._write_bisecting(conn, pending, result)
                self._isolating = bool(rejected)
            else:
                rejected = []
                if pending:
                    result.add_plan(await self._write_all(conn, pending))
            if rejected:
                # Built only when needed: hashing every origin cost ~1 ms per 2,500 events.
                by_origin = {item.origin: item for item in batch.items}
                for bad, exc in rejected:
                    if (item := by_origin.get(bad.origin)) is not None:
                        letter = self.letters.of_item(item, "database", _rejection(exc))
                        result.dead_letters.append(letter)
            # Step 4: parked events that waited for what was just written.
            await self._release_loop(conn, set(result.written), result)
            # Step 5: dead letters, topic then table.
            await self._store_dead_letters(conn, result.dead_letters)
            # Step 6: the offsets, in the same transaction as the rows.
            await offsets.store(conn, self.group_id, batch.next_offsets)
        # Step 7: committed (the transaction block ended without an exception).
        return result

    async def release_parked(self, *, limit: int | None = None) -> WriteResult:
        """Write parked events whose parents have arrived (e.g. through another replica) and
        those past their grace period (references NULL, originals kept in metadata), at
        most ``limit`` (default ``release_limit``) and what waited for them; ``more`` when
        the limit was reached (call again)."""
        started = time.perf_counter()
        most = self.release_limit if limit is None else limit
        with _database_failures("releasing parked events"):
            result = await _retrying_lost_races(lambda: self._release_once(most))
        self._rows_written += sum(result.rows.values())
        result.duration_s = time.perf_counter() - started
        return result

    async def _release_once(self, limit: int) -> WriteResult:
        result = WriteResult()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_sql("defer_constraints"))
            fresh, expired = await parking.releasable(conn, limit=limit)
            if not fresh and not expired:
                return result
            result.more = len(fresh) + len(expired) >= limit
            if fresh:
                await self._write_bisecting(conn, fresh, result, parked_rejects=True)
            if expired:
                await self._write_bisecting(conn, expired, result, expire=True, parked_rejects=True)
            await self._release_loop(conn, set(result.written), result)
            await self._store_dead_letters(conn, result.dead_letters)
        return result

    async def parked_count(self) -> int:
        """Events parked right now (for the gauge)."""
        with _database_failures("counting parked events"):
            async with self.pool.acquire() as conn:
                return await parking.count(conn)

    async def stored_offsets(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, int]:
        """The next offset to read of each of ``partitions`` that has one stored."""
        with _database_failures("reading stored offsets"):
            async with self.pool.acquire() as conn:
                return await offsets.stored(conn, self.group_id, partitions)

    async def close(self) -> None:
        """Close the pool (the sink owns it); one that will not close in time is terminated."""
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except Exception:
            self.pool.terminate()

    async def reset_connections(self) -> None:
        """After a lost database: connections that saw the failure may be broken, so none is
        reused (the pool opens fresh ones)."""
        await self.pool.expire_connections()

    # -- internals ----------------------------------------------------------------------

    def _sort(self, items: list[Item], result: WriteResult) -> list[Pending]:
        pending: list[Pending] = []
        for item in items:
            if isinstance(item.result, Rejected):
                letter = self.letters.of_item(item, item.result.error_class, item.result.reason)
                result.dead_letters.append(letter)
            else:
                accepted: Accepted = item.result
                result.hash_replaced += accepted.hash_replaced
                result.redacted += accepted.redacted
                pending.append(
                    Pending(
                        accepted.kind, accepted.event, item.origin, state_json=accepted.state_json
                    )
                )
        return pending

    async def _write_all(self, conn: Conn, pending: list[Pending], *, expire: bool = False) -> Plan:
        """Plan and write ``pending``, with no savepoint of its own; its deferred foreign keys
        are checked (then deferred again) before this returns. So a violation is raised here,
        for these events: inside _write_bisecting's savepoint, or failing the batch's
        transaction before step 4 (whose savepoints would take it for a released event's)
        and before step 5 publishes any dead letter."""
        plan = await self._plan(conn, pending, expire=expire)
        await self._apply(conn, plan)
        await conn.execute(_sql("check_then_defer_constraints"))
        return plan

    async def _write_bisecting(
        self,
        conn: Conn,
        pending: list[Pending],
        result: WriteResult,
        *,
        expire: bool = False,
        parked_rejects: bool = False,
    ) -> list[tuple[Pending, asyncpg.PostgresError]]:
        """Write ``pending``; on a data error split it until the offenders are isolated."""
        if not pending:
            return []
        try:
            async with conn.transaction():  # a savepoint
                plan = await self._write_all(conn, pending, expire=expire)
            result.add_plan(plan)
            return []
        except asyncpg.PostgresError as exc:
            if not is_data_error(exc) or _is_lost_race(exc):
                raise
            if len(pending) == 1:
                if parked_rejects and pending[0].parked_id is not None:
                    await self._dead_letter_parked(conn, pending[0], exc, result)
                return [(pending[0], exc)]
            middle = len(pending) // 2
            first = await self._write_bisecting(
                conn, pending[:middle], result, expire=expire, parked_rejects=parked_rejects
            )
            second = await self._write_bisecting(
                conn, pending[middle:], result, expire=expire, parked_rejects=parked_rejects
            )
            return first + second

    async def _plan(self, conn: Conn, pending: list[Pending], *, expire: bool) -> Plan:
        needed = lookups_needed(pending)
        keys = list(needed.snapshot_keys)
        rows = await conn.fetch(
            self._lookup_sql(),
            *(list(needed.ids[kind]) for kind in LOOKUP_KINDS),
            [correlation_id for correlation_id, _ in keys],
            [state_hash for _, state_hash in keys],
        )
        existing: dict[EventKind, set[UUID]] = {kind: set() for kind in EventKind}
        aliases: dict[UUID, UUID] = {}
        stored_keys: dict[tuple[UUID, str], UUID] = {}
        for what, id_, other, state_hash in rows:
            if what == "alias":
                aliases[id_] = other
            elif what == "key":
                stored_keys[(other, state_hash)] = id_
            else:
                existing[EventKind(what)].add(id_)
        # An alias target exists by construction (FK), so references to it resolve.
        existing[EventKind.SNAPSHOT] |= set(aliases.values())
        return make_plan(pending, Lookups(existing, aliases, stored_keys), expire=expire)

    def _lookup_sql(self) -> str:
        """LOOKUP_SQL, as a new statement each time the rows this writer wrote double.

        asyncpg prepares a statement once per connection, and PostgreSQL soon reuses one
        generic plan for it, made for the table sizes of that moment; only an ANALYZE of the
        tables (autovacuum's, a minute or more later) plans it again. Made on empty tables,
        that plan scans them: on a fresh database the lookups of a 135-event batch grew from
        2 to 55 ms over the first 150,000 events. A new text is a new statement, planned for
        the sizes of now, so the tables this writer fills are at most about twice the size
        its plan was made for. (Old texts stay in asyncpg's statement cache: one per doubling,
        a few dozen at most.)
        """
        epoch = (self._rows_written // _REPLAN_FROM).bit_length()
        return f"{LOOKUP_SQL}\n-- plan {epoch}" if epoch else LOOKUP_SQL

    async def _apply(self, conn: Conn, plan: Plan) -> None:
        # New rows go straight into their tables. A stored row of an insert-once kind is a
        # re-delivery, skipped; a stored step is staged and merged into its row. A row that
        # another writer inserted after the lookups fails the COPY on the primary key: a
        # lost race (_is_lost_race), the batch is retried and then finds it.
        for kind in WRITE_ORDER:
            new, stored = split_stored(plan, kind)
            if new:
                await self._copy(conn, kind, TABLES[kind], new, plan.state_json)
            if stored and kind is EventKind.STEP:
                # Staging is empty at the start of a transaction (ON COMMIT DELETE ROWS) and
                # emptied by each merge. fetch(), not execute(): a prepared statement, planned
                # once per connection rather than on every run (~0.7 ms of ~1.1).
                await self._copy(conn, kind, STEP_STAGE, stored, plan.state_json)
                await conn.fetch(STEP_MERGE_SQL)
        if plan.aliases:
            await conn.execute(
                _sql("store_aliases"),
                [a for a, _ in plan.aliases],
                [k for _, k in plan.aliases],
            )
        await parking.park(conn, plan.parked, grace_s=self.park_grace)
        await parking.delete(conn, plan.released)

    @staticmethod
    async def _copy(
        conn: Conn, kind: EventKind, table: str, events: list[Any], states: Mapping[UUID, bytes]
    ) -> None:
        try:
            await conn.copy_records_to_table(
                table,
                records=[record_of(kind, e, states.get(e.id)) for e in events],
                columns=list(COLUMNS[kind]),
            )
        except (OverflowError, ValueError) as exc:
            # The driver could not encode a value (e.g. a timestamp whose UTC value is past
            # year 9999); it aborted the COPY. A data error of the rows: bisect.
            raise asyncpg.DataError(f"a value of {TABLES[kind]} cannot be encoded: {exc}") from exc

    async def _release_loop(self, conn: Conn, written: set[UUID], result: WriteResult) -> None:
        """Write parked events waiting for ids written in this transaction, transitively,
        at most ``release_limit`` of them (the rest, their parents stored, are the periodic
        release's)."""
        budget = self.release_limit
        for _ in range(_RELEASE_ROUNDS):
            if not written or budget <= 0:
                return
            pending = await parking.waiting_for(conn, written, limit=budget)
            if not pending:
                return
            budget -= len(pending)
            before = set(result.written)
            await self._write_bisecting(conn, pending, result, parked_rejects=True)
            # Only what was written: ids of events parked again release nothing (a duplicate
            # of a parked snapshot re-planned alone would be stored in its place).
            written = result.written - before

    async def _dead_letter_parked(
        self, conn: Conn, pending: Pending, exc: asyncpg.PostgresError, result: WriteResult
    ) -> None:
        """A parked event PostgreSQL rejects leaves the parked table and becomes a dead
        letter, stored and published with the others of this transaction."""
        assert pending.parked_id is not None
        letter = self.letters.of_parked(pending.origin, pending.event, "database", _rejection(exc))
        result.dead_letters.append(letter)
        await parking.delete(conn, [pending.parked_id])

    async def _store_dead_letters(self, conn: Conn, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        if self.publish_dead_letters is not None:
            await self.publish_dead_letters(letters)
        await deadletters.store(conn, letters, group_id=self.group_id)


def _rejection(exc: asyncpg.PostgresError) -> str:
    return f"rejected by PostgreSQL ({exc.sqlstate}): {exc}".replace("\n", " ")


async def _retrying_lost_races(attempt: Callable[[], Awaitable[WriteResult]]) -> WriteResult:
    """Run ``attempt`` (one transaction) again at once when it lost a race: the other
    writer's rows were committed when our insert failed on them, so the next attempt's
    lookups find them. After :data:`_RACE_ATTEMPTS` lost races the last one propagates."""
    for tries in range(1, _RACE_ATTEMPTS + 1):
        try:
            return await attempt()
        except asyncpg.UniqueViolationError as exc:
            if not _is_lost_race(exc) or tries == _RACE_ATTEMPTS:
                raise
            log.info("lost_race_retry", table=exc.table_name, constraint=exc.constraint_name)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _database_failures(what: str) -> Iterator[None]:
    """Transient failures and a race lost more than :data:`_RACE_ATTEMPTS` times in a row
    (:func:`_is_lost_race`) become DatabaseUnavailable (nothing was committed, the caller
    retries); the rest is translated at the db boundary."""
    with translating(None, doing=what):
        try:
            yield
        except asyncpg.UniqueViolationError as exc:
            if _is_lost_race(exc):
                raise DatabaseUnavailable(f"{what}: {exc}".replace("\n", " ")) from exc
            raise


def _is_lost_race(exc: BaseException) -> bool:
    """A concurrent writer stored an event between our lookups and our insert: the same id (an
    event table's primary key; the plan inserts only ids the lookups did not find) or the
    same snapshot (correlation_id, state_hash). Retrying the batch finds it, and skips,
    merges or aliases instead."""
    return (
        isinstance(exc, asyncpg.UniqueViolationError)
        and getattr(exc, "table_name", None) in _EVENT_TABLES
    )
