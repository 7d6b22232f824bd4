"""Batching: which consumed records are written together, and the offsets they advance.

Pure and synchronous. A :class:`BatchBuilder` accumulates decoded records and says when the
batch must close: at ``max_events`` records, ``max_bytes`` of message values, or when the first
record is ``max_age`` seconds old. :meth:`BatchBuilder.take` hands over a :class:`Batch` with
the next offset to store for every partition it touched.

Guarantee: a batch's ``next_offsets`` cover exactly the records in it, so storing them with
the batch's rows never skips a record and never stores an offset past what was written. A
record that carries several events (an OTLP traces message) is several items, added together
by :meth:`BatchBuilder.add_record`: never split across two batches, since its offset is stored
once, with the batch that holds all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from debug_sink.wire.validation import Accepted, Rejected

TopicPartitionKey: TypeAlias = tuple[str, int]


def message_size(key: bytes | None, value: bytes | None) -> int:
    """What a message counts against the batch and in-flight byte limits."""
    return len(value or b"") + len(key or b"")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one event came from: its message, and ``part``, its index among the events of
    that message (0 unless a message carries several, as an OTLP traces message does)."""

    topic: str
    partition: int
    offset: int
    part: int = 0


@dataclass(frozen=True, slots=True)
class Item:
    """One consumed message and what validation made of it."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    result: Accepted | Rejected

    @property
    def size(self) -> int:
        """The message's bytes, counted once: against the first event of its message."""
        return message_size(self.key, self.value) if self.origin.part == 0 else 0


@dataclass(slots=True)
class Batch:
    items: list[Item] = field(default_factory=list)
    next_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    first_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    size_bytes: int = 0
    opened_at: float = 0.0

    def __len__(self) -> int:
        return len(self.items)

    @property
    def accepted(self) -> list[tuple[Item, Accepted]]:
        return [(item, item.result) for item in self.items if isinstance(item.result, Accepted)]

    @property
    def rejected(self) -> list[tuple[Item, Rejected]]:
        return [(item, item.result) for item in self.items if isinstance(item.result, Rejected)]

    def offset_ranges(self) -> dict[str, str]:
        """``topic[partition]`` -> ``first..last`` offsets, for the batch's log line."""
        return {
            f"{topic}[{partition}]": f"{self.first_offsets[(topic, partition)]}..{nxt - 1}"
            for (topic, partition), nxt in sorted(self.next_offsets.items())
        }


class BatchBuilder:
    """Accumulates items; closes a batch by count, bytes or age."""

    def __init__(
        self,
        max_events: int,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._batch = Batch()

    def __len__(self) -> int:
        return len(self._batch)

    @property
    def size_bytes(self) -> int:
        return self._batch.size_bytes

    def add(self, item: Item) -> None:
        batch = self._batch
        if not batch.items:
            batch.opened_at = self._clock()
        batch.items.append(item)
        batch.size_bytes += item.size
        key = (item.origin.topic, item.origin.partition)
        batch.first_offsets.setdefault(key, item.origin.offset)
        previous = batch.next_offsets.get(key, -1)
        batch.next_offsets[key] = max(previous, item.origin.offset + 1)

    def add_record(self, items: Iterable[Item]) -> None:
        """Add every item of one message (its events, in order): all in this batch."""
        for item in items:
            self.add(item)

    @property
    def full(self) -> bool:
        return len(self._batch) >= self.max_events or self._batch.size_bytes >= self.max_bytes

    def due(self) -> bool:
        """True when the batch must be written now (full, or its first item is old enough)."""
        if not self._batch.items:
            return False
        return self.full or self._clock() - self._batch.opened_at >= self.max_age

    def seconds_until_due(self) -> float | None:
        if not self._batch.items:
            return None
        return max(0.0, self.max_age - (self._clock() - self._batch.opened_at))

    def take(self) -> Batch:
        batch, self._batch = self._batch, Batch()
        return batch

    def discard(self, partitions: Iterable[TopicPartitionKey] | None = None) -> int:
        """Forget buffered items (of ``partitions``, or all); they will be fetched again.

        Used on rebalance: the partitions' next owner seeks to the offsets stored in
        PostgreSQL, so nothing buffered here may be written by us any more.
        """
        if partitions is None:
            dropped = len(self._batch)
            self._batch = Batch()
            return dropped
        gone = set(partitions)
        keep = [
            item
            for item in self._batch.items
            if (item.origin.topic, item.origin.partition) not in gone
        ]
        dropped = len(self._batch) - len(keep)
        opened_at = self._batch.opened_at
        self._batch = Batch()
        for item in keep:
            self.add(item)
        if keep:
            self._batch.opened_at = opened_at
        return dropped
