"""The agent SDK: :class:`DebugStateManager`, the API of the quickstart's "Python Integration".

Owns the agent-facing API and nothing below it: what an agent can capture (an exception, its
state, a step it runs, a hand-over to another agent, an LLM call) and the read side
(:meth:`~DebugStateManager.get_workflow_debug_summary`,
:meth:`~DebugStateManager.get_recovery_patterns`, through
:class:`~debug_sink.read.queries.DebugQueries` when a DSN or pool is available). The class is put
together from one mixin per role -- :class:`~debug_sink.sdk.captures.CapturesMixin` (the capture
calls), :class:`~debug_sink.sdk.steps.StepsMixin` (steps, ``traced``, ``workflow``) and
:class:`~debug_sink.sdk.reading.ReadMixin` (the read side) -- and itself keeps construction, the
lifecycle and the one send path every capture goes through. It delegates:
:mod:`~debug_sink.sdk.builders` builds the events of :mod:`debug_sink.wire.events`,
:mod:`~debug_sink.sdk.sanitize` makes the agent's values storable,
:mod:`~debug_sink.sdk.workflows` keeps step numbers, parent snapshots and the current step, and
an :class:`~debug_sink.sdk.emitter.Emitter` sends. Ids are generated client-side, so every
capture returns its event's id at once, before anything reaches Kafka.

What the SDK guarantees to the agent:

- **It never fails the agent.** Capture calls return within the emitter's ``max_block_ms``;
  an event that cannot be queued, encoded or even built from the given values is dropped,
  counted (:attr:`DebugStateManager.stats`) and logged, and the call still returns the id it
  would have had (``strict=True`` raises :class:`~debug_sink.errors.InvalidEvent` for values
  the wire format rejects instead, for development). Misuse of the API itself -- completing a
  step that was never started, a decorated call with no workflow -- raises ``ValueError``.
- **It sends what the sink would store** (:mod:`~debug_sink.sdk.sanitize` has the details):
  plain JSON (keys of any type strings), ``NUL`` characters and lone surrogates as U+FFFD,
  secrets redacted with the sink's
  :class:`~debug_sink.wire.canonical.Redactor` and patterns, ``state_hash`` that of the
  redacted state, strings cut to their column (``error_type`` keeps its end, the class name)
  and free text at 64 KiB with a visible marker. A value that cannot be JSON at all (a
  reference cycle) is sent as an ``_unserialisable`` marker: the error event it belongs to is
  worth more than the state. A state over ``max_state_bytes`` or nested deeper than
  ``max_depth`` allows, or another JSON field over 64 KiB, is replaced by a visible
  ``_truncated`` marker with its size, hash and top-level keys.

Event order: an error is sent with its state snapshot as one group (both or neither); a
step is sent as ``started`` and again, same id, as ``completed``/``failed``. Step numbers
are assigned per workflow (1, 2, ...) unless given, snapshots link to the previous snapshot
of the same agent in the workflow (``parent_snapshot_id``), and captures inside
:meth:`~DebugStateManager.step` carry its step number and parent step -- which is what
keeps ``DebugQueries.timeline`` causal when agents' clocks disagree.

Not guaranteed: delivery of events still queued when the process is killed (SIGTERM
without a handler, ``os._exit``). At a normal exit without :meth:`~DebugStateManager.close`
the emitter closes itself (within ``close_timeout``); calling ``close`` or using ``async
with`` is still the way to choose when, and how long, delivery may take.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from debug_sink.errors import InvalidEvent
from debug_sink.lifecycle import Lifecycle
from debug_sink.read.queries import DebugQueries
from debug_sink.sdk.builders import Built, EventBuilder, Invalid, StepBuilder
from debug_sink.sdk.captures import CapturesMixin
from debug_sink.sdk.drops import DropReason
from debug_sink.sdk.emitter import Emitter, EmitterConfig, EmitterStats
from debug_sink.sdk.reading import ReadMixin, ReadSide
from debug_sink.sdk.sanitize import Sanitizer
from debug_sink.sdk.steps import StepsMixin
from debug_sink.sdk.workflows import UUIDLike, Workflows
from debug_sink.settings import Settings
from debug_sink.wire.events import EventBase
from debug_sink.wire.redact import Redactor

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DebugStateManager"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DebugStateManager(CapturesMixin, StepsMixin, ReadMixin, Lifecycle):
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
        self._sanitizer = Sanitizer(
            Redactor(settings.redact_patterns, settings.redact_value_patterns),
            max_state_bytes=settings.max_state_bytes,
            max_depth=settings.max_depth,
        )
        self._workflows = Workflows(max_workflows)
        self._events = EventBuilder(
            self._sanitizer,
            self._workflows,
            clock=clock,
            new_id=new_id,
            default_session=lambda: self.session_id,
        )
        self._steps = StepBuilder(self._events, self._workflows, monotonic=monotonic)
        self._read = ReadSide(settings, queries=queries, pool=pool, dsn=dsn)

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
        await self._read.close()

    @property
    def stats(self) -> EmitterStats:
        """The emitter's counters: sent, queued, dropped (by reason)."""
        return self.emitter.stats

    # -- state preparation ----------------------------------------------------------------

    def prepare_state(self, agent_state: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """``(state as sent, its state_hash)``: plain JSON, NUL-free, redacted, within
        ``max_state_bytes`` and ``max_depth`` (else the truncation marker)."""
        return self._sanitizer.state(agent_state)

    # -- sending --------------------------------------------------------------------------

    async def _send(self, *events: Built) -> UUID:
        """Queue ``events`` as one group (waiting at most ``max_block_ms``); the last one's id."""
        valid = self._valid(events)
        if valid is not None and await self.emitter.emit(*valid):
            self._workflows.remember(valid)
        return events[-1].id

    def _send_nowait(self, *events: Built) -> None:
        """Queue ``events`` as one group without waiting (sync code, cancellation)."""
        valid = self._valid(events)
        if valid is not None and self.emitter.emit_nowait(*valid):
            self._workflows.remember(valid)

    def _valid(self, events: Sequence[Built]) -> list[EventBase] | None:
        """The events of a group, or ``None`` (counted as dropped, or raised when strict)
        when any of them could not be built."""
        invalid = [e for e in events if isinstance(e, Invalid)]
        if not invalid:
            return [e for e in events if not isinstance(e, Invalid)]
        first = invalid[0]
        reason = f"{first.model.__name__}: {first.error}".replace("\n", " ")
        if self.strict:
            raise InvalidEvent("schema", reason) from first.error
        self.emitter.record_drop(
            DropReason.INVALID, len(events), detail=reason, kind=first.model.KIND
        )
        return None
