"""The shipper: the spool to Kafka, known fixes from PostgreSQL, one process per hook dir.

Owns :class:`Shipper`, the background process hook invocations start on demand
(:func:`~debug_sink.hooks.control.spawn`), and :func:`serve`, its entry point. It

- sends the spool (:class:`~debug_sink.hooks.spool.Spool`) to Kafka in order, each record
  finished first (:class:`~debug_sink.hooks.finish.Finisher`: redacted, bounded,
  validated) and handed to the SDK's :class:`~debug_sink.sdk.emitter.Emitter` (acks=all,
  retries while the broker is away); a chunk's position is committed once the emitter has
  delivered all of it;
- answers the hook processes on ``<dir>/shipper.sock``: ``wake`` (new records), ``fixes``
  (the known fixes of an error type and tool, from ``known_fixes()`` through
  :class:`~debug_sink.read.queries.DebugQueries`, cached in memory and in the fixes cache
  files), ``flush`` (answer once the spool is shipped, or at a timeout, with what was shipped
  and dropped meanwhile), ``status``, ``stop``;
- fetches the known fixes of every error type it ships that has no fresh answer, so the next
  failure of that type finds them in the cache;
- keeps ``<dir>/status.json`` (broker reachable or not since when, what it shipped) and the
  counters of what it could not send (``rejected`` by the broker, ``invalid``, ``corrupt``);
- exits when nothing arrived for ``hook_idle_seconds`` (or, as ``debug-sink hook --flush``
  without a running shipper, once the spool is shipped).

Guarantees: one shipper per directory (``shipper.lock``, taken by the caller before anything
heavy is imported); a record's position is committed only after the broker acknowledged it
(so a record may be sent twice, never lost -- the sink stores it once by its id); records it
must drop (the broker refuses them for good, or they are not valid events) are counted and
logged; a hook directory removed (or replaced) while it runs is left to the shipper the next
hook starts for the new one -- this one stops, and touches neither its socket nor its status.
Not guaranteed: order across topics; known fixes when PostgreSQL is slow (a lookup
has :data:`LOOKUP_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Final

import structlog

from debug_sink.errors import ConfigurationError, DebugSinkError
from debug_sink.hooks import control, problems
from debug_sink.hooks.files import read_json, replace
from debug_sink.hooks.finish import Finisher, Unfinished
from debug_sink.hooks.fixes import MAX_STRATEGIES, STALE_LIMIT_S, read_cache, write_cache
from debug_sink.hooks.spool import Spool
from debug_sink.hooks.state import SessionStore
from debug_sink.sdk.emitter import Emitter, EmitterConfig
from debug_sink.settings import Settings
from debug_sink.wire.events import ErrorEvent, EventBase

__all__ = ["LOOKUP_TIMEOUT_S", "ShipResult", "Shipper"]

log = structlog.get_logger("debug_sink.hooks.shipper")

#: The longest a known-fixes query may take.
LOOKUP_TIMEOUT_S: Final = 1.0
#: How long a flush waits for the broker before the shipper says it is unreachable.
_DELIVERY_WAIT_S: Final = 3.0
_POLL_S: Final = 0.25
_DB_RETRY_S: Final = 30.0
_CONNECT_TIMEOUT_S: Final = 10.0
#: How often a spool position the disk refused is tried again.
_COMMIT_RETRY_S: Final = 1.0


class ShipResult:
    """What one shipper run did."""

    __slots__ = ("dropped", "left_bytes", "shipped")

    def __init__(self, shipped: int, dropped: int, left_bytes: int) -> None:
        self.shipped = shipped
        self.dropped = dropped
        self.left_bytes = left_bytes

    def as_dict(self) -> dict[str, int]:
        return {"shipped": self.shipped, "dropped": self.dropped, "left_bytes": self.left_bytes}


class Shipper:
    """Ships one hook directory's spool and answers its hook processes (module doc)."""

    def __init__(
        self,
        settings: Settings,
        directory: str,
        *,
        drain: bool = False,
        deadline: float | None = None,
        emitter: Emitter | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.drain = drain
        self.deadline = deadline
        self.spool = Spool(directory, settings.hook_spool_max_bytes)
        self._emitter = emitter or Emitter(
            settings, EmitterConfig(request_timeout_ms=5000, close_timeout=1.0)
        )
        self._finisher = Finisher(settings)
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_activity = time.monotonic()
        self._shipped = 0
        self._dropped = 0
        self._offset = 0
        self._uncommitted = False
        self._commit_retry_at = 0.0
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._fixes: dict[tuple[str, str], tuple[float, list[dict[str, Any]] | None]] = {}
        self._queries: Any = None
        self._db_task: asyncio.Task[None] | None = None
        self._prefetch: set[tuple[str, str]] = set()
        self._prefetch_task: asyncio.Task[None] | None = None
        self._broker_down_since: float | None = None
        self._seen_size = 0
        self._server: asyncio.AbstractServer | None = None
        #: The directory this shipper serves, held open: while it is, its inode cannot be
        #: reused, so a directory removed and made again at the same path is told apart.
        self._dir_fd = -1

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> ShipResult:
        """Ship until idle (or drained, or the deadline); then close everything."""
        await self._start()
        try:
            await self._ship_loop()
        finally:
            if self._uncommitted:
                self._commit()  # a last try: the next shipper starts from what is written
            await self._close()
        return ShipResult(self._shipped, self._dropped, self._pending())

    async def _start(self) -> None:
        with contextlib.suppress(OSError):
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        SessionStore(self.directory).expire()
        _expire_fixes(self.directory)
        self._offset = self.spool.start()
        if self.settings.postgres_dsn is not None and self.settings.hook_context:
            self._db_task = asyncio.create_task(self._connect_db(), name="hook-shipper-db")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control.socket_path(self.directory))  # a dead shipper's: we hold the lock
        address = control.socket_address(self.directory)
        if address is None:
            log.warning(
                "hook_shipper_without_socket",
                path=control.socket_path(self.directory),
                detail="too long for a Unix socket and no /proc to bind it through",
            )
        else:
            path, fd = address
            try:
                self._server = await asyncio.start_unix_server(self._serve_client, path)
            finally:
                if fd >= 0:
                    os.close(fd)
        self._write_status(state="running")
        log.info("hook_shipper_started", directory=self.directory, pending=self._pending())

    async def _close(self) -> None:
        own = self._own_directory()
        if self._server is not None:
            self._server.close()
            if own:  # else the socket there is another shipper's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(control.socket_path(self.directory))
        for task in (self._db_task, self._prefetch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._queries is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queries.close(), 5)
        left = self._pending()
        # What the emitter still holds was never committed: the next shipper sends it again
        # (the emitter counts it as dropped on close; it is not lost).
        await self._emitter.close(timeout=0 if self._broker_down_since else 1.0)
        if own:  # else the status there is another shipper's
            if self._broker_down_since is not None:
                self._write_status(state="stopped", **_broker_problem(self.settings))
            else:
                self._write_status(state="stopped")
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        for waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_result(None)
        log.info(
            "hook_shipper_stopped", shipped=self._shipped, dropped=self._dropped, left_bytes=left
        )

    async def _ship_loop(self) -> None:
        while not self._stopping:
            if not self._own_directory():
                log.warning(
                    "hook_shipper_directory_gone",
                    directory=self.directory,
                    detail="removed or replaced: the next hook starts a shipper for the new one",
                )
                return
            lines, next_offset = self.spool.read(self._offset)
            if lines:
                self._last_activity = time.monotonic()
                if not await self._ship(lines):
                    return  # idle or deadline while the broker was away
                self._offset = next_offset
                self._commit()
                continue
            if self._uncommitted and time.monotonic() >= self._commit_retry_at:
                self._commit()
            self._drained()
            if self.drain or self._out_of_time() or self._idle():
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)

    async def _ship(self, lines: list[bytes]) -> bool:
        """Send ``lines``; True once all are delivered or dropped (counted), False when the
        shipper should stop first (they stay in the spool)."""
        before = self._emitter.stats.dropped
        sent = 0
        for line in lines:
            if not line.strip():
                continue
            model = self._model(line)
            if model is None:
                continue
            try:
                await self._emitter.emit(model)
            except Exception as exc:  # one record must not stop the spool (see _model)
                self._drop_record("invalid", exc)
                continue
            sent += 1
            if isinstance(model, ErrorEvent) and model.operation_name:
                self._want_fixes(model.error_type, model.operation_name)
        while not await self._emitter.flush(_DELIVERY_WAIT_S):
            self._broker_unreachable()
            if self._stopping or self._out_of_time() or self._idle(grow=True):
                return False
        self._broker_reachable()
        rejected = self._emitter.stats.dropped - before
        if rejected:
            self._count("rejected", rejected)
            log.warning("hook_events_rejected", events=rejected)
        self._shipped += sent - rejected
        return True

    def _model(self, line: bytes) -> EventBase | None:
        """The record of one spool line, finished; ``None`` when it is dropped (counted).

        Any exception counts: a line is whatever the disk holds (a crash's torn write,
        garbage), and one that ``json.loads`` or the finisher cannot take -- a
        ``RecursionError`` for 100,000 nested brackets, a ``MemoryError`` -- must not stop
        every later record from shipping. Only cancellation passes."""
        try:
            record = json.loads(line)
            return self._finisher.finish(str(record["kind"]), record["event"])
        except Unfinished as exc:
            self._drop_record("invalid", exc)
        except Exception as exc:
            self._drop_record("corrupt", exc)
        return None

    def _drop_record(self, reason: str, exc: BaseException) -> None:
        self._count(reason)
        log.warning(
            "hook_record_dropped",
            reason=reason,
            error_type=type(exc).__name__,
            error=str(exc)[:300],
        )

    def _commit(self) -> None:
        """Write the spool position (everything before ``_offset`` is acknowledged) and empty
        the spool once it is all shipped. On a full disk the position lives on in memory --
        this shipper goes on from it, sends nothing twice, and tries to write it again every
        :data:`_COMMIT_RETRY_S` -- and emptying the spool (which needs no room) writes it
        as 0. Said once in the log, and once more when it is written again. Nothing is
        written into a directory that is no longer this shipper's."""
        if not self._own_directory():
            return
        try:
            if self._offset >= self.spool.size() and self.spool.compact(self._offset):
                self._offset = 0
            else:
                self.spool.commit(self._offset)
        except OSError as exc:
            self._commit_retry_at = time.monotonic() + _COMMIT_RETRY_S
            if not self._uncommitted:
                log.warning(
                    "hook_spool_position_not_saved",
                    error=str(exc)[:300],
                    offset=self._offset,
                    detail="this shipper goes on from it; it is written once the disk allows",
                )
            self._uncommitted = True
            return
        if self._uncommitted:
            log.info("hook_spool_position_saved", offset=self._offset)
        self._uncommitted = False

    def _own_directory(self) -> bool:
        """Whether :attr:`directory` is still the one this shipper started in: not removed
        (``rm -rf`` of the hook dir while it runs), nor replaced by a new one at the same
        path -- whose spool, socket and status belong to the shipper the next hook starts."""
        if self._dir_fd < 0:
            return True  # could not be opened: nothing to compare
        try:
            held = os.fstat(self._dir_fd)
            there = os.stat(self.directory)
        except OSError:
            return False
        return held.st_nlink > 0 and (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    def _drained(self) -> None:
        for waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._flush_waiters.clear()

    def _idle(self, *, grow: bool = False) -> bool:
        if grow:
            # New records keep coming while the broker is away: not idle.
            size = self.spool.size()
            if size != self._seen_size:
                self._seen_size = size
                self._last_activity = time.monotonic()
        return time.monotonic() - self._last_activity > self.settings.hook_idle_seconds

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _pending(self) -> int:
        """Bytes not shipped yet (from this shipper's position: the one on disk may be
        behind it, on a full disk)."""
        return max(0, self.spool.size() - self._offset)

    def _count(self, reason: str, n: int = 1) -> None:
        self._dropped += n
        try:
            self.spool.count(reason, n)
        except OSError as exc:  # a full disk: the log line is all there is
            log.warning("hook_count_not_saved", reason=reason, events=n, error=str(exc)[:300])

    # -- the broker's state ---------------------------------------------------------------

    def _broker_unreachable(self) -> None:
        if self._broker_down_since is None:
            self._broker_down_since = time.time()
            log.warning(
                "hook_broker_unreachable",
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                pending_bytes=self._pending(),
            )
            self._write_status(state="broker_unreachable", **_broker_problem(self.settings))

    def _broker_reachable(self) -> None:
        if self._broker_down_since is not None:
            log.info("hook_broker_back", down_s=round(time.time() - self._broker_down_since, 1))
            self._broker_down_since = None
            problems.clear(self.directory, "shipper-broker")
            problems.clear(self.directory, "spool-full")
            self._write_status(state="running")

    def _write_status(self, **fields: Any) -> None:
        status = {
            "pid": os.getpid(),
            "updated_at": time.time(),
            "bootstrap_servers": self.settings.kafka_bootstrap_servers,
            "shipped": self._shipped,
            "dropped": self._dropped,
            "broker_down_since": self._broker_down_since,
            **fields,
        }
        write_status(self.directory, status)

    # -- known fixes ----------------------------------------------------------------------

    async def _connect_db(self) -> None:
        from debug_sink.read.queries import DebugQueries

        while self._queries is None:
            try:
                self._queries = await asyncio.wait_for(
                    DebugQueries.connect(
                        self.settings.require_dsn(),
                        schema=self.settings.db_schema,
                        ssl=self.settings.postgres_ssl(),
                        min_size=1,
                        max_size=2,
                    ),
                    _CONNECT_TIMEOUT_S,
                )
            except (DebugSinkError, OSError, TimeoutError) as exc:
                log.warning("hook_fixes_database_unavailable", error=str(exc)[:300])
                await asyncio.sleep(_DB_RETRY_S)
        if self._prefetch:
            self._start_prefetch()

    async def fixes(self, error_type: str, tool: str) -> list[dict[str, Any]] | None:
        """The known fixes of ``error_type`` for ``tool`` (``None``: the database cannot say
        now); remembered for ``hook_context_ttl_seconds``."""
        key = (error_type, tool)
        now = time.time()
        known = self._fixes.get(key)
        if known is not None and now - known[0] < self.settings.hook_context_ttl_seconds:
            return known[1]
        if self._queries is None:
            self._want_fixes(error_type, tool)
            return None
        try:
            rows = await asyncio.wait_for(
                self._queries.known_fixes(error_type, None, tool, MAX_STRATEGIES),
                LOOKUP_TIMEOUT_S,
            )
        except (DebugSinkError, OSError, TimeoutError) as exc:
            log.warning("hook_fixes_lookup_failed", error=str(exc)[:300])
            return None
        write_cache(self.directory, error_type, tool, rows, now)
        cached = read_cache(self.directory, error_type, tool, now, float("inf"))
        plain = cached[0] if cached is not None else None
        self._fixes[key] = (now, plain)
        if len(self._fixes) > 10_000:
            self._fixes.clear()
        return plain

    def _want_fixes(self, error_type: str, tool: str) -> None:
        if self.settings.postgres_dsn is None or not self.settings.hook_context:
            return
        cached = read_cache(
            self.directory, error_type, tool, time.time(), self.settings.hook_context_ttl_seconds
        )
        if cached is not None and cached[1] and cached[0] is not None:
            return
        self._prefetch.add((error_type, tool))
        if self._queries is not None:
            self._start_prefetch()

    def _start_prefetch(self) -> None:
        if self._prefetch_task is None or self._prefetch_task.done():
            self._prefetch_task = asyncio.create_task(self._run_prefetch(), name="hook-prefetch")

    async def _run_prefetch(self) -> None:
        while self._prefetch:
            error_type, tool = self._prefetch.pop()
            await self.fixes(error_type, tool)

    # -- the socket -----------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            request = json.loads(line) if line.strip() else {}
            if not isinstance(request, dict):
                request = {}
            answer = await self._answer(request)
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self._last_activity = time.monotonic()
        self._wake.set()
        op = request.get("op")
        if op == "fixes":
            error_type, tool = request.get("error_type"), request.get("tool")
            if not isinstance(error_type, str) or not isinstance(tool, str):
                return {"error": "fixes needs error_type and tool"}
            return {"rows": await self.fixes(error_type, tool)}
        if op == "flush":
            timeout = request.get("timeout")
            shipped, dropped = self._shipped, self._dropped
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._flush_waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(waiter),
                    float(timeout) if isinstance(timeout, int | float) else None,
                )
            return {
                "shipped": self._shipped - shipped,
                "dropped": self._dropped - dropped,
                "shipped_total": self._shipped,
                "pending_bytes": self._pending(),
            }
        if op == "status":
            return {
                "pid": os.getpid(),
                "shipped": self._shipped,
                "dropped": self._dropped,
                "pending_bytes": self._pending(),
                "broker_down_since": self._broker_down_since,
                "database": self._queries is not None,
            }
        if op == "stop":
            self._stopping = True
            return {"ok": True}
        return {"ok": True}


