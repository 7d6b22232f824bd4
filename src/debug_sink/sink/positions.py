"""Where the consumer reads each assigned partition: the stored offset, and how far behind.

Owns positioning -- on assignment, the consumer is sought to the offset stored in PostgreSQL
(or the log's first record when none is stored) before the partition is fetched -- and the two
questions the fetch side asks about positions: which partitions are *behind* (more in the
log than fetched: the interleave waits for them) and whether everything is *caught up* (read
and written to the end: the idle exit of ``--exit-when-idle``).

Every position set here is also told to :class:`~debug_sink.sink.recovery.FetchRecovery`
(where to rewind after an undecodable batch) and :class:`~debug_sink.sink.progress.Progress`
(what is committed so far).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from debug_sink.errors import TransientError
from debug_sink.metrics import Metrics
from debug_sink.sink.offsets import PartitionKey
from debug_sink.sink.partitions import Assignment
from debug_sink.sink.progress import Progress
from debug_sink.sink.recovery import FetchRecovery

log = structlog.get_logger("debug_sink")

#: Reads the stored offsets of some partitions: ``{(topic, partition): next_offset}`` of
#: those that have one (:func:`debug_sink.sink.offsets.stored` in production).
OffsetLoader = Callable[[Sequence[PartitionKey]], Awaitable[Mapping[PartitionKey, int]]]


class Positions:
    """Positions of the assigned partitions in ``consumer``; see the module doc."""

    def __init__(
        self,
        consumer: Any,
        assignment: Assignment[TopicPartition],
        *,
        load_offsets: OffsetLoader,
        recovery: FetchRecovery,
        progress: Progress,
        metrics: Metrics,
        report_db: Callable[[bool], None],
    ) -> None:
        self._consumer = consumer
        self._assignment = assignment
        self._load_offsets = load_offsets
        self._recovery = recovery
        self._progress = progress
        self._metrics = metrics
        self._report_db = report_db

    async def seek_to_stored(self) -> None:
        """Position every assigned, unpositioned partition; retried on the next call while
        PostgreSQL is away (the partitions stay paused meanwhile)."""
        assignment = self._assignment
        wanted = assignment.unpositioned
        generation = assignment.generation
        try:
            stored = await self._load_offsets([(tp.topic, tp.partition) for tp in wanted])
        except TransientError as exc:
            self._report_db(False)
            self._metrics.retries.labels("postgres").inc()
            log.warning("seek_waiting_for_postgres", error=str(exc))
            await asyncio.sleep(0.5)
            return
        self._report_db(True)
        fresh = [tp for tp in wanted if (tp.topic, tp.partition) not in stored]
        starts = await self._log_starts(fresh) if fresh else {}
        # No await from here on: the partitions are sought in the assignment they were
        # asked for, or not at all.
        if generation != assignment.generation or wanted != assignment.unpositioned:
            return  # a rebalance happened meanwhile
        for tp in wanted:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                # Offset 0, not the answer to ListOffsets(earliest): see _log_starts.
                self._consumer.seek(tp, 0)
                self._recovery.positioned(tp, 0)
                self._progress.positioned((tp.topic, tp.partition), starts.get(tp, 0))
            else:
                self._consumer.seek(tp, offset)
                self._positioned(tp, offset)
        assignment.mark_positioned(wanted)
        self._consumer.resume(*wanted)
        log.info(
            "partitions_positioned",
            from_postgres=len(wanted) - len(fresh),
            from_beginning=len(fresh),
        )

    async def _log_starts(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Where the broker says the logs of ``partitions`` (no offset stored) start: where
        the lag and the stall check count from. Not where they are read from: that is
        offset 0. Tansu at times answers ListOffsets(earliest) with an offset past the first
        records of a log that several producers wrote to (seen: 166 for a partition whose
        records start at 0, 20 in a bench drain), and a group that started there never read
        those records. Where a log does start later (records deleted by retention), the
        first fetch at 0 is out of range and the consumer moves to the log's start
        (``auto_offset_reset="earliest"``); a commit below the answer moves the partition
        all the same (:meth:`Progress.committed`)."""
        try:
            return dict(await self._consumer.beginning_offsets(list(partitions)))
        except KafkaError:
            return {}

    def _positioned(self, tp: TopicPartition, offset: int) -> None:
        self._recovery.positioned(tp, offset)
        self._progress.positioned((tp.topic, tp.partition), offset)

    async def behind(self) -> list[TopicPartition]:
        """Positioned partitions with more to fetch (or not known yet): when they run dry in
        the interleave, it must wait for them."""
        behind = []
        for tp in self._assignment.positioned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                behind.append(tp)  # not fetched yet
                continue
            try:
                position = await self._consumer.position(tp)
            except KafkaError:
                continue
            if position < highwater:
                behind.append(tp)
        return behind

    async def all_read(self) -> bool:
        """True when every assigned partition is read to its log's end (and tell
        :class:`Progress` the ends)."""
        partitions = list(self._assignment)
        try:
            ends = await self._consumer.end_offsets(partitions)
        except KafkaError:
            return False
        caught_up = True
        for tp in partitions:
            try:
                position = await self._consumer.position(tp)
            except KafkaError:
                return False
            # The fetch high watermark is exact; some brokers (Tansu) answer ListOffsets with
            # the last batch's base offset + 1, which under-reports the end.
            end = max(ends.get(tp, 0), self._consumer.highwater(tp) or 0)
            self._progress.log_end((tp.topic, tp.partition), end)
            caught_up = caught_up and end <= position
        return caught_up
