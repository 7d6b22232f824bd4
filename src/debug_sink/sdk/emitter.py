"""The agent-side emitter: event models in, Kafka messages out, without ever stalling the agent.

Owns the write side of the SDK below :class:`~debug_sink.sdk.manager.DebugStateManager`: encoding an
event model as one JSON message (key = ``correlation_id``, topic = ``settings.topic_for(kind)``),
a bounded in-memory queue, and one background task that feeds an aiokafka producer. No
database access.

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
aiokafka's default (murmur2 of the key, like the Java client) with a per-key cache: all
events of a workflow share a key, and the uncached pure-Python hash cost more than the rest
of the send path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Final
from uuid import UUID

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from debug_sink.backoff import Backoff
from debug_sink.errors import ConfigurationError
from debug_sink.settings import Settings
from debug_sink.wire.events import EventBase, EventKind

__all__ = [
    "DropReason",
    "Emitter",
    "EmitterConfig",
    "EmitterStats",
    "MemoryEmitter",
    "OutgoingMessage",
]

log = structlog.get_logger("debug_sink.sdk.emitter")

#: Room for the rest of a message besides a state of ``max_state_bytes``.
_ENVELOPE_BYTES: Final = 256 * 1024


class DropReason(StrEnum):
    """Why an event was not delivered."""

    QUEUE_FULL = "queue_full"
    UNSERIALISABLE = "unserialisable"
    INVALID = "invalid"
    REJECTED = "rejected"
    CLOSED = "closed"
    CLOSE_TIMEOUT = "close_timeout"


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
class OutgoingMessage:
    """One encoded event, as it goes to Kafka."""

    topic: str
    key: bytes
    value: bytes
    kind: EventKind
    event_id: UUID

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key)

    def json(self) -> dict[str, Any]:
        """The message value, decoded."""
        parsed: dict[str, Any] = orjson.loads(self.value)
        return parsed


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


@dataclass(order=True, slots=True)
class _Queued:
    seq: int
    message: OutgoingMessage = field(compare=False)


class Emitter:
    """Sends event models to Kafka through a bounded queue; see the module docstring.

    Use ``async with Emitter(settings) as emitter:`` or :meth:`start` / :meth:`close` (both
    idempotent). :meth:`emit` starts the emitter on first use, so an agent may simply call it.
    Only ``kafka_*``, ``topic_prefix`` and ``max_state_bytes`` of ``settings`` are used.
    """

    def __init__(self, settings: Settings, config: EmitterConfig | None = None) -> None:
        self.settings = settings
        self.config = config or EmitterConfig()
        self._topics = {kind: settings.topic_for(kind) for kind in EventKind}
        self._pending: deque[_Queued] = deque()
        self._retry: list[_Queued] = []
        self._seq = itertools.count()
        self._count = 0
        self._bytes = 0
        self._in_flight = 0
        self._sent = 0
        self._retried = 0
        self._dropped: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._log_timer: asyncio.TimerHandle | None = None
        self._has_work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
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
        if self._count == 0:
            return True
        self._ensure_started()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
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
        if not delivered or self._count:
            self._discard_all(DropReason.CLOSE_TIMEOUT)
        self._flush_drop_logs()
        log.info("emitter_closed", **self._stats_fields())

    async def __aenter__(self) -> Emitter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
        messages = self._encode_all(events)
        if messages is None:
            return False
        if self._closed:
            self._record_drop(DropReason.CLOSED, len(messages), messages)
            return False
        self._ensure_started()
        if self._fits(messages):
            self._enqueue(messages)
            return True
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while not self._fits(messages):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                self._record_drop(
                    DropReason.QUEUE_FULL if not self._closed else DropReason.CLOSED,
                    len(messages),
                    messages,
                )
                return False
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), remaining)
        self._enqueue(messages)
        return True

    def emit_nowait(self, *events: EventBase) -> bool:
        """Like :meth:`emit` without any waiting (for sync code and cancellation paths)."""
        messages = self._encode_all(events)
        if messages is None:
            return False
        if self._closed:
            self._record_drop(DropReason.CLOSED, len(messages), messages)
            return False
        if not self._fits(messages):
            self._record_drop(DropReason.QUEUE_FULL, len(messages), messages)
            return False
        try:
            self._ensure_started()
        except RuntimeError:  # no running event loop: nothing could ever send it
            self._record_drop(
                DropReason.CLOSED, len(messages), messages, detail="no running event loop"
            )
            return False
        self._enqueue(messages)
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
        self._record_drop(reason, count, (), detail=detail, kind=kind)

    @property
    def stats(self) -> EmitterStats:
        """Current counters."""
        return EmitterStats(
            queued=self._count,
            queued_bytes=self._bytes,
            in_flight=self._in_flight,
            sent=self._sent,
            retried=self._retried,
            dropped=sum(self._dropped.values()),
            dropped_by_reason=MappingProxyType(dict(self._dropped)),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    # -- queue ----------------------------------------------------------------------------

    def _encode_all(self, events: Sequence[EventBase]) -> list[OutgoingMessage] | None:
        try:
            return [self.encode(event) for event in events]
        except (TypeError, ValueError) as exc:
            kind = events[0].KIND if events else None
            self._record_drop(
                DropReason.UNSERIALISABLE, len(events), (), detail=str(exc), kind=kind
            )
            return None

    def _fits(self, messages: Sequence[OutgoingMessage]) -> bool:
        size = sum(m.size for m in messages)
        return (
            self._count + len(messages) <= self.config.max_queue_events
            and self._bytes + size <= self.config.max_queue_bytes
        )

    def _enqueue(self, messages: Iterable[OutgoingMessage]) -> None:
        for message in messages:
            self._pending.append(_Queued(next(self._seq), message))
            self._count += 1
            self._bytes += message.size
        self._empty.clear()
        self._has_work.set()

    def _release(self, message: OutgoingMessage) -> None:
        self._count -= 1
        self._bytes -= message.size
        self._room.set()
        if self._count == 0:
            self._empty.set()

    def _take(self) -> _Queued | None:
        if self._retry:
            return heapq.heappop(self._retry)
        if self._pending:
            return self._pending.popleft()
        return None

    def _requeue(self, item: _Queued) -> None:
        heapq.heappush(self._retry, item)
        self._has_work.set()

    def _discard_all(self, reason: DropReason) -> None:
        left = [q.message for q in (*self._retry, *self._pending)]
        self._retry.clear()
        self._pending.clear()
        # In-flight messages of a stopped producer are lost as well.
        count = self._count
        self._count = self._bytes = self._in_flight = 0
        self._empty.set()
        self._room.set()
        if count:
            self._record_drop(reason, count, left)

    # -- drops ----------------------------------------------------------------------------

    def _record_drop(
        self,
        reason: DropReason,
        count: int,
        messages: Sequence[OutgoingMessage],
        *,
        detail: str | None = None,
        kind: EventKind | None = None,
    ) -> None:
        key = reason.value
        self._dropped[key] = self._dropped.get(key, 0) + count
        self._unlogged[key] = self._unlogged.get(key, 0) + count
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is None or now - last >= self.config.drop_log_interval:
            first = messages[0] if messages else None
            self._log_drop(
                key,
                detail=detail,
                kind=(first.kind if first else kind),
                event_id=(first.event_id if first else None),
            )
        else:
            self._schedule_drop_log()

    def _log_drop(
        self,
        key: str,
        *,
        detail: str | None = None,
        kind: EventKind | None = None,
        event_id: UUID | None = None,
    ) -> None:
        count = self._unlogged.pop(key, 0)
        if not count:
            return
        self._last_logged[key] = time.monotonic()
        fields: dict[str, Any] = {
            "reason": key,
            "dropped": count,
            "dropped_total": self._dropped[key],
            "queued": self._count,
            "max_queue_events": self.config.max_queue_events,
        }
        if kind is not None:
            fields["kind"] = kind.value
        if event_id is not None:
            fields["event_id"] = str(event_id)
        if detail:
            fields["detail"] = detail[:500]
        log.warning("emitter_events_dropped", **fields)

    def _schedule_drop_log(self) -> None:
        if self._log_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_drop_logs()
            return
        self._log_timer = loop.call_later(self.config.drop_log_interval, self._flush_drop_logs)

    def _flush_drop_logs(self) -> None:
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
        for key in list(self._unlogged):
            self._log_drop(key)

    def _stats_fields(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "sent": stats.sent,
            "dropped": stats.dropped,
            "retried": stats.retried,
            "queued": stats.queued,
            "dropped_by_reason": dict(stats.dropped_by_reason),
        }

    # -- sending --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(initial=0.1, maximum=2.0)
        while True:
            item = self._take()
            if item is None:
                self._has_work.clear()
                await self._has_work.wait()
                continue
            self._in_flight += 1
            try:
                await self._open_transport()
                if self._degraded:
                    await self._wait_for_broker()
                delivery = await self._send(item.message)
            except asyncio.CancelledError:
                self._in_flight -= 1
                self._requeue(item)
                raise
            except Exception as exc:
                self._in_flight -= 1
                if _is_transient(exc):
                    self._retried += 1
                    self._degraded = True
                    self._requeue(item)
                    delay = backoff.next_delay()
                    log.warning(
                        "emitter_send_failed",
                        error=_describe(exc),
                        retry_in_s=round(delay, 2),
                        queued=self._count,
                    )
                    await asyncio.sleep(delay)
                else:
                    self._release(item.message)
                    self._record_drop(DropReason.REJECTED, 1, [item.message], detail=_describe(exc))
                continue
            backoff.reset()
            delivery.add_done_callback(functools.partial(self._delivered, item))

    def _delivered(self, item: _Queued, future: asyncio.Future[Any]) -> None:
        if self._finished:  # already counted as dropped by close()
            return
        self._in_flight -= 1
        if future.cancelled():
            self._requeue(item)
            return
        exc = future.exception()
        if exc is None:
            self._sent += 1
            self._release(item.message)
        elif _is_transient(exc):
            self._retried += 1
            self._degraded = True
            self._requeue(item)
        else:
            self._release(item.message)
            self._record_drop(DropReason.REJECTED, 1, [item.message], detail=_describe(exc))

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
                queued=self._count,
            )
            await asyncio.sleep(delay)
        self._degraded = False
        log.info("emitter_broker_back", queued=self._count)

    # -- transport (overridden by MemoryEmitter) ------------------------------------------

    async def _probe(self) -> bool:
        """True when the broker answers a metadata request."""
        if self._producer is None:
            return False
        try:
            return bool(
                await asyncio.wait_for(
                    self._producer.client.force_metadata_update(),
                    self.config.request_timeout_ms / 1000,
                )
            )
        except (KafkaError, OSError, TimeoutError):
            return False

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
            "partitioner": _CachedKeyPartitioner(),
        }

    async def _open_transport(self) -> None:
        if self._producer is not None:
            return
        backoff = Backoff(initial=0.2, maximum=5.0)
        while self._producer is None:
            producer = AIOKafkaProducer(**self.producer_options())
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                delay = backoff.next_delay()
                log.warning(
                    "emitter_broker_unavailable",
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    error=_describe(exc),
                    retry_in_s=round(delay, 2),
                    queued=self._count,
                )
                await asyncio.sleep(delay)
                continue
            self._producer = producer
            log.info("emitter_connected", bootstrap_servers=self.settings.kafka_bootstrap_servers)

    async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
        assert self._producer is not None
        future: asyncio.Future[Any] = await self._producer.send(
            message.topic, message.value, key=message.key
        )
        return future

    async def _stop_transport(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5.0)


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


class _CachedKeyPartitioner:
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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, KafkaTimeoutError | TimeoutError | OSError):
        return True
    return bool(getattr(exc, "retriable", False))


def _describe(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
