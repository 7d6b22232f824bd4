"""The emitter's bounded queue of encoded messages, from emit to the broker's acknowledgement.

Owns :class:`OutgoingMessage` (one encoded event as it goes to Kafka) and
:class:`OutgoingQueue`: the messages waiting to be handed to the producer, and the count and
bytes of those waiting *or* in flight, which is what the bounds limit.

Guarantees: the bounds (``max_events`` messages, ``max_bytes`` bytes of keys and values) hold
for waiting plus in-flight messages; a group is admitted whole or not at all
(:meth:`OutgoingQueue.fits`); messages put back after a failed send (:meth:`~OutgoingQueue.requeue`)
are taken before new ones, in their original order.

Messages may be put from any thread; the queue waits and wakes on one event loop at a time
(:meth:`OutgoingQueue.bind`), and moving to another loop puts what was in flight back.

Not guaranteed: order between a retried message and those taken while it was in flight. No
I/O: waiting for room, work or emptiness is on asyncio events the queue sets itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from debug_sink.wire.events import EventKind

__all__ = ["OutgoingMessage", "OutgoingQueue", "Queued"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One encoded event, as it goes to Kafka."""

    topic: str
    key: bytes
    value: bytes
    kind: EventKind
    event_id: UUID

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key)

    def json(self) -> dict[str, Any]:
        """The message value, decoded."""
        parsed: dict[str, Any] = orjson.loads(self.value)
        return parsed


@dataclass(order=True, slots=True)
class Queued:
    """A message in the queue; ``seq`` is its place in emit order, kept across retries."""

    seq: int
    message: OutgoingMessage = field(compare=False)


class OutgoingQueue:
    """Messages waiting or in flight, bounded by count and bytes.

    ``count`` and ``bytes`` cover waiting and in-flight messages; ``in_flight`` is the part
    handed to the producer: taken (:meth:`take`) and neither released nor requeued yet.

    Thread-safe: messages may be put from any thread (a sync traced function in a worker
    thread); the counters change under one lock, and the asyncio events are set on the loop
    they belong to (:meth:`bind`), through ``call_soon_threadsafe`` from another thread.
    Taking, releasing and waiting are for the loop's thread.
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._pending: deque[Queued] = deque()
        self._retry: list[Queued] = []
        self._flying: dict[int, Queued] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self.count = 0
        self.bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._make_events()

    def _make_events(self) -> None:
        # An asyncio.Event belongs to the loop that first waits on it: a new set per loop.
        self._has_work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        if self._retry or self._pending:
            self._has_work.set()
        if self.count == 0:
            self._empty.set()

    @property
    def in_flight(self) -> int:
        """Messages taken and not yet released or requeued."""
        return len(self._flying)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait and wake on ``loop`` from now on. Messages in flight on the previous loop
        (whose acknowledgements can no longer arrive) are put back to be sent again."""
        with self._lock:
            for item in self._flying.values():
                heapq.heappush(self._retry, item)
            self._flying.clear()
            self._loop = loop
            self._make_events()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held the parent's)."""
        self._lock = threading.Lock()

    def fits(self, messages: Sequence[OutgoingMessage]) -> bool:
        """Whether all of ``messages`` fit within the bounds now."""
        return self._fits(len(messages), sum(m.size for m in messages))

    def _fits(self, count: int, size: int) -> bool:
        return self.count + count <= self._max_events and self.bytes + size <= self._max_bytes

    @property
    def closed(self) -> bool:
        """Whether the queue was cleared for good (:meth:`clear` with ``close``)."""
        return self._closed

    def try_put(self, messages: Sequence[OutgoingMessage]) -> bool:
        """Queue all of ``messages`` if they fit (and the queue is not closed), else none;
        whether they were queued."""
        size = sum(m.size for m in messages)
        with self._lock:
            if self._closed or not self._fits(len(messages), size):
                return False
            for message in messages:
                self._pending.append(Queued(next(self._seq), message))
            self.count += len(messages)
            self.bytes += size
            self._empty.clear()
        self._wake(self._has_work)
        return True

    def take(self) -> Queued | None:
        """The next message to send, retried ones first; in flight until released or
        requeued."""
        with self._lock:
            if self._retry:
                item = heapq.heappop(self._retry)
            elif self._pending:
                item = self._pending.popleft()
            else:
                return None
            self._flying[item.seq] = item
            return item

    def requeue(self, item: Queued) -> None:
        """Put a message whose send failed back, ahead of new ones (unless it is no longer
        in flight: requeued by :meth:`bind`, or cleared)."""
        with self._lock:
            if self._flying.pop(item.seq, None) is None:
                return
            heapq.heappush(self._retry, item)
        self._wake(self._has_work)

    def release(self, item: Queued) -> bool:
        """Stop counting a message in flight: acknowledged, or dropped for good. False (and
        nothing changes) when it is no longer in flight."""
        with self._lock:
            if self._flying.pop(item.seq, None) is None:
                return False
            self.count -= 1
            self.bytes -= item.message.size
            empty = self.count == 0
        self._wake(self._room)
        if empty:
            self._wake(self._empty)
        return True

    def clear(self, *, close: bool = False) -> tuple[int, list[OutgoingMessage]]:
        """Empty the queue, in-flight messages included: how many it held, and the waiting
        ones. ``close``: for good -- later puts are refused, also one from another thread
        that decided to put before this."""
        with self._lock:
            self._closed = self._closed or close
            left = [q.message for q in (*self._retry, *self._pending)]
            self._retry.clear()
            self._pending.clear()
            self._flying.clear()
            count = self.count
            self.count = self.bytes = 0
        self._wake(self._empty)
        self._wake(self._room)
        return count, left

    def _wake(self, event: asyncio.Event) -> None:
        """Set ``event`` on its loop: directly on the loop's thread, else handed to it."""
        loop = self._loop
        if loop is None or asyncio._get_running_loop() is loop:
            event.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: its waiters are gone
            loop.call_soon_threadsafe(event.set)

    async def wait_for_work(self) -> None:
        """Wait until something is put or requeued (call after :meth:`take` found nothing)."""
        self._has_work.clear()
        if self._retry or self._pending:  # put from another thread since take()
            return
        await self._has_work.wait()

    async def wait_for_room(self, timeout: float) -> None:
        """Wait until a message is released, for at most ``timeout`` seconds."""
        self._room.clear()
        # asyncio.timeout, not wait_for: no inner task, so the waiter resumes in the loop step
        # the room (or the deadline) comes, not two or three steps later.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._room.wait()

    async def wait_until_empty(self) -> None:
        """Wait until nothing is waiting or in flight."""
        while self.count:
            self._empty.clear()
            if not self.count:
                return
            await self._empty.wait()
