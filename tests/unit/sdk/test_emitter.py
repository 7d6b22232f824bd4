"""The emitter's queue, drop accounting and retries (debug_sink.sdk.emitter), without a broker."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from structlog.testing import capture_logs

from debug_sink.errors import ConfigurationError
from debug_sink.sdk import drops as drop_log_module
from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter, OutgoingMessage
from debug_sink.settings import Settings
from debug_sink.wire.events import SnapshotEvent, StepEvent
from tests.sdk_support import completes_without_suspending, returns_while_blocked, watch_transport

SETTINGS = Settings.model_construct(topic_prefix="x.")


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
