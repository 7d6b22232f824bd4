"""What the SDK remembers about workflows between captures, and which step a call runs inside.

Owns the per-manager workflow registry (:class:`Workflows`: step numbering, each agent's last
snapshot, the steps started and not yet completed, the errors of failed attempts awaiting a
retry), the step handle agents hold (:class:`Step`), the current workflow and step of the
running task (a context variable, so concurrent tasks do not see each other's steps) and the
wrapper that turns a call into a step, retried or not (:func:`trace`). No I/O and no event
building: that is :mod:`debug_sink.sdk.builders`.

Guarantees:

- Step numbers are assigned per workflow, 1, 2, ...; a step given its number moves the
  next default past it. A retry (``attempt`` > 1) without a number keeps the number of the
  failed attempt of the same agent and operation.
- The errors of failed attempts of a step (agent, operation, step number) are remembered
  until an attempt of that step succeeds, which takes them (:meth:`Workflows.recovered`): at
  most :data:`~debug_sink.wire.events.MAX_RECOVERS` per step, the latest
  :data:`PENDING_STEPS` steps per workflow.
- A snapshot becomes the parent of the next snapshot of the same agent in the workflow only
  once it was queued (:meth:`Workflows.remember`).
- Memory is bounded: the least recently used workflow is forgotten beyond ``max_workflows``
  (its numbering then restarts at 1 and its next snapshot has no parent).
- The above holds across threads: :class:`Workflows` changes its state under a lock, so
  sync traced functions in worker threads and tasks on the event loop never get the same
  step number, and a success takes only the errors of its own step.

Not guaranteed: that a step left open (started, never completed) is ever forgotten; the
current step is shared by every manager in the task (it is a property of the running code,
not of a manager).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast
from uuid import UUID

from debug_sink.wire.events import MAX_RECOVERS, EventBase, SnapshotEvent

__all__ = [
    "PENDING_STEPS",
    "Attempt",
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

#: Failed steps per workflow whose errors wait for a successful retry (the oldest forgotten).
PENDING_STEPS: Final = 64


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """Which try of a traced call a step is: ``number`` (1 for the first), the
    ``step_number`` of the first try (``None`` for it), and ``retried_if``: whether a failure
    with that exception will be retried (the error then says ``recovery_strategy=retry``)."""

    number: int = 1
    step_number: int | None = None
    retried_if: Callable[[BaseException], bool] | None = None


@dataclass(slots=True)
class _Workflow:
    next_step: int = 1
    last_snapshot: dict[str, UUID] = field(default_factory=dict)
    #: (agent, operation, step number) -> errors of its failed attempts, oldest step first
    failures: OrderedDict[tuple[str, str, int], list[UUID]] = field(default_factory=OrderedDict)


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
    """The workflows one manager has seen, least recently used first, and its open steps.

    Thread-safe: sync traced functions run in worker threads while tasks capture on the
    event loop, so every method reads and changes the registry under one lock (held for a
    few dictionary operations, never across I/O or an await). A forked child gets a fresh
    lock (another thread of the parent may have held it).
    """

    def __init__(self, max_workflows: int) -> None:
        self._workflows: OrderedDict[UUID, _Workflow] = OrderedDict()
        self._max_workflows = max_workflows
        self._open_steps: dict[UUID, Step] = {}
        self._lock = threading.Lock()
        _REGISTRIES.add(self)

    def claim_step_number(self, correlation_id: UUID, step_number: int | None) -> int:
        """``step_number``, or the workflow's next one; later defaults continue after it."""
        with self._lock:
            workflow = self._get(correlation_id)
            if step_number is None:
                step_number = workflow.next_step
            workflow.next_step = max(workflow.next_step, step_number + 1)
            return step_number

    def retry_number(
        self, correlation_id: UUID, agent_name: str, operation_name: str
    ) -> int | None:
        """The step number of the latest failed attempt of the agent's operation that no
        attempt has recovered yet: where its retry belongs."""
        with self._lock:
            for agent, operation, number in reversed(self._get(correlation_id).failures):
                if (agent, operation) == (agent_name, operation_name):
                    return number
            return None

    def failed(self, step: Step, error_id: UUID) -> None:
        """Note that an attempt of ``step`` failed with the error ``error_id``."""
        key = (step.agent_name, step.operation_name, step.step_number)
        with self._lock:
            failures = self._get(step.correlation_id).failures
            errors = failures.setdefault(key, [])
            failures.move_to_end(key)
            errors.append(error_id)
            del errors[:-MAX_RECOVERS]
            while len(failures) > PENDING_STEPS:
                failures.popitem(last=False)

    def recovered(self, step: Step) -> list[UUID]:
        """The errors of the failed attempts of ``step``, which just succeeded (forgotten)."""
        key = (step.agent_name, step.operation_name, step.step_number)
        with self._lock:
            return self._get(step.correlation_id).failures.pop(key, [])

    def last_snapshot(self, correlation_id: UUID, agent_name: str) -> UUID | None:
        """The last queued snapshot of ``agent_name`` in the workflow."""
        with self._lock:
            return self._get(correlation_id).last_snapshot.get(agent_name)

    def remember(self, events: Iterable[EventBase]) -> None:
        """Note the snapshots among ``events``, which were just queued."""
        # Only queued snapshots become parents: a reference to a dropped one would make the
        # sink park the child until its grace period ends.
        snapshots = [event for event in events if isinstance(event, SnapshotEvent)]
        if not snapshots:
            return
        with self._lock:
            for event in snapshots:
                self._get(event.correlation_id).last_snapshot[event.agent_name] = event.id

    def open(self, step: Step) -> None:
        """Note ``step`` as started."""
        with self._lock:
            self._open_steps[step.id] = step

    def close(self, step: Step | UUIDLike) -> Step:
        """The open step ``step`` (or its id), no longer open; ``ValueError`` if it is not."""
        step_id = step.id if isinstance(step, Step) else as_uuid(step)
        with self._lock:
            handle = self._open_steps.pop(step_id, None) if step_id is not None else None
        if handle is None:
            raise ValueError(
                f"step {step_id or step!r} was not started by this manager, or is already complete"
            )
        return handle

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held the parent's)."""
        self._lock = threading.Lock()

    def _get(self, correlation_id: UUID) -> _Workflow:
        """The workflow's record, made when new; the caller holds the lock."""
        workflow = self._workflows.get(correlation_id)
        if workflow is None:
            workflow = self._workflows[correlation_id] = _Workflow()
            if len(self._workflows) > self._max_workflows:
                self._workflows.popitem(last=False)
        else:
            self._workflows.move_to_end(correlation_id)
        return workflow


