"""The steps of :class:`~debug_sink.sdk.manager.DebugStateManager`: work with a start and an end.

Owns :class:`StepsMixin`: :meth:`~StepsMixin.start_step` and :meth:`~StepsMixin.complete_step`
for a step the agent delimits itself, the :meth:`~StepsMixin.step` block, the
:meth:`~StepsMixin.traced` decorator (coroutine and plain functions) and the
:meth:`~StepsMixin.workflow` block that names the workflow of traced calls. The manager's
:class:`~debug_sink.sdk.builders.StepBuilder` builds the events; :mod:`~debug_sink.sdk.workflows`
numbers the steps and knows the one a call runs inside.

Guarantees: a step's ``started`` and terminal events share one id; a block or traced call that
raises is recorded as ``failed`` with its error, and the exception propagates unchanged; a
cancelled one is recorded without waiting; a step whose end is cancelled while it waits for
room in the queue has those events counted as dropped (``cancelled``) by the emitter. The
rest of the SDK's contract is stated once, in :mod:`debug_sink.sdk.manager`.

Not guaranteed: anything outside :class:`~debug_sink.sdk.manager.DebugStateManager`, which
provides what the mixin declares (``_steps``, ``_send``, ``_send_nowait``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload
from uuid import UUID

from debug_sink.sdk.builders import Built, StepBuilder
from debug_sink.sdk.workflows import Attempt, Step, UUIDLike, as_uuid, entered, trace
from debug_sink.wire.events import ErrorCategory, ErrorSeverity, TerminalStepStatus

__all__ = ["StepsMixin"]

P = ParamSpec("P")
R = TypeVar("R")


class StepsMixin:
    """The step calls of :class:`~debug_sink.sdk.manager.DebugStateManager`."""

    _steps: StepBuilder

    if TYPE_CHECKING:
        # The manager's send path; declared here for the type checker only.
        async def _send(self, *events: Built) -> UUID: ...

        def _send_nowait(self, *events: Built) -> None: ...

    async def start_step(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        operation_name: str,
        *,
        step_type: str = "execution",
        step_number: int | None = None,
        attempt: int = 1,
        step_description: str | None = None,
        input_data: Any = None,
        agent_state: Mapping[str, Any] | None = None,
        parent_step_id: UUIDLike | None = None,
        depends_on_steps: Sequence[int] | None = None,
        session_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Step:
        """Send a step's ``started`` event; returns the :class:`Step` to complete later.

        ``step_number`` defaults to the workflow's next number; ``agent_state`` is captured as
        a ``checkpoint`` snapshot (the step's ``pre_state_snapshot_id``) and becomes the
        step's :attr:`Step.state`; ``parent_step_id`` defaults to the step this call runs
        inside (see :meth:`step`).
        """
        step, events = self._steps.start(
            correlation_id,
            agent_name,
            operation_name,
            step_type=step_type,
            step_number=step_number,
            attempt=attempt,
            step_description=step_description,
            input_data=input_data,
            agent_state=agent_state,
            parent_step_id=parent_step_id,
            depends_on_steps=depends_on_steps,
            session_id=session_id,
            metadata=metadata,
        )
        await self._send(*events)
        return step

    async def complete_step(
        self,
        step: Step | UUIDLike,
        status: TerminalStepStatus = "completed",
        *,
        success_event_id: UUIDLike | None = None,
        error_event_id: UUIDLike | None = None,
        output_data: Any = None,
        post_state_snapshot_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Send the step's terminal event (same id as its start) with its duration."""
        await self._send(
            self._steps.finish(
                step,
                status,
                success_event_id=success_event_id,
                error_event_id=error_event_id,
                output_data=output_data,
                post_state_snapshot_id=post_state_snapshot_id,
                metadata=metadata,
            )
        )

    @contextlib.asynccontextmanager
    async def step(
        self,
        correlation_id: UUIDLike,
        operation_name: str,
        *,
        agent_name: str,
        step_type: str = "execution",
        agent_state: Mapping[str, Any] | None = None,
        error_severity: ErrorSeverity = "high",
        error_category: ErrorCategory = "agent",
        step_number: int | None = None,
        attempt: int = 1,
        step_description: str | None = None,
        input_data: Any = None,
        session_id: UUIDLike | None = None,
    ) -> AsyncIterator[Step]:
        """Record the block as one step, with its duration.

        On normal exit: a success (``task_completion``, or ``recovery_success`` with
        ``retry_count = attempt - 1`` for a retry; with a ``success`` snapshot when
        :attr:`Step.state` is set) and the step ``completed``. On an exception: the error
        with :attr:`Step.state` (or ``{}``), the step ``failed``, and the exception
        re-raised. On cancellation: the step ``failed`` with ``metadata.cancelled`` (no
        error event), sent without waiting, and the cancellation propagates.

        A retry is the same block again with ``attempt`` + 1 (same agent and operation; the
        step number of the failed attempt is kept unless given): when it succeeds, its
        success names the errors of the failed attempts (``recovers_error_ids``), so the
        correlator links them as stated. :meth:`traced` with ``retries`` does the loop.
        """
        async with self._attempt_step(
            correlation_id,
            operation_name,
            agent_name=agent_name,
            step_type=step_type,
            agent_state=agent_state,
            error_severity=error_severity,
            error_category=error_category,
            step_number=step_number,
            attempt=attempt,
            step_description=step_description,
            input_data=input_data,
            session_id=session_id,
        ) as step:
            yield step

    @contextlib.asynccontextmanager
    async def _attempt_step(
        self,
        correlation_id: UUIDLike,
        operation_name: str,
        *,
        agent_name: str,
        step_type: str = "execution",
        agent_state: Mapping[str, Any] | None = None,
        error_severity: ErrorSeverity = "high",
        error_category: ErrorCategory = "agent",
        step_number: int | None = None,
        attempt: int = 1,
        step_description: str | None = None,
        input_data: Any = None,
        session_id: UUIDLike | None = None,
        retried_if: Callable[[BaseException], bool] | None = None,
    ) -> AsyncIterator[Step]:
        """:meth:`step`, told whether a failure will be retried (``retried_if``)."""
        step = await self.start_step(
            correlation_id,
            agent_name,
            operation_name,
            step_type=step_type,
            step_number=step_number,
            attempt=attempt,
            step_description=step_description,
            input_data=input_data,
            agent_state=agent_state,
            session_id=session_id,
        )
        try:
            with entered(step.correlation_id, step):
                yield step
        except Exception as exc:
            retried = retried_if is not None and retried_if(exc)
            await self._send(
                *self._steps.failed(step, exc, error_severity, error_category, retried=retried)
            )
            raise
        except BaseException:
            self._send_nowait(*self._steps.cancelled(step))
            raise
        else:
            await self._send(*self._steps.succeeded(step))

    @overload
    def traced(self, func: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def traced(
        self,
        func: None = None,
        /,
        *,
        operation_name: str | None = None,
        agent_name: str = ...,
        correlation_id: UUIDLike | None = None,
        step_type: str = "execution",
        error_severity: ErrorSeverity = "high",
        error_category: ErrorCategory = "agent",
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_s: float = 0.0,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def traced(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        operation_name: str | None = None,
        agent_name: str = "agent",
        correlation_id: UUIDLike | None = None,
        step_type: str = "execution",
        error_severity: ErrorSeverity = "high",
        error_category: ErrorCategory = "agent",
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_s: float = 0.0,
    ) -> Any:
        """Decorator: every call of the function is a step, like :meth:`step`.

        ``operation_name`` defaults to the function's name. The workflow is
        ``correlation_id``, else the call's ``correlation_id`` argument, else the workflow
        of the enclosing :meth:`step` or :meth:`workflow` block; with none of them the call
        raises ``ValueError``. Coroutine functions are awaited (captures may wait up to
        ``max_block_ms``); plain functions are supported too, their events queued without
        waiting.

        ``retries``: a call that raises one of ``retry_on`` runs again, up to that many more
        times, after ``backoff_s`` (doubled at each retry). Each try is a step of the same
        step number with the next ``attempt``; a failed try's error says
        ``recovery_strategy=retry`` when another follows, and the try that succeeds names the
        failed tries' errors in its success (``recovers_error_ids``): a stated link, with no
        call to make. The last try's exception propagates.
        """
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        options: dict[str, Any] = {
            "agent_name": agent_name,
            "step_type": step_type,
            "error_severity": error_severity,
            "error_category": error_category,
        }

        def attempt_options(attempt: Attempt) -> dict[str, Any]:
            return {
                **options,
                "attempt": attempt.number,
                "step_number": attempt.step_number,
                "retried_if": attempt.retried_if,
            }

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            return trace(
                fn,
                operation_name or fn.__name__,
                correlation_id,
                async_step=lambda corr, name, attempt: self._attempt_step(
                    corr, name, **attempt_options(attempt)
                ),
                sync_step=lambda corr, name, attempt: self._sync_step(
                    corr, name, **attempt_options(attempt)
                ),
                retries=retries,
                retry_on=retry_on,
                backoff_s=backoff_s,
            )

        return decorate(func) if func is not None else decorate

    @contextlib.contextmanager
    def workflow(self, correlation_id: UUIDLike) -> Iterator[UUID]:
        """Make ``correlation_id`` the workflow of traced calls inside the block."""
        corr = as_uuid(correlation_id)
        if corr is None:
            raise ValueError(f"not a UUID: {correlation_id!r}")
        with entered(corr):
            yield corr

    @contextlib.contextmanager
    def _sync_step(
        self,
        correlation_id: UUIDLike,
        operation_name: str,
        *,
        agent_name: str,
        step_type: str,
        error_severity: ErrorSeverity,
        error_category: ErrorCategory,
        attempt: int = 1,
        step_number: int | None = None,
        retried_if: Callable[[BaseException], bool] | None = None,
    ) -> Iterator[Step]:
        """:meth:`step` for plain functions: the same events, queued without waiting."""
        step, events = self._steps.start(
            correlation_id,
            agent_name,
            operation_name,
            step_type=step_type,
            attempt=attempt,
            step_number=step_number,
        )
        self._send_nowait(*events)
        try:
            with entered(step.correlation_id, step):
                yield step
        except Exception as exc:
            retried = retried_if is not None and retried_if(exc)
            self._send_nowait(
                *self._steps.failed(step, exc, error_severity, error_category, retried=retried)
            )
            raise
        except BaseException:
            self._send_nowait(*self._steps.cancelled(step))
            raise
        else:
            self._send_nowait(*self._steps.succeeded(step))
