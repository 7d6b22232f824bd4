"""The fetch side of the sink: Kafka records in, closed batches out.

Owns the consumer's partitions (:class:`~debug_sink.sink.partitions.Assignment`: the rebalance
callbacks, seeking to the offsets stored in PostgreSQL), polling, the time-ordered interleave
of fetched records, decoding each into an accepted event or a rejection, building batches and
handing them to the writer (:class:`~debug_sink.sink.handoff.Handoff`), backpressure and lag.

Decoding overlaps the database write: a batch is handed over only when the writer is free (by
whichever task notices first), so at most two batches are decoded at any time -- the one
being written and the one being built; and decoding yields to the writer between slices of
records, so the writer's next statement is sent as soon as the previous one returns. Fetched
records wait undecoded in the interleave.
Memory is bounded: a partition is paused when it has enough waiting, every partition with
something waiting when the bytes fetched but not yet committed reach ``max_inflight_bytes``,
and polling goes on either way -- which keeps the group membership alive while the database
is away.

Rebalance: when partitions are revoked, everything not yet committed is dropped (it is
re-read by the next owner, which seeks to the stored offsets); when partitions are assigned,
they stay paused until their stored offsets are read and sought to. Dropping uncommitted work
is always safe: nothing of it is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from debug_sink.metrics import OTHER_TOPIC, Metrics
from debug_sink.settings import Settings
from debug_sink.sink import offsets, records
from debug_sink.sink.batch import BatchBuilder, Item, Origin
from debug_sink.sink.expand import ExpansionEstimate, RecordExpander
from debug_sink.sink.handoff import Handoff
from debug_sink.sink.interleave import TimeOrderedInterleave
from debug_sink.sink.kafka import partition_buffer_bytes
from debug_sink.sink.offsets import PartitionKey
from debug_sink.sink.partitions import Assignment
from debug_sink.sink.positions import OffsetLoader, Positions
from debug_sink.sink.progress import Progress
from debug_sink.sink.recovery import FetchRecovery, Undecodable
from debug_sink.wire.validation import Accepted, ErrorClass, Rejected, ValidationConfig, decode

log = structlog.get_logger("debug_sink")


#: Records decoded between two yields to the writer: each of the writer's round trips per
#: batch waits, once PostgreSQL has answered, for the slice being decoded to end (~0.6 ms at
#: 8 realistic messages, ~2 ms at 32, ~18 ms at 256). 32 drained 7-19% faster than 256 in
#: each of four alternating pairs; 8 lowered p99 at 2k events/s in each of three pairs
#: against 32, and the extra turns of the event loop cost no throughput those drains could
#: measure (docs/PERFORMANCE.md, item 13).
_TAKE = 8
#: Shortest poll while the writer is busy (a due timer cannot act before the writer is free).
_BUSY_POLL = 0.02


class Fetcher:
    """Reads the assigned partitions into batches for the writer. See the module doc."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        *,
        load_offsets: OffsetLoader,
        handoff: Handoff,
        metrics: Metrics,
        stopping: asyncio.Event,
        exit_when_idle: bool = False,
        idle_grace: float = 15.0,
        before_idle_exit: Callable[[], Awaitable[bool]] | None = None,
        report_db: Callable[[bool], None] = lambda ok: None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.assignment: Assignment[TopicPartition] = Assignment()
        self._handoff = handoff
        self._metrics = metrics
        self._stopping = stopping
        self._exit_when_idle = exit_when_idle
        self._idle_grace = idle_grace
        self._before_idle_exit = before_idle_exit
        self._validation = ValidationConfig(
            topics=settings.topics,
            max_state_bytes=settings.max_state_bytes,
            max_depth=settings.max_depth,
            redact_patterns=settings.redact_patterns,
            redact_value_patterns=settings.redact_value_patterns,
        )
        # Records of the OTLP topics carry many events each (sink/expand.py).
        self._expander = RecordExpander(settings, self._validation)
        self._expansion = ExpansionEstimate()
        self._builder = BatchBuilder(
            settings.batch_max_events, settings.batch_max_bytes, settings.batch_max_age_ms / 1000
        )
        # How long an idle writer waits for a partition that is behind before the others
        # go ahead without it (a child read before its parent is parked: correct, slower).
        self._interleave: TimeOrderedInterleave[TopicPartition] = TimeOrderedInterleave(
            max_wait=max(0.5, settings.batch_max_age_ms / 1000)
        )
        self._started_at = time.monotonic()
        self._recovery = FetchRecovery(consumer)
        self.inflight_bytes = 0
        #: Committed offsets, log ends, stalls (the committer reports its commits here).
        self.progress = progress or Progress()
        self._positions = Positions(
            consumer,
            self.assignment,
            load_offsets=load_offsets,
            recovery=self._recovery,
            progress=self.progress,
            metrics=metrics,
            report_db=report_db,
        )
        records.install()

    @property
    def forced_takes(self) -> int:
        return self._interleave.forced_takes

    async def mirror_offsets(self, next_offsets: Mapping[PartitionKey, int]) -> None:
        """Commit stored offsets of partitions still assigned to Kafka (for lag tools)."""
        await offsets.mirror_to_kafka(self.consumer, next_offsets, self.assignment.__contains__)

    def listener(self) -> ConsumerRebalanceListener:
        """The rebalance listener to subscribe with."""
        return _Rebalance(self)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch until ``stopping``; then hand over the batch being built and end the writer."""
        last_lag_check = last_progress_check = 0.0
        while not self._stopping.is_set():
            if self.assignment.unpositioned:
                await self._positions.seek_to_stored()
            behind = await self._positions.behind()
            await self._fill_batch(behind)
            self.hand_over()
            self._recount_inflight()
            self._apply_backpressure()
            waits = [
                0.2,
                self._builder.seconds_until_due(),
                self._interleave.seconds_until_forced(behind),
            ]
            wait = min(w for w in waits if w is not None)
            if not self._handoff.writer_idle:
                # A full or due batch waits for the writer, which takes it when it is done
                # (Committer.after_batch); polling every millisecond meanwhile took CPU from
                # the writer's own Python work.
                wait = max(wait, _BUSY_POLL)
            try:
                # All buffered records: the interleave decides what goes into the batch.
                records = await self.consumer.getmany(timeout_ms=max(1, int(wait * 1000)))
            except KafkaError as exc:
                self._metrics.retries.labels("kafka").inc()
                log.warning("fetch_failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            except Exception as exc:  # a record the client cannot decode: never fatal
                records = await self._recovery.recover(
                    exc, self.assignment.positioned, self.assignment.fetching
                )
            for tp, messages in records.items():
                if not self.assignment.is_positioned(tp):
                    continue  # fetched before the assignment was positioned
                self._metrics.consumed.labels(self._metrics.topic(tp.topic)).inc(len(messages))
                self._recovery.received(tp, messages)
                self._interleave.add(tp, messages)
            now = time.monotonic()
            if now - last_progress_check >= 1.0:
                last_progress_check = now
                self._observe_progress()
            if now - last_lag_check >= 1.0 and not records:
                last_lag_check = now
                if await self._caught_up() and self._exit_when_idle:
                    # Parents may have landed through another replica since a child was
                    # parked here: release what can be released before calling it idle.
                    if self._before_idle_exit is not None and await self._before_idle_exit():
                        continue
                    log.info("idle_exit", partitions=len(self.assignment))
                    self._stopping.set()
        # Stop: hand over what was built; the writer writes it, then ends. Records still in
        # the interleave are not in any batch: their offsets are not stored, they are read
        # again.
        if len(self._builder):
            await self._handoff.put(self._builder.take(), self.assignment.generation)
        await self._handoff.finish()

    def hand_over(self) -> None:
        """Give the batch being built to the writer if it is due and the writer is free.

        A batch closes only when the writer takes it now: full, or at the age limit. While
        the writer is busy the batch fills up to the count/bytes limits (under a backlog
        batches are big: few transactions; when traffic is light latency stays at the age
        limit), and no third batch is decoded: records wait raw in the interleave.
        """
        builder = self._builder
        if len(builder) and self._handoff.writer_idle and (builder.full or builder.due()):
            self._handoff.offer(builder.take(), self.assignment.generation)

    # -- batches --------------------------------------------------------------------------

    async def _fill_batch(self, behind: list[TopicPartition]) -> None:
        """Move records from the interleave into the batch being built, oldest first,
        decoded a slice of :data:`_TAKE` at a time.

        Between slices the loop yields: the writer's next step runs as soon as its
        statement has returned, so decoding fills the time PostgreSQL works instead of
        delaying its next statement (a whole batch decoded in one go held the writer up for
        tens of milliseconds). Safe: a slice is in the batch before the loop yields, so a
        rebalance meanwhile discards whole slices only.
        """
        builder = self._builder
        # Waiting for a partition that is behind costs nothing while the writer is busy.
        writer_idle = self._handoff.writer_idle
        while not builder.full:
            room = self.settings.batch_max_events - len(builder)
            take = self._expansion.records_for(room, _TAKE)
            records = self._interleave.take(take, behind, may_force=writer_idle)
            if not records:
                return
            before = len(builder)
            for msg in records:
                if self._expander.handles(msg):
                    builder.add_record(self._expander.items(msg))
                else:
                    builder.add(self._decode(msg))
            self._expansion.observe(len(records), len(builder) - before)
            await asyncio.sleep(0)

    def _decode(self, msg: Any) -> Item:
        result: Accepted | Rejected
        if isinstance(msg, Undecodable):
            result = Rejected(ErrorClass.UNDECODABLE, msg.reason)
        else:
            result = decode(
                msg.topic, msg.value, timestamp_ms=msg.timestamp, config=self._validation
            )
        return Item(
            Origin(msg.topic, msg.partition, msg.offset),
            msg.key,
            msg.value,
            tuple(msg.headers or ()),
            msg.timestamp,
            result,
        )

    # -- flow control ---------------------------------------------------------------------

    def _recount_inflight(self) -> None:
        self.inflight_bytes = (
            self._interleave.size_bytes + self._builder.size_bytes + self._handoff.size_bytes
        )
        self._metrics.inflight_bytes.set(self.inflight_bytes)

    def _apply_backpressure(self) -> None:
        """Pause the partitions that have enough buffered here; keep fetching the others.

        A partition with nothing buffered is never paused: the interleave may be waiting for
        it, and what it can add is one fetch (``max_partition_fetch_bytes``). When everything
        in flight reaches ``max_inflight_bytes`` (or the writer is behind), every partition
        with something buffered is paused.
        """
        full = self.inflight_bytes >= self.settings.max_inflight_bytes or (
            self._builder.full and not self._handoff.writer_idle
        )
        cap = partition_buffer_bytes(self.settings)
        wanted = {
            tp
            for tp in self.assignment.positioned
            if self._interleave.has(tp) and (full or self._interleave.buffered_bytes(tp) >= cap)
        }
        pause, resume = self.assignment.repause(wanted)
        if pause:
            self.consumer.pause(*pause)
        if resume:
            self.consumer.resume(*resume)

    async def _caught_up(self) -> bool:
        """True when every assigned partition is read and written to its end."""
        assignment = self.assignment
        if not len(assignment):
            # Idle only when there is nothing to be assigned: no topic matches the pattern.
            # (A group still waiting for a killed member's session to expire has matching
            # topics but no assignment yet: that is not idle.)
            if time.monotonic() - self._started_at < self._idle_grace:
                return False
            try:
                topics = await self.consumer.topics()
            except KafkaError:
                return False
            return not any(re.search(self.settings.subscription_pattern, t) for t in topics)
        if (
            assignment.unpositioned
            or len(self._interleave)
            or len(self._builder)
            or not self._handoff.writer_idle
        ):
            return False
        return await self._positions.all_read()

    # -- rebalance ------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assignment.start_revocation()
        dropped = self._builder.discard() + self._interleave.forget()
        dropped += self._handoff.drop_waiting()
        self._recount_inflight()
        # Let a write attempt in progress finish (it may commit; that is fine: idempotent).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._handoff.write_idle.wait(), 30)
        self.assignment.revoke(revoked)
        self._recovery.forget(revoked)
        for tp in revoked:  # another member reports their lag now
            if self._metrics.topic(tp.topic) != OTHER_TOPIC:
                with contextlib.suppress(KeyError):
                    self._metrics.lag.remove(self._metrics.topic(tp.topic), str(tp.partition))
        log.info("partitions_revoked", partitions=len(revoked), dropped_uncommitted=dropped)

    def _observe_progress(self) -> None:
        """The log ends as fetched, the lag they make (true under load: from the high
        watermarks of the latest fetches, not from an idle poll), the stalls they show."""
        for tp in self.assignment.positioned:
            self.progress.log_end((tp.topic, tp.partition), self.consumer.highwater(tp))
        for (topic, partition), lag in self.progress.lag().items():
            label = self._metrics.topic(topic)
            if label != OTHER_TOPIC:  # topics nobody configured: their stalls still show
                self._metrics.lag.labels(label, str(partition)).set(lag)
        stalls = self.progress.stalls(self.settings.stall_timeout_seconds)
        self._metrics.stalled.labels("partition").set(1 if stalls.partitions else 0)
        self._metrics.stalled.labels("batch_retry").set(0 if stalls.batch_retry_s is None else 1)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        if any(self._expander.handles_topic(tp.topic) for tp in assigned):
            self._expansion.expect(self.settings.batch_max_events)
        self.assignment.assign(assigned)
        self.progress.assigned((tp.topic, tp.partition) for tp in assigned)
        if assigned:
            self.consumer.pause(*assigned)
        log.info(
            "partitions_assigned",
            partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned),
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._fetcher.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._fetcher.on_assigned(assigned)
