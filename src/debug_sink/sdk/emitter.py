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
  (``closed``), :meth:`Emitter.close` gave up waiting for the broker (``close_timeout``), or
  the caller was cancelled while its event waited for room, or while :meth:`Emitter.close`
  waited (``cancelled``; the cancellation then propagates).
- **Delivery.** While the broker is unreachable, messages stay queued and are retried until
  they are acknowledged with ``acks=all``; retried messages go out before new ones, in their
  original order, but messages already sent meanwhile may overtake them (the sink needs no
  order: steps merge either way, children wait for their parents). After a transient
  failure nothing more is handed to the producer until the broker answers a metadata
  request again: no batch sits out the outage inside aiokafka (which on the embedded broker
  can be acknowledged after a restart and still be unreadable). A message may be
  delivered twice (an acknowledgement lost with the connection); the sink is idempotent on
  the event id, so a duplicate is a no-op. :meth:`flush` waits for everything queued so far,
  :meth:`close` flushes and stops the producer, both within its timeout (``close_timeout``
  by default) even with the broker gone, and ``async with`` closes on exit.
  The sender hands messages to the producer in slices of about a millisecond, so that
  captures waiting for room get their turn (aiokafka's ``send`` does not suspend while a
  batch has room).
- **Threads and event loops.** :meth:`emit_nowait` (what sync ``traced`` functions use) may
  be called from any thread: the queue is thread-safe, and the sender is woken on its loop;
  one that races :meth:`close` is delivered or counted as dropped (``closed``), never left
  behind in the closed queue.
  The emitter works on one event loop at a time -- the loop it was last used on -- and moves
  to the running loop when that one has ended (a second ``asyncio.run``, pytest-asyncio's
  loop per test) or in a forked child: its sender task, the queue's events and the producer
  are made again there, and what was queued (or in flight on the old loop, sent again) is
  delivered by the new loop. A sender cancelled by its loop's end (``asyncio.run`` cancels
  what is left) stops the producer on that loop first. While the emitter's loop runs in
  another thread, a call from a different loop does not take it over: :meth:`emit` queues
  without waiting, :meth:`flush` and :meth:`close` run on the emitter's loop (when loops of
  two threads find the emitter's loop ended at once, one takes it over, under a lock).

- **Exit.** At a normal exit of the process (the main module returns, ``sys.exit``, an
  uncaught exception; a ``multiprocessing`` child returning) an emitter that was not closed
  but still holds events is closed then, on a loop of its own: what is queued is delivered
  within ``close_timeout``, the rest counted and logged (``close_timeout``). Nothing is lost
  without a trace because the agent forgot ``close()``.

Not guaranteed: order across topics, delivery of what is still queued when the process
is killed (a signal without a handler, ``os._exit``), and events captured from a thread
while no loop has ever used the emitter (dropped as ``closed``: nothing could send them).
The idempotent producer is off (``enable_idempotence=False``): the embedded broker does not
support it, and the sink's event-id idempotency makes it unnecessary.

Producer tuning, measured on this machine: see :class:`EmitterConfig`. The partitioner is
aiokafka's default (murmur2 of the key, like the Java client) with a per-key cache
(:class:`~debug_sink.sdk.producer.CachedKeyPartitioner`): all events of a workflow share a
key, and the uncached pure-Python hash cost more than the rest of the send path.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import multiprocessing.util
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

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

T = TypeVar("T")

#: Room for the rest of a message besides a state of ``max_state_bytes``.
_ENVELOPE_BYTES: Final = 256 * 1024

#: The longest the sender hands messages to the producer before it lets other tasks run.
_SENDER_SLICE_S: Final = 0.001