def _broker_problem(settings: Settings) -> dict[str, str]:
    return {
        "problem": f"the Kafka broker at {settings.kafka_bootstrap_servers} does not "
        "acknowledge events; they wait in the spool",
        "problem_kind": "broker",
    }


def write_status(directory: str, status: Mapping[str, Any]) -> None:
    """Replace ``<dir>/status.json``."""
    with contextlib.suppress(OSError):
        replace(os.path.join(directory, control.STATUS_NAME), json.dumps(status).encode())


def _expire_fixes(directory: str) -> None:
    """Remove cached answers too old to be used."""
    cutoff = time.time() - STALE_LIMIT_S
    with contextlib.suppress(OSError):
        for entry in os.scandir(os.path.join(directory, "fixes")):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)


def serve(directory: str, *, drain: bool = False, timeout: float | None = None) -> ShipResult:
    """Run a shipper for ``directory`` until it is idle (``drain``: until the spool is
    shipped, or ``timeout``). The caller holds the directory's shipper lock. A setting that
    cannot work is written to the status (no new shipper is started for a minute) and
    raised."""
    from debug_sink.settings import load_settings

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        write_status(
            directory,
            {
                "pid": os.getpid(),
                "updated_at": time.time(),
                "state": "config_error",
                "problem": str(exc),
                "problem_kind": "settings",
                "retry_after": time.time() + 60,
            },
        )
        log.error("hook_shipper_settings_invalid", error=str(exc))
        raise
    deadline = time.monotonic() + timeout if timeout is not None else None
    previous = read_json(os.path.join(directory, control.STATUS_NAME))
    if isinstance(previous, dict) and previous.get("problem_kind") == "settings":
        problems.clear(directory, "shipper-settings")
    return asyncio.run(Shipper(settings, directory, drain=drain, deadline=deadline).run())
