"""The SDK's read side: which :class:`~debug_sink.read.queries.DebugQueries` a manager reads with.

Owns choosing and owning the manager's connection to PostgreSQL: the ``DebugQueries`` given,
else one opened on first use -- on the given pool, else the given DSN, else
``settings.postgres_dsn`` -- and closed with the manager. A manager that never reads never
connects. :class:`ReadMixin` gives the manager its read calls on top of it.

Guarantees: a ``DebugQueries`` or pool the caller passed in is never closed here; one opened
here is closed by :meth:`ReadSide.close` (idempotent; an attempt still connecting is
cancelled, or closed once open). Tasks that read at once while nothing
is open share one connection attempt: one pool is opened, not one per task (the others
would never be closed). Not guaranteed: that the database is reachable -- connecting fails
as :meth:`DebugQueries.connect` does (and the next read tries again).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from debug_sink.errors import ConfigurationError
from debug_sink.read.queries import DebugQueries
from debug_sink.sdk.workflows import UUIDLike
from debug_sink.settings import Settings

if TYPE_CHECKING:
    import asyncpg

__all__ = ["ReadMixin", "ReadSide"]


class ReadSide:
    """The manager's :class:`DebugQueries`: the one given, else opened on first use (on the
    pool, else the DSN, else ``settings.postgres_dsn``) and then closed with the manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        queries: DebugQueries | None,
        pool: asyncpg.Pool | None,
        dsn: str | None,
    ) -> None:
        self._settings = settings
        self._queries = queries
        self._pool = pool
        self._dsn = dsn
        self._owned = False
        self._connecting: asyncio.Future[DebugQueries] | None = None

    async def queries(self) -> DebugQueries:
        """The queries; :class:`~debug_sink.errors.ConfigurationError` without a DSN/pool."""
        if self._queries is not None:
            return self._queries
        if self._pool is not None:
            self._queries = DebugQueries(self._pool, schema=self._settings.db_schema)
            return self._queries
        dsn = self._dsn
        if dsn is None and self._settings.postgres_dsn is not None:
            dsn = self._settings.postgres_dsn.get_secret_value()
        if dsn is None:
            raise ConfigurationError(
                "the read side needs PostgreSQL: pass dsn=, pool= or queries=, or set "
                "DEBUG_SINK_POSTGRES_DSN"
            )
        connecting = self._connecting
        if connecting is None or connecting.get_loop() is not asyncio.get_running_loop():
            connecting = self._connecting = asyncio.ensure_future(self._connect(dsn))
            connecting.add_done_callback(self._connected)
        # Shielded: a reader that is cancelled does not cancel the others' connection.
        return await asyncio.shield(connecting)

    async def _connect(self, dsn: str) -> DebugQueries:
        queries = await DebugQueries.connect(
            dsn, schema=self._settings.db_schema, ssl=self._settings.postgres_ssl()
        )
        self._queries, self._owned = queries, True
        return queries

    def _connected(self, connecting: asyncio.Future[DebugQueries]) -> None:
        """The attempt is over (the next read after a failure tries again)."""
        if self._connecting is connecting:
            self._connecting = None
        if not connecting.cancelled():
            connecting.exception()  # retrieved: every reader waiting has been told

    async def close(self) -> None:
        """Close what :meth:`queries` opened, an attempt still connecting included (it goes
        on when the reader that started it gives up: left alone, it would open a pool after
        this that nothing closes); idempotent."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None and connecting.get_loop() is asyncio.get_running_loop():
            connecting.cancel()
            await asyncio.wait({connecting})  # finished first: the pool is closed below
        if self._owned and self._queries is not None:
            await self._queries.close()
            self._queries = None
            self._owned = False


class ReadMixin:
    """The read calls of :class:`~debug_sink.sdk.manager.DebugStateManager`, on its
    :class:`ReadSide`."""

    _read: ReadSide

    async def queries(self) -> DebugQueries:
        """The read side; :class:`~debug_sink.errors.ConfigurationError` without a DSN/pool."""
        return await self._read.queries()

    async def get_workflow_debug_summary(self, correlation_id: UUIDLike) -> dict[str, Any]:
        """:meth:`DebugQueries.get_workflow_debug_summary` (counts are 0 for an unknown id)."""
        return await (await self.queries()).get_workflow_debug_summary(correlation_id)

    async def get_recovery_patterns(self, min_success_count: int = 3) -> list[dict[str, Any]]:
        """:meth:`DebugQueries.get_recovery_patterns`."""
        return await (await self.queries()).get_recovery_patterns(min_success_count)
