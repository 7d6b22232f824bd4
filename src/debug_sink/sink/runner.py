"""The running sink: Kafka consumer group -> validation -> batches -> :class:`BatchWriter`.

Owns the consumer loop and everything around it: connecting (and waiting out an absent
database or broker), the rebalance protocol, backpressure, retries, the periodic release of
parked events, the periodic jobs, metrics and health, and a clean stop.

Two tasks share the work so decoding overlaps the database write: the *fetch* task polls
Kafka, decodes and validates, and closes batches; the *write* task writes one batch at a time
(:mod:`debug_sink.sink.writer` holds the correctness contract). A batch is handed over only when
the writer is free (by whichever task notices first), so at most two batches are decoded at
any time: the one being written and the one being built. Fetched records wait undecoded in a
time-ordered merge (:mod:`debug_sink.sink.interleave`). Memory is bounded: a partition is paused when
it has enough waiting, every partition with something waiting when the bytes fetched but not
yet committed reach ``max_inflight_bytes``, and the fetch task keeps polling -- which keeps
the group membership alive while the database is away.

Rebalance: offsets live in PostgreSQL. When partitions are revoked, everything not yet
committed is dropped (it is re-read by the next owner, which seeks to the stored offsets);
when partitions are assigned, they stay paused until their stored offsets are read and sought
to. Dropping uncommitted work is always safe: nothing of it is in the database.

Stop (SIGTERM/SIGINT or :meth:`Sink.stop`): fetching stops, the batch being built and the one
in flight are written and committed within ``shutdown_timeout``, then everything closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from debug_sink.backoff import Backoff
from debug_sink.db.migrate import require_schema
from debug_sink.db.pg import DATABASE_ERRORS, is_transient, redact_dsn, translate_error
from debug_sink.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    TransientError,
)
from debug_sink.metrics import HttpServer, Metrics
from debug_sink.settings import Settings
from debug_sink.sink.batch import Batch, BatchBuilder, Item, Origin
from debug_sink.sink.interleave import TimeOrderedMerge
from debug_sink.sink.writer import (
    BatchWriter,
    DeadLetter,
    WriteResult,
    init_connection,
    stored_offsets,
)
from debug_sink.wire.validation import Accepted, Rejected, ValidationConfig, decode

log = structlog.get_logger("debug_sink")

#: Kafka Connect-style headers on dead-letter messages.
DLQ_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
)

PeriodicJob = Callable[[], Awaitable[Any]]


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (musl, macOS): nothing to do
    return trim


#: glibc keeps the memory of freed message buffers (bytes objects of a few KB, allocated
#: by malloc, not by Python's small-object allocator) in its heap, fragmented among live
#: ones, and the process's resident size creeps up over a long drain. Handing free pages
#: back (as Dask's workers do) measured -9 MB of peak RSS on a 400k-event drain. A call
#: walks the heap (~15-20 ms with a few hundred MB, 7% of the sink's samples when done after
#: every batch): at most every _TRIM_EVERY seconds.
_malloc_trim = _find_malloc_trim()
_TRIM_EVERY = 1.0


async def create_pool(
    settings: Settings, *, min_size: int = 1, max_size: int | None = None
) -> asyncpg.Pool:
    """A pool whose connections use the configured schema and have the staging tables."""
    dsn = settings.require_dsn()
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(  # type: ignore[call-overload]
            dsn,
            min_size=min_size,
            max_size=max_size or settings.postgres_pool_size,
            init=init_connection,
            ssl=settings.postgres_ssl(),
            command_timeout=120,
            server_settings={"search_path": settings.db_schema, "application_name": "debug-sink"},
        )
    except DATABASE_ERRORS as exc:
        raise translate_error(exc, dsn) from exc
    assert pool is not None
    return pool


async def _checked_pool(settings: Settings) -> asyncpg.Pool:
    """:func:`create_pool`, once the schema is known to be migrated far enough."""
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            await require_schema(conn, settings.db_schema)
    except BaseException as exc:
        pool.terminate()
        if isinstance(exc, DATABASE_ERRORS):
            raise translate_error(exc, settings.require_dsn()) from exc
        raise
    return pool


KafkaClient = TypeVar("KafkaClient", AIOKafkaConsumer, AIOKafkaProducer)


async def start_kafka_client(client: KafkaClient, settings: Settings) -> KafkaClient:
    """Start an aiokafka client; an unreachable broker becomes :class:`BrokerUnavailable`
    (transient: the caller may wait it out), and the half-started client is stopped."""
    try:
        await client.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        raise BrokerUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    return client


async def wait_for(
    what: str,
    connect: Callable[[], Awaitable[Any]],
    stopping: asyncio.Event,
    metrics: Metrics | None = None,
) -> Any:
    """Call ``connect`` until it succeeds; transient failures are logged and retried."""
    backoff = Backoff(initial=0.2, maximum=10.0)
    while True:
        try:
            return await connect()
        except TransientError as exc:
            if stopping.is_set():
                raise
            delay = backoff.next_delay()
            if metrics:
                metrics.retries.labels(what).inc()
            log.warning(
                "waiting_for_service", service=what, error=str(exc), retry_in_s=round(delay, 2)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)


@dataclass(slots=True)
class _Queued:
    batch: Batch
    generation: int


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._sink._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._sink._on_assigned(assigned)


class Sink:
    """``debug-sink run``. Use ``await Sink(settings).run()``; :meth:`stop` ends it cleanly."""

    def __init__(
        self,
        settings: Settings,
        *,
        exit_when_idle: bool = False,
        idle_grace: float = 15.0,
        metrics: Metrics | None = None,
        jobs: Sequence[tuple[str, float, PeriodicJob]] = (),
    ) -> None:
        if re.search(settings.topic_pattern, settings.dead_letter_topic):
            raise ConfigurationError(
                f"the dead-letter topic {settings.dead_letter_topic!r} matches the subscription "
                f"pattern {settings.topic_pattern!r}: dead letters would be consumed again"
            )
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.exit_when_idle = exit_when_idle
        self.idle_grace = idle_grace
        self._jobs = list(jobs)
        self._validation = ValidationConfig(
            topics=settings.topics,
            max_state_bytes=settings.max_state_bytes,
            max_depth=settings.max_depth,
            redact_patterns=settings.redact_patterns,
        )
        self._stopping = asyncio.Event()
        self._fetch_done = asyncio.Event()
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue(maxsize=1)
        self._builder = BatchBuilder(
            settings.batch_max_events, settings.batch_max_bytes, settings.batch_max_age_ms / 1000
        )
        # How long an idle writer waits for a partition that is behind before the others
        # go ahead without it (a child read before its parent is parked: correct, slower).
        self._merge: TimeOrderedMerge[TopicPartition] = TimeOrderedMerge(
            max_wait=max(0.5, settings.batch_max_age_ms / 1000)
        )
        self._generation = 0
        self._inflight_bytes = 0
        self._queued_bytes = 0
        self._writing: _Queued | None = None
        self._write_idle = asyncio.Event()
        self._write_idle.set()
        self._needs_seek: set[TopicPartition] = set()
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._writer: BatchWriter | None = None
        self._http: HttpServer | None = None
        self._db_ok = False
        self._started_at = time.monotonic()
        self._last_activity = time.monotonic()
        self._trimmed_at = time.monotonic()
        self.committed_batches = 0

    # -- public ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the sink to finish the batch in flight and exit."""
        self._stopping.set()

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http else None

    def health(self) -> dict[str, Any]:
        ready = bool(
            self._db_ok and self._consumer is not None and self._assigned and not self._needs_seek
        )
        return {
            "ready": ready,
            "postgres": self._db_ok,
            "kafka": self._consumer is not None,
            "assigned_partitions": len(self._assigned),
            "inflight_bytes": self._inflight_bytes,
        }

    async def run(self) -> None:
        settings = self.settings
        log.info("sink_starting", settings=settings.safe_summary())
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port:
                self._http = HttpServer(
                    self.metrics, self.health, settings.metrics_host, settings.metrics_port
                )
                await self._http.start()
                stack.push_async_callback(self._http.stop)
            self._pool = await wait_for(
                "postgres", lambda: _checked_pool(settings), self._stopping, self.metrics
            )
            stack.push_async_callback(self._close_pool)
            self._db_ok = True
            self._producer = await wait_for(
                "kafka", self._start_producer, self._stopping, self.metrics
            )
            stack.push_async_callback(self._producer.stop)
            self._writer = BatchWriter(
                self._pool,
                group_id=settings.group_id,
                park_grace=settings.park_grace_seconds,
                publish_dead_letters=self._publish_dead_letters,
            )
            self._consumer = await wait_for(
                "kafka", self._start_consumer, self._stopping, self.metrics
            )
            stack.push_async_callback(self._stop_consumer)
            log.info(
                "sink_started",
                group_id=settings.group_id,
                pattern=settings.topic_pattern,
                postgres=redact_dsn(settings.require_dsn()),
                kafka=settings.kafka_bootstrap_servers,
                metrics_port=self.http_port,
            )
            side = [
                asyncio.create_task(
                    self._periodic("release_parked", self._park_interval(), self._release_parked)
                )
            ]
            side += [
                asyncio.create_task(self._periodic(name, interval, job))
                for name, interval, job in self._jobs
                if interval > 0
            ]
            writer = asyncio.create_task(self._write_loop(), name="write")
            fetcher = asyncio.create_task(self._fetch_loop(), name="fetch")
            try:
                await self._supervise(fetcher, writer, side)
            finally:
                for task in (*side, fetcher, writer):
                    task.cancel()
                await asyncio.gather(*side, fetcher, writer, return_exceptions=True)
        log.info("sink_stopped", batches=self.committed_batches)

    # -- start/stop helpers -------------------------------------------------------------

    def _kafka_options(self) -> dict[str, Any]:
        return self.settings.kafka_client_options()

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self._kafka_options(),
            acks="all",
            linger_ms=5,
            enable_idempotence=False,
            request_timeout_ms=30000,
        )
        return await start_kafka_client(producer, self.settings)

    async def _start_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        consumer = AIOKafkaConsumer(
            **self._kafka_options(),
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            max_poll_interval_ms=300_000,
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(100, s.kafka_session_timeout_ms // 10),
            fetch_max_bytes=min(s.max_inflight_bytes // 2, 50 << 20),
            # Small per-partition fetches: one fetch brings a slice of every partition, which
            # the time-ordered merge needs (see _partition_buffer_bytes).
            max_partition_fetch_bytes=self._partition_buffer_bytes(),
            # aiokafka's default 500 ms fetch wait would add up to half a second to every
            # event's latency under light traffic; never wait longer than a batch may age.
            fetch_max_wait_ms=max(10, min(s.batch_max_age_ms, 100)),
        )
        await start_kafka_client(consumer, s)
        consumer.subscribe(pattern=s.topic_pattern, listener=_Rebalance(self))
        return consumer

    async def _stop_consumer(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._consumer.stop(), 15)

    async def _close_pool(self) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except (TimeoutError, Exception):
                self._pool.terminate()

    def _partition_buffer_bytes(self) -> int:
        """Bytes buffered per partition for the merge before that partition is paused."""
        return max(64 << 10, min(self.settings.max_inflight_bytes // 64, 1 << 20))

    def _park_interval(self) -> float:
        return max(0.5, min(5.0, self.settings.park_grace_seconds / 4 or 0.5))

    # -- supervision ----------------------------------------------------------------------

    async def _supervise(
        self,
        fetcher: asyncio.Task[None],
        writer: asyncio.Task[None],
        side: list[asyncio.Task[None]],
    ) -> None:
        """Wait until stop; propagate a crash of any task (never a silent half-dead sink)."""
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {fetcher, writer, stop_wait, *side}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Orderly stop: the fetcher hands over its last batch and ends; the writer drains.
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(fetcher), self.settings.shutdown_timeout)
                await asyncio.wait_for(asyncio.shield(writer), self.settings.shutdown_timeout)
            except TimeoutError:
                log.warning(
                    "shutdown_timeout",
                    seconds=self.settings.shutdown_timeout,
                    note="the batch in flight was not committed; it will be re-read",
                )
            for task in (fetcher, writer):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop_wait.cancel()

    # -- rebalance ------------------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._generation += 1
        dropped = self._builder.discard() + self._merge.forget()
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                dropped += len(queued.batch)
                self._queued_bytes -= queued.batch.size_bytes
        self._recount_inflight()
        # Let a write attempt in progress finish (it may commit; that is fine: idempotent).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._write_idle.wait(), 30)
        self._assigned -= revoked
        self._needs_seek -= revoked
        self._paused -= revoked
        log.info("partitions_revoked", partitions=len(revoked), dropped_uncommitted=dropped)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = set(assigned)
        self._needs_seek = set(assigned)
        self._paused = set()
        if self._consumer is not None and assigned:
            self._consumer.pause(*assigned)
        log.info(
            "partitions_assigned",
            partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned),
        )

    async def _seek_to_stored(self) -> None:
        assert self._consumer is not None
        assert self._pool is not None
        wanted = set(self._needs_seek)
        try:
            async with self._pool.acquire() as conn:
                offsets = await stored_offsets(
                    conn, self.settings.group_id, [(tp.topic, tp.partition) for tp in wanted]
                )
        except DATABASE_ERRORS as exc:
            if not is_transient(exc):
                raise
            self._db_ok = False
            self.metrics.retries.labels("postgres").inc()
            log.warning("seek_waiting_for_postgres", error=str(exc))
            await asyncio.sleep(0.5)
            return
        self._db_ok = True
        if wanted != self._needs_seek:  # a rebalance happened meanwhile
            return
        fresh = []
        for tp in wanted:
            offset = offsets.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                self._consumer.seek(tp, offset)
        if fresh:
            await self._consumer.seek_to_beginning(*fresh)
        self._needs_seek.clear()
        self._consumer.resume(*wanted)
        log.info(
            "partitions_positioned",
            from_postgres=len(wanted) - len(fresh),
            from_beginning=len(fresh),
        )

    # -- fetch ----------------------------------------------------------------------------

    def _recount_inflight(self) -> None:
        queued = self._queued_bytes
        writing = self._writing.batch.size_bytes if self._writing else 0
        self._inflight_bytes = self._merge.size_bytes + self._builder.size_bytes + queued + writing
        self.metrics.inflight_bytes.set(self._inflight_bytes)

    def _apply_backpressure(self) -> None:
        """Pause the partitions that have enough buffered here; keep fetching the others.

        A partition with nothing buffered is never paused: the merge may be waiting for it,
        and what it can add is one fetch (``max_partition_fetch_bytes``). When everything in
        flight reaches ``max_inflight_bytes`` (or the writer is behind), every partition with
        something buffered is paused. Polling goes on either way, which keeps the group
        membership alive while the database is away.
        """
        assert self._consumer is not None
        active = self._assigned - self._needs_seek
        full = self._inflight_bytes >= self.settings.max_inflight_bytes or (
            self._builder.full and not self._writer_idle()
        )
        cap = self._partition_buffer_bytes()
        wanted = {
            tp
            for tp in active
            if self._merge.has(tp) and (full or self._merge.buffered_bytes(tp) >= cap)
        }
        if wanted - self._paused:
            self._consumer.pause(*(wanted - self._paused))
        if (self._paused - wanted) & active:
            self._consumer.resume(*((self._paused - wanted) & active))
        self._paused = wanted

    async def _behind(self) -> list[TopicPartition]:
        """Positioned partitions with more to fetch (or not known yet). Also those with
        records in the merge: when they run dry there, the merge must wait for them."""
        assert self._consumer is not None
        behind = []
        for tp in self._assigned:
            if tp in self._needs_seek:
                continue
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

    def _fill_batch(self, behind: list[TopicPartition]) -> None:
        """Move records from the merge into the batch being built, oldest first."""
        builder = self._builder
        # Waiting for a partition that is behind costs nothing while the writer is busy.
        writer_idle = self._writer_idle()
        while not builder.full:
            room = self.settings.batch_max_events - len(builder)
            records = self._merge.take(min(room, 256), behind, may_force=writer_idle)
            if not records:
                return
            for msg in records:
                builder.add(self._decode(msg))

    async def _fetch_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        last_lag_check = 0.0
        while not self._stopping.is_set():
            if self._needs_seek:
                await self._seek_to_stored()
            behind = await self._behind()
            self._fill_batch(behind)
            self._hand_over()
            self._recount_inflight()
            self._apply_backpressure()
            waits = [
                0.2,
                self._builder.seconds_until_due(),
                self._merge.seconds_until_forced(behind),
            ]
            wait = min(w for w in waits if w is not None)
            try:
                # All buffered records: the merge decides what goes into the batch.
                records = await consumer.getmany(timeout_ms=max(1, int(wait * 1000)))
            except KafkaError as exc:
                self.metrics.retries.labels("kafka").inc()
                log.warning("fetch_failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for tp, messages in records.items():
                if tp in self._needs_seek or tp not in self._assigned:
                    continue  # fetched before the assignment was positioned
                self.metrics.consumed.labels(tp.topic).inc(len(messages))
                self._merge.add(tp, messages)
            if records:
                self._last_activity = time.monotonic()
            now = time.monotonic()
            if now - last_lag_check >= 1.0 and not records:
                last_lag_check = now
                if await self._caught_up() and self.exit_when_idle:
                    # Parents may have landed through another replica since a child was
                    # parked here: release what can be released before calling it idle.
                    if await self._release_all_parked():
                        continue
                    log.info("idle_exit", partitions=len(self._assigned))
                    self._stopping.set()
        # Stop: hand over what was built; the writer writes it, then ends. Records still in
        # the merge are not in any batch: their offsets are not stored, they are read again.
        if len(self._builder):
            await self._enqueue(_Queued(self._builder.take(), self._generation))
        await self._queue.put(None)
        self._fetch_done.set()

    def _writer_idle(self) -> bool:
        return self._writing is None and self._queue.empty()

    def _should_close_batch(self) -> bool:
        """Close a batch only when the writer takes it now: full, or at the age limit. While
        the writer is busy the batch fills up to the count/bytes limits (under a backlog
        batches are big: few transactions; when traffic is light latency stays at the age
        limit), and no third batch is decoded: records wait raw in the merge."""
        if not len(self._builder) or not self._writer_idle():
            return False
        return self._builder.full or self._builder.due()

    def _hand_over(self) -> None:
        """Give the batch being built to the writer, if it is due and the writer is free."""
        if self._should_close_batch():
            batch = self._builder.take()
            self._queued_bytes += batch.size_bytes
            self._queue.put_nowait(_Queued(batch, self._generation))

    async def _enqueue(self, queued: _Queued) -> None:
        self._queued_bytes += queued.batch.size_bytes
        await self._queue.put(queued)

    def _decode(self, msg: Any) -> Item:
        result: Accepted | Rejected = decode(
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

    async def _caught_up(self) -> bool:
        """Update lag; True when every assigned partition is read and written to its end."""
        assert self._consumer is not None
        if not self._assigned:
            # Idle only when there is nothing to be assigned: no topic matches the pattern.
            # (A group still waiting for a killed member's session to expire has matching
            # topics but no assignment yet: that is not idle.)
            if time.monotonic() - self._started_at < self.idle_grace:
                return False
            try:
                topics = await self._consumer.topics()
            except KafkaError:
                return False
            return not any(re.search(self.settings.topic_pattern, t) for t in topics)
        if (
            self._needs_seek
            or len(self._merge)
            or len(self._builder)
            or not self._queue.empty()
            or self._writing
        ):
            return False
        assigned = list(self._assigned)
        try:
            ends = await self._consumer.end_offsets(assigned)
        except KafkaError:
            return False
        caught_up = True
        for tp in assigned:
            try:
                position = await self._consumer.position(tp)
            except KafkaError:
                return False
            # The fetch high watermark is exact; some brokers (Tansu) answer ListOffsets with
            # the last batch's base offset + 1, which under-reports the end.
            end = max(ends.get(tp, 0), self._consumer.highwater(tp) or 0)
            lag = max(0, end - position)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
            caught_up = caught_up and lag == 0
        return caught_up

    # -- write ----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            queued = await self._queue.get()
            if queued is None:
                return
            self._queued_bytes -= queued.batch.size_bytes
            self._writing = queued
            self._write_idle.clear()
            try:
                await self._write_with_retry(queued)
            finally:
                self._writing = None
                self._write_idle.set()
                self._recount_inflight()
            if not self._stopping.is_set():
                self._hand_over()  # the next batch, without waiting for the fetch task
            if _malloc_trim is not None and time.monotonic() - self._trimmed_at >= _TRIM_EVERY:
                _malloc_trim(0)
                self._trimmed_at = time.monotonic()

    async def _write_with_retry(self, queued: _Queued) -> None:
        assert self._writer is not None
        backoff = Backoff(initial=0.2, maximum=10.0)
        batch = queued.batch
        while True:
            if queued.generation != self._generation:
                log.info("batch_abandoned", reason="partitions revoked", events=len(batch))
                return
            try:
                result = await self._writer.write(batch)
                break
            except TransientError as exc:
                self._db_ok = not isinstance(exc, DatabaseUnavailable)
                if isinstance(exc, DatabaseUnavailable) and self._pool is not None:
                    # Connections that saw the failure may be broken: never reuse them.
                    await self._pool.expire_connections()
                delay = backoff.next_delay()
                self.metrics.retries.labels(
                    "postgres" if isinstance(exc, DatabaseUnavailable) else "kafka"
                ).inc()
                log.warning(
                    "batch_retry", error=str(exc), retry_in_s=round(delay, 2), events=len(batch)
                )
                if self._stopping.is_set() and self._fetch_done.is_set() and backoff.attempts > 50:
                    raise
                await asyncio.sleep(delay)
        self._db_ok = True
        self.committed_batches += 1
        self._record(batch, result)
        await self._commit_to_kafka(batch)

    def _record(self, batch: Batch, result: WriteResult) -> None:
        m = self.metrics
        m.batches.inc()
        m.batch_seconds.observe(result.duration_s)
        m.batch_events.observe(len(batch))
        for kind, count in result.rows.items():
            m.written.labels(kind).inc(count)
        self._count_dead_letters(result)
        m.parked.inc(result.parked)
        m.released.inc(result.released)
        m.duplicates.inc(result.duplicates)
        m.hash_replaced.inc(result.hash_replaced)
        m.redacted.inc(result.redacted)
        log.info(
            "batch_committed",
            events=len(batch),
            offsets=batch.offset_ranges(),
            rows=result.rows,
            dead_letters=len(result.dead_letters),
            parked=result.parked,
            released=result.released,
            duplicates=result.duplicates,
            hash_replaced=result.hash_replaced,
            bytes=batch.size_bytes,
            duration_ms=round(result.duration_s * 1000, 1),
            merge_forced=self._merge.forced_takes,
        )

    def _count_dead_letters(self, result: WriteResult) -> None:
        for letter in result.dead_letters:
            self.metrics.dead_letters.labels(letter.origin.topic, letter.error_class).inc()

    async def _commit_to_kafka(self, batch: Batch) -> None:
        """Mirror the stored offsets to Kafka, for lag tools only (never read back)."""
        assert self._consumer is not None
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "")
            for (t, p), o in batch.next_offsets.items()
            if TopicPartition(t, p) in self._assigned
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (KafkaError, KafkaConnectionError, AssertionError) as exc:
            log.info("kafka_commit_skipped", error=str(exc))

    async def _publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        assert self._producer is not None
        topic = self.settings.dead_letter_topic
        try:
            futures = []
            for d in letters:
                headers = [
                    *d.headers,
                    (DLQ_HEADERS[0], d.origin.topic.encode()),
                    (DLQ_HEADERS[1], str(d.origin.partition).encode()),
                    (DLQ_HEADERS[2], str(d.origin.offset).encode()),
                    (DLQ_HEADERS[3], d.error_class.encode()),
                    (DLQ_HEADERS[4], d.reason[:2000].encode()),
                ]
                futures.append(
                    await self._producer.send(topic, d.value, key=d.key, headers=headers)
                )
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot produce dead letters to {topic}: {exc}") from exc

    # -- periodic -------------------------------------------------------------------------

    async def _release_parked(self) -> None:
        assert self._writer is not None
        assert self._pool is not None
        result = await self._writer.release_parked()
        self._count_dead_letters(result)
        if result.released or result.dangling:
            self.metrics.released.inc(result.released)
            self.metrics.dangling.inc(result.dangling)
            log.info(
                "parked_released",
                released=result.released,
                expired=result.dangling,
                rows=result.rows,
            )
        async with self._pool.acquire() as conn:
            self.metrics.parked_rows.set(
                await conn.fetchval("SELECT count(*) FROM sink_parked_events")
            )

    async def _release_all_parked(self) -> int:
        assert self._writer is not None
        total = 0
        try:
            while (result := await self._writer.release_parked()).released:
                self._count_dead_letters(result)
                total += result.released
                self.metrics.released.inc(result.released)
                self.metrics.dangling.inc(result.dangling)
        except TransientError as exc:
            log.warning("parked_release_retry", error=str(exc))
            return 1  # not idle: try again on the next check
        return total

    async def _periodic(self, name: str, interval: float, job: PeriodicJob) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._stopping.is_set():
                return
            try:
                await job()
            except TransientError as exc:
                self.metrics.retries.labels(name).inc()
                log.warning("job_retry", job=name, error=str(exc))
            except DATABASE_ERRORS as exc:
                if not is_transient(exc):
                    raise
                self.metrics.retries.labels(name).inc()
                log.warning("job_retry", job=name, error=str(exc))
