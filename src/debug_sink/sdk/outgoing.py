"""The emitter's bounded queue of encoded messages, from emit to the broker's acknowledgement.

Owns :class:`OutgoingMessage` (one encoded event as it goes to Kafka) and
:class:`OutgoingQueue`: the messages waiting to be handed to the producer, and the count and
bytes of those waiting *or* in flight, which is what the bounds limit.

Guarantees: the bounds (``max_events`` messages, ``max_bytes`` bytes of keys and values) hold
for waiting plus in-flight messages; a group is admitted whole or not at all
(:meth:`OutgoingQueue.fits`); messages put back after a failed send (:meth:`~OutgoingQueue.requeue`)
are taken before new ones, in their original order.

Not guaranteed: order between a retried message and those taken while it was in flight. No
I/O: waiting for room, work or emptiness is on asyncio events the queue sets itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
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
    handed to the producer, kept by the sender (:meth:`take` does not count it).
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._pending: deque[Queued] = deque()
        self._retry: list[Queued] = []
        self._seq = itertools.count()
        self.count = 0
        self.bytes = 0
        self.in_flight = 0
        self._has_work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()

    def fits(self, messages: Sequence[OutgoingMessage]) -> bool:
        """Whether all of ``messages`` fit within the bounds now."""
        size = sum(m.size for m in messages)
        return (
            self.count + len(messages) <= self._max_events and self.bytes + size <= self._max_bytes
        )

    def put(self, messages: Iterable[OutgoingMessage]) -> None:
        """Queue ``messages`` (the caller checked :meth:`fits`)."""
        for message in messages:
            self._pending.append(Queued(next(self._seq), message))
            self.count += 1
            self.bytes += message.size
        self._empty.clear()
        self._has_work.set()

    def take(self) -> Queued | None:
        """The next message to send, retried ones first; it still counts until released."""
        if self._retry:
            return heapq.heappop(self._retry)
        if self._pending:
            return self._pending.popleft()
        return None

    def requeue(self, item: Queued) -> None:
        """Put a message whose send failed back, ahead of new ones."""
        heapq.heappush(self._retry, item)
        self._has_work.set()

    def release(self, message: OutgoingMessage) -> None:
        """Stop counting a message: acknowledged, or dropped for good."""
        self.count -= 1
        self.bytes -= message.size
        self._room.set()
        if self.count == 0:
            self._empty.set()

    def clear(self) -> tuple[int, list[OutgoingMessage]]:
        """Empty the queue, in-flight messages included: how many it held, and the waiting
        ones."""
        left = [q.message for q in (*self._retry, *self._pending)]
        self._retry.clear()
        self._pending.clear()
        count = self.count
        self.count = self.bytes = self.in_flight = 0
        self._empty.set()
        self._room.set()
        return count, left

    async def wait_for_work(self) -> None:
        """Wait until something is put or requeued (call after :meth:`take` found nothing)."""
        self._has_work.clear()
        await self._has_work.wait()

    async def wait_for_room(self, timeout: float) -> None:
        """Wait until a message is released, for at most ``timeout`` seconds."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)

    async def wait_until_empty(self) -> None:
        """Wait until nothing is waiting or in flight."""
        await self._empty.wait()