# Every emitter of the process, to reset in a forked child (locks, loop, producer).
_EMITTERS: weakref.WeakSet[Emitter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for emitter in list(_EMITTERS):
        emitter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_all_at_exit() -> None:
    """At the process's exit: close every emitter still holding events (see
    :meth:`Emitter._close_at_exit`)."""
    for emitter in list(_EMITTERS):
        emitter._close_at_exit()


# A normal exit runs atexit: a return from the main module, sys.exit, an uncaught exception.
atexit.register(_close_all_at_exit)


class _MultiprocessingChild:
    """A multiprocessing child leaves through ``os._exit``, past atexit, after running
    multiprocessing's own finalizers -- which it clears when it starts: the exit hook is
    registered there again, in each child (``register_after_fork`` runs after the clearing)."""

    @staticmethod
    def started(_: object) -> None:
        multiprocessing.util.Finalize(None, _close_all_at_exit, exitpriority=100)


_MULTIPROCESSING_CHILD = _MultiprocessingChild()
multiprocessing.util.register_after_fork(_MULTIPROCESSING_CHILD, _MultiprocessingChild.started)


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
    ``close_timeout``: how long :meth:`Emitter.close` may take (delivering queued events,
    then stopping the producer) when given no timeout.
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


_OWN_LOOP_POLL: Final = 0.01
"""Seconds between looks, from another thread's loop, at the emitter's loop and queue."""


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
            stop_within=self._stop_within,
        )
        self._degraded = False
        self._closed = False
        self._finished = False
        # When close() must be done (time.monotonic()): stopping the producer takes what is
        # left of its timeout.
        self._stop_by: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bumped whenever the emitter moves to another loop: what the old loop's sender and
        # acknowledgements still report is ignored (its messages were put back).
        self._epoch = 0
        self._bind_lock = threading.Lock()
        _EMITTERS.add(self)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sender (returns at once; the broker is connected later)."""
        if self._bind():
            self._ensure_started()

    def _ensure_started(self) -> None:
        """Start the sender on the running loop (the emitter's: see :meth:`_bind`)."""
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._epoch), name="debug-sink-emitter"
            )

    def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """The sender started, from a callback on ``loop``, if that is still the emitter's."""
        if loop is self._loop:
            self._ensure_started()

    def _bind(self) -> bool:
        """Whether the running loop is the emitter's, after moving the emitter to it when
        its own loop has ended; False with no running loop, or while the emitter's loop runs
        in another thread."""
        loop = asyncio._get_running_loop()
        if loop is None:
            return False
        if loop is self._loop:
            return True
        # Loops of two threads may both find the emitter's loop ended: one takes it over,
        # then the other finds that one running.
        with self._bind_lock:
            if self._loop is not None and self._loop.is_running():
                return False
            self._epoch += 1
            task, self._task = self._task, None
            if task is not None and not task.done() and not task.get_loop().is_closed():
                task.cancel()  # on a loop that no longer runs: it never resumes
            self._abandon_transport()
            self._queue.bind(loop)
            self._loop = loop
            return True

    def _after_fork(self) -> None:
        """In a forked child: the parent's loop, sender and producer are not ours to use."""
        self._queue.after_fork()
        self._drops.after_fork()
        self._bind_lock = threading.Lock()
        self._loop = self._task = None
        self._abandon_transport()

    def _close_at_exit(self) -> None:
        """:meth:`close` at the process's exit, when the agent did not: what is queued is
        delivered within ``close_timeout`` on a loop of its own, or counted as dropped.
        Nothing is done for an emitter that is closed or holds nothing."""
        if self._closed or self._queue.count == 0:
            return
        log.info("emitter_closing_at_exit", queued=self._queue.count)
        if asyncio._get_running_loop() is not None:  # exiting from inside a running loop
            self._closed = True
            if self._task is not None:
                self._task.cancel()
            self._finish(DropReason.CLOSE_TIMEOUT)
            return
        try:
            asyncio.run(self.close())
        except BaseException as exc:  # never fail the process's exit
            log.warning("emitter_close_at_exit_failed", error=describe(exc))
            if not self._finished:
                self._closed = True
                self._finish(DropReason.CLOSE_TIMEOUT)

    async def _on_own_loop(self, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``call()`` on the emitter's loop, which runs in another thread.

        That loop may end meanwhile: its ``asyncio.run`` cancels what is left on it, or it
        stops before it ran ``call()`` at all. Then, unless this caller was cancelled
        itself, ``call()`` runs again from here, where the emitter is free for this loop to
        take over (:meth:`_bind`). Cancelling this caller cancels ``call()`` over there.
        """
        loop = self._loop
        assert loop is not None
        work = call()
        try:
            future = asyncio.run_coroutine_threadsafe(work, loop)
        except RuntimeError:  # that loop is closed
            work.close()
            return await call()
        waiting = asyncio.wrap_future(future)
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=_OWN_LOOP_POLL)
                if not waiting.done() and not loop.is_running():
                    future.cancel()  # it never runs there now
                    return await call()
        except BaseException:
            future.cancel()
            raise
        try:
            return waiting.result()
        except asyncio.CancelledError:  # by that loop's shutdown: this caller was not
            return await call()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is acknowledged or dropped.

        Returns ``False`` when ``timeout`` (seconds) passed first; nothing is dropped then.
        """
        if self._queue.count == 0:
            return True
        if not self._bind():
            return await self._flush_from_another_thread(timeout)
        self._ensure_started()
        try:
            await asyncio.wait_for(self._queue.wait_until_empty(), timeout)
        except TimeoutError:
            return False
        return True

    async def _flush_from_another_thread(self, timeout: float | None) -> bool:
        """:meth:`flush` while the emitter's loop runs in another thread: its queue is
        watched from here, so nothing is left on that loop (a flush handed to it was
        cancelled, or never run, when that loop ended first). When that loop ends, this
        one takes the emitter over and the flush goes on here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        restarted = False
        while self._queue.count:
            if self._bind():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return await self.flush(left)
            task, loop = self._task, self._loop
            gone = task is None or task.done()
            if gone and not restarted and loop is not None and not self._closed:
                restarted = True  # once: not again and again into a loop shutting down
                # No sender (a shutdown handler cancelled every task of that loop): start
                # one there, as a flush on that loop would -- a callback, not a task.
                with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
                    loop.call_soon_threadsafe(self._start_on, loop)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_OWN_LOOP_POLL)
        return True

    async def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` (default ``close_timeout``) seconds, then stop.

        The whole call keeps to ``timeout`` (plus at most a fraction of a second to close
        the producer's connections): stopping the producer gets what flushing left of it,
        and what the producer still holds then is not waited for. Whatever was not
        delivered is dropped (``close_timeout``), counted and logged.
        When ``close`` itself is cancelled (the agent's own shutdown timeout), the sender is
        stopped at once, what is left is dropped (``cancelled``), and the cancellation
        propagates. Later :meth:`emit` calls drop (``closed``). Idempotent.
        """
        if self._closed:
            return
        if not self._bind():
            await self._on_own_loop(lambda: self.close(timeout))
            return
        wait = self.config.close_timeout if timeout is None else timeout
        self._stop_by = time.monotonic() + wait
        try:
            await self.flush(wait)
            self._closed = True
            await self._stop_sender()
            # Stopping the producer may still deliver what it holds: its callbacks count.
            await self._stop_transport()
        except BaseException:
            self._closed = True
            if self._task is not None:
                self._task.cancel()  # it stops the producer on its way out
            self._finish(DropReason.CANCELLED)
            raise
        self._finish(DropReason.CLOSE_TIMEOUT)

    async def _stop_sender(self) -> None:
        task = self._task
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: a sender that failed has nothing left to send
        self._task = None

    def _finish(self, reason: DropReason) -> None:
        """Count what is still queued as dropped (``reason``) and log the closing line."""
        self._finished = True
        # In-flight messages of a stopped producer are lost as well. Closed for good: a put
        # from another thread that passed the closed check just before is refused, not
        # left behind in a queue nobody sends.
        count, left = self._queue.clear(close=True)
        if count:
            self._drop(reason, left, count=count)
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
        if not self._bind():  # the emitter's loop runs in another thread: no waiting on it
            return self._put_nowait(messages)
        self._ensure_started()
        if self._queue.try_put(messages):
            return True
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    reason = DropReason.QUEUE_FULL if not self._closed else DropReason.CLOSED
                    self._drop(reason, messages)
                    return False
                await self._queue.wait_for_room(remaining)
                if not self._closed and self._queue.try_put(messages):
                    return True
        except asyncio.CancelledError:
            self._drop(DropReason.CANCELLED, messages)
            raise

    def emit_nowait(self, *events: EventBase) -> bool:
        """Like :meth:`emit` without any waiting (for sync code, other threads and
        cancellation paths)."""
        messages = self._admit(events)
        if messages is None:
            return False
        if self._bind():
            self._ensure_started()
        elif self._loop is None:  # no loop has used the emitter: nothing could send it
            self._drop(DropReason.CLOSED, messages, detail="no running event loop")
            return False
        return self._put_nowait(messages)

    def _put_nowait(self, messages: Sequence[OutgoingMessage]) -> bool:
        if self._queue.try_put(messages):
            return True
        self._drop(DropReason.CLOSED if self._queue.closed else DropReason.QUEUE_FULL, messages)
        return False

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

    async def _run(self, epoch: int) -> None:
        try:
            await self._send_queued(epoch)
        finally:
            # Cancelled by close(), or by the end of the loop (asyncio.run cancels what is
            # left): the producer belongs to this loop and can only be stopped on it.
            if epoch == self._epoch:
                await self._stop_transport()

    async def _send_queued(self, epoch: int) -> None:
        backoff = Backoff(initial=0.1, maximum=2.0)
        queue = self._queue
        slice_started = time.monotonic()
        while True:
            item = queue.take()
            if item is None:
                await queue.wait_for_work()
                slice_started = time.monotonic()
                continue
            try:
                await self._open_transport()
                if self._degraded:
                    await self._wait_for_broker()
                delivery = await self._send(item.message)
            except asyncio.CancelledError:
                queue.requeue(item)
                raise
            except Exception as exc:
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
            delivery.add_done_callback(functools.partial(self._delivered, epoch, item))
            # aiokafka's send() does not suspend while a batch has room: without a pause the
            # whole queue would go out in one loop step, and captures waiting for room (with
            # max_block_ms to spend) would wait for all of it.
            if time.monotonic() - slice_started >= _SENDER_SLICE_S:
                await asyncio.sleep(0)
                slice_started = time.monotonic()

    def _delivered(self, epoch: int, item: Queued, future: asyncio.Future[Any]) -> None:
        # Finished: already counted as dropped by close(). Another epoch: sent on a loop the
        # emitter has left, and put back to be sent again.
        if self._finished or epoch != self._epoch:
            return
        if future.cancelled():
            self._queue.requeue(item)
            return
        exc = future.exception()
        if exc is None:
            if self._queue.release(item):
                self._sent += 1
        elif not (self._closed and is_transient(exc)):
            self._failed(item, exc)
        # Else the producer failed it while close() stopped it: not retried (there is no
        # sender left), it stays in flight and close() counts it as dropped.

    def _failed(self, item: Queued, exc: BaseException) -> bool:
        """Queue a message whose send failed again (transiently: True), or drop it."""
        if is_transient(exc):
            self._retried += 1
            self._degraded = True
            self._queue.requeue(item)
            return True
        if self._queue.release(item):
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

    def _stop_within(self) -> float | None:
        """How long stopping the producer may take now: what is left of close()'s timeout
        while it closes, else ``None`` (the producer's own bound)."""
        return None if self._stop_by is None else self._stop_by - time.monotonic()

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

    def _abandon_transport(self) -> None:
        """Forget the transport of a loop the emitter has left (it cannot be used there)."""
        self._kafka.abandon()


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

    def _abandon_transport(self) -> None:
        self._resumed = asyncio.Event()
        if not self.paused:
            self._resumed.set()

    def events(self, kind: EventKind | None = None) -> list[dict[str, Any]]:
        """The decoded message values, optionally of one kind."""
        return [m.json() for m in self.messages if kind is None or m.kind is kind]
