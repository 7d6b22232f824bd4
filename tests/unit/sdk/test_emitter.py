"""The emitter's queue, drop accounting and retries (debug_sink.sdk.emitter), without a broker."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import typing
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from structlog.testing import capture_logs

from debug_sink.errors import ConfigurationError
from debug_sink.sdk import drops as drop_log_module
from debug_sink.sdk import producer as producer_module
from debug_sink.sdk.emitter import EmitterConfig, EmitterStats, MemoryEmitter, OutgoingMessage
from debug_sink.settings import Settings
from debug_sink.wire.events import SnapshotEvent, StepEvent
from tests.sdk_support import completes_without_suspending, returns_while_blocked, watch_transport

SETTINGS = Settings.model_construct(topic_prefix="x.")

T = TypeVar("T")


def snapshot(i: int = 0) -> SnapshotEvent:
    return SnapshotEvent(
        id=uuid.uuid4(),
        correlation_id=uuid.UUID(int=1),
        snapshot_type="checkpoint",
        agent_name="a",
        agent_state={"i": i},
    )


class FlakyEmitter(MemoryEmitter):
    """Fails the first ``failures`` sends with ``error``."""

    def __init__(self, failures: int, error: Exception, **kwargs: Any) -> None:
        super().__init__(SETTINGS, EmitterConfig(**kwargs))
        self.failures = failures
        self.error = error

    async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(self.error)
            return future
        self.messages.append(message)
        future.set_result(None)
        return future


class TestEncoding:
    """One JSON message per event, keyed by correlation id, on the kind's topic."""

    def test_encode(self) -> None:
        emitter = MemoryEmitter(SETTINGS)
        event = snapshot()
        message = emitter.encode(event)
        assert message.topic == "x.state_snapshots"
        assert message.key == str(uuid.UUID(int=1)).encode()
        assert message.json()["agent_state"] == {"i": 0}
        assert "state_hash" not in message.json()  # None fields are left out

    async def test_unserialisable_event_is_dropped_counted_and_logged(self) -> None:
        emitter = MemoryEmitter(SETTINGS)
        bad = StepEvent(
            id=uuid.uuid4(),
            correlation_id=uuid.uuid4(),
            step_number=1,
            step_type="x",
            agent_name="a",
            operation_name="o",
            status="started",
            input_data=object(),
        )
        with capture_logs() as logs:
            assert not await emitter.emit(bad, snapshot())
        assert emitter.stats.dropped_by_reason == {"unserialisable": 2}
        assert logs[0]["event"] == "emitter_events_dropped"
        assert logs[0]["reason"] == "unserialisable"
        assert logs[0]["dropped"] == 2
        assert not emitter.messages


