"""Building wire events from the manager's arguments (debug_sink.sdk.builders), no emitter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from debug_sink.sdk.builders import Built, EventBuilder, Invalid, StepBuilder
from debug_sink.sdk.sanitize import Sanitizer, max_length
from debug_sink.sdk.workflows import Workflows, entered
from debug_sink.wire.events import (
    ErrorEvent,
    EventBase,
    HookEvent,
    SnapshotEvent,
    StepEvent,
    SuccessEvent,
)
from debug_sink.wire.redact import Redactor
from tests.sdk_support import NAMESPACE, T0, FakeClock, id_factory

LONG = "n" * 1000


class Builders:
    """An EventBuilder and a StepBuilder sharing one workflow registry and fake clocks."""

    def __init__(self, session: uuid.UUID | None = None) -> None:
        self.clock = FakeClock()
        self.session = session
        self.workflows = Workflows(max_workflows=100)
        self.events = EventBuilder(
            Sanitizer(Redactor(), max_state_bytes=1024 * 1024, max_depth=64),
            self.workflows,
            clock=self.clock.wall,
            new_id=id_factory("builders"),
            default_session=lambda: self.session,
        )
        self.steps = StepBuilder(self.events, self.workflows, monotonic=self.clock.monotonic)


def valid(built: Built) -> EventBase:
    assert not isinstance(built, Invalid), built
    return built


class TestBoundedFieldsAreFitted:
    """Every bounded string a builder fills from the agent's arguments is cut to exactly the
    max_length its model field declares, so an over-long name never makes an event invalid;
    an error type keeps its end (the class name)."""

    def assert_fitted(self, event: EventBase, *names: str) -> None:
        for name in names:
            assert len(getattr(event, name)) == max_length(type(event), name), name

    def test_snapshot_error_success_and_llm_call(self) -> None:
        b = Builders()
        corr = uuid.uuid4()
        snapshot = valid(b.events.snapshot(corr, LONG, {}, "checkpoint"))
        self.assert_fitted(snapshot, "agent_name")
        _, error = b.events.error(
            corr,
            LONG,
            "message",
            {},
            "high",
            error_category="agent",
            error_type="pkg." * 100 + "Boom",
            operation_name=LONG,
            execution_step=None,
            session_id=None,
            error_code=LONG,
            recovery_strategy=LONG,
        )
        error = valid(error)
        self.assert_fitted(
            error, "agent_name", "error_type", "operation_name", "error_code", "recovery_strategy"
        )
        assert isinstance(error, ErrorEvent)
        assert error.error_type.startswith("…")
        assert error.error_type.endswith(".Boom")
        (success,) = b.events.success(
            corr,
            LONG,
            LONG,
            success_type=LONG,
            agent_state=None,
            execution_step=None,
            session_id=None,
            completion_status=LONG,
        )
        self.assert_fitted(
            valid(success), "agent_name", "operation_name", "success_type", "completion_status"
        )
        hook = valid(
            b.events.llm_call(
                corr,
                LONG,
                agent_name=None,
                quality_score=None,
                success_classification="success",
                latency_ms=None,
                prompt_tokens=None,
                completion_tokens=None,
                execution_step=None,
                session_id=None,
                payload=None,
                metadata=None,
            )
        )
        self.assert_fitted(hook, "resource_id")

    def test_step_lifecycle(self) -> None:
        b = Builders()
        step, (started,) = b.steps.start(uuid.uuid4(), LONG, LONG, step_type=LONG)
        self.assert_fitted(valid(started), "agent_name", "operation_name", "step_type")
        finished = valid(b.steps.finish(step, "completed"))
        self.assert_fitted(finished, "agent_name", "operation_name", "step_type")


class TestValuesTheWireRejects:
    """A value the model rejects gives Invalid -- with the id the event would have had (so a
    capture can still return it), and the validation error -- instead of raising."""

    def test_invalid_keeps_its_id(self) -> None:
        b = Builders()
        (success,) = b.events.success(
            uuid.uuid4(),
            "a",
            "op",
            success_type="task_completion",
            agent_state=None,
            execution_step=None,
            session_id=None,
            quality_score=1.5,
        )
        assert isinstance(success, Invalid)
        assert success.model is SuccessEvent
        assert success.id == uuid.uuid5(NAMESPACE, "builders-1")
        assert "quality_score" in str(success.error)


class TestDefaultsFromTheWorkflow:
    """Defaults come from the workflow: a snapshot's parent is its agent's last *queued*
    snapshot, a capture inside a step takes the step's number, the session is the
    manager's default at build time."""

    def test_parent_snapshot_only_once_remembered(self) -> None:
        b = Builders()
        corr = uuid.uuid4()
        first = valid(b.events.snapshot(corr, "a", {"n": 1}, "checkpoint"))
        second = valid(b.events.snapshot(corr, "a", {"n": 2}, "checkpoint"))
        assert isinstance(second, SnapshotEvent)
        assert second.parent_snapshot_id is None
        b.workflows.remember([first])
        third = valid(b.events.snapshot(corr, "a", {"n": 3}, "checkpoint"))
        other_agent = valid(b.events.snapshot(corr, "b", {}, "checkpoint"))
        assert isinstance(third, SnapshotEvent)
        assert isinstance(other_agent, SnapshotEvent)
        assert third.parent_snapshot_id == first.id
        assert other_agent.parent_snapshot_id is None

    def test_step_number_and_parent_step_from_the_current_step(self) -> None:
        b = Builders()
        corr = uuid.uuid4()
        outer, _ = b.steps.start(corr, "a", "outer", step_type="execution")
        with entered(corr, outer):
            snapshot = valid(b.events.snapshot(corr, "a", {}, "checkpoint"))
            inner, _ = b.steps.start(corr, "a", "inner", step_type="execution")
            elsewhere = valid(b.events.snapshot(uuid.uuid4(), "a", {}, "checkpoint"))
        assert isinstance(snapshot, SnapshotEvent)
        assert isinstance(elsewhere, SnapshotEvent)
        assert (outer.step_number, inner.step_number) == (1, 2)
        assert snapshot.execution_step == 1
        assert inner.parent_step_id == outer.id
        assert elsewhere.execution_step is None

    def test_session_is_read_at_build_time(self) -> None:
        b = Builders()
        corr = uuid.uuid4()
        before = valid(b.events.snapshot(corr, "a", {}, "checkpoint"))
        b.session = uuid.UUID(int=7)
        after = valid(b.events.snapshot(corr, "a", {}, "checkpoint"))
        given = valid(b.events.snapshot(corr, "a", {}, "checkpoint", session_id=uuid.UUID(int=8)))
        assert [e.session_id for e in (before, after, given)] == [
            None,
            uuid.UUID(int=7),
            uuid.UUID(int=8),
        ]


