"""A BatchWriter fed batches of wire-format events, as the consumer would, for tests that
write through the writer without a broker (the ``sink`` fixture of this folder's conftest)."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg

from debug_sink.sink.writer import BatchWriter, WriteResult
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.support import ER, SN, ST


class Sink:
    """A BatchWriter fed batches of wire-format events, as the consumer would."""

    def __init__(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        self.pool = pool
        self.conn = conn
        self._offsets = itertools.count()

    def writer(self, park_grace: float = 600) -> BatchWriter:
        return BatchWriter(self.pool, group_id="parking", park_grace=park_grace)

    async def write(
        self, *events: tuple[EventKind, dict[str, Any]], park_grace: float = 600
    ) -> WriteResult:
        return await self.writer(park_grace).write(s.batch_of(events, self._offsets))

    async def waits(self) -> set[tuple[str, str]]:
        """(awaited id, event id) of every parked event, checked against sink_parked_waits."""
        pairs = await s.parked_waits(self.conn)
        event_of = {
            r["id"]: str(r["event_id"])
            for r in await self.conn.fetch("SELECT id, event_id FROM sink_parked_events")
        }
        return {(str(parent), event_of[parked]) for parent, parked in pairs}

    async def row(self, kind: EventKind, event: dict[str, Any]) -> asyncpg.Record | None:
        table = {SN: "debug_state_snapshots", ER: "debug_error_events", ST: "debug_workflow_steps"}
        return await self.conn.fetchrow(
            f"SELECT * FROM {table[kind]} WHERE id = $1::uuid", event["id"]
        )
