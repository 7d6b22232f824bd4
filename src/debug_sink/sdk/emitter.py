"""The agent-side emitter: event models in, Kafka messages out, without ever stalling the agent.

Owns the write side of the SDK below :class:`~debug_sink.sdk.manager.DebugStateManager`: encoding an
event model as one JSON message (key = ``correlation_id``, topic = ``settings.topic_for(kind)``),
admitting it to a bounded in-memory queue (:mod:`~debug_sink.sdk.outgoing`), and one background
task that feeds the Kafka producer (:mod:`~debug_sink.sdk.producer`) and retries what failed;
drops are counted and logged by :mod:`~debug_sink.sdk.drops`. No database access.

Guarantees:

- **Bounded waiting.** :meth:`Emitter.emit` returns within ``max_block_ms`` (plus the time to
  encode the event): when the queue has no room it waits at most that long for room, then
  drops. :meth:`Emitter.emit_nowait` never waits. Neither ever waits for the broker.
- **Bounded memory.** The queue holds at most ``max_queue_events`` messages and
  ``max_queue_bytes`` bytes of message values, counting those handed to the producer but not
  yet acknowledged.
- **No silent loss.** Every event that is not delivered is counted in :attr:`Emitter.stats`
  (``dropped`` and ``dropped_by_reason``) and logged (``emitter_events_dropped``, at most one
  line per reason per ``drop_log_interval``, the first one at once). Reasons: the queue was
  full (``queue_full``), the event could not be encoded (``unserialisable``) or built from
  the values the SDK was given (``invalid``), the broker
  refused it for good (``rejected``, e.g. too large), the emitter was closed
  (``closed``), or :meth:`Emitter.close` gave up waiting for the broker (``close_timeout``).
- **Delivery.** While the broker is unreachable, messages stay queued and are retried until
  they are acknowledged with ``acks=all``; retried messages go out before new ones, in their
  original order, but messages already sent meanwhile may overtake them (the sink needs no
  order: steps merge either way, children wait for their parents). After a transient
  failure nothing more is handed to the producer until the broker answers a metadata
  request again: no batch sits out the outage inside aiokafka (which on the embedded broker
  can be acknowledged after a restart and still be unreadable). A message may be
  delivered twice (an acknowledgement lost with the connection); the sink is idempotent on
  the event id, so a duplicate is a no-op. :meth:`flush` waits for everything queued so far,
  :meth:`close` flushes (bounded by ``close_timeout``), and ``async with`` closes on exit.

Not guaranteed: order across topics, and delivery of what is still queued when the process
dies. The idempotent producer is off (``enable_idempotence=False``): the embedded broker does
not support it, and the sink's event-id idempotency makes it unnecessary.

Producer tuning, measured on this machine: see :class:`EmitterConfig`. The partitioner is
aiokafka's default (murmur2 of the key, like the Java client) with a per-key cache
(:class:`~debug_sink.sdk.producer.CachedKeyPartitioner`): all events of a workflow share a
key, and the uncached pure-Python hash cost more than the rest of the send path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import structlog

from debug_sink.backoff import Backoff
from debug_sink.errors import ConfigurationError
from debug_sink.lifecycle import Lifecycle
from debug_sink.sdk.drops import DropLog, DropReason
from debug_sink.sdk.outgoing import OutgoingMessage, OutgoingQueue, Queued
from debug_sink.sdk.producer import CachedKeyPartitioner, Producer, describe, is_transient
from debug_sink.settings import Settings
from debug_sink.wire.events import EventBase, EventKind

# OutgoingMessage lives in debug_sink.sdk.outgoing; it is exported here too because it is
# what Emitter.encode returns and MemoryEmitter.messages holds.
__all__ = [
    "Emitter",
    "EmitterConfig",
    "EmitterStats",
    "MemoryEmitter",
    "OutgoingMessage",
]

log = structlog.get_logger("debug_sink.sdk.emitter")

#: Room for the rest of a message besides a state of ``max_state_bytes``.
_ENVELOPE_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class EmitterConfig:
    """Tuning of one :class:`Emitter`; the defaults suit an agent process.

    ``max_queue_events`` / ``max_queue_bytes``: the queue's bound (queued plus in flight).
    ``max_block_ms``: the longest :meth:`Emitter.emit` waits for room before dropping.
    ``linger_ms`` / ``max_batch_size``: aiokafka batching, chosen by measurement
    (``python scripts/bench_emitter.py --events 50000``: 1.2 KB snapshot events, one
    workflow, embedded Tansu, 2 cores; events/s from first emit to last acknowledgement,
    encoding included):

    ==============  =========  ==============
    batch           linger     events/s
    ==============  =========  ==============
    16 KB           0 / 5 ms   ~20,500 / ~25,000
    256 KB          0 / 5 ms   ~45,400 / ~46,700  <- default
    256 KB          20 ms      ~42,300
    1 MB            5 ms       ~37,000
    ==============  =========  ==============

    (A bare aiokafka producer sending pre-encoded keyed values: ~21,000 msg/s with 16 KB
    batches, ~49,000 with 256 KB.) A second run while other work loaded the machine (load
    average ~2) gave ~12,000-14,000 events/s with 16 KB batches and ~32,000-34,000 with
    256 KB or 1 MB: the ratio holds, 1 MB buys nothing. Lingering costs an agent nothing --
    sending happens in the background -- and lets batches fill when events trickle in.
    ``request_timeout_ms``: how long one produce attempt may take before it is retried.
    ``close_timeout``: how long :meth:`Emitter.close` waits for queued events.
    ``drop_log_interval``: drops are summarised in at most one log line per reason per
    interval (seconds); the first drop after a quiet interval is logged at once.
    """

    max_queue_events: int = 10_000
    max_queue_bytes: int = 64 * 1024 * 1024
    max_block_ms: float = 5.0
    linger_ms: int = 5
    max_batch_size: int = 256 * 1024
    compression_type: str | None = None
    request_timeout_ms: int = 10_000
    close_timeout: float = 10.0
    drop_log_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.max_queue_events < 1 or self.max_queue_bytes < 1:
            raise ConfigurationError("the emitter queue bounds must be >= 1")
        if self.max_block_ms < 0:
            raise ConfigurationError(f"max_block_ms must be >= 0, got {self.max_block_ms}")
        if self.close_timeout < 0:
            raise ConfigurationError(f"close_timeout must be >= 0, got {self.close_timeout}")


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """Counters of one emitter; a snapshot, not live."""

    queued: int
    """Messages waiting or in flight (not yet acknowledged)."""
    queued_bytes: int
    in_flight: int
    """Of ``queued``: handed to the producer, not yet acknowledged."""
    sent: int
    """Acknowledged by the broker."""
    retried: int
    """Send attempts that failed transiently and were queued again."""
    dropped: int
    dropped_by_reason: Mapping[str, int] = field(default_factory=dict)


class Emitter(Lifecycle):
    """Sends event models to Kafka through a bounded queue; see the module docstring.

    Use ``async with Emitter(settings) as emitter:`` or :meth:`start` / :meth:`close` (both
    idempotent). :meth:`emit` starts the emitter on first use, so an agent may simply call it.
    Only ``kafka_*``, ``topic_prefix`` and ``max_state_bytes`` of ``settings`` are used.
    """

    def __init__(self, settings: Settings, config: EmitterConfig | None = None) -> None:
        self.settings = settings
        self.config = config or EmitterConfig()
        self._topics = {kind: settings.topic_for(kind) for kind in EventKind}
        self._queue = OutgoingQueue(self.config.max_queue_events, self.config.max_queue_bytes)
        self._drops = DropLog(
            self.config.drop_log_interval,
            lambda: {"queued": self._queue.count, "max_queue_events": self.config.max_queue_events},
        )
        self._sent = 0
        self._retried = 0
        self._task: asyncio.Task[None] | None = None
        self._kafka = Producer(
            self.producer_options,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            probe_timeout=self.config.request_timeout_ms / 1000,
            queued=lambda: self._queue.count,
        )
        self._degraded = False
        self._closed = False
        self._finished = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sender (returns at once; the broker is connected later)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="debug-sink-emitter"
            )

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is acknowledged or dropped.

        Returns ``False`` when ``timeout`` (seconds) passed first; nothing is dropped then.
        """
        if self._queue.count == 0:
            return True
        self._ensure_started()
        try:
            await asyncio.wait_for(self._queue.wait_until_empty(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` (default ``close_timeout``) seconds, then stop.

        Whatever is still queued then is dropped (``close_timeout``), counted and logged.
        Later :meth:`emit` calls drop (``closed``). Idempotent.
        """
        if self._closed:
            return
        wait = self.config.close_timeout if timeout is None else timeout
        delivered = await self.flush(wait)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        # Stopping the producer may still deliver what it holds: its callbacks count.
        await self._stop_transport()
        self._finished = True
        if not delivered or self._queue.count:
            # In-flight messages of a stopped producer are lost as well.
            count, left = self._queue.clear()
            if count:
                self._drop(DropReason.CLOSE_TIMEOUT, left, count=count)
        self._drops.flush()
        stats = self.stats
        log.info(
            "emitter_closed",
            sent=stats.sent,
            dropped=stats.dropped,
            retried=stats.retried,
            queued=stats.queued,
            dropped_by_reason=dict(stats.dropped_by_reason),
        )

    # -- emitting -------------------------------------------------------------------------

    def encode(self, event: EventBase) -> OutgoingMessage:
        """The Kafka message of ``event``. Raises ``TypeError`` when it cannot be encoded."""
        value = orjson.dumps(event.model_dump(mode="json", exclude_none=True))
        return OutgoingMessage(
            self._topics[event.KIND],
            str(event.correlation_id).encode(),
            value,
            event.KIND,
            event.id,
        )

    async def emit(self, *events: EventBase) -> bool:
        """Queue ``events`` (all or none); ``False`` when they were dropped (and counted).

        Waits at most ``max_block_ms`` for room in the queue; never waits for the broker.
        """
        messages = self._admit(events)
        if messages is None:
            return False
        self._ensure_started()
        if self._queue.fits(messages):
            self._queue.put(messages)
            return True
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while not self._queue.fits(messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                reason = DropReason.QUEUE_FULL if not self._closed else DropReason.CLOSED
                self._drop(reason, messages)
                return False
            await self._queue.wait_for_room(remaining)
        self._queue.put(messages)
        return True

    def emit_nowait(self, *events: EventBase) -> bool:
        """Like :meth:`emit` without any waiting (for sync code and cancellation paths)."""
        messages = self._admit(events)
        if messages is None:
            return False
        if not self._queue.fits(messages):
            self._drop(DropReason.QUEUE_FULL, messages)
            return False
        try:
            self._ensure_started()
        except RuntimeError:  # no running event loop: nothing could ever send it
            self._drop(DropReason.CLOSED, messages, detail="no running event loop")
            return False
        self._queue.put(messages)
        return True

    def record_drop(
        self,
        reason: DropReason,
        count: int = 1,
        *,
        detail: str | None = None,
        kind: EventKind | None = None,
    ) -> None:
        """Count and log events the caller could not even build (e.g. invalid field values)."""
        self._drops.record(reason, count, detail=detail, kind=kind)

    @property
    def stats(self) -> EmitterStats:
        """Current counters."""
        return EmitterStats(
            queued=self._queue.count,
            queued_bytes=self._queue.bytes,
            in_flight=self._queue.in_flight,
            sent=self._sent,
            retried=self._retried,
            dropped=self._drops.total,
            dropped_by_reason=self._drops.by_reason,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def _admit(self, events: Sequence[EventBase]) -> list[OutgoingMessage] | None:
        """The messages of ``events``, or ``None`` when they were dropped: unencodable, or
        the emitter is closed."""
        try:
            messages = [self.encode(event) for event in events]
        except (TypeError, ValueError) as exc:
            kind = events[0].KIND if events else None
            self._drops.record(DropReason.UNSERIALISABLE, len(events), detail=str(exc), kind=kind)
            return None
        if self._closed:
            self._drop(DropReason.CLOSED, messages)
            return None
        return messages

    def _drop(
        self,
        reason: DropReason,
        messages: Sequence[OutgoingMessage],
        *,
        count: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Count ``messages`` (or ``count`` events) as dropped, logged with the first one."""
        first = messages[0] if messages else None
        self._drops.record(
            reason,
            len(messages) if count is None else count,
            kind=first.kind if first else None,
            event_id=first.event_id if first else None,
            detail=detail,
        )

    # -- sending --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(initial=0.1, maximum=2.0)
        queue = self._queue
        while True:
            item = queue.take()
            if item is None:
                await queue.wait_for_work()
                continue
            queue.in_flight += 1
            try:
                await self._open_transport()
                if self._degraded:
                    await self._wait_for_broker()
                delivery = await self._send(item.message)
            except asyncio.CancelledError:
                queue.in_flight -= 1
                queue.requeue(item)
                raise
            except Exception as exc:
                queue.in_flight -= 1
                if self._failed(item, exc):
                    delay = backoff.next_delay()
                    log.warning(
                        "emitter_send_failed",
                        error=describe(exc),
                        retry_in_s=round(delay, 2),
                        queued=queue.count,
                    )
                    await asyncio.sleep(delay)
                continue
            backoff.reset()
            delivery.add_done_callback(functools.partial(self._delivered, item))

    def _delivered(self, item: Queued, future: asyncio.Future[Any]) -> None:
        if self._finished:  # already counted as dropped by close()
            return
        self._queue.in_flight -= 1
        if future.cancelled():
            self._queue.requeue(item)
            return
        exc = future.exception()
        if exc is None:
            self._sent += 1
            self._queue.release(item.message)
        else:
            self._failed(item, exc)

    def _failed(self, item: Queued, exc: BaseException) -> bool:
        """Queue a message whose send failed again (transiently: True), or drop it."""
        if is_transient(exc):
            self._retried += 1
            self._degraded = True
            self._queue.requeue(item)
            return True
        self._queue.release(item.message)
        self._drop(DropReason.REJECTED, [item.message], detail=describe(exc))
        return False

    async def _wait_for_broker(self) -> None:
        """After a transient failure: hand nothing more to the producer until the broker
        answers again (a metadata request), so no batch waits out the outage inside it."""
        backoff = Backoff(initial=0.1, maximum=1.0)
        while not await self._probe():
            delay = backoff.next_delay()
            log.warning(
                "emitter_broker_unavailable",
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                retry_in_s=round(delay, 2),
                queued=self._queue.count,
            )
            await asyncio.sleep(delay)
        self._degraded = False
        log.info("emitter_broker_back", queued=self._queue.count)

    # -- transport (overridden by MemoryEmitter) ------------------------------------------

    async def _probe(self) -> bool:
        """True when the broker answers a metadata request."""
        return await self._kafka.probe()

    def producer_options(self) -> dict[str, Any]:
        """Keyword arguments of the aiokafka producer."""
        config = self.config
        return {
            **self.settings.kafka_client_options(),
            "acks": "all",
            "enable_idempotence": False,
            "linger_ms": config.linger_ms,
            "max_batch_size": config.max_batch_size,
            "max_request_size": max(1024 * 1024, self.settings.max_state_bytes + _ENVELOPE_BYTES),
            "compression_type": config.compression_type,
            "request_timeout_ms": config.request_timeout_ms,
            "client_id": "debug-sink-emitter",
            "partitioner": CachedKeyPartitioner(),
        }

    async def _open_transport(self) -> None:
        await self._kafka.open()

    async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
        return await self._kafka.send(message)

    async def _stop_transport(self) -> None:
        await self._kafka.stop()


class MemoryEmitter(Emitter):
    """An :class:`Emitter` that keeps messages in :attr:`messages` instead of sending them.

    Same encoding, queue bounds, drop accounting and lifecycle; for tests (of agents and of
    debug-sink itself) and dry runs. ``paused = True`` makes it hold messages as if the
    broker were down.
    """

    def __init__(
        self, settings: Settings | None = None, config: EmitterConfig | None = None
    ) -> None:
        # model_construct: the defaults, without reading the environment.
        super().__init__(settings or Settings.model_construct(), config)
        self.messages: list[OutgoingMessage] = []
        self.paused = False
        self._resumed = asyncio.Event()

    def resume(self) -> None:
        """Deliver what is held and whatever comes next."""
        self.paused = False
        self._resumed.set()

    async def _open_transport(self) -> None:
        while self.paused:
            self._resumed.clear()
            await self._resumed.wait()

    async def _probe(self) -> bool:
        return not self.paused

    async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
        self.messages.append(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def _stop_transport(self) -> None:
        return None

    def events(self, kind: EventKind | None = None) -> list[dict[str, Any]]:
        """The decoded message values, optionally of one kind."""
        return [m.json() for m in self.messages if kind is None or m.kind is kind]
