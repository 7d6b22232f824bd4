"""The agent SDK (debug_sink.sdk.manager) on a MemoryEmitter: what it sends, without services."""

from __future__ import annotations

import asyncio
import typing
import uuid
from typing import Any

import orjson
import pytest

from debug_sink.errors import ConfigurationError, InvalidEvent
from debug_sink.sdk import reading
from debug_sink.sdk.builders import error_type_of
from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.sdk.sanitize import MAX_TEXT_CHARS
from debug_sink.settings import Settings
from debug_sink.wire.canonical import canonical_json, state_hash
from debug_sink.wire.events import (
    ErrorCategory,
    ErrorSeverity,
    EventKind,
    SnapshotType,
    TerminalStepStatus,
)
from debug_sink.wire.redact import REDACTED
from debug_sink.wire.validation import Accepted, ValidationConfig, decode
from tests.sdk_support import (
    T0,
    FakeClock,
    completes_without_suspending,
    memory_manager,
    returns_while_blocked,
    watch_transport,
)

SETTINGS = Settings.model_construct()


def emitted(manager: DebugStateManager, kind: EventKind | None = None) -> list[dict[str, Any]]:
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    return emitter.events(kind)


async def sent(manager: DebugStateManager) -> list[Any]:
    await manager.flush(5)
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    return emitter.messages


def decode_all(messages: list[Any], settings: Settings = SETTINGS) -> list[Accepted]:
    config = ValidationConfig(
        topics=settings.topics,
        max_state_bytes=settings.max_state_bytes,
        max_depth=settings.max_depth,
        redact_patterns=settings.redact_patterns,
    )
    results = []
    for message in messages:
        result = decode(message.topic, message.value, timestamp_ms=0, config=config)
        assert isinstance(result, Accepted), result
        results.append(result)
    return results


class TestCaptureErrorState:
    """capture_error_state sends the state snapshot and the error together, ids client-side."""

    async def test_error_with_state(self) -> None:
        """Type, message and stack trace come from the exception; the error references the
        snapshot; the returned id is the error's."""
        manager = memory_manager()
        corr = uuid.uuid4()
        try:
            raise TimeoutError("upstream timed out")
        except TimeoutError as exc:
            error_id = await manager.capture_error_state(
                correlation_id=corr,
                agent_name="my-agent",
                error=exc,
                agent_state={"context": "data"},
                error_severity="high",
            )
        messages = await sent(manager)
        snapshot, error = (m.json() for m in messages)
        assert [m.kind for m in messages] == [EventKind.SNAPSHOT, EventKind.ERROR]
        assert error["id"] == str(error_id)
        assert error["state_snapshot_id"] == snapshot["id"]
        assert error["error_type"] == "TimeoutError"
        assert error["error_message"] == "upstream timed out"
        assert error["error_severity"] == "high"
        assert "Traceback" in error["error_stack_trace"]
        assert "raise TimeoutError" in error["error_stack_trace"]
        assert snapshot["snapshot_type"] == "error"
        assert snapshot["agent_state"] == {"context": "data"}
        assert snapshot["state_hash"] == state_hash({"context": "data"})
        assert {m.key for m in messages} == {str(corr).encode()}

    async def test_error_type_is_qualified_and_fits_its_column(self) -> None:
        """Non-builtin errors are module-qualified; a type over 255 characters keeps its end
        (the class name) instead of failing."""

        class Boom(Exception):
            pass

        assert error_type_of(TimeoutError()) == "TimeoutError"
        assert error_type_of(Boom()).endswith(
            "TestCaptureErrorState.test_error_type_is_qualified_and_fits_its_column.<locals>.Boom"
        )
        manager = memory_manager()
        long_type = "pkg." * 100 + "VeryLongError"
        await manager.capture_error_state(
            uuid.uuid4(), "a", RuntimeError("x"), {}, error_type=long_type
        )
        await sent(manager)
        error = emitted(manager, EventKind.ERROR)[0]
        assert len(error["error_type"]) == 255
        assert error["error_type"].endswith("VeryLongError")
        assert manager.stats.dropped == 0

    async def test_huge_message_and_nul_characters(self) -> None:
        """Free text is cut at 64 KiB with a marker; NUL becomes U+FFFD (PostgreSQL cannot
        store it) so the sink does not dead-letter the event."""
        manager = memory_manager()
        await manager.capture_error_state(
            uuid.uuid4(), "a\x00b", "m" * (MAX_TEXT_CHARS + 10) + "\x00", {"k\x00": "v\x00"}
        )
        messages = await sent(manager)
        decode_all(messages)
        snapshot, error = (m.json() for m in messages)
        assert error["error_message"].endswith("…[truncated 11 characters]")
        assert error["agent_name"] == "a\ufffdb"
        assert snapshot["agent_state"] == {"k\ufffd": "v\ufffd"}
        assert error["error_type"] == "Error"

    async def test_lone_surrogates_in_text_and_names(self) -> None:
        """A message or a name with a lone surrogate (a file name decoded with
        surrogateescape, a tool output cut in an emoji) is sent with U+FFFD in its place:
        neither the error group (unencodable) nor the success (a name the model rejects) is
        lost."""
        manager = memory_manager()
        corr = uuid.uuid4()
        await manager.capture_error_state(
            corr,
            "agent\udcff",
            "cannot open report-\udcff.csv",
            {"k": "v"},
            "high",
            operation_name="open\ud83d",
        )
        await manager.capture_success(corr, "agent\udcff", "open\ud83d")
        assert manager.stats.dropped == 0, dict(manager.stats.dropped_by_reason)
        messages = await sent(manager)
        decode_all(messages)
        _, error, success = (m.json() for m in messages)
        assert error["error_message"] == "cannot open report-\ufffd.csv"
        assert (error["agent_name"], error["operation_name"]) == ("agent\ufffd", "open\ufffd")
        assert (success["agent_name"], success["operation_name"]) == ("agent\ufffd", "open\ufffd")


