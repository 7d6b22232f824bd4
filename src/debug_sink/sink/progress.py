"""Progress per partition, and the stalls an operator must see at a glance.

Owns :class:`Progress`: what the write side committed (per partition, and when it last moved),
what the fetch side sees at the end of each log (the high watermark), whether a batch is
being retried and since when. From these: the lag of each partition (records in the log not
yet committed) and :meth:`Progress.stalls` -- a partition with records waiting whose
committed offset has not moved for ``timeout`` seconds, or one batch retried that long.

Pure bookkeeping with an injectable clock: no I/O, no metrics (the runner exports them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from debug_sink.wire.secrets import safe_name

#: (topic, partition)
Key: TypeAlias = tuple[str, int]


@dataclass(slots=True)
class _Partition:
    committed: int | None = None
    end: int | None = None
    moved_at: float = 0.0
    #: The offset of the last commit (or of the positioning): a commit of another one moved.
    last: int | None = None


@dataclass(slots=True)
class Stalls:
    """What is stuck: partitions (``topic[partition]`` -> seconds without progress while
    records wait) and the batch being retried (seconds), if any."""

    partitions: dict[str, float] = field(default_factory=dict)
    batch_retry_s: float | None = None

    def __bool__(self) -> bool:
        return bool(self.partitions) or self.batch_retry_s is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "partitions": {k: round(v, 1) for k, v in sorted(self.partitions.items())},
            "batch_retry_s": None if self.batch_retry_s is None else round(self.batch_retry_s, 1),
        }


class Progress:
    """Committed offsets, log ends and retries; see the module doc."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._partitions: dict[Key, _Partition] = {}
        self._retrying_since: float | None = None

    def assigned(self, keys: Iterable[Key]) -> None:
        """Start watching ``keys`` (the clock of each starts now); forget the others."""
        now = self._clock()
        wanted = set(keys)
        self._partitions = {k: self._partitions.get(k) or _Partition(moved_at=now) for k in wanted}
        for state in self._partitions.values():
            state.moved_at = now

    def positioned(self, key: Key, offset: int) -> None:
        """The stored offset the partition starts from (what is committed so far)."""
        state = self._partitions.setdefault(key, _Partition(moved_at=self._clock()))
        state.committed = state.last = offset

    def committed(self, next_offsets: Mapping[Key, int]) -> None:
        """A batch committed: these partitions moved."""
        now = self._clock()
        for key, offset in next_offsets.items():
            state = self._partitions.setdefault(key, _Partition(moved_at=now))
            if state.committed is None or offset > state.committed:
                state.committed = offset
            if offset != state.last:
                # Moved, also below where it was positioned (a broker that answered
                # ListOffsets(earliest) with an offset past the log's first records).
                state.last = offset
                state.moved_at = now
        self._retrying_since = None

    def log_end(self, key: Key, end: int | None) -> None:
        """The partition's high watermark, as the fetch side last saw it."""
        if key in self._partitions and end is not None:
            self._partitions[key].end = end

    def retrying(self, retrying: bool) -> None:
        """A write attempt failed (True) or succeeded (False)."""
        if not retrying:
            self._retrying_since = None
        elif self._retrying_since is None:
            self._retrying_since = self._clock()

    def lag(self) -> dict[Key, int]:
        """Records in each log not yet committed (partitions whose end and start are known)."""
        return {
            k: max(0, s.end - s.committed)
            for k, s in self._partitions.items()
            if s.end is not None and s.committed is not None
        }

    def stalls(self, timeout: float) -> Stalls:
        now = self._clock()
        stalls = Stalls()
        for (topic, partition), state in self._partitions.items():
            waiting = (
                state.end is not None
                and state.committed is not None
                and state.end > state.committed
            )
            if waiting and now - state.moved_at >= timeout:
                # Shown on /healthz: a topic's name (producers may create topics) as the
                # metric labels show it, with a secret in it replaced.
                stalls.partitions[f"{safe_name(topic)}[{partition}]"] = now - state.moved_at
        if self._retrying_since is not None and now - self._retrying_since >= timeout:
            stalls.batch_retry_s = now - self._retrying_since
        return stalls
