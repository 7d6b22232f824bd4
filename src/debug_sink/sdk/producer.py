"""The emitter's Kafka producer: connecting, probing after a failure, sending, stopping.

Owns the aiokafka side of :class:`~debug_sink.sdk.emitter.Emitter`: one
:class:`~aiokafka.AIOKafkaProducer`, started on first use and retried (with backoff, logged as
``emitter_broker_unavailable``) while the broker is unreachable; the metadata request that
tells the emitter the broker is back; which send errors are worth retrying
(:func:`is_transient`); and the partitioner (:class:`CachedKeyPartitioner`).

Guarantees: :meth:`Producer.open` returns only with a started producer (it waits as long as
it takes), and a cancelled :meth:`~Producer.open` stops the producer it was starting;
:meth:`Producer.stop` is idempotent and bounded: by the time ``stop_within`` gives (the emitter's
close passes what is left of its timeout), else 5 s -- what the producer still holds when that
runs out is failed, not waited for; :meth:`Producer.probe` never raises.
An aiokafka producer belongs to the event loop it was started on: the emitter stops it before
that loop ends, or -- when the loop is gone (a forked child) -- it is abandoned
(:meth:`~Producer.abandon`).
Not guaranteed: anything about delivery -- the emitter's queue owns that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from debug_sink.backoff import Backoff
from debug_sink.sdk.outgoing import OutgoingMessage

__all__ = ["CachedKeyPartitioner", "Producer", "describe", "is_transient"]

# The emitter's logger: these lines have always come from it, and log filters may rely on that.
log = structlog.get_logger("debug_sink.sdk.emitter")

#: How long stopping a producer may take when nobody gave a bound.
STOP_TIMEOUT: Final = 5.0
#: How long each step of stopping a producer at once may take (closing its connections).
_ABORT_TIMEOUT: Final = 0.2


class Producer:
    """One aiokafka producer, made from ``options()`` (called at every connection attempt).

    ``queued`` gives the emitter's queue level for the log lines; ``stop_within`` how long
    stopping may take now (``None``: :data:`STOP_TIMEOUT`).
    """

    def __init__(
        self,
        options: Callable[[], dict[str, Any]],
        *,
        bootstrap_servers: str,
        probe_timeout: float,
        queued: Callable[[], int],
        stop_within: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._options = options
        self._bootstrap_servers = bootstrap_servers
        self._probe_timeout = probe_timeout
        self._queued = queued
        self._stop_within = stop_within
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        """Start the producer unless it runs; retry until the broker answers."""
        if self._producer is not None:
            return
        backoff = Backoff(initial=0.2, maximum=5.0)
        while self._producer is None:
            producer = AIOKafkaProducer(**self._options())
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                delay = backoff.next_delay()
                log.warning(
                    "emitter_broker_unavailable",
                    bootstrap_servers=self._bootstrap_servers,
                    error=describe(exc),
                    retry_in_s=round(delay, 2),
                    queued=self._queued(),
                )
                await asyncio.sleep(delay)
                continue
            except BaseException:  # cancelled while connecting: leave nothing unclosed
                await _stop(producer, self._stop_timeout())
                raise
            self._producer = producer
            log.info("emitter_connected", bootstrap_servers=self._bootstrap_servers)

    async def probe(self) -> bool:
        """True when the broker answers a metadata request."""
        if self._producer is None:
            return False
        try:
            return bool(
                await asyncio.wait_for(
                    self._producer.client.force_metadata_update(), self._probe_timeout
                )
            )
        except (KafkaError, OSError, TimeoutError):
            return False

    async def send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
        """Hand ``message`` to the producer; the future resolves on acknowledgement."""
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(
            message.topic, message.value, key=message.key
        )
        return future

    def abandon(self) -> None:
        """Forget the producer without stopping it: its event loop is gone (it cannot be
        stopped there), and the next :meth:`open` starts a new one on the running loop."""
        self._producer = None

    async def stop(self) -> None:
        """Stop the producer, if it runs, within the time ``stop_within`` gives."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop(producer, self._stop_timeout())

    def _stop_timeout(self) -> float:
        within = self._stop_within()
        return STOP_TIMEOUT if within is None else max(0.0, within)


async def _stop(producer: AIOKafkaProducer, timeout: float) -> None:
    """Stop ``producer``: gracefully for at most ``timeout`` seconds (what it holds may still
    be delivered), then at once.

    aiokafka's ``stop`` waits until every batch it holds is delivered, which with the broker
    gone is never. Past ``timeout`` its batches are failed (their futures raise
    ``KafkaTimeoutError``), so that stopping has nothing left to wait for, and it is stopped
    again: its sender, then its connections, each step bounded. aiokafka has no public call
    for that, hence the private attributes, each looked up defensively.
    """
    if await _within(producer.stop(), timeout):
        return
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        with contextlib.suppress(Exception):
            accumulator.fail_all(KafkaTimeoutError("the producer was stopped before delivery"))
    # A stop cut off before it began (no time left at all) now runs through at once; one cut
    # off on its way may have left the sender and the connections open.
    await _within(producer.stop(), _ABORT_TIMEOUT)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        await _within(sender.close(), _ABORT_TIMEOUT)
    await _within(producer.client.close(), _ABORT_TIMEOUT)


async def _within(call: Coroutine[Any, Any, Any], timeout: float) -> bool:
    """Run ``call`` for at most ``timeout`` seconds; whether it finished. What it raises is
    ignored (a producer stopping raises what its tasks met, cancellations included); past
    ``timeout`` it is cancelled, without waiting for it to wind down."""
    task = asyncio.ensure_future(call)
    # Retrieved whatever happens here, a cancellation of this call included.
    task.add_done_callback(_retrieve)
    try:
        await asyncio.wait({task}, timeout=max(0.0, timeout))
    finally:
        if not task.done():
            task.cancel()
    return task.done() and not task.cancelled()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class CachedKeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client) with a cache.

    Every event of a workflow has the same key, and aiokafka's murmur2 is pure Python (about
    9 us per 36-byte key, measured): the cache saves it for all but the first event of a
    workflow. The result is identical to ``DefaultPartitioner``'s, so events keep landing on
    the partitions other Kafka clients would choose.
    """

    _LIMIT: Final = 10_000

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, tuple[int, ...]], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        cache_key = (key, tuple(all_partitions))
        partition = self._cache.get(cache_key)
        if partition is None:
            if len(self._cache) >= self._LIMIT:
                self._cache.clear()
            partition = self._cache[cache_key] = int(
                DefaultPartitioner()(key, all_partitions, available)
            )
        return partition


def is_transient(exc: BaseException) -> bool:
    """Whether a send that failed with ``exc`` may succeed if retried (Kafka's own
    ``retriable`` flag, timeouts and connection errors)."""
    if isinstance(exc, KafkaTimeoutError | TimeoutError | OSError):
        return True
    return bool(getattr(exc, "retriable", False))


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line, for log fields."""
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
