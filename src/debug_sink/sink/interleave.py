"""Time-ordered interleave of the assigned partitions: which fetched record goes into a batch next.

Why: an event's parents (a snapshot, an error, ...) travel on other topics. Handed out the
way the Kafka client fetches them -- thousands of records of one partition, then of the next
-- a backlog arrives children first: a step long before the snapshots it references. Each
such child is parked and written later (:mod:`debug_sink.sink.plan`), which is correct but slow;
benchmarked, half of a 200,000-event backlog was parked and the sink ran 5x slower than on
the same events without references.

So fetched records wait here, one buffer per partition, and leave in record-timestamp order
across partitions -- the way Kafka Streams chooses the next record of a task. Agents send a
parent before its children, so a batch holds, for each workflow, everything up to some
moment: children arrive with or after their parents.

Guarantees and limits:

- Records of one partition leave in offset order, so a batch still covers consecutive
  offsets per partition and the offsets stored with it never skip a record.
- The order is a heuristic, never a correctness condition: a child that still arrives first
  (clock skew between agents, a parent sent late, equal timestamps across a batch boundary)
  is parked as before.
- The interleave only hands out a record when every assigned partition that has more to fetch
  has something buffered here (otherwise an older record may still be on its way). It waits
  at most ``max_wait`` seconds for such a partition, then hands out what it has: a slow
  partition delays the others by that much, never stops them.

Pure and synchronous: the caller says which partitions are behind (position < high
watermark) and what time it is.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from debug_sink.sink.batch import message_size


class Record(Protocol):
    """What the interleave needs of a fetched record (aiokafka's ConsumerRecord has it)."""

    @property
    def timestamp(self) -> int: ...

    @property
    def offset(self) -> int: ...


P = TypeVar("P", bound=Hashable)


def record_size(record: Any) -> int:
    """Bytes of a fetched record, counted like a batch's items (:func:`message_size`)."""
    return message_size(record.key, record.value)


class TimeOrderedInterleave(Generic[P]):
    """Per-partition buffers of fetched records, emptied in timestamp order."""

    def __init__(
        self,
        max_wait: float,
        *,
        size: Callable[[Any], int] = record_size,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_wait = max_wait
        self._size = size
        self._clock = clock
        self._buffers: dict[P, deque[Any]] = {}
        self._bytes: dict[P, int] = {}
        self._heads: list[tuple[int, int, P]] = []  # (timestamp, tie-break, partition)
        self._order: dict[P, int] = {}
        self._total_bytes = 0
        self._count = 0
        self._blocked_since: float | None = None
        #: Takes that went ahead without a partition that was behind (max_wait ran out).
        self.forced_takes = 0

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._total_bytes

    def buffered_bytes(self, partition: P) -> int:
        return self._bytes.get(partition, 0)

    def has(self, partition: P) -> bool:
        return bool(self._buffers.get(partition))

    def add(self, partition: P, records: Iterable[Any]) -> None:
        """Buffer ``records`` of ``partition``, fetched in offset order."""
        buffer = self._buffers.get(partition)
        if buffer is None:
            buffer = self._buffers[partition] = deque()
            self._order.setdefault(partition, len(self._order))
        was_empty = not buffer
        added = 0
        for record in records:
            buffer.append(record)
            added += self._size(record)
            self._count += 1
        self._bytes[partition] = self._bytes.get(partition, 0) + added
        self._total_bytes += added
        if was_empty and buffer:
            heapq.heappush(self._heads, (buffer[0].timestamp, self._order[partition], partition))

    def forget(self, partitions: Collection[P] | None = None) -> int:
        """Drop the buffered records (of ``partitions``, or all); returns how many."""
        gone = (
            list(self._buffers)
            if partitions is None
            else [p for p in partitions if p in self._buffers]
        )
        dropped = 0
        for p in gone:
            buffer = self._buffers.pop(p)
            dropped += len(buffer)
            self._count -= len(buffer)
            self._total_bytes -= self._bytes.pop(p, 0)
        self._heads = [h for h in self._heads if h[2] in self._buffers and self._buffers[h[2]]]
        heapq.heapify(self._heads)
        self._blocked_since = None
        return dropped

    def seconds_until_forced(self, behind: Collection[P]) -> float | None:
        """While records wait for a partition that is behind: seconds until they go anyway."""
        if not self._count or not any(not self.has(p) for p in behind):
            return None
        if self._blocked_since is None:
            return self.max_wait
        return max(0.0, self.max_wait - (self._clock() - self._blocked_since))

    def take(self, limit: int, behind: Collection[P], *, may_force: bool = True) -> list[Any]:
        """Up to ``limit`` records in timestamp order (offset order within a partition).

        ``behind``: partitions with more records to fetch than were added here. While one
        of them has nothing buffered, nothing is handed out -- for at most ``max_wait``, and
        only when ``may_force`` (the caller says whether waiting longer costs anything: while
        the writer is busy it does not).
        """
        if not self._count or limit <= 0:
            return []
        waiting_on = [p for p in behind if not self.has(p)]
        forced = False
        if waiting_on:
            now = self._clock()
            if self._blocked_since is None:
                self._blocked_since = now
            if not may_force or now - self._blocked_since < self.max_wait:
                return []
            forced = True
            self.forced_takes += 1
        else:
            self._blocked_since = None
        behind_set = set(behind)
        out: list[Any] = []
        heads = self._heads
        while heads and len(out) < limit:
            _, order, partition = heads[0]
            buffer = self._buffers[partition]
            record = buffer.popleft()
            out.append(record)
            size = self._size(record)
            self._bytes[partition] -= size
            self._total_bytes -= size
            self._count -= 1
            if buffer:
                heapq.heapreplace(heads, (buffer[0].timestamp, order, partition))
            else:
                heapq.heappop(heads)
                if not forced and partition in behind_set:
                    # Its next records are not fetched yet: they may be older than what
                    # is left here. Wait for them (the next call decides how long).
                    break
        return out
