"""The agent SDK: :class:`DebugStateManager`, the API of the quickstart's "Python Integration".

Owns turning what an agent knows (an exception, its state, a step it runs, a hand-over to
another agent, an LLM call) into wire-format events (:mod:`debug_sink.wire.events`) and handing
them to an :class:`~debug_sink.sdk.emitter.Emitter`. Ids are generated here, so every capture
returns its event's id at once, before anything reaches Kafka. The read side
(:meth:`~DebugStateManager.get_workflow_debug_summary`,
:meth:`~DebugStateManager.get_recovery_patterns`) delegates to
:class:`~debug_sink.read.queries.DebugQueries` when a DSN or pool is available.

What the SDK guarantees to the agent:

- **It never fails the agent.** Capture calls return within the emitter's ``max_block_ms``;
  an event that cannot be queued, encoded or even built from the given values is dropped,
  counted (:attr:`DebugStateManager.stats`) and logged, and the call still returns the id it
  would have had (``strict=True`` raises :class:`~debug_sink.errors.InvalidEvent` for values
  the wire format rejects instead, for development). Misuse of the API itself -- completing a
  step that was never started, a decorated call with no workflow -- raises ``ValueError``.
- **It sends what the sink would store.** JSON fields are made plain JSON (tuples become
  lists, non-string keys strings, other objects their ``str()``), ``NUL`` characters become
  U+FFFD (PostgreSQL cannot store them), secrets are redacted with the sink's
  :class:`~debug_sink.wire.canonical.Redactor` and patterns, and ``state_hash`` is
  :func:`~debug_sink.wire.canonical.state_hash` of the redacted state: the sink finds nothing to
  redact or re-hash. Strings longer than their column are cut to fit (``error_type`` keeps
  its end, the class name); free text is cut at 64 KiB with a visible marker.
- **A value that cannot be JSON at all** (a reference cycle, an integer beyond 64 bits) is
  sent as ``{"_unserialisable": true, "_error": ..., "_type": ...}`` and logged
  (``sdk_value_unserialisable``): the error event it belongs to is worth more than the
  state. Other non-JSON objects (sets, Decimals, paths, enums, pydantic models, anything
  else) are converted, the last resort being ``str()``.
- **Oversized states are truncated, visibly.** A state whose canonical JSON exceeds
  ``max_state_bytes`` (or that nests deeper than ``max_depth`` allows) is replaced by
  ``{"_truncated": true, "_reason": ..., "_original_size_bytes": N,
  "_original_state_hash": ..., "_top_level_keys": [...], "preview": "<start of the JSON>"}``;
  other JSON fields over 64 KiB likewise.

Event order: an error is sent with its state snapshot as one group (both or neither); a
step is sent as ``started`` and again, same id, as ``completed``/``failed``. Step numbers
are assigned per workflow (1, 2, ...) unless given, snapshots link to the previous snapshot
of the same agent in the workflow (``parent_snapshot_id``), and captures inside
:meth:`~DebugStateManager.step` carry its step number and parent step -- which is what
keeps ``DebugQueries.timeline`` causal when agents' clocks disagree.

Not guaranteed: delivery of events still queued when the process dies (call
:meth:`~DebugStateManager.close`, or use ``async with``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast, overload
from uuid import UUID

import orjson
import structlog
from pydantic import BaseModel, ValidationError

from debug_sink.errors import ConfigurationError, InvalidEvent
from debug_sink.read.queries import DebugQueries
from debug_sink.sdk.emitter import DropReason, Emitter, EmitterConfig, EmitterStats
from debug_sink.settings import Settings
from debug_sink.wire.canonical import Redactor, canonical_json, state_hash
from debug_sink.wire.events import (
    ErrorEvent,
    EventBase,
    HookEvent,
    SnapshotEvent,
    StepEvent,
    SuccessEvent,
    TransformationEvent,
)

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "MAX_TEXT_CHARS",
    "DebugStateManager",
    "Step",
    "TransformationIds",
    "error_type_of",
]

log = structlog.get_logger("debug_sink.sdk.manager")

P = ParamSpec("P")
R = TypeVar("R")

#: Free text (messages, stack traces, descriptions) is cut at this many characters.
MAX_TEXT_CHARS: Final = 64 * 1024
#: JSON fields other than agent_state are truncated above this many bytes.
MAX_JSON_FIELD_BYTES: Final = 64 * 1024
_PREVIEW_CHARS: Final = 2000
_MAX_KEYS_LISTED: Final = 50
_NUL_ESCAPE: Final = b"\\u0000"
_REPLACEMENT: Final = "\ufffd"

Severity = Literal["low", "medium", "high", "critical"]
Category = Literal["agent", "framework", "external", "user"]
SnapshotType = Literal["error", "success", "checkpoint", "pre_transform", "post_transform"]
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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def error_type_of(error: BaseException) -> str:
    """``TimeoutError`` for built-ins, ``package.module.Class`` otherwise."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class DebugStateManager:
    """Captures an agent's debug events and reads a workflow's debug data back.

    ``settings``: Kafka and topic settings, redaction patterns, ``max_state_bytes`` and
    ``max_depth`` (the sink's own limits), and optionally ``postgres_dsn``/``db_schema`` for
    the read side. When omitted, it is read from the ``DEBUG_SINK_*`` environment -- the one
    place the SDK reads the environment. ``emitter``: a ready emitter (e.g. a
    :class:`~debug_sink.sdk.emitter.MemoryEmitter` in tests); else one is made from ``settings``
    and ``emitter_config``. Read side: ``queries``, else ``pool``, else ``dsn``, else
    ``settings.postgres_dsn``. ``session_id``: the default session of every event.
    ``clock``, ``monotonic`` and ``new_id`` exist for deterministic tests.

    Use ``async with DebugStateManager(...) as debug:`` or call :meth:`close` at the end; the
    emitter starts on the first capture.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        emitter: Emitter | None = None,
        emitter_config: EmitterConfig | None = None,
        queries: DebugQueries | None = None,
        pool: asyncpg.Pool | None = None,
        dsn: str | None = None,
        session_id: UUIDLike | None = None,
        strict: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], UUID] = uuid.uuid4,
        max_workflows: int = 10_000,
    ) -> None:
        if settings is None:
            settings = emitter.settings if emitter is not None else Settings()
        self.settings = settings
        self.emitter = emitter if emitter is not None else Emitter(settings, emitter_config)
        self.session_id = UUID(str(session_id)) if session_id is not None else None
        self.strict = strict
        self._clock = clock
        self._monotonic = monotonic
        self._new_id = new_id
        self._redactor = Redactor(settings.redact_patterns)
        self._max_state_bytes = settings.max_state_bytes
        # The message object is depth 1, so a JSON field's own nesting may use max_depth - 1.
        self._max_field_depth = settings.max_depth - 1
        self._workflows: OrderedDict[UUID, _Workflow] = OrderedDict()
        self._max_workflows = max_workflows
        self._open_steps: dict[UUID, Step] = {}
        self._queries = queries
        self._pool = pool
        self._dsn = dsn
        self._owns_queries = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the emitter's sender (it connects to Kafka in the background)."""
        await self.emitter.start()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything captured so far is delivered; False if ``timeout`` passed."""
        return await self.emitter.flush(timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (bounded by ``timeout``), then close the emitter and the
        read side this manager opened. Idempotent."""
        await self.emitter.close(timeout)
        if self._owns_queries and self._queries is not None:
            await self._queries.close()
            self._queries = None
            self._owns_queries = False

    async def __aenter__(self) -> DebugStateManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def stats(self) -> EmitterStats:
        """The emitter's counters: sent, queued, dropped (by reason)."""
        return self.emitter.stats

    # -- capture --------------------------------------------------------------------------

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
        snapshot = self._snapshot(
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
        await self._emit(snapshot)
        return snapshot.id

    async def capture_error_state(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        error: BaseException | str,
        agent_state: Mapping[str, Any] | None,
        error_severity: Severity = "medium",
        *,
        error_category: Category = "agent",
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
        events = self._error(
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
        await self._emit(*events)
        return events[-1].id

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
    ) -> UUID:
        """Record a success (with a ``success`` snapshot when ``agent_state`` is given)."""
        events = self._success(
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
        )
        await self._emit(*events)
        return events[-1].id

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
        snapshot = self._snapshot(
            correlation_id, source_agent, agent_state, "pre_transform", session_id=session_id
        )
        transformation = self._build(
            TransformationEvent,
            id=self._new_id(),
            correlation_id=correlation_id,
            source_agent=source_agent,
            target_agent=target_agent,
            transformation_type=transformation_type,
            session_id=self._session(session_id),
            reason=_text(reason),
            confidence_score=confidence_score,
            state_snapshot_id=snapshot.id,
            error_event_id=error_event_id,
            success_event_id=success_event_id,
            metadata=self._json_field(metadata),
            created_at=self._clock(),
        )
        await self._emit(snapshot, transformation)
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
        corr = _as_uuid(correlation_id)
        session = self._session(session_id)
        meta: dict[str, Any] = dict(metadata or {})
        if agent_name is not None:
            meta["agent_name"] = agent_name
        step_number = self._step_number_default(corr, execution_step)
        if step_number is not None:
            meta["execution_step"] = step_number
        # The sink puts the ids into metadata (the view reads them there); doing it here
        # means the sink has nothing to change.
        meta["correlation_id"] = str(corr if corr is not None else correlation_id)
        if session is not None:
            meta["session_id"] = str(session)
        event = self._build(
            HookEvent,
            id=self._new_id(),
            correlation_id=correlation_id,
            source="PostToolUse",
            resource_id=_fit_text(tool_name, 255),
            session_id=session,
            payload=self._json_field(body),
            metadata=self._json_field(meta),
            created_at=self._clock(),
        )
        await self._emit(event)
        return event.id

    # -- steps ----------------------------------------------------------------------------

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
        step, events = self._start(
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
        if events:
            await self._emit(*events)
        return step

    async def complete_step(
        self,
        step: Step | UUIDLike,
        status: Literal["completed", "failed", "skipped"] = "completed",
        *,
        success_event_id: UUIDLike | None = None,
        error_event_id: UUIDLike | None = None,
        output_data: Any = None,
        post_state_snapshot_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Send the step's terminal event (same id as its start) with its duration."""
        await self._emit(
            self._finish(
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
        error_severity: Severity = "high",
        error_category: Category = "agent",
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
        """
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
        token = _CURRENT.set(_Context(step.correlation_id, step))
        try:
            yield step
        except Exception as exc:
            _CURRENT.reset(token)
            events = self._step_failed(step, exc, error_severity, error_category)
            await self._emit(*events)
            raise
        except BaseException:
            _CURRENT.reset(token)
            self._emit_nowait(*self._step_cancelled(step))
            raise
        else:
            _CURRENT.reset(token)
            await self._emit(*self._step_succeeded(step))

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
        error_severity: Severity = "high",
        error_category: Category = "agent",
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
        error_severity: Severity = "high",
        error_category: Category = "agent",
    ) -> Any:
        """Decorator: every call of the function is a step, like :meth:`step`.

        ``operation_name`` defaults to the function's name. The workflow is
        ``correlation_id``, else the call's ``correlation_id`` argument, else the workflow
        of the enclosing :meth:`step` or :meth:`workflow` block; with none of them the call
        raises ``ValueError``. Coroutine functions are awaited (captures may wait up to
        ``max_block_ms``); plain functions are supported too, their events queued without
        waiting.
        """

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            name = operation_name or fn.__name__
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
                    async with self.step(
                        workflow_of(args, kwargs),
                        name,
                        agent_name=agent_name,
                        step_type=step_type,
                        error_severity=error_severity,
                        error_category=error_category,
                    ):
                        return await fn(*args, **kwargs)

                return async_wrapper

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._sync_step(
                    workflow_of(args, kwargs),
                    name,
                    agent_name=agent_name,
                    step_type=step_type,
                    severity=error_severity,
                    category=error_category,
                ):
                    return fn(*args, **kwargs)

            return sync_wrapper

        return decorate(func) if func is not None else decorate

    @contextlib.contextmanager
    def workflow(self, correlation_id: UUIDLike) -> Iterator[UUID]:
        """Make ``correlation_id`` the workflow of traced calls inside the block."""
        corr = _as_uuid(correlation_id)
        if corr is None:
            raise ValueError(f"not a UUID: {correlation_id!r}")
        token = _CURRENT.set(_Context(corr, None))
        try:
            yield corr
        finally:
            _CURRENT.reset(token)

    @contextlib.contextmanager
    def _sync_step(
        self,
        correlation_id: UUIDLike,
        operation_name: str,
        *,
        agent_name: str,
        step_type: str,
        severity: Severity,
        category: Category,
    ) -> Iterator[Step]:
        step, events = self._start(correlation_id, agent_name, operation_name, step_type=step_type)
        self._emit_nowait(*events)
        token = _CURRENT.set(_Context(step.correlation_id, step))
        try:
            yield step
        except Exception as exc:
            _CURRENT.reset(token)
            self._emit_nowait(*self._step_failed(step, exc, severity, category))
            raise
        except BaseException:
            _CURRENT.reset(token)
            self._emit_nowait(*self._step_cancelled(step))
            raise
        else:
            _CURRENT.reset(token)
            self._emit_nowait(*self._step_succeeded(step))

    # -- read side ------------------------------------------------------------------------

    async def queries(self) -> DebugQueries:
        """The read side; :class:`~debug_sink.errors.ConfigurationError` without a DSN/pool."""
        if self._queries is None:
            if self._pool is not None:
                self._queries = DebugQueries(self._pool, schema=self.settings.db_schema)
            else:
                dsn = self._dsn
                if dsn is None and self.settings.postgres_dsn is not None:
                    dsn = self.settings.postgres_dsn.get_secret_value()
                if dsn is None:
                    raise ConfigurationError(
                        "the read side needs PostgreSQL: pass dsn=, pool= or queries=, or set "
                        "DEBUG_SINK_POSTGRES_DSN"
                    )
                self._queries = await DebugQueries.connect(
                    dsn, schema=self.settings.db_schema, ssl=self.settings.postgres_ssl()
                )
                self._owns_queries = True
        return self._queries

    async def get_workflow_debug_summary(self, correlation_id: UUIDLike) -> dict[str, Any]:
        """:meth:`DebugQueries.get_workflow_debug_summary` (counts are 0 for an unknown id)."""
        return await (await self.queries()).get_workflow_debug_summary(correlation_id)

    async def get_recovery_patterns(self, min_success_count: int = 3) -> list[dict[str, Any]]:
        """:meth:`DebugQueries.get_recovery_patterns`."""
        return await (await self.queries()).get_recovery_patterns(min_success_count)

    # -- building events ------------------------------------------------------------------

    def _snapshot(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        agent_state: Mapping[str, Any] | None,
        snapshot_type: str,
        *,
        session_id: UUIDLike | None = None,
        execution_step: int | None = None,
        parent_snapshot_id: UUIDLike | None = None,
        **fields: Any,
    ) -> SnapshotEvent | _Invalid:
        corr = _as_uuid(correlation_id)
        state, digest = self.prepare_state(agent_state if agent_state is not None else {})
        parent = parent_snapshot_id
        if parent is None and corr is not None:
            parent = self._workflow(corr).last_snapshot.get(agent_name)
        for name in ("task_description", "user_request"):
            if fields.get(name) is not None:
                fields[name] = _text(fields[name])
        if fields.get("metadata") is not None:
            fields["metadata"] = self._json_field(fields["metadata"])
        return self._build(
            SnapshotEvent,
            id=self._new_id(),
            correlation_id=correlation_id,
            snapshot_type=snapshot_type,
            session_id=self._session(session_id),
            agent_name=_fit_text(agent_name, 255),
            agent_state=state,
            state_hash=digest,
            execution_step=self._step_number_default(corr, execution_step),
            parent_snapshot_id=parent,
            captured_at=self._clock(),
            **{k: v for k, v in fields.items() if v is not None},
        )

    def _error(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        error: BaseException | str,
        agent_state: Mapping[str, Any] | None,
        severity: str,
        *,
        error_category: str,
        error_type: str | None,
        operation_name: str | None,
        execution_step: int | None,
        session_id: UUIDLike | None,
        task_description: str | None = None,
        user_request: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> list[_Built]:
        corr = _as_uuid(correlation_id)
        step_number = self._step_number_default(corr, execution_step)
        if operation_name is None:
            current = self._current_step(corr)
            operation_name = current.operation_name if current else None
        snapshot = self._snapshot(
            correlation_id,
            agent_name,
            agent_state,
            "error",
            session_id=session_id,
            execution_step=step_number,
            task_description=task_description,
            user_request=user_request,
        )
        if isinstance(error, BaseException):
            kind = error_type or error_type_of(error)
            message = _safe_str(error)
            stack = "".join(traceback.format_exception(error))
        else:
            kind, message, stack = error_type or "Error", str(error), None
        event = self._build(
            ErrorEvent,
            id=self._new_id(),
            correlation_id=correlation_id,
            session_id=self._session(session_id),
            error_type=_fit_error_type(kind),
            error_category=error_category,
            error_severity=severity,
            error_message=_text(message),
            error_stack_trace=_text(stack),
            agent_name=_fit_text(agent_name, 255),
            operation_name=_fit_text(operation_name, 255),
            execution_step=step_number,
            state_snapshot_id=snapshot.id,
            metadata=self._json_field(metadata),
            occurred_at=self._clock(),
            **{
                k: (
                    _fit_text(v, 100)
                    if k == "recovery_strategy"
                    else _fit_text(v, 50)
                    if k == "error_code"
                    else v
                )
                for k, v in fields.items()
                if v is not None
            },
        )
        return [snapshot, event]

    def _success(
        self,
        correlation_id: UUIDLike,
        agent_name: str,
        operation_name: str,
        *,
        success_type: str,
        agent_state: Mapping[str, Any] | None,
        execution_step: int | None,
        session_id: UUIDLike | None,
        success_factors: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> list[_Built]:
        corr = _as_uuid(correlation_id)
        step_number = self._step_number_default(corr, execution_step)
        events: list[_Built] = []
        snapshot_id = None
        if agent_state is not None:
            snapshot = self._snapshot(
                correlation_id,
                agent_name,
                agent_state,
                "success",
                session_id=session_id,
                execution_step=step_number,
            )
            events.append(snapshot)
            snapshot_id = snapshot.id
        events.append(
            self._build(
                SuccessEvent,
                id=self._new_id(),
                correlation_id=correlation_id,
                session_id=self._session(session_id),
                success_type=_fit_text(success_type, 100),
                operation_name=_fit_text(operation_name, 255),
                agent_name=_fit_text(agent_name, 255),
                execution_step=step_number,
                state_snapshot_id=snapshot_id,
                success_factors=self._json_field(success_factors),
                metadata=self._json_field(metadata),
                occurred_at=self._clock(),
                **{
                    k: (_fit_text(v, 50) if k == "completion_status" else v)
                    for k, v in fields.items()
                    if v is not None
                },
            )
        )
        return events

    def _start(
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
    ) -> tuple[Step, list[_Built]]:
        corr = _as_uuid(correlation_id)
        if corr is None:
            raise ValueError(f"correlation_id is not a UUID: {correlation_id!r}")
        workflow = self._workflow(corr)
        if step_number is None:
            step_number = workflow.next_step
        workflow.next_step = max(workflow.next_step, step_number + 1)
        parent = _as_uuid(parent_step_id) if parent_step_id is not None else None
        if parent is None:
            current = self._current_step(corr)
            parent = current.id if current else None
        events: list[_Built] = []
        state: dict[str, Any] | None = None
        pre_snapshot: UUID | None = None
        if agent_state is not None:
            state = dict(agent_state)
            snapshot = self._snapshot(
                corr,
                agent_name,
                state,
                "checkpoint",
                session_id=session_id,
                execution_step=step_number,
            )
            events.append(snapshot)
            pre_snapshot = snapshot.id
        step = Step(
            id=self._new_id(),
            correlation_id=corr,
            step_number=step_number,
            attempt=attempt,
            agent_name=_fit_text(agent_name, 255),
            operation_name=_fit_text(operation_name, 255),
            step_type=_fit_text(step_type, 100),
            started_at=self._clock(),
            session_id=_as_uuid(self._session(session_id)),
            parent_step_id=parent,
            pre_state_snapshot_id=pre_snapshot,
            state=state,
            _started=self._monotonic(),
        )
        started = self._build(
            StepEvent,
            id=step.id,
            correlation_id=corr,
            session_id=step.session_id,
            step_number=step_number,
            attempt=attempt,
            step_type=step.step_type,
            agent_name=step.agent_name,
            operation_name=step.operation_name,
            step_description=_text(step_description),
            status="started",
            pre_state_snapshot_id=pre_snapshot,
            parent_step_id=parent,
            depends_on_steps=list(depends_on_steps) if depends_on_steps else None,
            input_data=self._json_field(input_data),
            metadata=self._json_field(metadata),
            started_at=step.started_at,
        )
        events.append(started)
        self._open_steps[step.id] = step
        return step, events

    def _finish(
        self,
        step: Step | UUIDLike,
        status: str,
        *,
        success_event_id: UUIDLike | None = None,
        error_event_id: UUIDLike | None = None,
        output_data: Any = None,
        post_state_snapshot_id: UUIDLike | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Built:
        step_id = step.id if isinstance(step, Step) else _as_uuid(step)
        handle = self._open_steps.pop(step_id, None) if step_id is not None else None
        if handle is None:
            raise ValueError(
                f"step {step_id or step!r} was not started by this manager, or is already complete"
            )
        completed_at = self._clock()
        handle.duration_ms = max(0, round((self._monotonic() - handle._started) * 1000))
        handle.status = status
        handle.success_event_id = _as_uuid(success_event_id) if success_event_id else None
        handle.error_event_id = _as_uuid(error_event_id) if error_event_id else None
        output = output_data if output_data is not None else handle.output
        return self._build(
            StepEvent,
            id=handle.id,
            correlation_id=handle.correlation_id,
            session_id=handle.session_id,
            step_number=handle.step_number,
            attempt=handle.attempt,
            step_type=handle.step_type,
            agent_name=handle.agent_name,
            operation_name=handle.operation_name,
            status=status,
            pre_state_snapshot_id=handle.pre_state_snapshot_id,
            post_state_snapshot_id=post_state_snapshot_id,
            error_event_id=handle.error_event_id,
            success_event_id=handle.success_event_id,
            duration_ms=handle.duration_ms,
            parent_step_id=handle.parent_step_id,
            output_data=self._json_field(output),
            metadata=self._json_field(metadata),
            started_at=handle.started_at,
            completed_at=completed_at,
        )

    def _step_failed(
        self, step: Step, exc: BaseException, severity: Severity, category: Category
    ) -> list[_Built]:
        events = self._error(
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
        )
        return [*events, self._finish(step, "failed", error_event_id=events[-1].id)]

    def _step_succeeded(self, step: Step) -> list[_Built]:
        elapsed = max(0, round((self._monotonic() - step._started) * 1000))
        # A later attempt that succeeds is a recovery: say so, for the correlator.
        retried = step.attempt > 1
        events = self._success(
            step.correlation_id,
            step.agent_name,
            step.operation_name,
            success_type="recovery_success" if retried else "task_completion",
            agent_state=step.state,
            execution_step=step.step_number,
            session_id=step.session_id,
            execution_time_ms=elapsed,
            retry_count=step.attempt - 1,
        )
        post = events[0].id if len(events) > 1 else None
        return [
            *events,
            self._finish(
                step, "completed", success_event_id=events[-1].id, post_state_snapshot_id=post
            ),
        ]

    def _step_cancelled(self, step: Step) -> list[_Built]:
        return [self._finish(step, "failed", metadata={"cancelled": True})]

    @overload
    def _build(self, model: type[SnapshotEvent], **values: Any) -> SnapshotEvent | _Invalid: ...
    @overload
    def _build(self, model: type[EventBase], **values: Any) -> _Built: ...
    def _build(self, model: type[EventBase], **values: Any) -> _Built:
        clean = {k: v for k, v in values.items() if v is not None}
        try:
            return model(**clean)
        except ValidationError as exc:
            event_id = clean.get("id")
            return _Invalid(model, event_id if isinstance(event_id, UUID) else uuid.uuid4(), exc)

    # -- emitting -------------------------------------------------------------------------

    def _valid(self, events: Sequence[_Built]) -> list[EventBase] | None:
        invalid = [e for e in events if isinstance(e, _Invalid)]
        if not invalid:
            return [e for e in events if not isinstance(e, _Invalid)]
        first = invalid[0]
        reason = f"{first.model.__name__}: {first.error}".replace("\n", " ")
        if self.strict:
            raise InvalidEvent("schema", reason) from first.error
        self.emitter.record_drop(
            DropReason.INVALID, len(events), detail=reason, kind=first.model.KIND
        )
        return None

    async def _emit(self, *events: _Built) -> bool:
        valid = self._valid(events)
        if valid is None:
            return False
        sent = await self.emitter.emit(*valid)
        if sent:
            self._remember(valid)
        return sent

    def _emit_nowait(self, *events: _Built) -> bool:
        valid = self._valid(events)
        if valid is None:
            return False
        sent = self.emitter.emit_nowait(*valid)
        if sent:
            self._remember(valid)
        return sent

    def _remember(self, events: Sequence[EventBase]) -> None:
        # Only queued snapshots become parents: a reference to a dropped one would make the
        # sink park the child until its grace period ends.
        for event in events:
            if isinstance(event, SnapshotEvent):
                self._workflow(event.correlation_id).last_snapshot[event.agent_name] = event.id

    # -- state preparation ----------------------------------------------------------------

    def prepare_state(self, agent_state: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """``(state as sent, its state_hash)``: plain JSON, NUL-free, redacted, within
        ``max_state_bytes`` and ``max_depth`` (else the truncation marker)."""
        tree, data = _plain_json(agent_state)
        if not isinstance(tree, dict):
            tree = {"value": tree}
        tree, _ = self._redactor.redact(tree)
        if _may_be_too_deep(data, self._max_field_depth) and _depth(tree) > self._max_field_depth:
            tree = _marker(tree, "too_deep", self._max_state_bytes)
        encoded = canonical_json(tree)
        if len(encoded) > self._max_state_bytes:
            tree = _marker(tree, "too_large", self._max_state_bytes, encoded)
            encoded = canonical_json(tree)
        return tree, state_hash(tree)

    def _json_field(self, value: Any) -> Any:
        if value is None:
            return None
        tree, data = _plain_json(value)
        tree, _ = self._redactor.redact(tree)
        too_deep = (
            _may_be_too_deep(data, self._max_field_depth) and _depth(tree) > self._max_field_depth
        )
        if too_deep or len(data) > MAX_JSON_FIELD_BYTES:
            return _marker(tree, "too_deep" if too_deep else "too_large", MAX_JSON_FIELD_BYTES)
        return tree

    # -- workflow bookkeeping -------------------------------------------------------------

    def _workflow(self, correlation_id: UUID) -> _Workflow:
        workflow = self._workflows.get(correlation_id)
        if workflow is None:
            workflow = self._workflows[correlation_id] = _Workflow()
            if len(self._workflows) > self._max_workflows:
                self._workflows.popitem(last=False)
        else:
            self._workflows.move_to_end(correlation_id)
        return workflow

    def _current_step(self, correlation_id: UUID | None) -> Step | None:
        current = _CURRENT.get()
        if current is None or current.step is None or current.correlation_id != correlation_id:
            return None
        return current.step

    def _step_number_default(
        self, correlation_id: UUID | None, execution_step: int | None
    ) -> int | None:
        if execution_step is not None:
            return execution_step
        current = self._current_step(correlation_id)
        return current.step_number if current else None

    def _session(self, session_id: UUIDLike | None) -> UUIDLike | None:
        return session_id if session_id is not None else self.session_id


@dataclass(frozen=True, slots=True)
class _Invalid:
    """An event whose values the wire format rejects (dropped, or raised when strict)."""

    model: type[EventBase]
    id: UUID
    error: ValidationError


#: What building an event gives: the event, or why it could not be built.
_Built = EventBase | _Invalid


# -- helpers ------------------------------------------------------------------------------


def _as_uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not break error capture
        return repr(error)


@overload
def _fit_text(value: str, limit: int) -> str: ...
@overload
def _fit_text(value: str | None, limit: int) -> str | None: ...
def _fit_text(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters (a column's VARCHAR length), NUL-free."""
    if value is None:
        return None
    value = str(value).replace("\x00", _REPLACEMENT)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _fit_error_type(value: str) -> str:
    """Error types keep their end (the class name) when cut to 255 characters."""
    value = value.replace("\x00", _REPLACEMENT) or "Error"
    return value if len(value) <= 255 else "…" + value[-254:]


def _text(value: str | None) -> str | None:
    """Free text, NUL-free, cut at MAX_TEXT_CHARS with a marker saying how much was cut."""
    if value is None:
        return None
    value = str(value).replace("\x00", _REPLACEMENT)
    if len(value) <= MAX_TEXT_CHARS:
        return value
    cut = len(value) - MAX_TEXT_CHARS
    return value[:MAX_TEXT_CHARS] + f"\n…[truncated {cut} characters]"


def _default(value: Any) -> Any:
    """orjson fallback: what a debugger would want to see of a non-JSON value."""
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return [str(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def _plain_json(value: Any) -> tuple[Any, bytes]:
    """``value`` as plain JSON types (and its JSON bytes), NUL characters replaced.

    A value that cannot be made JSON at all (a reference cycle, an integer beyond 64 bits)
    becomes ``{"_unserialisable": true, "_error": ..., "_type": ...}``, logged.
    """
    try:
        data = orjson.dumps(
            value, default=_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        )
    except TypeError as exc:
        log.warning("sdk_value_unserialisable", type=type(value).__name__, error=str(exc))
        value = {
            "_unserialisable": True,
            "_error": str(exc)[:500],
            "_type": type(value).__qualname__,
        }
        data = orjson.dumps(value)
    tree = orjson.loads(data)
    if _NUL_ESCAPE in data:
        tree = _replace_nul(tree)
        data = orjson.dumps(tree)
    return tree, data


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", _REPLACEMENT)
    if isinstance(value, dict):
        return {k.replace("\x00", _REPLACEMENT): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_nul(v) for v in value]
    return value


def _may_be_too_deep(data: bytes, limit: int) -> bool:
    return data.count(b"{") + data.count(b"[") > limit


def _depth(value: Any) -> int:
    """Nesting depth of containers: ``{}`` is 1, ``{"a": []}`` is 2, a scalar 0."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def _marker(tree: Any, reason: str, limit: int, encoded: bytes | None = None) -> dict[str, Any]:
    """The visible stand-in for a JSON value too large or too deep to send."""
    if encoded is None:
        encoded = canonical_json(tree)
    text = encoded.decode("utf-8")
    keys = sorted(str(k)[:100] for k in tree) if isinstance(tree, dict) else []
    marker: dict[str, Any] = {
        "_truncated": True,
        "_reason": reason,
        "_original_size_bytes": len(encoded),
        "_original_state_hash": state_hash(tree),
        "_top_level_keys": keys[:_MAX_KEYS_LISTED],
        "preview": text[:_PREVIEW_CHARS],
    }
    # The marker itself must fit (limits can be as low as 1 KiB).
    while len(canonical_json(marker)) > limit and (marker["preview"] or marker["_top_level_keys"]):
        if marker["_top_level_keys"]:
            marker["_top_level_keys"] = marker["_top_level_keys"][:-10]
        else:
            marker["preview"] = marker["preview"][: len(marker["preview"]) // 2]
    return marker
