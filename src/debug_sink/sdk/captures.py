"""The capture calls of :class:`~debug_sink.sdk.manager.DebugStateManager`: what an agent records.

Owns :class:`CapturesMixin`, the calls that record one moment of a workflow: a snapshot of an
agent's state, an error with the state at that moment, a success, a hand-over from one agent to
another, an LLM or tool call. Each call has the manager's
:class:`~debug_sink.sdk.builders.EventBuilder` build its events and the manager's one send path
queue them as one group.

Guarantees: every call returns its event's id (a hand-over: both ids) whether or not the events
could be queued. The rest of the SDK's contract -- it never fails the agent, what it sends,
event order -- is stated once, in :mod:`debug_sink.sdk.manager`.

Not guaranteed: anything outside :class:`~debug_sink.sdk.manager.DebugStateManager`, which
provides what the mixin declares (``_events``, ``_send``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from debug_sink.sdk.builders import Built, EventBuilder
from debug_sink.sdk.workflows import TransformationIds, UUIDLike
from debug_sink.wire.events import ErrorCategory, ErrorSeverity, SnapshotType

__all__ = ["CapturesMixin"]


def _error_ids(recovers: UUIDLike | Sequence[UUIDLike] | None) -> list[UUIDLike] | None:
    """``recovers`` as a list (one id or several; the wire model checks them)."""
    if recovers is None:
        return None
    if isinstance(recovers, UUID | str):
        return [recovers]
    return list(recovers)


class CapturesMixin:
    """The capture calls of :class:`~debug_sink.sdk.manager.DebugStateManager`."""

    _events: EventBuilder

    if TYPE_CHECKING:
        # The manager's send path; declared here for the type checker only.
        async def _send(self, *events: Built) -> UUID: ...

    async def capture_snapshot(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        agent_state: Mapping[str, Any],
        snapshot_type: SnapshotType = "checkpoint",
        *,
        session_id: UUIDLike | None = None,
        execution_step: int | None = None,
        task_description: str | None = None,
        user_request: str | None = None,
        context_depth: int | None = None,
        memory_usage_mb: float | None = None,
        cpu_time_ms: int | None = None,
        wall_time_ms: int | None = None,
        transformation_event_id: UUIDLike | None = None,
        parent_snapshot_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> UUID:
        """Capture ``agent_state``; returns the snapshot id."""
        snapshot = self._events.snapshot(
            correlation_id,
            agent_name,
            agent_state,
            snapshot_type,
            session_id=session_id,
            execution_step=execution_step,
            task_description=task_description,
            user_request=user_request,
            context_depth=context_depth,
            memory_usage_mb=memory_usage_mb,
            cpu_time_ms=cpu_time_ms,
            wall_time_ms=wall_time_ms,
            transformation_event_id=transformation_event_id,
            parent_snapshot_id=parent_snapshot_id,
            metadata=metadata,
        )
        return await self._send(snapshot)

    async def capture_error_state(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        error: BaseException | str,
        agent_state: Mapping[str, Any] | None,
        error_severity: ErrorSeverity = "medium",
        *,
        error_category: ErrorCategory = "agent",
        error_type: str | None = None,
        operation_name: str | None = None,
        execution_step: int | None = None,
        error_code: str | None = None,
        is_recoverable: bool = False,
        recovery_attempted: bool = False,
        recovery_strategy: str | None = None,
        session_id: UUIDLike | None = None,
        task_description: str | None = None,
        user_request: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> UUID:
        """Capture an error with the agent's state at that moment; returns the error's id.

        Type, message and stack trace come from ``error`` (an exception; a string is taken
        as the message, with ``error_type`` or ``"Error"`` as the type). The state snapshot
        (type ``error``) and the error event are sent together.
        """
        return await self._send(
            *self._events.error(
                correlation_id,
                agent_name,
                error,
                agent_state,
                error_severity,
                error_category=error_category,
                error_type=error_type,
                operation_name=operation_name,
                execution_step=execution_step,
                error_code=error_code,
                is_recoverable=is_recoverable,
                recovery_attempted=recovery_attempted,
                recovery_strategy=recovery_strategy,
                session_id=session_id,
                task_description=task_description,
                user_request=user_request,
                metadata=metadata,
            )
        )

    async def capture_success(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        operation_name: str,
        *,
        success_type: str = "task_completion",
        agent_state: Mapping[str, Any] | None = None,
        quality_score: float | None = None,
        completion_status: str | None = None,
        validation_passed: bool = True,
        execution_time_ms: int | None = None,
        retry_count: int = 0,
        success_factors: Mapping[str, Any] | None = None,
        execution_step: int | None = None,
        session_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        recovers: UUIDLike | Sequence[UUIDLike] | None = None,
    ) -> UUID:
        """Record a success (with a ``success`` snapshot when ``agent_state`` is given).

        ``recovers``: the id (or ids, at most 32) of the error(s) of this workflow this
        success recovered, as :meth:`capture_error_state` returned them -- a fallback that ran
        because of them, a retry written by hand. The correlator links them as *stated*,
        whatever their order of arrival.
        """
        return await self._send(
            *self._events.success(
                correlation_id,
                agent_name,
                operation_name,
                success_type=success_type,
                agent_state=agent_state,
                quality_score=quality_score,
                completion_status=completion_status,
                validation_passed=validation_passed,
                execution_time_ms=execution_time_ms,
                retry_count=retry_count,
                success_factors=success_factors,
                execution_step=execution_step,
                session_id=session_id,
                metadata=metadata,
                recovers_error_ids=_error_ids(recovers),
            )
        )

    async def log_transformation_with_state(
        self,
        source_agent: str,
        target_agent: str,
        correlation_id: UUIDLike,
        agent_state: Mapping[str, Any],
        *,
        transformation_type: str = "delegation",
        reason: str | None = None,
        confidence_score: float | None = None,
        session_id: UUIDLike | None = None,
        error_event_id: UUIDLike | None = None,
        success_event_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TransformationIds:
        """A hand-over from ``source_agent`` to ``target_agent`` with the state at that point
        (schema section 3.2): a ``pre_transform`` snapshot of the source agent, then the
        transformation event referencing it."""
        snapshot, transformation = self._events.transformation(
            source_agent,
            target_agent,
            correlation_id,
            agent_state,
            transformation_type=transformation_type,
            reason=reason,
            confidence_score=confidence_score,
            session_id=session_id,
            error_event_id=error_event_id,
            success_event_id=success_event_id,
            metadata=metadata,
        )
        await self._send(snapshot, transformation)
        return TransformationIds(transformation.id, snapshot.id)

    async def record_llm_call(
        self,
        correlation_id: UUIDLike,
        tool_name: str,
        *,
        agent_name: str | None = None,
        quality_score: float | None = None,
        success_classification: str = "success",
        latency_ms: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        execution_step: int | None = None,
        session_id: UUIDLike | None = None,
        payload: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> UUID:
        """Record an LLM or tool call as a ``PostToolUse`` hook event; returns its id.

        ``quality_score`` and ``latency_ms`` go to ``payload.quality_metrics``,
        ``success_classification`` to ``payload``, token counts to ``payload.usage``: the
        shape ``debug_llm_call_summary`` reads. ``payload`` adds further keys.
        """
        return await self._send(
            self._events.llm_call(
                correlation_id,
                tool_name,
                agent_name=agent_name,
                quality_score=quality_score,
                success_classification=success_classification,
                latency_ms=latency_ms,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                execution_step=execution_step,
                session_id=session_id,
                payload=payload,
                metadata=metadata,
            )
        )
