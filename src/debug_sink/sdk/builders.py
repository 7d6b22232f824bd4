"""Building the wire events of a capture from the values the manager was given.

Owns the mapping from :class:`~debug_sink.sdk.manager.DebugStateManager`'s arguments to the
models of :mod:`debug_sink.wire.events`: which events a capture is made of (an error is its
state snapshot and the error event; a step is ``started`` and later, same id, its terminal
event), the ids and timestamps they carry, and the defaults taken from the workflow (step
numbers, parent snapshots, parent steps, the session). Values go through
:mod:`debug_sink.sdk.sanitize` first; bounded strings are fitted to the ``max_length`` their
model field declares.

Guarantees: building never raises for values the wire format rejects -- it returns
:class:`Invalid` (with the event id it would have had) for the manager to drop or raise;
only misuse raises ``ValueError`` (starting a step of a correlation id that is not a UUID,
finishing a step that is not open). Ids are assigned while building, so a capture's returned
id is known before anything is queued, and the events of a group reference each other by them.

Not guaranteed: that a built group is sent (the manager and the emitter decide); that a
snapshot becomes its agent's next parent (only once queued: :meth:`Workflows.remember`).
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload
from uuid import UUID

from pydantic import ValidationError

from debug_sink.sdk.sanitize import Sanitizer, fit, free_text
from debug_sink.sdk.workflows import (
    Step,
    UUIDLike,
    Workflows,
    as_uuid,
    current_step,
    step_number,
)
from debug_sink.wire.events import (
    ErrorCategory,
    ErrorEvent,
    ErrorSeverity,
    EventBase,
    HookEvent,
    SnapshotEvent,
    SnapshotType,
    StepEvent,
    StepStatus,
    SuccessEvent,
    TerminalStepStatus,
    TransformationEvent,
)

__all__ = ["Built", "EventBuilder", "Invalid", "StepBuilder", "error_type_of"]


@dataclass(frozen=True, slots=True)
class Invalid:
    """An event whose values the wire format rejects (dropped, or raised when strict)."""

    model: type[EventBase]
    id: UUID
    error: ValidationError


#: What building an event gives: the event, or why it could not be built.
Built = EventBase | Invalid


def error_type_of(error: BaseException) -> str:
    """``TimeoutError`` for built-ins, ``package.module.Class`` otherwise."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not break error capture
        return repr(error)


