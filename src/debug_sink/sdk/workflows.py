"""What the SDK remembers about workflows between captures, and which step a call runs inside.

Owns the per-manager workflow registry (:class:`Workflows`: step numbering, each agent's last
snapshot, the steps started and not yet completed), the step handle agents hold
(:class:`Step`), the current workflow and step of the running task (a context variable, so
concurrent tasks do not see each other's steps) and the wrapper that turns a call into a step
(:func:`trace`). No I/O and no event building: that is :mod:`debug_sink.sdk.builders`.

Guarantees:

- Step numbers are assigned per workflow, 1, 2, ...; a step given its number moves the
  next default past it.
- A snapshot becomes the parent of the next snapshot of the same agent in the workflow only
  once it was queued (:meth:`Workflows.remember`).
- Memory is bounded: the least recently used workflow is forgotten beyond ``max_workflows``
  (its numbering then restarts at 1 and its next snapshot has no parent).

Not guaranteed: that a step left open (started, never completed) is ever forgotten; the
current step is shared by every manager in the task (it is a property of the running code,
not of a manager).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from debug_sink.wire.events import EventBase, SnapshotEvent

__all__ = [
    "Step",
    "TransformationIds",
    "UUIDLike",
    "Workflows",
    "as_uuid",
    "current_step",
    "entered",
    "step_number",
    "trace",
]

UUIDLike = UUID | str


@dataclass(slots=True)
class Step:
    """A running workflow step, as returned by :meth:`DebugStateManager.start_step`.

    ``state`` is the agent state the step's error or success snapshot records (set or mutate
    it while the step runs); ``output`` becomes the step's ``output_data``.
    """

    id: UUID
    correlation_id: UUID
    step_number: int
    attempt: int
    agent_name: str
    operation_name: str
    step_type: str
    started_at: datetime
    session_id: UUID | None = None
    parent_step_id: UUID | None = None
    pre_state_snapshot_id: UUID | None = None
    state: dict[str, Any] | None = None
    output: Any = None
    status: str = "started"
    error_event_id: UUID | None = None
    success_event_id: UUID | None = None
    duration_ms: int | None = None
    _started: float = field(default=0.0, repr=False)


@dataclass(frozen=True, slots=True)
class TransformationIds:
    """What :meth:`DebugStateManager.log_transformation_with_state` sent."""

    transformation_id: UUID
    snapshot_id: UUID


@dataclass(slots=True)
class _Workflow:
    next_step: int = 1
    last_snapshot: dict[str, UUID] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Context:
    correlation_id: UUID
    step: Step | None


_CURRENT: ContextVar[_Context | None] = ContextVar("debug_sink_current", default=None)


def as_uuid(value: Any) -> UUID | None:
    """``value`` as a UUID, or ``None`` when it is not one."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


class Workflows:
    """The workflows one manager has seen, least recently used first, and its open steps."""

    def __init__(self, max_workflows: int) -> None:
        self._workflows: OrderedDict[UUID, _Workflow] = OrderedDict()
        self._max_workflows = max_workflows
        self._open_steps: dict[UUID, Step] = {}

    def claim_step_number(self, correlation_id: UUID, step_number: int | None) -> int:
        """``step_number``, or the workflow's next one; later defaults continue after it."""
        workflow = self._get(correlation_id)
        if step_number is None:
            step_number = workflow.next_step
        workflow.next_step = max(workflow.next_step, step_number + 1)
        return step_number

    def last_snapshot(self, correlation_id: UUID, agent_name: str) -> UUID | None:
        """The last queued snapshot of ``agent_name`` in the workflow."""
        return self._get(correlation_id).last_snapshot.get(agent_name)

    def remember(self, events: Iterable[EventBase]) -> None:
        """Note the snapshots among ``events``, which were just queued."""
        # Only queued snapshots become parents: a reference to a dropped one would make the
        # sink park the child until its grace period ends.
        for event in events:
            if isinstance(event, SnapshotEvent):
                self._get(event.correlation_id).last_snapshot[event.agent_name] = event.id

    def open(self, step: Step) -> None:
        """Note ``step`` as started."""
        self._open_steps[step.id] = step

    def close(self, step: Step | UUIDLike) -> Step:
        """The open step ``step`` (or its id), no longer open; ``ValueError`` if it is not."""
        step_id = step.id if isinstance(step, Step) else as_uuid(step)
        handle = self._open_steps.pop(step_id, None) if step_id is not None else None
        if handle is None:
            raise ValueError(
                f"step {step_id or step!r} was not started by this manager, or is already complete"
            )
        return handle

    def _get(self, correlation_id: UUID) -> _Workflow:
        workflow = self._workflows.get(correlation_id)
        if workflow is None:
            workflow = self._workflows[correlation_id] = _Workflow()
            if len(self._workflows) > self._max_workflows:
                self._workflows.popitem(last=False)
        else:
            self._workflows.move_to_end(correlation_id)
        return workflow


# -- the current workflow and step ----------------------------------------------------------


@contextlib.contextmanager
def entered(correlation_id: UUID, step: Step | None = None) -> Iterator[None]:
    """Make the workflow (and ``step``, when given) current inside the block."""
    token = _CURRENT.set(_Context(correlation_id, step))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_step(correlation_id: UUID | None) -> Step | None:
    """The step the running code is inside, if it belongs to ``correlation_id``."""
    current = _CURRENT.get()
    if current is None or current.step is None or current.correlation_id != correlation_id:
        return None
    return current.step


def step_number(correlation_id: UUID | None, execution_step: int | None) -> int | None:
    """``execution_step``, else the number of the current step of the workflow, if any."""
    if execution_step is not None:
        return execution_step
    current = current_step(correlation_id)
    return current.step_number if current else None


def trace(
    fn: Callable[..., Any],
    operation_name: str,
    correlation_id: UUIDLike | None,
    *,
    async_step: Callable[[UUIDLike, str], AbstractAsyncContextManager[Step]],
    sync_step: Callable[[UUIDLike, str], AbstractContextManager[Step]],
) -> Callable[..., Any]:
    """``fn`` with every call run inside ``async_step`` (coroutine functions) or
    ``sync_step`` (plain functions), given the call's workflow and ``operation_name``.

    The workflow is ``correlation_id``, else the call's ``correlation_id`` argument, else the
    current workflow; with none of them the call raises ``ValueError``.
    """
    signature = inspect.signature(fn)

    def workflow_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> UUIDLike:
        if correlation_id is not None:
            return correlation_id
        if "correlation_id" in signature.parameters:
            bound = signature.bind_partial(*args, **kwargs)
            value = bound.arguments.get("correlation_id")
            if value is not None:
                return cast(UUIDLike, value)
        current = _CURRENT.get()
        if current is not None:
            return current.correlation_id
        raise ValueError(
            f"{fn.__qualname__} is traced but has no workflow: pass correlation_id to "
            "traced(), give the function a correlation_id argument, or call it inside "
            "DebugStateManager.step() or workflow()"
        )

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with async_step(workflow_of(args, kwargs), operation_name):
                return await fn(*args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        with sync_step(workflow_of(args, kwargs), operation_name):
            return fn(*args, **kwargs)

    return sync_wrapper