class TestDrops:
    """Drops are counted exactly and logged, at most one line per reason per interval."""

    async def test_drop_logs_are_summarised(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first drop is logged at once, the other 99 of the interval in one summary
        line when the interval's timer fires. The drop log's clock is frozen, so however
        slowly this machine runs the loop, all 101 emits fall in one interval."""
        monkeypatch.setattr(drop_log_module, "time", SimpleNamespace(monotonic=lambda: 1000.0))
        emitter = MemoryEmitter(
            SETTINGS, EmitterConfig(max_queue_events=1, max_block_ms=0, drop_log_interval=0.05)
        )
        emitter.paused = True
        with capture_logs() as logs:
            for i in range(101):
                await emitter.emit(snapshot(i))
            await asyncio.sleep(0.1)
        drops = [entry for entry in logs if entry["event"] == "emitter_events_dropped"]
        assert [d["dropped"] for d in drops] == [1, 99]
        assert drops[-1]["dropped_total"] == 100
        assert emitter.stats.dropped == 100
        await emitter.close(timeout=0)

    async def test_closed_emitter_drops(self) -> None:
        emitter = MemoryEmitter(SETTINGS)
        await emitter.emit(snapshot())
        await emitter.close()
        assert len(emitter.messages) == 1
        assert not await emitter.emit(snapshot())
        assert not emitter.emit_nowait(snapshot())
        assert emitter.stats.dropped_by_reason == {"closed": 2}

    async def test_flush_timeout_keeps_events(self) -> None:
        emitter = MemoryEmitter(SETTINGS)
        emitter.paused = True
        await emitter.emit(snapshot())
        assert not await emitter.flush(timeout=0.05)
        assert emitter.stats.queued == 1
        assert emitter.stats.dropped == 0
        emitter.resume()
        assert await emitter.flush(timeout=5)
        await emitter.close()

    async def test_async_with_flushes(self) -> None:
        async with MemoryEmitter(SETTINGS) as emitter:
            for i in range(50):
                emitter.emit_nowait(snapshot(i))
        assert len(emitter.messages) == 50
        assert emitter.closed

    def test_bad_config(self) -> None:
        with pytest.raises(ConfigurationError):
            EmitterConfig(max_queue_events=0)


class TestBoundedWaiting:
    """emit() waits for room in the queue, at most max_block_ms, and never for the broker;
    emit_nowait() never waits."""

    async def test_without_room_or_time_to_wait_nothing_suspends(self) -> None:
        """With max_block_ms=0 and the transport paused, emit() returns in one step whether
        the queue has room (queued) or not (dropped)."""
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1, max_block_ms=0))
        emitter.paused = True
        assert completes_without_suspending(emitter.emit(snapshot(0))) is True
        assert completes_without_suspending(emitter.emit(snapshot(1))) is False
        assert not emitter.emit_nowait(snapshot(2))
        assert emitter.stats.dropped_by_reason == {"queue_full": 2}
        await emitter.close(timeout=0)

    async def test_a_full_queue_waits_for_room_then_drops(self) -> None:
        """With the transport paused for good, a full-queue emit() gives up on its own (the
        transport is never released meanwhile); only the sender task awaits the transport."""
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1, max_block_ms=20))
        emitter.paused = True
        transport_users = watch_transport(emitter)
        assert await emitter.emit(snapshot(0))
        assert not await returns_while_blocked(emitter.emit(snapshot(1)))
        assert emitter.paused
        assert set(transport_users) <= {"debug-sink-emitter"}
        assert emitter.stats.dropped_by_reason == {"queue_full": 1}
        await emitter.close(timeout=0)

    async def test_room_made_while_waiting_is_taken(self) -> None:
        """A full-queue emit() that sees room appear within max_block_ms is queued."""
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1, max_block_ms=60_000))
        emitter.paused = True
        assert await emitter.emit(snapshot(0))
        waiting = asyncio.ensure_future(emitter.emit(snapshot(1)))
        await asyncio.sleep(0)
        assert not waiting.done()
        emitter.resume()
        assert await waiting
        assert await emitter.flush(timeout=5)
        assert [m.json()["agent_state"]["i"] for m in emitter.messages] == [0, 1]
        assert emitter.stats.dropped == 0
        await emitter.close()


class TestRetries:
    """Transient send failures are retried in order; permanent ones are dropped."""

    async def test_transient_failures_are_retried(self) -> None:
        """Each event is delivered exactly once here; retried ones keep their relative
        order (events sent meanwhile may overtake them: the sink does not need order)."""
        emitter = FlakyEmitter(3, KafkaConnectionError("down"))
        for i in range(5):
            await emitter.emit(snapshot(i))
        assert await emitter.flush(timeout=10)
        delivered = [m.json()["agent_state"]["i"] for m in emitter.messages]
        assert sorted(delivered) == [0, 1, 2, 3, 4]
        assert [i for i in delivered if i < 3] == [0, 1, 2]
        assert emitter.stats.retried == 3
        assert emitter.stats.sent == 5
        assert emitter.stats.dropped == 0
        await emitter.close()

    async def test_permanent_failure_is_dropped(self) -> None:
        emitter = FlakyEmitter(1, MessageSizeTooLargeError("too big"))
        with capture_logs() as logs:
            await emitter.emit(snapshot(0))
            await emitter.emit(snapshot(1))
            assert await emitter.flush(timeout=5)
        assert emitter.stats.dropped_by_reason == {"rejected": 1}
        assert [m.json()["agent_state"]["i"] for m in emitter.messages] == [1]
        assert any(e.get("reason") == "rejected" for e in logs)
        await emitter.close()


def in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a fresh thread (no event loop there, so it may call ``asyncio.run``)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "hung"
    if "error" in out:
        raise out["error"]
    return typing.cast(T, out["value"])


class TestEventLoops:
    """An emitter kept across event loops (a module-level manager, a second asyncio.run,
    pytest-asyncio's loop per test) moves to the running loop; what was queued carries over
    and is delivered there; nothing raises into the caller."""

    @pytest.mark.parametrize("first_run_flushes", [True, False])
    def test_a_second_asyncio_run_delivers_what_both_runs_queued(
        self, first_run_flushes: bool
    ) -> None:
        emitter = MemoryEmitter(SETTINGS)

        async def first() -> None:
            emitter.paused = not first_run_flushes
            await emitter.emit(snapshot(0))
            if first_run_flushes:
                assert await emitter.flush(timeout=5)

        async def second() -> tuple[bool, EmitterStats]:
            await emitter.emit(snapshot(1))
            emitter.resume()
            flushed = await emitter.flush(timeout=5)
            await emitter.close(timeout=1)
            return flushed, emitter.stats

        def scenario() -> tuple[bool, EmitterStats]:
            asyncio.run(first())
            return asyncio.run(second())

        flushed, stats = in_thread(scenario)
        assert flushed
        assert sorted(m.json()["agent_state"]["i"] for m in emitter.messages) == [0, 1]
        assert (stats.sent, stats.dropped, stats.queued, stats.in_flight) == (2, 0, 0, 0)

    def test_messages_in_flight_on_an_ended_loop_are_sent_again(self) -> None:
        """A send whose acknowledgement never came (its loop ended) is sent again by the
        next loop: delivered twice at worst, never lost or left counted."""

        class Unacknowledged(MemoryEmitter):
            async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
                self.messages.append(message)
                return asyncio.get_running_loop().create_future()  # never resolved

        emitter = Unacknowledged(SETTINGS)

        async def first() -> None:
            await emitter.emit(snapshot(0))
            await asyncio.sleep(0.01)
            assert emitter.stats.in_flight == 1

        async def second() -> EmitterStats:
            emitter._send = super(Unacknowledged, emitter)._send  # type: ignore[method-assign]
            assert await emitter.flush(timeout=5)
            await emitter.close()
            return emitter.stats

        def scenario() -> EmitterStats:
            asyncio.run(first())
            return asyncio.run(second())

        stats = in_thread(scenario)
        assert len(emitter.messages) == 2
        assert (stats.sent, stats.dropped, stats.queued, stats.in_flight) == (1, 0, 0, 0)


class TestThreads:
    """emit_nowait() (sync traced functions) may be called from worker threads."""

    def test_a_capture_from_a_thread_wakes_the_idle_sender(self) -> None:
        """The loop has nothing else to do; the event goes out anyway."""

        async def agent() -> int:
            emitter = MemoryEmitter(SETTINGS)
            await emitter.emit(snapshot(0))
            assert await emitter.flush(timeout=5)
            loop = asyncio.get_running_loop()
            done: asyncio.Future[int] = loop.create_future()

            def worker() -> None:
                emitter.emit_nowait(snapshot(1))
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and len(emitter.messages) < 2:
                    time.sleep(0.01)
                loop.call_soon_threadsafe(done.set_result, len(emitter.messages))

            threading.Thread(target=worker).start()
            delivered = await done
            await emitter.close()
            return delivered

        assert in_thread(lambda: asyncio.run(agent())) == 2

    def test_a_capture_from_a_thread_under_asyncio_debug_mode(self) -> None:
        """asyncio's debug mode (python -X dev) rejects non-thread-safe calls: a capture
        from a thread must not raise, and close() must still end."""

        async def agent() -> list[str]:
            emitter = MemoryEmitter(SETTINGS, EmitterConfig(close_timeout=3))
            await emitter.emit(snapshot(0))
            assert await emitter.flush(timeout=5)  # the sender now waits for work
            errors: list[str] = []

            def worker() -> None:
                try:
                    emitter.emit_nowait(snapshot(1))
                except BaseException as exc:
                    errors.append(repr(exc))

            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            await emitter.close()
            assert emitter.stats.sent == 2, emitter.stats
            return errors

        assert in_thread(lambda: asyncio.run(agent(), debug=True)) == []

    def test_counters_stay_exact_under_captures_from_many_threads(self) -> None:
        threads, calls = 4, 2000

        async def agent() -> tuple[EmitterStats, int]:
            emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1_000_000))
            await emitter.start()
            workers = [
                threading.Thread(
                    target=lambda: [emitter.emit_nowait(snapshot(i)) for i in range(calls)]
                )
                for _ in range(threads)
            ]
            for w in workers:
                w.start()
            main = 0
            while any(w.is_alive() for w in workers):
                main += 1
                await emitter.emit(snapshot(-main))
                await asyncio.sleep(0)  # the sender releases while the threads put
            assert await emitter.flush(timeout=20)
            await emitter.close()
            return emitter.stats, main

        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            stats, main = in_thread(lambda: asyncio.run(agent()))
        finally:
            sys.setswitchinterval(previous)
        assert stats.sent == threads * calls + main, stats
        assert (stats.queued, stats.queued_bytes, stats.in_flight, stats.dropped) == (0, 0, 0, 0)

    def test_a_capture_from_a_thread_that_races_close_is_counted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A thread's capture passed the closed check, then close() ran to its end before
        the capture was queued: it is refused and counted (closed), not left behind in a
        queue nobody sends. (The thread is held at that point by a _bind that waits.)"""
        emitter = MemoryEmitter(SETTINGS)
        closed = threading.Event()
        bind = emitter._bind

        def held_bind() -> bool:
            if asyncio._get_running_loop() is None:  # the worker thread, not the loop's
                closed.wait(5)
            return bind()

        async def agent() -> bool:
            await emitter.start()
            monkeypatch.setattr(emitter, "_bind", held_bind)
            worker = asyncio.ensure_future(asyncio.to_thread(emitter.emit_nowait, snapshot(1)))
            await asyncio.sleep(0.05)  # the thread is past the closed check, held
            await emitter.close()
            closed.set()
            return await worker

        queued = in_thread(lambda: asyncio.run(agent()))
        stats = emitter.stats
        assert not queued
        assert (stats.queued, stats.dropped, dict(stats.dropped_by_reason)) == (
            0,
            1,
            {"closed": 1},
        )

    def test_loops_of_two_threads_that_find_the_emitter_free_take_turns(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Four threads, each with its own event loop, capture at once into an emitter no
        loop has used: one loop at a time takes it over (the others then find that one
        running, and queue without waiting). Binding is made slow here so that they all
        arrive while the first binds; without the lock all four bound at once, and one's
        sender was cancelled by another (CancelledError in the agent)."""
        threads, calls = 4, 100
        emitter = MemoryEmitter(SETTINGS)
        queue_bind = type(emitter._queue).bind
        binding: list[int] = []
        at_once: list[int] = []
        count = threading.Lock()

        def slow_bind(queue: Any, loop: asyncio.AbstractEventLoop) -> None:
            with count:
                binding.append(1)
                at_once.append(len(binding))
            time.sleep(0.01)
            queue_bind(queue, loop)
            with count:
                binding.pop()

        monkeypatch.setattr(type(emitter._queue), "bind", slow_bind)
        start = threading.Barrier(threads, timeout=10)
        errors: list[str] = []

        async def agent() -> None:
            start.wait()
            for i in range(calls):
                await emitter.emit(snapshot(i))
            assert await emitter.flush(timeout=10)

        def run() -> None:
            try:
                asyncio.run(agent())
            except BaseException as exc:
                errors.append(repr(exc))

        pool = [threading.Thread(target=run) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        assert not errors, errors
        assert max(at_once) == 1, f"{max(at_once)} loops bound the emitter at once"
        assert emitter.stats.sent == threads * calls, emitter.stats

    def test_a_flush_handed_to_a_loop_that_ends_finishes_on_the_callers_loop(self) -> None:
        """Thread B's flush runs on thread A's loop, which holds the emitter; A's
        ``asyncio.run`` then ends and cancels it there. B was not cancelled: its flush goes
        on from B's loop (which takes the emitter over) and returns True, where it raised
        CancelledError in B's agent before."""
        emitter = MemoryEmitter(SETTINGS)
        emitter.paused = True  # nothing is sent while A holds the emitter
        bound, handed, a_ended = threading.Event(), threading.Event(), threading.Event()

        async def agent_a() -> None:
            await emitter.emit(snapshot(0))
            bound.set()
            await asyncio.to_thread(handed.wait, 10)

        async def agent_b() -> bool:
            await asyncio.to_thread(bound.wait, 10)
            await emitter.emit(snapshot(1))
            flushing = asyncio.ensure_future(emitter.flush(timeout=10))
            await asyncio.sleep(0.2)  # the flush now waits on A's loop
            assert emitter._loop is not asyncio.get_running_loop()
            handed.set()
            await asyncio.to_thread(a_ended.wait, 10)
            emitter.paused = False
            return await flushing

        def run_a() -> None:
            try:
                asyncio.run(agent_a())
            finally:
                a_ended.set()

        a = threading.Thread(target=run_a)
        a.start()
        try:
            assert in_thread(lambda: asyncio.run(agent_b())) is True
        finally:
            handed.set()
            a.join(10)
        assert emitter.stats.sent == 2, emitter.stats

    def test_a_flush_from_another_thread_restarts_a_sender_that_is_gone(self) -> None:
        """The emitter's loop keeps running but its sender was cancelled (a shutdown handler
        that cancels every task): a flush from another thread's loop starts a sender there,
        as a flush on that loop does, instead of waiting for ever."""
        emitter = MemoryEmitter(SETTINGS)
        bound, done = threading.Event(), threading.Event()

        async def owner() -> None:
            emitter.paused = True
            await emitter.emit(snapshot(0))
            await asyncio.sleep(0.05)
            assert emitter._task is not None
            emitter._task.cancel()  # the sender is gone; this loop runs on
            await asyncio.sleep(0.05)
            emitter.paused = False
            bound.set()
            await asyncio.to_thread(done.wait, 10)

        async def other() -> bool:
            await asyncio.to_thread(bound.wait, 10)
            await emitter.emit(snapshot(1))
            return await emitter.flush(timeout=5)

        a = threading.Thread(target=lambda: asyncio.run(owner()))
        a.start()
        try:
            assert in_thread(lambda: asyncio.run(other())) is True
        finally:
            done.set()
            a.join(10)
        assert emitter.stats.sent == 2, emitter.stats


class TestCancellation:
    """What a cancellation interrupts is counted (``cancelled``), and it propagates."""

    async def test_a_capture_cancelled_while_waiting_for_room_is_counted(self) -> None:
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1, max_block_ms=60_000))
        emitter.paused = True
        assert await emitter.emit(snapshot(0))
        waiting = asyncio.ensure_future(emitter.emit(snapshot(1)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert emitter.stats.dropped_by_reason == {"cancelled": 1}
        await emitter.close(timeout=0)
        assert emitter.stats.dropped_by_reason == {"cancelled": 1, "close_timeout": 1}

    async def test_a_cancelled_close_stops_the_sender_and_counts_the_queue(self) -> None:
        """The agent's own shutdown timeout cancels close() while it waits for the broker:
        the queue is counted as dropped (and logged), the sender stops, the cancellation
        propagates."""
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(close_timeout=60))
        emitter.paused = True
        for i in range(5):
            await emitter.emit(snapshot(i))
        closing = asyncio.ensure_future(emitter.close())
        await asyncio.sleep(0.01)
        with capture_logs() as logs:
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
        sender = emitter._task
        await asyncio.sleep(0)
        assert emitter.closed
        assert sender is None or sender.done()
        assert emitter.stats.dropped_by_reason == {"cancelled": 5}
        assert emitter.stats.queued == 0
        assert any(e.get("reason") == "cancelled" for e in logs)

    async def test_a_producer_stop_cut_off_by_a_cancellation_leaves_no_unretrieved_error(
        self,
    ) -> None:
        """Stopping the producer raises what its tasks met; when the close waiting for it is
        itself cancelled, that error is still retrieved (no "Task exception was never
        retrieved" at the end of the agent's loop)."""

        async def stop_that_fails() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                raise RuntimeError("the sender failed while stopping") from None

        reported: list[str] = []
        loop = asyncio.get_running_loop()
        # What earlier tests on this shared loop left for the collector (an emitter never
        # closed: its sender "destroyed but pending") is collected first, not reported here.
        gc.collect()
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx["message"]))
        try:
            bounded = asyncio.ensure_future(producer_module._within(stop_that_fails(), 5))
            await asyncio.sleep(0.01)
            bounded.cancel()
            with pytest.raises(asyncio.CancelledError):
                await bounded
            await asyncio.sleep(0.01)
            gc.collect()
            await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(previous)
        assert reported == []


class TestSenderYields:
    """The sender hands messages to the producer in short slices, so that captures waiting
    for room (within max_block_ms) run in between, even when the producer's send never
    suspends (aiokafka's does not while a batch has room)."""

    async def test_other_tasks_run_while_a_long_queue_is_handed_over(self) -> None:
        class SlowSend(MemoryEmitter):
            async def _send(self, message: OutgoingMessage) -> asyncio.Future[Any]:
                until = time.perf_counter() + 0.0001  # 0.1 ms of CPU, no suspension
                while time.perf_counter() < until:
                    pass
                return await super()._send(message)

        emitter = SlowSend(SETTINGS)
        total = 500  # 50 ms of sending: many slices
        for i in range(total):
            emitter.emit_nowait(snapshot(i))
        seen = []
        while len(emitter.messages) < total:
            await asyncio.sleep(0)
            seen.append(len(emitter.messages))
        assert any(0 < n < total for n in seen), seen
        await emitter.close()