class TestSinkEquivalence:
    """What the SDK sends is what the sink stores: decode() finds nothing to change."""

    async def test_every_event_kind_decodes_unchanged(self) -> None:
        """Redaction and hashing are the shared implementation: decode() reports neither a
        replaced hash nor a redaction, and the decoded event equals the one sent."""
        manager = memory_manager(session_id=uuid.uuid4())
        corr = uuid.uuid4()
        state = {
            "api_key": "sk-123",
            "nested": {"Password": "x", "items": [{"token": "t"}]},
            "tuple": (1, 2),
            "set": {3},
            5: "non-string key",
            "max_tokens": 10,
        }
        await manager.capture_snapshot(corr, "planner", state)
        await manager.capture_error_state(corr, "planner", ValueError("bad"), state)
        await manager.capture_success(
            corr,
            "planner",
            "fetch",
            agent_state=state,
            quality_score=0.75,
            success_factors={"secret": "s"},
        )
        async with manager.step(
            corr,
            "work",
            agent_name="planner",
            agent_state=state,
            input_data={"authorization": "Bearer x"},
        ) as step:
            step.output = {"cookie": "c", "result": 1}
        await manager.log_transformation_with_state(
            "router", "planner", corr, state, metadata={"client_secret": "s"}
        )
        await manager.record_llm_call(
            corr,
            "gpt-4o",
            agent_name="planner",
            quality_score=0.9,
            latency_ms=120.0,
            prompt_tokens=3,
            completion_tokens=4,
            payload={"headers": {"x-api-key": "k"}},
        )
        messages = await sent(manager)
        assert {m.kind for m in messages} == set(EventKind)
        for message, result in zip(messages, decode_all(messages), strict=True):
            assert not result.hash_replaced, message.kind
            assert not result.redacted, message.kind
            wire = result.event.model_dump(mode="json", exclude_none=True)
            assert orjson.loads(message.value) == wire, message.kind
        snapshot = emitted(manager, EventKind.SNAPSHOT)[0]
        assert snapshot["agent_state"]["api_key"] == REDACTED
        assert snapshot["agent_state"]["nested"]["Password"] == REDACTED
        assert snapshot["agent_state"]["nested"]["items"][0]["token"] == REDACTED
        assert snapshot["agent_state"]["max_tokens"] == 10
        assert snapshot["agent_state"]["tuple"] == [1, 2]
        assert snapshot["agent_state"]["5"] == "non-string key"
        assert snapshot["state_hash"] == state_hash(snapshot["agent_state"])

    async def test_oversized_state_is_truncated_with_a_marker(self) -> None:
        """A state over max_state_bytes becomes a visible marker the sink accepts (it would
        reject the original as state_too_large)."""
        settings = Settings.model_construct(max_state_bytes=4096)
        manager = memory_manager(settings)
        big = {"blob": "x" * 10_000, "b": 1, "password": "p"}
        await manager.capture_snapshot(uuid.uuid4(), "a", big)
        messages = await sent(manager)
        (result,) = decode_all(messages, settings)
        assert not result.hash_replaced
        assert not result.redacted
        state = messages[0].json()["agent_state"]
        redacted_big = {**big, "password": REDACTED}
        assert state["_truncated"] is True
        assert state["_reason"] == "too_large"
        assert state["_original_size_bytes"] == len(canonical_json(redacted_big))
        assert state["_original_state_hash"] == state_hash(redacted_big)
        assert state["_top_level_keys"] == ["b", "blob", "password"]
        assert "hunter" not in state["preview"]
        assert len(canonical_json(state)) <= 4096
        # What the sink would do with the untruncated state:
        raw = orjson.dumps({**messages[0].json(), "agent_state": big})
        config = ValidationConfig(max_state_bytes=4096, topics=settings.topics)
        assert (
            decode(messages[0].topic, raw, timestamp_ms=0, config=config).error_class
            == "state_too_large"
        )  # type: ignore[union-attr]

    async def test_too_deep_state_is_truncated(self) -> None:
        """A state nested deeper than max_depth allows becomes a marker too."""
        settings = Settings.model_construct(max_depth=8)
        manager = memory_manager(settings)
        deep: dict[str, Any] = {}
        node = deep
        for _ in range(20):
            node["n"] = {}
            node = node["n"]
        await manager.capture_snapshot(uuid.uuid4(), "a", deep)
        messages = await sent(manager)
        decode_all(messages, settings)
        assert messages[0].json()["agent_state"]["_reason"] == "too_deep"

    async def test_unserialisable_value_becomes_a_marker(self) -> None:
        """A state with a reference cycle is sent as a marker; the error still goes out."""
        manager = memory_manager()
        cyclic: dict[str, Any] = {}
        cyclic["self"] = cyclic
        await manager.capture_error_state(uuid.uuid4(), "a", RuntimeError("x"), cyclic)
        messages = await sent(manager)
        decode_all(messages)
        assert messages[0].json()["agent_state"]["_unserialisable"] is True
        assert len(messages) == 2