# Every registry of the process, to give a forked child fresh locks.
_REGISTRIES: weakref.WeakSet[Workflows] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for registry in list(_REGISTRIES):
        registry._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    async_step: Callable[[UUIDLike, str, Attempt], AbstractAsyncContextManager[Step]],
    sync_step: Callable[[UUIDLike, str, Attempt], AbstractContextManager[Step]],
    retries: int = 0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    backoff_s: float = 0.0,
) -> Callable[..., Any]:
    """``fn`` with every call run inside ``async_step`` (coroutine functions) or
    ``sync_step`` (plain functions), given the call's workflow and ``operation_name``.

    The workflow is ``correlation_id``, else the call's ``correlation_id`` argument, else the
    current workflow; with none of them the call raises ``ValueError``. A call that raises
    one of ``retry_on`` is tried again, up to ``retries`` more times, each try a step with the
    same step number and the next attempt, after ``backoff_s`` doubled at each retry; the last
    exception propagates. A generator (or async generator) function's call is one step as
    long as its iteration, one try whatever ``retries`` says (what it yielded is not taken
    back); it fails with what the generator raises.
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

    def retried(exc: BaseException) -> bool:
        return isinstance(exc, retry_on)

    def tries() -> Iterator[tuple[int, Callable[[BaseException], bool] | None, float]]:
        """Each try's number, whether its failure is retried, and the pause after it."""
        for number in range(1, retries + 2):
            yield number, (retried if number <= retries else None), backoff_s * 2 ** (number - 1)

    if inspect.isasyncgenfunction(fn):
        # The step lasts as long as the iteration (one try: what was yielded is not taken
        # back), and fails with what the generator raises.

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            corr = workflow_of(args, kwargs)
            async with async_step(corr, operation_name, Attempt(1, None, None)):
                async for item in fn(*args, **kwargs):
                    yield item

        return async_gen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            corr = workflow_of(args, kwargs)
            with sync_step(corr, operation_name, Attempt(1, None, None)):
                return (yield from fn(*args, **kwargs))

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            corr = workflow_of(args, kwargs)
            step_number: int | None = None
            for number, retried_if, pause in tries():
                attempt = Attempt(number, step_number, retried_if)
                try:
                    async with async_step(corr, operation_name, attempt) as step:
                        step_number = step.step_number
                        return await fn(*args, **kwargs)
                except Exception as exc:
                    if retried_if is None or not retried_if(exc):
                        raise
                if pause:
                    await asyncio.sleep(pause)
            raise AssertionError("unreachable: the last attempt returns or raises")

        return async_wrapper

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        corr = workflow_of(args, kwargs)
        step_number: int | None = None
        for number, retried_if, pause in tries():
            attempt = Attempt(number, step_number, retried_if)
            try:
                with sync_step(corr, operation_name, attempt) as step:
                    step_number = step.step_number
                    return fn(*args, **kwargs)
            except Exception as exc:
                if retried_if is None or not retried_if(exc):
                    raise
            if pause:
                time.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    return sync_wrapper
