"""debug-sink: Kafka -> PostgreSQL sink for AI agents' debug events, with the agent SDK.

The public API is :data:`__all__` (a test pins it); everything else is internal. Names are
imported lazily on first use, so ``import debug_sink.errors`` (or the CLI) does not load the
Kafka and PostgreSQL drivers.

- agents: :class:`DebugStateManager` (captures, steps, hand-overs, LLM calls; the read side
  of the quickstart), on top of :class:`Emitter` (bounded, never blocking) -- or
  :class:`MemoryEmitter` in tests;
- reading: :class:`DebugQueries` (summary, context, errors, LLM calls, recovery patterns,
  known fixes, the causal timeline, state diffs);
- the wire format: the event models and :class:`EventKind`; :func:`canonical_json`,
  :func:`state_hash` and :class:`Redactor`, shared by the SDK and the sink;
- :class:`Settings`, and the roots of the error tree.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from debug_sink.canonical import Redactor, canonical_json, state_hash
    from debug_sink.diff import StateDiff
    from debug_sink.emitter import DropReason, Emitter, EmitterConfig, EmitterStats, MemoryEmitter
    from debug_sink.errors import DebugSinkError, PermanentError, TransientError
    from debug_sink.events import (
        ErrorEvent,
        EventKind,
        HookEvent,
        SnapshotEvent,
        StepEvent,
        SuccessEvent,
        TransformationEvent,
    )
    from debug_sink.queries import DebugQueries
    from debug_sink.sdk import DebugStateManager, Step, TransformationIds
    from debug_sink.settings import Settings
    from debug_sink.timeline import TimelineEntry

__version__ = "0.1.0"

_WHERE: dict[str, str] = {
    "DebugStateManager": "sdk",
    "Step": "sdk",
    "TransformationIds": "sdk",
    "DebugQueries": "queries",
    "StateDiff": "diff",
    "TimelineEntry": "timeline",
    "Emitter": "emitter",
    "EmitterConfig": "emitter",
    "EmitterStats": "emitter",
    "MemoryEmitter": "emitter",
    "DropReason": "emitter",
    "EventKind": "events",
    "SnapshotEvent": "events",
    "ErrorEvent": "events",
    "SuccessEvent": "events",
    "StepEvent": "events",
    "TransformationEvent": "events",
    "HookEvent": "events",
    "Settings": "settings",
    "DebugSinkError": "errors",
    "TransientError": "errors",
    "PermanentError": "errors",
    "canonical_json": "canonical",
    "state_hash": "canonical",
    "Redactor": "canonical",
}

__all__ = [
    "DebugQueries",
    "DebugSinkError",
    "DebugStateManager",
    "DropReason",
    "Emitter",
    "EmitterConfig",
    "EmitterStats",
    "ErrorEvent",
    "EventKind",
    "HookEvent",
    "MemoryEmitter",
    "PermanentError",
    "Redactor",
    "Settings",
    "SnapshotEvent",
    "StateDiff",
    "Step",
    "StepEvent",
    "SuccessEvent",
    "TimelineEntry",
    "TransformationEvent",
    "TransformationIds",
    "TransientError",
    "__version__",
    "canonical_json",
    "state_hash",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'debug_sink' has no attribute {name!r}")
    value = getattr(import_module(f"debug_sink.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