class TestStepContextManager:
    """step() records a step with its duration; success on return, error on exception."""

    async def test_success(self) -> None:
        """started + success (with a success snapshot of step.state) + completed, same id."""
        clock = FakeClock()
        manager = memory_manager(clock=clock)
        corr = uuid.uuid4()
        async with manager.step(corr, "fetch", agent_name="planner", agent_state={"n": 1}) as step:
            assert step.state is not None
            step.state["n"] = 2
            clock.advance(1500)
            await manager.record_llm_call(corr, "gpt-4o", quality_score=0.5)
        await sent(manager)
        steps = emitted(manager, EventKind.STEP)
        assert [s["status"] for s in steps] == ["started", "completed"]
        assert steps[0]["id"] == steps[1]["id"] == str(step.id)
        assert steps[1]["duration_ms"] == 1500
        assert steps[0]["step_number"] == steps[1]["step_number"] == 1
        success = emitted(manager, EventKind.SUCCESS)[0]
        assert steps[1]["success_event_id"] == success["id"]
        assert success["execution_time_ms"] == 1500
        assert success["execution_step"] == 1
        pre, post = emitted(manager, EventKind.SNAPSHOT)
        assert pre["agent_state"] == {"n": 1}
        assert post["agent_state"] == {"n": 2}
        assert post["parent_snapshot_id"] == pre["id"]
        assert steps[1]["pre_state_snapshot_id"] == pre["id"]
        assert steps[1]["post_state_snapshot_id"] == post["id"]
        hook = emitted(manager, EventKind.HOOK)[0]
        assert hook["metadata"]["execution_step"] == 1

    async def test_exception_is_recorded_and_reraised(self) -> None:
        """The error is captured with step.state, the step fails, the exception propagates."""
        clock = FakeClock()
        manager = memory_manager(clock=clock)
        corr = uuid.uuid4()

        async def parse() -> None:
            async with manager.step(corr, "parse", agent_name="planner") as step:
                step.state = {"input": "x"}
                clock.advance(20)
                raise KeyError("missing")

        with pytest.raises(KeyError, match="missing"):
            await parse()
        await sent(manager)
        steps = emitted(manager, EventKind.STEP)
        assert [s["status"] for s in steps] == ["started", "failed"]
        assert steps[1]["duration_ms"] == 20
        error = emitted(manager, EventKind.ERROR)[0]
        assert steps[1]["error_event_id"] == error["id"]
        assert error["error_type"] == "KeyError"
        assert error["operation_name"] == "parse"
        assert error["execution_step"] == 1
        assert emitted(manager, EventKind.SNAPSHOT)[0]["agent_state"] == {"input": "x"}
        assert not emitted(manager, EventKind.SUCCESS)

    async def test_nested_steps_and_numbering(self) -> None:
        """Steps are numbered per workflow; a step inside another is its child."""
        manager = memory_manager()
        corr = uuid.uuid4()
        async with (
            manager.step(corr, "outer", agent_name="a") as outer,
            manager.step(corr, "inner", agent_name="a") as inner,
        ):
            pass
        async with manager.step(uuid.uuid4(), "other", agent_name="a") as other:
            pass
        assert (outer.step_number, inner.step_number, other.step_number) == (1, 2, 1)
        assert inner.parent_step_id == outer.id
        assert outer.parent_step_id is None

    async def test_cancellation_marks_the_step_failed(self) -> None:
        """A cancelled step is completed as failed (metadata.cancelled), no error event."""
        manager = memory_manager()
        corr = uuid.uuid4()
        started = asyncio.Event()

        async def work() -> None:
            async with manager.step(corr, "slow", agent_name="a"):
                started.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(work())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await sent(manager)
        steps = emitted(manager, EventKind.STEP)
        assert [s["status"] for s in steps] == ["started", "failed"]
        assert steps[1]["metadata"] == {"cancelled": True}
        assert not emitted(manager, EventKind.ERROR)

    async def test_complete_unknown_step_is_misuse(self) -> None:
        manager = memory_manager()
        with pytest.raises(ValueError, match="was not started"):
            await manager.complete_step(uuid.uuid4())

    async def test_a_step_cancelled_while_its_end_waits_for_room_is_counted(self) -> None:
        """The block ends, then the task is cancelled while the step's success and
        completion wait for room: every event the step meant to send is sent or counted."""
        debug = DebugStateManager(
            emitter=MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=3, max_block_ms=60_000))
        )
        debug.emitter.paused = True  # type: ignore[attr-defined]
        corr = uuid.uuid4()
        ended = asyncio.Event()

        async def agent() -> None:
            async with debug.step(corr, "fetch", agent_name="agent"):  # started: 1
                await debug.capture_snapshot(corr, "agent", {"i": 1})
                await debug.capture_snapshot(corr, "agent", {"i": 2})  # the queue is full
                ended.set()

        task = asyncio.create_task(agent())
        await ended.wait()
        await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert debug.stats.dropped_by_reason == {"cancelled": 2}  # success + completed
        await debug.close(timeout=0)
        assert debug.stats.dropped == 5


