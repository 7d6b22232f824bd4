"""The write side of the sink: handed-over batches in, committed transactions out.

Owns the write loop -- take a batch from the :class:`~debug_sink.sink.handoff.Handoff`, write
it with :class:`~debug_sink.sink.writer.BatchWriter` (the correctness contract is there), retry
transient failures with backoff until it commits, record what it did -- and the periodic
release of parked events.

Guarantees: a batch is retried until it commits, or abandoned only when its partitions were
revoked (its next owner re-reads it); never skipped. Not guaranteed: progress while the
database is away (the loop waits; the fetch side keeps the group membership alive).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import structlog

from debug_sink.backoff import Backoff
from debug_sink.errors import DatabaseUnavailable, TransientError
from debug_sink.metrics import Metrics
from debug_sink.sink.batch import Batch
from debug_sink.sink.handoff import HandedOver, Handoff
from debug_sink.sink.progress import Progress
from debug_sink.sink.writer import WriteResult

log = structlog.get_logger("debug_sink")


class Writer(Protocol):
    """What the committer needs of :class:`~debug_sink.sink.writer.BatchWriter`."""

    async def write(self, batch: Batch) -> WriteResult: ...

    async def release_parked(self) -> WriteResult: ...

    async def parked_count(self) -> int: ...

    async def reset_connections(self) -> None: ...


#: After this many failed attempts of the last batch during a stop, give up (it is re-read).
_STOP_ATTEMPTS = 50

#: At most this many release transactions in one periodic release (each of at most the
#: writer's release limit), so that the parked-rows gauge is refreshed now and then.
_RELEASE_RUNS = 100


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (musl, macOS): nothing to do
    return trim


#: glibc keeps the memory of freed message buffers (bytes objects of a few KB, allocated by
#: malloc, not by Python's small-object allocator) in its heap, fragmented among live ones,
#: and the process's resident size creeps up over a long drain. Handing free pages back (as
#: Dask's workers do) lowers the peak; a call walks the heap, so at most every _TRIM_EVERY
#: seconds (docs/PERFORMANCE.md has the measurements).
_malloc_trim = _find_malloc_trim()
_TRIM_EVERY = 1.0


def _no_report(ok: bool) -> None:
    return None


def _no_forced_takes() -> int:
    return 0


@dataclass(eq=False)
class Committer:
    """Writes every handed-over batch until it commits. See the module doc.

    ``current_generation``: the assignment's generation now (a batch of an older one is
    abandoned); ``after_batch``: called after each batch (the fetch side hands over the
    next); ``report_db``: told whether PostgreSQL is reachable (for health).
    """

    writer: Writer
    _: KW_ONLY
    handoff: Handoff
    metrics: Metrics
    current_generation: Callable[[], int]
    after_batch: Callable[[], None]
    stopping: asyncio.Event
    fetch_done: asyncio.Event
    report_db: Callable[[bool], None] = _no_report
    progress: Progress = field(default_factory=Progress)
    #: Forced interleave takes so far (for the batch log line), set by the runner.
    forced_takes: Callable[[], int] = _no_forced_takes
    committed_batches: int = field(default=0, init=False)
    _trimmed_at: float = field(default_factory=time.monotonic, init=False)

    async def run(self) -> None:
        """Write batches until the fetch side says there are no more."""
        handoff = self.handoff
        while True:
            handed = await handoff.take()
            if handed is None:
                return
            try:
                await self._write_with_retry(handed)
            finally:
                handoff.written()
            if not self.stopping.is_set():
                self.after_batch()  # the next batch, without waiting for the fetch task
            if _malloc_trim is not None and time.monotonic() - self._trimmed_at >= _TRIM_EVERY:
                _malloc_trim(0)
                self._trimmed_at = time.monotonic()

    async def _write_with_retry(self, handed: HandedOver) -> None:
        backoff = Backoff(initial=0.2, maximum=10.0)
        batch = handed.batch
        while True:
            if handed.generation != self.current_generation():
                log.info("batch_abandoned", reason="partitions revoked", events=len(batch))
                self.progress.retrying(False)
                return
            try:
                result = await self.writer.write(batch)
                break
            except TransientError as exc:
                self.progress.retrying(True)
                database = isinstance(exc, DatabaseUnavailable)
                self.report_db(not database)
                if database:
                    await self.writer.reset_connections()
                delay = backoff.next_delay()
                self.metrics.retries.labels("postgres" if database else "kafka").inc()
                log.warning(
                    "batch_retry", error=str(exc), retry_in_s=round(delay, 2), events=len(batch)
                )
                if (
                    self.stopping.is_set()
                    and self.fetch_done.is_set()
                    and backoff.attempts > _STOP_ATTEMPTS
                ):
                    raise
                await asyncio.sleep(delay)
        self.report_db(True)
        self.progress.committed(batch.next_offsets)
        self.committed_batches += 1
        self._record(batch, result)

    def _record(self, batch: Batch, result: WriteResult) -> None:
        m = self.metrics
        m.batches.inc()
        m.batch_seconds.observe(result.duration_s)
        m.batch_events.observe(len(batch))
        self._count_rows(result)
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
            interleave_forced=self.forced_takes(),
        )

    def _count_rows(self, result: WriteResult) -> None:
        """Rows the tables gained: a batch's, and a release's (parked events written)."""
        for kind, count in result.rows.items():
            self.metrics.written.labels(kind).inc(count)

    def _count_dead_letters(self, result: WriteResult) -> None:
        for letter in result.dead_letters:
            topic = self.metrics.topic(letter.origin.topic)
            self.metrics.dead_letters.labels(topic, letter.error_class).inc()

    # -- parked events --------------------------------------------------------------------

    async def release_parked(self) -> None:
        """One periodic release: parents now stored, or grace periods over -- transaction
        after transaction while each was full (up to :data:`_RELEASE_RUNS`), so that the
        release keeps up with events parked faster than one transaction's limit per
        interval. Also what tells health whether PostgreSQL is reachable while no batch is
        written (an idle sink)."""
        try:
            for _ in range(_RELEASE_RUNS):
                result = await self.writer.release_parked()
                self._record_release(result)
                if not result.more or self.stopping.is_set():
                    break
            parked = await self.writer.parked_count()
        except DatabaseUnavailable:
            self.report_db(False)
            raise
        self.report_db(True)
        self.metrics.parked_rows.set(parked)

    def _record_release(self, result: WriteResult) -> None:
        self._count_rows(result)
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

    async def release_all_parked(self) -> bool:
        """Release until nothing more can be released; True if anything was (or a transient
        failure says: look again later) -- i.e. the sink is not idle yet."""
        done = 0
        try:
            while True:
                result = await self.writer.release_parked()
                # Every release's rows and dead letters are counted, the last one's too (a
                # parked event PostgreSQL refused is a dead letter, not a release).
                self._count_rows(result)
                self._count_dead_letters(result)
                self.metrics.released.inc(result.released)
                self.metrics.dangling.inc(result.dangling)
                if not result.released and not result.dead_letters:
                    break
                done += result.released + len(result.dead_letters)
        except TransientError as exc:
            log.warning("parked_release_retry", error=str(exc))
            return True
        return done > 0
