"""Accounting for the events the SDK could not deliver: why, how many, and a bounded log of it.

Owns :class:`DropReason` and :class:`DropLog`, which counts every dropped event by reason and
logs drops as ``emitter_events_dropped`` without flooding the log when an agent keeps
emitting into a full queue.

Guarantees: every drop is counted, exactly (:attr:`DropLog.by_reason`); the first drop of a
reason after a quiet interval is logged at once, with the event's kind and id when known;
the drops that follow within ``interval`` are summarised in one line per reason when the
interval has passed (or at :meth:`DropLog.flush`, which the emitter calls when it closes).

Drops may be recorded from any thread (the counters change under a lock); the summary timer
runs on the event loop of the thread that records, and a timer left on another loop (one
that has ended) is replaced.

Not guaranteed: a summary line when no event loop runs in the recording thread (the drops are
then logged at once), or one per drop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from uuid import UUID

import structlog

from debug_sink.wire.events import EventKind

__all__ = ["DropLog", "DropReason"]

# The emitter's logger: drop lines have always come from it, and log filters may rely on that.
log = structlog.get_logger("debug_sink.sdk.emitter")

_MAX_DETAIL_CHARS: Final = 500


class DropReason(StrEnum):
    """Why an event was not delivered."""

    QUEUE_FULL = "queue_full"
    UNSERIALISABLE = "unserialisable"
    INVALID = "invalid"
    REJECTED = "rejected"
    CLOSED = "closed"
    CLOSE_TIMEOUT = "close_timeout"
    CANCELLED = "cancelled"


class DropLog:
    """Drop counters by reason, and their rate-limited log lines.

    ``context`` gives further fields of every line (the emitter's queue level), read when
    the line is written.
    """

    def __init__(self, interval: float, context: Callable[[], Mapping[str, Any]]) -> None:
        self._interval = interval
        self._context = context
        self._dropped: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()

    @property
    def total(self) -> int:
        """Events dropped so far, for any reason."""
        with self._lock:
            return sum(self._dropped.values())

    @property
    def by_reason(self) -> Mapping[str, int]:
        """Events dropped so far, by reason; a snapshot."""
        with self._lock:
            return MappingProxyType(dict(self._dropped))

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, and no timer (the parent's loop does not run)."""
        self._lock = threading.RLock()
        self._timer = self._timer_loop = None

    def record(
        self,
        reason: DropReason,
        count: int,
        *,
        kind: EventKind | None = None,
        event_id: UUID | None = None,
        detail: str | None = None,
    ) -> None:
        """Count ``count`` dropped events and log them, or leave them to the next summary."""
        key = reason.value
        with self._lock:
            self._dropped[key] = self._dropped.get(key, 0) + count
            self._unlogged[key] = self._unlogged.get(key, 0) + count
            last = self._last_logged.get(key)
            if last is None or time.monotonic() - last >= self._interval:
                self._log(key, detail=detail, kind=kind, event_id=event_id)
            else:
                self._schedule(key)

    def flush(self) -> None:
        """Log every drop not logged yet, now."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = self._timer_loop = None
            for key in list(self._unlogged):
                self._log(key)

    def _schedule(self, key: str) -> None:
        loop = asyncio._get_running_loop()
        if loop is None:
            self._log(key)
            return
        if self._timer is not None:
            if self._timer_loop is loop:
                return
            self._timer.cancel()  # of a loop that has ended, or another thread's
        self._timer = loop.call_later(self._interval, self.flush)
        self._timer_loop = loop

    def _log(
        self,
        key: str,
        *,
        detail: str | None = None,
        kind: EventKind | None = None,
        event_id: UUID | None = None,
    ) -> None:
        count = self._unlogged.pop(key, 0)
        if not count:
            return
        self._last_logged[key] = time.monotonic()
        fields: dict[str, Any] = {
            "reason": key,
            "dropped": count,
            "dropped_total": self._dropped[key],
            **self._context(),
        }
        if kind is not None:
            fields["kind"] = kind.value
        if event_id is not None:
            fields["event_id"] = str(event_id)
        if detail:
            fields["detail"] = detail[:_MAX_DETAIL_CHARS]
        log.warning("emitter_events_dropped", **fields)