class TestTracedDecorator:
    """traced() makes every call a step, for coroutine and plain functions."""

    async def test_async_success_and_failure(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()

        @manager.traced(agent_name="planner")
        async def fetch(correlation_id: uuid.UUID, fail: bool) -> int:
            if fail:
                raise ConnectionError("refused")
            return 42

        assert await fetch(corr, fail=False) == 42
        with pytest.raises(ConnectionError):
            await fetch(corr, True)
        await sent(manager)
        steps = emitted(manager, EventKind.STEP)
        assert [(s["operation_name"], s["step_number"], s["status"]) for s in steps] == [
            ("fetch", 1, "started"),
            ("fetch", 1, "completed"),
            ("fetch", 2, "started"),
            ("fetch", 2, "failed"),
        ]
        assert emitted(manager, EventKind.ERROR)[0]["error_type"] == "ConnectionError"
        assert emitted(manager, EventKind.SUCCESS)[0]["operation_name"] == "fetch"

    async def test_sync_function_and_workflow_block(self) -> None:
        """A plain function inside workflow() takes the block's correlation id."""
        manager = memory_manager()
        corr = uuid.uuid4()

        @manager.traced(operation_name="parse", agent_name="planner")
        def parse(text: str) -> int:
            return int(text)

        with manager.workflow(corr):
            assert parse("7") == 7
            with pytest.raises(ValueError, match="invalid literal"):
                parse("x")
        await sent(manager)
        statuses = [s["status"] for s in emitted(manager, EventKind.STEP)]
        assert statuses == ["started", "completed", "started", "failed"]
        assert {s["correlation_id"] for s in emitted(manager, EventKind.STEP)} == {str(corr)}

    async def test_without_a_workflow_is_misuse(self) -> None:
        manager = memory_manager()

        @manager.traced
        async def orphan() -> None:
            return None

        with pytest.raises(ValueError, match="has no workflow"):
            await orphan()


class TestStatedRecoveries:
    """A retry that succeeds names the errors of the failed attempts (recovers_error_ids)
    without any call from the agent; capture_success(recovers=...) for hand-written flows."""

    async def test_a_retried_step_names_the_failed_attempts(self) -> None:
        """The retry is the same block with attempt=2: it keeps the failed attempt's step
        number and its success names the error."""
        manager = memory_manager()
        corr = uuid.uuid4()
        with pytest.raises(TimeoutError):
            async with manager.step(corr, "fetch", agent_name="planner"):
                raise TimeoutError("slow")
        async with manager.step(corr, "other", agent_name="planner"):
            pass
        async with manager.step(corr, "fetch", agent_name="planner", attempt=2):
            pass
        await sent(manager)
        (error,) = emitted(manager, EventKind.ERROR)
        successes = emitted(manager, EventKind.SUCCESS)
        assert [s.get("recovers_error_ids") for s in successes] == [None, [error["id"]]]
        retry = successes[1]
        assert (retry["success_type"], retry["retry_count"], retry["execution_step"]) == (
            "recovery_success",
            1,
            error["execution_step"],
        )
        steps = [s for s in emitted(manager, EventKind.STEP) if s["status"] != "started"]
        assert [(s["operation_name"], s["step_number"], s["attempt"]) for s in steps] == [
            ("fetch", 1, 1),
            ("other", 2, 1),
            ("fetch", 1, 2),
        ]

    async def test_a_success_at_first_try_states_nothing(self) -> None:
        manager = memory_manager()
        async with manager.step(uuid.uuid4(), "fetch", agent_name="planner"):
            pass
        await sent(manager)
        (success,) = emitted(manager, EventKind.SUCCESS)
        assert "recovers_error_ids" not in success
        assert success["success_type"] == "task_completion"

    async def test_traced_retries_async(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()
        calls = 0

        @manager.traced(agent_name="planner", retries=3, retry_on=(TimeoutError,))
        async def fetch(correlation_id: uuid.UUID) -> int:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise TimeoutError(f"try {calls}")
            return calls

        assert await fetch(corr) == 3
        await sent(manager)
        errors = emitted(manager, EventKind.ERROR)
        assert [(e["recovery_attempted"], e["recovery_strategy"]) for e in errors] == [
            (True, "retry"),
            (True, "retry"),
        ]
        (success,) = emitted(manager, EventKind.SUCCESS)
        assert success["recovers_error_ids"] == [e["id"] for e in errors]
        assert (success["retry_count"], success["success_type"]) == (2, "recovery_success")
        ended = [s for s in emitted(manager, EventKind.STEP) if s["status"] != "started"]
        assert [(s["step_number"], s["attempt"], s["status"]) for s in ended] == [
            (1, 1, "failed"),
            (1, 2, "failed"),
            (1, 3, "completed"),
        ]

    async def test_traced_retries_give_up_and_filter(self) -> None:
        """The last try's exception propagates and its error names no retry; an exception
        outside retry_on is not retried."""
        manager = memory_manager()
        corr = uuid.uuid4()

        @manager.traced(agent_name="planner", retries=1, retry_on=(TimeoutError,))
        async def fetch(correlation_id: uuid.UUID, exc: Exception) -> None:
            raise exc

        with pytest.raises(TimeoutError, match="again"):
            await fetch(corr, TimeoutError("again"))
        with pytest.raises(KeyError):
            await fetch(corr, KeyError("no retry"))
        await sent(manager)
        errors = emitted(manager, EventKind.ERROR)
        assert [(e["error_type"], e.get("recovery_strategy")) for e in errors] == [
            ("TimeoutError", "retry"),
            ("TimeoutError", None),
            ("KeyError", None),
        ]
        assert not emitted(manager, EventKind.SUCCESS)

    async def test_traced_retries_sync(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()
        calls = []

        @manager.traced(operation_name="parse", agent_name="planner", retries=1)
        def parse(text: str) -> int:
            calls.append(text)
            if len(calls) == 1:
                raise ValueError("first try")
            return int(text)

        with manager.workflow(corr):
            assert parse("7") == 7
        await sent(manager)
        (error,) = emitted(manager, EventKind.ERROR)
        (success,) = emitted(manager, EventKind.SUCCESS)
        assert success["recovers_error_ids"] == [error["id"]]

    def test_negative_retries_are_misuse(self) -> None:
        manager = memory_manager()
        with pytest.raises(ValueError, match="retries"):
            manager.traced(retries=-1)

    async def test_capture_success_recovers(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()
        first = await manager.capture_error_state(corr, "planner", TimeoutError("x"), None)
        second = await manager.capture_error_state(corr, "planner", TimeoutError("y"), None)
        await manager.capture_success(corr, "planner", "fetch_cached", recovers=first)
        await manager.capture_success(
            corr, "planner", "fetch_cached", recovers=[str(first), second]
        )
        await sent(manager)
        assert [s["recovers_error_ids"] for s in emitted(manager, EventKind.SUCCESS)] == [
            [str(first)],
            [str(first), str(second)],
        ]

    async def test_too_many_recovered_errors_are_invalid(self) -> None:
        manager = memory_manager(strict=True)
        with pytest.raises(InvalidEvent, match="recovers_error_ids"):
            await manager.capture_success(
                uuid.uuid4(), "a", "op", recovers=[uuid.uuid4() for _ in range(33)]
            )


class TestInvalidValues:
    """Values the wire format rejects drop the event (counted); strict mode raises."""

    async def test_dropped_and_counted(self) -> None:
        manager = memory_manager()
        success_id = await manager.capture_success(uuid.uuid4(), "a", "op", quality_score=1.5)
        assert isinstance(success_id, uuid.UUID)
        assert manager.stats.dropped_by_reason == {"invalid": 1}
        assert not await sent(manager)

    async def test_strict_raises(self) -> None:
        manager = memory_manager(strict=True)
        with pytest.raises(InvalidEvent, match="quality_score"):
            await manager.capture_success(uuid.uuid4(), "a", "op", quality_score=1.5)


class TestLlmCallsAndTransformations:
    """record_llm_call and log_transformation_with_state produce what the views read."""

    async def test_llm_call_shape(self) -> None:
        manager = memory_manager(clock=FakeClock())
        corr = uuid.uuid4()
        await manager.record_llm_call(
            corr,
            "gpt-4o",
            agent_name="planner",
            quality_score=0.9,
            success_classification="partial",
            latency_ms=1840,
            prompt_tokens=3120,
            completion_tokens=412,
        )
        await sent(manager)
        (hook,) = emitted(manager, EventKind.HOOK)
        assert hook["source"] == "PostToolUse"
        assert hook["resource_id"] == "gpt-4o"
        assert hook["payload"] == {
            "quality_metrics": {"quality_score": 0.9, "latency_ms": 1840},
            "success_classification": "partial",
            "usage": {"prompt_tokens": 3120, "completion_tokens": 412, "total_tokens": 3532},
        }
        assert hook["metadata"] == {"agent_name": "planner", "correlation_id": str(corr)}
        assert hook["created_at"] == T0.isoformat().replace("+00:00", "Z")

    async def test_transformation_references_pre_transform_snapshot(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()
        ids = await manager.log_transformation_with_state(
            "router", "coder", corr, {"q": 1}, reason="code task", confidence_score=0.8
        )
        await sent(manager)
        (snapshot,) = emitted(manager, EventKind.SNAPSHOT)
        (transformation,) = emitted(manager, EventKind.TRANSFORMATION)
        assert snapshot["id"] == str(ids.snapshot_id)
        assert snapshot["snapshot_type"] == "pre_transform"
        assert snapshot["agent_name"] == "router"
        assert transformation["id"] == str(ids.transformation_id)
        assert transformation["state_snapshot_id"] == snapshot["id"]
        assert transformation["target_agent"] == "coder"


class TestWireContract:
    """The manager's literal parameters are the wire format's own types, so a value one
    accepts the other accepts too."""

    def test_literals_are_the_wire_aliases(self) -> None:
        hints = {
            name: typing.get_type_hints(getattr(DebugStateManager, name))
            for name in ("capture_snapshot", "capture_error_state", "step", "complete_step")
        }
        assert hints["capture_snapshot"]["snapshot_type"] == SnapshotType
        assert hints["capture_error_state"]["error_severity"] == ErrorSeverity
        assert hints["capture_error_state"]["error_category"] == ErrorCategory
        assert hints["step"]["error_severity"] == ErrorSeverity
        assert hints["complete_step"]["status"] == TerminalStepStatus


class TestSurface:
    """The manager is put together from role mixins (captures, steps, read side); callers
    cannot tell."""

    def test_every_public_annotation_resolves(self) -> None:
        """Each public method's annotations resolve where the method is defined, so
        typing.get_type_hints works for every method, whichever mixin it comes from."""
        public = [name for name in dir(DebugStateManager) if not name.startswith("_")]
        assert {"capture_snapshot", "complete_step", "get_recovery_patterns"} <= set(public)
        for name in public:
            attr = getattr(DebugStateManager, name)
            typing.get_type_hints(attr.fget if isinstance(attr, property) else attr)


class TestReadSide:
    async def test_without_a_database_the_read_side_says_so(self) -> None:
        manager = memory_manager()
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            await manager.get_workflow_debug_summary(uuid.uuid4())

    async def test_tasks_reading_at_once_open_one_pool(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ten tasks read at once on a manager that has not connected: one pool is opened
        (each task used to open its own, and only the last one was ever closed); a failed
        attempt is told to every reader, and the next read tries again."""
        fake = FakeQueries.patched(monkeypatch, delay=0.01, fail=True)
        manager = DebugStateManager(emitter=MemoryEmitter(SETTINGS), dsn="postgresql://x/y")
        failed = await asyncio.gather(
            *(manager.queries() for _ in range(3)), return_exceptions=True
        )
        assert [type(r) for r in failed] == [OSError] * 3
        fake.fail = False
        got = await asyncio.gather(*(manager.queries() for _ in range(10)))
        assert len(fake.opened) == 1
        assert all(q is fake.opened[0] for q in got)
        assert await manager.queries() is fake.opened[0]
        await manager.close()
        assert fake.opened[0].closed

    async def test_close_while_connecting_leaves_no_pool_open(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A reader gives up (its timeout) while the pool is still being opened, then the
        manager is closed: the attempt, which goes on for the other readers, is not left
        to open a pool after close() that nothing would ever close."""
        fake = FakeQueries.patched(monkeypatch, delay=0.2, fail=False)
        manager = DebugStateManager(emitter=MemoryEmitter(SETTINGS), dsn="postgresql://x/y")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(manager.queries(), 0.05)
        await manager.close()
        await asyncio.sleep(0.3)
        assert all(q.closed for q in fake.opened)


class FakeQueries:
    """DebugQueries as the read side uses it: ``connect`` takes ``delay`` seconds, then
    fails (``fail``) or opens one (kept in ``opened``)."""

    delay = 0.0
    fail = False
    opened: typing.ClassVar[list[FakeQueries]]

    def __init__(self) -> None:
        self.closed = False

    @classmethod
    def patched(
        cls, monkeypatch: pytest.MonkeyPatch, *, delay: float, fail: bool
    ) -> type[FakeQueries]:
        fake = type("FakeQueries", (cls,), {"delay": delay, "fail": fail, "opened": []})
        monkeypatch.setattr(reading, "DebugQueries", fake)
        return fake

    @classmethod
    async def connect(cls, dsn: str, **kwargs: Any) -> FakeQueries:
        await asyncio.sleep(cls.delay)
        if cls.fail:
            raise OSError("connection refused")
        cls.opened.append(cls())
        return cls.opened[-1]

    async def close(self) -> None:
        self.closed = True


class TestBoundedQueue:
    """With the transport stalled, captures return within the bound and drops are exact."""

    async def test_drops_are_exact_and_calls_bounded(self) -> None:
        """With the transport paused (a broker that never answers): a capture that finds
        room is queued without suspending at all; one that finds the queue full waits for
        room only, and returns -- its event dropped -- while the transport is still paused.
        Only the emitter's sender ever awaits the transport."""
        config = EmitterConfig(max_queue_events=10, max_block_ms=20)
        emitter = MemoryEmitter(SETTINGS, config)
        emitter.paused = True
        transport_users = watch_transport(emitter)
        manager = DebugStateManager(emitter=emitter)
        corr = uuid.uuid4()
        for i in range(10):
            completes_without_suspending(manager.capture_snapshot(corr, "a", {"i": i}))
        for i in range(10, 25):
            await returns_while_blocked(manager.capture_snapshot(corr, "a", {"i": i}))
        assert emitter.paused
        assert set(transport_users) <= {"debug-sink-emitter"}
        assert manager.stats.dropped_by_reason == {"queue_full": 15}
        assert manager.stats.queued == 10
        emitter.resume()
        assert await manager.flush(5)
        assert [m.json()["agent_state"]["i"] for m in emitter.messages] == list(range(10))
        assert manager.stats.sent == 10

    async def test_group_is_all_or_nothing(self) -> None:
        """An error and its snapshot are queued together or dropped together."""
        emitter = MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=3, max_block_ms=0))
        emitter.paused = True
        manager = DebugStateManager(emitter=emitter)
        await manager.capture_error_state(uuid.uuid4(), "a", "e1", {})
        await manager.capture_error_state(uuid.uuid4(), "a", "e2", {})
        assert manager.stats.queued == 2
        assert manager.stats.dropped_by_reason == {"queue_full": 2}
        await manager.close(timeout=0)
        assert manager.stats.dropped_by_reason == {"queue_full": 2, "close_timeout": 2}