class TestStepLifecycle:
    """A step is started and finished once, with the same id; its duration is measured on
    the monotonic clock; a retry that succeeds is a recovery."""

    def test_duration_and_same_id(self) -> None:
        b = Builders()
        step, (started,) = b.steps.start(uuid.uuid4(), "a", "op", step_type="execution")
        b.clock.advance(1500)
        finished = valid(b.steps.finish(step, "failed", metadata={"why": "x"}))
        assert isinstance(finished, StepEvent)
        assert finished.id == valid(started).id == step.id
        assert finished.duration_ms == step.duration_ms == 1500
        assert finished.status == step.status == "failed"
        assert finished.started_at == T0
        with pytest.raises(ValueError, match="already complete"):
            b.steps.finish(step.id, "completed")

    def test_retry_success_is_a_recovery(self) -> None:
        b = Builders()
        step, events = b.steps.start(
            uuid.uuid4(), "a", "op", step_type="execution", attempt=3, agent_state={"n": 1}
        )
        assert [type(valid(e)) for e in events] == [SnapshotEvent, StepEvent]
        assert step.state is not None
        step.state["n"] = 2
        b.clock.advance(20)
        snapshot, success, completed = (valid(e) for e in b.steps.succeeded(step))
        assert isinstance(snapshot, SnapshotEvent)
        assert isinstance(success, SuccessEvent)
        assert isinstance(completed, StepEvent)
        assert snapshot.agent_state == {"n": 2}
        assert (success.success_type, success.retry_count) == ("recovery_success", 2)
        assert success.execution_time_ms == 20
        assert completed.success_event_id == success.id
        assert completed.post_state_snapshot_id == snapshot.id

    def test_cancelled_is_failed_without_an_error(self) -> None:
        b = Builders()
        step, _ = b.steps.start(uuid.uuid4(), "a", "op", step_type="execution")
        (finished,) = b.steps.cancelled(step)
        finished = valid(finished)
        assert isinstance(finished, StepEvent)
        assert (finished.status, finished.metadata) == ("failed", {"cancelled": True})


class TestLlmCall:
    """An LLM call is a PostToolUse hook whose payload and metadata have the shape the
    debug_llm_call_summary view reads; given payload keys are kept."""

    def test_shape(self) -> None:
        b = Builders(session=uuid.UUID(int=9))
        corr = uuid.uuid4()
        args: dict[str, Any] = {
            "agent_name": "planner",
            "quality_score": 0.5,
            "success_classification": "partial",
            "latency_ms": 10.0,
            "prompt_tokens": 3,
            "completion_tokens": None,
            "execution_step": 4,
            "session_id": None,
            "payload": {"quality_metrics": {"judge": "x"}, "extra": 1},
            "metadata": {"k": "v"},
        }
        hook = valid(b.events.llm_call(corr, "gpt-4o", **args))
        assert isinstance(hook, HookEvent)
        assert hook.payload == {
            "quality_metrics": {"judge": "x", "quality_score": 0.5, "latency_ms": 10.0},
            "success_classification": "partial",
            "extra": 1,
            "usage": {"prompt_tokens": 3},
        }
        assert hook.metadata == {
            "k": "v",
            "agent_name": "planner",
            "execution_step": 4,
            "correlation_id": str(corr),
            "session_id": str(uuid.UUID(int=9)),
        }