class EventBuilder:
    """Builds snapshots, errors, successes, hand-overs and LLM calls.

    ``default_session`` is read at every build, so a change of the manager's ``session_id``
    applies to the next capture.
    """

    def __init__(
        self,
        sanitizer: Sanitizer,
        workflows: Workflows,
        *,
        clock: Callable[[], datetime],
        new_id: Callable[[], UUID],
        default_session: Callable[[], UUID | None],
    ) -> None:
        self.sanitizer = sanitizer
        self.clock = clock
        self.new_id = new_id
        self._workflows = workflows
        self._default_session = default_session

    def session(self, session_id: UUIDLike | None) -> UUIDLike | None:
        """``session_id``, else the manager's default session."""
        return session_id if session_id is not None else self._default_session()

    @overload
    def build(self, model: type[SnapshotEvent], **values: Any) -> SnapshotEvent | Invalid: ...
    @overload
    def build(self, model: type[EventBase], **values: Any) -> Built: ...
    def build(self, model: type[EventBase], **values: Any) -> Built:
        """``model(**values)`` without the ``None`` values, or :class:`Invalid`."""
        clean = {k: v for k, v in values.items() if v is not None}
        try:
            return model(**clean)
        except ValidationError as exc:
            event_id = clean.get("id")
            return Invalid(model, event_id if isinstance(event_id, UUID) else uuid.uuid4(), exc)

    def snapshot(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        agent_state: Mapping[str, Any] | None,
        snapshot_type: SnapshotType,
        *,
        session_id: UUIDLike | None = None,
        execution_step: int | None = None,
        parent_snapshot_id: UUIDLike | None = None,
        task_description: str | None = None,
        user_request: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **measures: Any,
    ) -> SnapshotEvent | Invalid:
        """A snapshot of ``agent_state`` (``{}`` when ``None``), its parent by default the
        agent's last queued snapshot in the workflow; ``measures`` are further model fields."""
        corr = as_uuid(correlation_id)
        state, digest = self.sanitizer.state(agent_state if agent_state is not None else {})
        parent = parent_snapshot_id
        if parent is None and corr is not None:
            parent = self._workflows.last_snapshot(corr, agent_name)
        return self.build(
            SnapshotEvent,
            id=self.new_id(),
            correlation_id=correlation_id,
            snapshot_type=snapshot_type,
            session_id=self.session(session_id),
            agent_name=fit(SnapshotEvent, "agent_name", agent_name),
            agent_state=state,
            state_hash=digest,
            execution_step=step_number(corr, execution_step),
            parent_snapshot_id=parent,
            captured_at=self.clock(),
            task_description=free_text(task_description),
            user_request=free_text(user_request),
            metadata=self.sanitizer.json_field(metadata),
            **measures,
        )

    def error(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        error: BaseException | str,
        agent_state: Mapping[str, Any] | None,
        severity: ErrorSeverity,
        *,
        error_category: ErrorCategory,
        error_type: str | None,
        operation_name: str | None,
        execution_step: int | None,
        session_id: UUIDLike | None,
        error_code: str | None = None,
        recovery_strategy: str | None = None,
        is_recoverable: bool = False,
        recovery_attempted: bool = False,
        task_description: str | None = None,
        user_request: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Built]:
        """The error's state snapshot (type ``error``) and the error event referencing it.

        Type, message and stack trace come from an exception; a string is the message, with
        ``error_type`` or ``"Error"`` as the type. A type too long for its column keeps its
        end (the class name).
        """
        corr = as_uuid(correlation_id)
        number = step_number(corr, execution_step)
        if operation_name is None:
            current = current_step(corr)
            operation_name = current.operation_name if current else None
        snapshot = self.snapshot(
            correlation_id,
            agent_name,
            agent_state,
            "error",
            session_id=session_id,
            execution_step=number,
            task_description=task_description,
            user_request=user_request,
        )
        if isinstance(error, BaseException):
            kind = error_type or error_type_of(error)
            message = _safe_str(error)
            stack = "".join(traceback.format_exception(error))
        else:
            kind, message, stack = error_type or "Error", str(error), None
        event = self.build(
            ErrorEvent,
            id=self.new_id(),
            correlation_id=correlation_id,
            session_id=self.session(session_id),
            error_type=fit(ErrorEvent, "error_type", kind or "Error", keep="end"),
            error_category=error_category,
            error_severity=severity,
            error_message=free_text(message),
            error_stack_trace=free_text(stack),
            agent_name=fit(ErrorEvent, "agent_name", agent_name),
            operation_name=fit(ErrorEvent, "operation_name", operation_name),
            execution_step=number,
            state_snapshot_id=snapshot.id,
            metadata=self.sanitizer.json_field(metadata),
            occurred_at=self.clock(),
            error_code=fit(ErrorEvent, "error_code", error_code),
            is_recoverable=is_recoverable,
            recovery_attempted=recovery_attempted,
            recovery_strategy=fit(ErrorEvent, "recovery_strategy", recovery_strategy),
        )
        return [snapshot, event]

    def success(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        operation_name: str,
        *,
        success_type: str,
        agent_state: Mapping[str, Any] | None,
        execution_step: int | None,
        session_id: UUIDLike | None,
        completion_status: str | None = None,
        success_factors: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **measures: Any,
    ) -> list[Built]:
        """The success event, preceded by a ``success`` snapshot when ``agent_state`` is
        given; ``measures`` are further model fields."""
        corr = as_uuid(correlation_id)
        number = step_number(corr, execution_step)
        events: list[Built] = []
        snapshot_id = None
        if agent_state is not None:
            snapshot = self.snapshot(
                correlation_id,
                agent_name,
                agent_state,
                "success",
                session_id=session_id,
                execution_step=number,
            )
            events.append(snapshot)
            snapshot_id = snapshot.id
        success = self.build(
            SuccessEvent,
            id=self.new_id(),
            correlation_id=correlation_id,
            session_id=self.session(session_id),
            success_type=fit(SuccessEvent, "success_type", success_type),
            operation_name=fit(SuccessEvent, "operation_name", operation_name),
            agent_name=fit(SuccessEvent, "agent_name", agent_name),
            execution_step=number,
            state_snapshot_id=snapshot_id,
            success_factors=self.sanitizer.json_field(success_factors),
            metadata=self.sanitizer.json_field(metadata),
            occurred_at=self.clock(),
            completion_status=fit(SuccessEvent, "completion_status", completion_status),
            **measures,
        )
        return [*events, success]

    def transformation(
        self,
        source_agent: str,
        target_agent: str,
        correlation_id: UUIDLike,
        agent_state: Mapping[str, Any],
        *,
        session_id: UUIDLike | None,
        reason: str | None,
        metadata: Mapping[str, Any] | None,
        **fields: Any,
    ) -> list[Built]:
        """A ``pre_transform`` snapshot of the source agent, then the hand-over referencing
        it; ``fields`` are further model fields."""
        snapshot = self.snapshot(
            correlation_id, source_agent, agent_state, "pre_transform", session_id=session_id
        )
        transformation = self.build(
            TransformationEvent,
            id=self.new_id(),
            correlation_id=correlation_id,
            source_agent=source_agent,
            target_agent=target_agent,
            session_id=self.session(session_id),
            reason=free_text(reason),
            state_snapshot_id=snapshot.id,
            metadata=self.sanitizer.json_field(metadata),
            created_at=self.clock(),
            **fields,
        )
        return [snapshot, transformation]

    def llm_call(
        self,
        correlation_id: UUIDLike,
        tool_name: str,
        *,
        agent_name: str | None,
        quality_score: float | None,
        success_classification: str,
        latency_ms: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        execution_step: int | None,
        session_id: UUIDLike | None,
        payload: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> Built:
        """A ``PostToolUse`` hook event in the shape ``debug_llm_call_summary`` reads."""
        body: dict[str, Any] = dict(payload or {})
        metrics = dict(body.get("quality_metrics") or {})
        if quality_score is not None:
            metrics["quality_score"] = quality_score
        if latency_ms is not None:
            metrics["latency_ms"] = latency_ms
        body["quality_metrics"] = metrics
        body["success_classification"] = success_classification
        if prompt_tokens is not None or completion_tokens is not None:
            usage = dict(body.get("usage") or {})
            if prompt_tokens is not None:
                usage["prompt_tokens"] = prompt_tokens
            if completion_tokens is not None:
                usage["completion_tokens"] = completion_tokens
            if prompt_tokens is not None and completion_tokens is not None:
                usage["total_tokens"] = prompt_tokens + completion_tokens
            body["usage"] = usage
        corr = as_uuid(correlation_id)
        session = self.session(session_id)
        meta: dict[str, Any] = dict(metadata or {})
        if agent_name is not None:
            meta["agent_name"] = agent_name
        number = step_number(corr, execution_step)
        if number is not None:
            meta["execution_step"] = number
        # The sink puts the ids into metadata (the view reads them there); doing it here
        # means the sink has nothing to change.
        meta["correlation_id"] = str(corr if corr is not None else correlation_id)
        if session is not None:
            meta["session_id"] = str(session)
        return self.build(
            HookEvent,
            id=self.new_id(),
            correlation_id=correlation_id,
            source="PostToolUse",
            resource_id=fit(HookEvent, "resource_id", tool_name),
            session_id=session,
            payload=self.sanitizer.json_field(body),
            metadata=self.sanitizer.json_field(meta),
            created_at=self.clock(),
        )


class StepBuilder:
    """Builds a step's lifecycle events and keeps its :class:`Step` handle up to date.

    A step's duration is measured on ``monotonic``, not on the wall clock the timestamps
    come from, so a clock adjustment during the step does not distort it.
    """

    def __init__(
        self,
        events: EventBuilder,
        workflows: Workflows,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._workflows = workflows
        self._monotonic = monotonic

    def start(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        operation_name: str,
        *,
        step_type: str,
        step_number: int | None = None,
        attempt: int = 1,
        step_description: str | None = None,
        input_data: Any = None,
        agent_state: Mapping[str, Any] | None = None,
        parent_step_id: UUIDLike | None = None,
        depends_on_steps: Sequence[int] | None = None,
        session_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Step, list[Built]]:
        """The open step and its events: a ``checkpoint`` snapshot of ``agent_state`` when
        given (the step's ``pre_state_snapshot_id`` and :attr:`Step.state`), then ``started``.

        ``step_number`` defaults, for a retry (``attempt`` > 1), to the number of the failed
        attempt of the same agent and operation (a retried step keeps its number), else to
        the workflow's next; ``parent_step_id`` to the current step of the workflow.
        """
        events = self._events
        corr = as_uuid(correlation_id)
        if corr is None:
            raise ValueError(f"correlation_id is not a UUID: {correlation_id!r}")
        if step_number is None and attempt > 1:
            step_number = self._workflows.retry_number(corr, agent_name, operation_name)
        number = self._workflows.claim_step_number(corr, step_number)
        parent = as_uuid(parent_step_id) if parent_step_id is not None else None
        if parent is None:
            current = current_step(corr)
            parent = current.id if current else None
        built: list[Built] = []
        state: dict[str, Any] | None = None
        pre_snapshot: UUID | None = None
        if agent_state is not None:
            state = dict(agent_state)
            snapshot = events.snapshot(
                corr, agent_name, state, "checkpoint", session_id=session_id, execution_step=number
            )
            built.append(snapshot)
            pre_snapshot = snapshot.id
        step = Step(
            id=events.new_id(),
            correlation_id=corr,
            step_number=number,
            attempt=attempt,
            agent_name=fit(StepEvent, "agent_name", agent_name),
            operation_name=fit(StepEvent, "operation_name", operation_name),
            step_type=fit(StepEvent, "step_type", step_type),
            started_at=events.clock(),
            session_id=as_uuid(events.session(session_id)),
            parent_step_id=parent,
            pre_state_snapshot_id=pre_snapshot,
            state=state,
            _started=self._monotonic(),
        )
        built.append(
            self._event(
                step,
                "started",
                step_description=free_text(step_description),
                depends_on_steps=list(depends_on_steps) if depends_on_steps else None,
                input_data=events.sanitizer.json_field(input_data),
                metadata=metadata,
            )
        )
        self._workflows.open(step)
        return step, built

    def finish(
        self,
        step: Step | UUIDLike,
        status: TerminalStepStatus,
        *,
        success_event_id: UUIDLike | None = None,
        error_event_id: UUIDLike | None = None,
        output_data: Any = None,
        post_state_snapshot_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Built:
        """The step's terminal event (same id as its start), with its duration; the step is
        no longer open. ``ValueError`` for a step that is not open."""
        handle = self._workflows.close(step)
        completed_at = self._events.clock()
        handle.duration_ms = self._elapsed_ms(handle)
        handle.status = status
        handle.success_event_id = as_uuid(success_event_id) if success_event_id else None
        handle.error_event_id = as_uuid(error_event_id) if error_event_id else None
        output = output_data if output_data is not None else handle.output
        return self._event(
            handle,
            status,
            post_state_snapshot_id=post_state_snapshot_id,
            error_event_id=handle.error_event_id,
            success_event_id=handle.success_event_id,
            duration_ms=handle.duration_ms,
            output_data=self._events.sanitizer.json_field(output),
            metadata=metadata,
            completed_at=completed_at,
        )

    def failed(
        self,
        step: Step,
        exc: BaseException,
        severity: ErrorSeverity,
        category: ErrorCategory,
        *,
        retried: bool = False,
    ) -> list[Built]:
        """The error (with :attr:`Step.state`, or ``{}``) and the step ``failed``; the error
        is remembered for the attempt that recovers it. ``retried``: another attempt follows
        (the error says ``recovery_strategy=retry``)."""
        events = self._events.error(
            step.correlation_id,
            step.agent_name,
            exc,
            step.state or {},
            severity,
            error_category=category,
            error_type=None,
            operation_name=step.operation_name,
            execution_step=step.step_number,
            session_id=step.session_id,
            recovery_attempted=retried,
            recovery_strategy="retry" if retried else None,
        )
        self._workflows.failed(step, events[-1].id)
        return [*events, self.finish(step, "failed", error_event_id=events[-1].id)]

    def succeeded(self, step: Step) -> list[Built]:
        """The success (with a snapshot when :attr:`Step.state` is set) and the step
        ``completed``. After failed attempts of the same step, the success names their
        errors (``recovers_error_ids``): a stated recovery, no inference needed."""
        elapsed = self._elapsed_ms(step)
        recovers = self._workflows.recovered(step)
        # A later attempt that succeeds is a recovery: say so, for the correlator.
        retried = step.attempt > 1 or bool(recovers)
        events = self._events.success(
            step.correlation_id,
            step.agent_name,
            step.operation_name,
            success_type="recovery_success" if retried else "task_completion",
            agent_state=step.state,
            execution_step=step.step_number,
            session_id=step.session_id,
            execution_time_ms=elapsed,
            retry_count=step.attempt - 1,
            recovers_error_ids=recovers or None,
        )
        post = events[0].id if len(events) > 1 else None
        return [
            *events,
            self.finish(
                step, "completed", success_event_id=events[-1].id, post_state_snapshot_id=post
            ),
        ]

    def cancelled(self, step: Step) -> list[Built]:
        """The step ``failed`` with ``metadata.cancelled`` (no error event)."""
        return [self.finish(step, "failed", metadata={"cancelled": True})]

    def _elapsed_ms(self, step: Step) -> int:
        return max(0, round((self._monotonic() - step._started) * 1000))

    def _event(
        self, step: Step, status: StepStatus, *, metadata: Mapping[str, Any] | None, **fields: Any
    ) -> Built:
        """A lifecycle event of ``step``: the fields that make its row, and ``fields``."""
        return self._events.build(
            StepEvent,
            id=step.id,
            correlation_id=step.correlation_id,
            session_id=step.session_id,
            step_number=step.step_number,
            attempt=step.attempt,
            step_type=step.step_type,
            agent_name=step.agent_name,
            operation_name=step.operation_name,
            status=status,
            pre_state_snapshot_id=step.pre_state_snapshot_id,
            parent_step_id=step.parent_step_id,
            metadata=self._events.sanitizer.json_field(metadata),
            started_at=step.started_at,
            **fields,
        )
