"""Parked events: rows whose referenced parent has not arrived yet, kept in PostgreSQL.

Owns every statement on ``sink_parked_events`` (``sql/parking.sql``; ``sink_parked_waits`` is
kept by the triggers of migration 009) and the conversion of a parked row back into an event
to plan. What to park is decided by :mod:`debug_sink.sink.plan`; when to release is decided by
the writer (parents written by the same transaction) and by the sink's periodic release
(parents written by another replica, or the grace period over).

Guarantees: an event is parked at most once per origin (topic, partition, offset, part), so a batch
re-written after a crash does not park it twice; a parked event's offset is committed with
the batch that parked it, so it lives here and nowhere else until it is written, aliased or
dead-lettered -- in the same transaction that deletes it from here. Not guaranteed: release
order across replicas (rows are locked with ``SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn
from debug_sink.sink.batch import Origin
from debug_sink.sink.plan import Parked, Pending
from debug_sink.wire.events import MODELS, EventKind


def _sql(name: str) -> str:
    return sqlfiles.load("parking.sql")[name]


async def park(conn: Conn, parked: Iterable[Parked], *, grace_s: float) -> None:
    """Park fresh events for ``grace_s`` seconds; update what re-planned ones wait for."""
    fresh: list[Parked] = []
    again: list[Parked] = []
    for p in parked:
        (fresh if p.pending.parked_id is None else again).append(p)
    if fresh:
        await conn.execute(
            _sql("park"),
            [p.pending.kind.value for p in fresh],
            [p.pending.event.id for p in fresh],
            [p.pending.event.correlation_id for p in fresh],
            # Python mode: orjson (the jsonb codec) writes ids and times, and the numbers
            # validation kept exactly (orjson.Fragment), which pydantic's JSON mode refuses.
            [p.pending.event.model_dump(exclude_none=True) for p in fresh],
            [_uuid_list(p.waiting_for) for p in fresh],
            [p.pending.origin.topic for p in fresh],
            [p.pending.origin.partition for p in fresh],
            [p.pending.origin.offset for p in fresh],
            [p.pending.origin.part for p in fresh],
            datetime.now(UTC) + timedelta(seconds=grace_s),
        )
    if again:
        await conn.execute(
            _sql("repark"),
            [p.pending.parked_id for p in again],
            [_uuid_list(p.waiting_for) for p in again],
        )


async def waiting_for(conn: Conn, written: Iterable[UUID], *, limit: int) -> list[Pending]:
    """Parked events waiting for any of the ``written`` ids, at most ``limit`` (the first
    parked), locked for this transaction."""
    rows = await conn.fetch(_sql("waiting_for_written"), list(written), limit)
    return [_pending_of(r) for r in rows]


async def releasable(conn: Conn, *, limit: int) -> tuple[list[Pending], list[Pending]]:
    """(events with an awaited parent now stored, events past their grace period), at most
    ``limit`` in all, locked for this transaction. The expired come first, through their
    index; the scan of every awaited id (O(parked)) runs only if they leave room."""
    expired = [_pending_of(r) for r in await conn.fetch(_sql("expired"), limit)]
    if len(expired) >= limit:
        return [], expired
    rows = await conn.fetch(_sql("ready"), limit - len(expired))
    return [_pending_of(r) for r in rows], expired


async def delete(conn: Conn, parked_ids: Sequence[int]) -> None:
    """Forget parked rows written, aliased or dead-lettered by this transaction."""
    if parked_ids:
        await conn.execute(_sql("delete"), list(parked_ids))


async def count(conn: Conn) -> int:
    return int(await conn.fetchval(_sql("count")))


async def expire_all(conn: Conn) -> None:
    """End every grace period now (dev mode: the parents' log is gone)."""
    await conn.execute(_sql("expire_all"))


def _uuid_list(ids: Iterable[UUID]) -> str:
    """``a,b`` for ``string_to_array(..., ',')::uuid[]``."""
    return ",".join(str(i) for i in ids)


def _pending_of(row: asyncpg.Record) -> Pending:
    kind = EventKind(row["kind"])
    event = MODELS[kind].model_validate(row["event"])
    origin = Origin(row["topic"], row["partition"], row["offset"], row["part"])
    return Pending(kind, event, origin, row["id"])
