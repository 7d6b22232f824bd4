"""The running sink, ``debug-sink run``: Kafka consumer group -> validation -> batches ->
PostgreSQL, exactly once.

Owns the composition and the lifecycle: connecting (and waiting out an absent database or
broker), starting the two tasks that share the work -- the *fetch* task
(:mod:`debug_sink.sink.fetcher`: polling, rebalances, decoding, batching, backpressure) and the
*write* task (:mod:`debug_sink.sink.committer`, around :mod:`debug_sink.sink.writer`, which
holds the correctness contract) -- plus the periodic jobs, metrics and health, and a clean
stop.

Stop (SIGTERM/SIGINT or :meth:`Sink.stop`): fetching stops, the batch being built and the one
in flight are written and committed within ``shutdown_timeout``, then everything closes. A stop
while still waiting for PostgreSQL or the broker at start-up (down, or hung: accepting
connections and never answering) ends the wait at once; :meth:`Sink.run` returns normally.

Guarantees: a crash of any task ends :meth:`Sink.run` with that task's exception -- never a
silent half-dead sink. Not guaranteed: that the batch in flight commits when the stop times
out (it is re-read by the group's next member).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from debug_sink.backoff import StopRequested, retry_until_ready
from debug_sink.db.migrate import require_schema
from debug_sink.db.pg import redact_dsn, translating
from debug_sink.jobs.periodic import Job, run_periodically
from debug_sink.metrics import HttpServer, Metrics
from debug_sink.settings import Settings
from debug_sink.sink import kafka
from debug_sink.sink.committer import Committer, Writer
from debug_sink.sink.deadletters import (
    DeadLetter,
    DeadLetterPublisher,
    DeadLetterTopic,
    Letters,
)
from debug_sink.sink.fetcher import Fetcher
from debug_sink.sink.handoff import Handoff
from debug_sink.sink.offsets import PartitionKey
from debug_sink.sink.progress import Progress
from debug_sink.sink.tables import create_pool
from debug_sink.sink.writer import BatchWriter, OffsetMirror

log = structlog.get_logger("debug_sink")


class Backends:
    """How the sink reaches PostgreSQL and Kafka. Each method starts one client and raises
    :class:`~debug_sink.errors.TransientError` while its service is unreachable (the sink
    waits it out). Tests substitute in-memory stand-ins (``tests/unit/sink/memory.py``)."""

    async def writer(
        self,
        settings: Settings,
        *,
        publish_dead_letters: DeadLetterPublisher,
        mirror_offsets: OffsetMirror,
    ) -> Store:
        """The database side, once the schema is known to be migrated far enough."""
        pool = await create_pool(settings)
        try:
            with translating(settings.require_dsn()):
                async with pool.acquire() as conn:
                    await require_schema(conn, settings.db_schema)
        except BaseException:
            pool.terminate()
            raise
        return BatchWriter(
            pool,
            group_id=settings.group_id,
            park_grace=settings.park_grace_seconds,
            publish_dead_letters=publish_dead_letters,
            mirror_offsets=mirror_offsets,
            letters=Letters(
                settings.redactor(),
                settings.dead_letter_max_bytes,
                frozenset(settings.otlp_topic_encodings),
            ),
        )

    async def producer(self, settings: Settings) -> Any:
        """The (started) producer of the dead-letter topic."""
        return await kafka.start_client(kafka.dead_letter_producer(settings), settings)

    async def consumer(self, settings: Settings) -> Any:
        """The (started, not subscribed) consumer-group member."""
        return await kafka.start_client(kafka.group_consumer(settings), settings)


class Store(Writer, Protocol):
    """The database side as the sink uses it (:class:`BatchWriter`)."""

    async def stored_offsets(
        self, partitions: Sequence[PartitionKey]
    ) -> dict[PartitionKey, int]: ...

    async def close(self) -> None: ...


class Sink:
    """``debug-sink run``. Use ``await Sink(settings).run()``; :meth:`stop` ends it cleanly."""

    def __init__(
        self,
        settings: Settings,
        *,
        exit_when_idle: bool = False,
        idle_grace: float = 15.0,
        metrics: Metrics | None = None,
        jobs: Sequence[Job] = (),
        backends: Backends | None = None,
    ) -> None:
        settings.require_dead_letters_unsubscribed()
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.metrics.topics = frozenset(settings.topics) | frozenset(settings.otlp_topic_encodings)
        self.exit_when_idle = exit_when_idle
        self.idle_grace = idle_grace
        self._jobs = list(jobs)
        self._backends = backends or Backends()
        self._stopping = asyncio.Event()
        self._fetch_done = asyncio.Event()
        self._handoff = Handoff()
        self._progress = Progress()
        self._fetcher: Fetcher | None = None
        self._committer: Committer | None = None
        self._http: HttpServer | None = None
        self._db_ok = False

    # -- public ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the sink to finish the batch in flight and exit."""
        self._stopping.set()

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http else None

    @property
    def committed_batches(self) -> int:
        return self._committer.committed_batches if self._committer else 0

    def health(self) -> dict[str, Any]:
        """Ready: PostgreSQL reachable, partitions assigned and positioned, nothing stalled
        (a partition with records waiting and no committed progress, or a batch retried,
        for ``stall_timeout_seconds``)."""
        fetcher = self._fetcher
        assignment = fetcher.assignment if fetcher else None
        stalls = self._progress.stalls(self.settings.stall_timeout_seconds)
        ready = bool(self._db_ok and assignment and assignment.all_positioned and not stalls)
        return {
            "ready": ready,
            "stalled": stalls.as_dict() if stalls else None,
            "postgres": self._db_ok,
            "kafka": fetcher is not None,
            "assigned_partitions": len(assignment) if assignment else 0,
            "inflight_bytes": fetcher.inflight_bytes if fetcher else 0,
        }

    async def run(self) -> None:
        log.info("sink_starting", settings=self.settings.safe_summary())
        try:
            await self._serve()
        except StopRequested as stopped:
            # Stopped while still waiting for a service: nothing started, nothing to finish.
            log.info("sink_stopped", batches=0, waiting_for=stopped.what)
            return
        log.info("sink_stopped", batches=self.committed_batches)

    async def _serve(self) -> None:
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port:
                self._http = HttpServer(
                    self.metrics, self.health, settings.metrics_host, settings.metrics_port
                )
                await self._http.start()
                stack.push_async_callback(self._http.stop)
            backends = self._backends
            # Late-bound: the writer exists before the producer and the fetcher do.
            dead_letters: list[DeadLetterTopic] = []

            async def publish(letters: Sequence[DeadLetter]) -> None:
                await dead_letters[0].publish(letters)

            async def mirror(next_offsets: Mapping[PartitionKey, int]) -> None:
                assert self._fetcher is not None
                await self._fetcher.mirror_offsets(next_offsets)

            writer: Store = await self._wait_for(
                "postgres",
                lambda: backends.writer(
                    settings, publish_dead_letters=publish, mirror_offsets=mirror
                ),
            )
            stack.push_async_callback(writer.close)
            self._db_ok = True
            producer = await self._wait_for("kafka", lambda: backends.producer(settings))
            stack.push_async_callback(producer.stop)
            dead_letters.append(DeadLetterTopic(producer, settings.dead_letter_topic))
            consumer = await self._wait_for("kafka", lambda: backends.consumer(settings))
            stack.push_async_callback(self._stop_consumer, consumer)
            fetcher, committer = self._compose(writer, consumer)
            consumer.subscribe(pattern=settings.subscription_pattern, listener=fetcher.listener())
            log.info(
                "sink_started",
                group_id=settings.group_id,
                pattern=settings.subscription_pattern,
                postgres=redact_dsn(settings.require_dsn()),
                kafka=settings.kafka_bootstrap_servers,
                metrics_port=self.http_port,
            )
            park = Job("release_parked", self._park_interval(), committer.release_parked)
            side = [
                asyncio.create_task(run_periodically(job, self._stopping, self.metrics))
                for job in (park, *self._jobs)
                if job.interval > 0
            ]
            write = asyncio.create_task(committer.run(), name="write")
            fetch = asyncio.create_task(self._fetch(fetcher), name="fetch")
            try:
                await self._supervise(fetch, write, side)
            finally:
                for task in (*side, fetch, write):
                    task.cancel()
                await asyncio.gather(*side, fetch, write, return_exceptions=True)

    # -- composition ----------------------------------------------------------------------

    def _compose(self, writer: Store, consumer: Any) -> tuple[Fetcher, Committer]:
        def after_batch() -> None:
            fetcher.hand_over()

        committer = self._committer = Committer(
            writer,
            handoff=self._handoff,
            metrics=self.metrics,
            current_generation=lambda: fetcher.assignment.generation,
            after_batch=after_batch,
            stopping=self._stopping,
            fetch_done=self._fetch_done,
            report_db=self._report_db,
            progress=self._progress,
        )
        fetcher = self._fetcher = Fetcher(
            self.settings,
            consumer,
            load_offsets=writer.stored_offsets,
            handoff=self._handoff,
            metrics=self.metrics,
            stopping=self._stopping,
            exit_when_idle=self.exit_when_idle,
            idle_grace=self.idle_grace,
            before_idle_exit=committer.release_all_parked,
            report_db=self._report_db,
            progress=self._progress,
        )
        committer.forced_takes = lambda: fetcher.forced_takes
        return fetcher, committer

    def _report_db(self, ok: bool) -> None:
        self._db_ok = ok

    async def _fetch(self, fetcher: Fetcher) -> None:
        try:
            await fetcher.run()
        finally:
            self._fetch_done.set()

    async def _wait_for(self, what: str, connect: Any) -> Any:
        def count(service: str) -> None:
            self.metrics.retries.labels(service).inc()

        return await retry_until_ready(what, connect, self._stopping, count)

    async def _stop_consumer(self, consumer: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 15)

    def _park_interval(self) -> float:
        return max(0.5, min(5.0, self.settings.park_grace_seconds / 4 or 0.5))

    # -- supervision ----------------------------------------------------------------------

    async def _supervise(
        self,
        fetch: asyncio.Task[None],
        writer: asyncio.Task[None],
        side: list[asyncio.Task[None]],
    ) -> None:
        """Wait until stop; propagate a crash of any task (never a silent half-dead sink)."""
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {fetch, writer, stop_wait, *side}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Orderly stop: the fetcher hands over its last batch and ends; the writer drains.
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(fetch), self.settings.shutdown_timeout)
                await asyncio.wait_for(asyncio.shield(writer), self.settings.shutdown_timeout)
            except TimeoutError:
                log.warning(
                    "shutdown_timeout",
                    seconds=self.settings.shutdown_timeout,
                    note="the batch in flight was not committed; it will be re-read",
                )
            for task in (fetch, writer):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop_wait.cancel()
