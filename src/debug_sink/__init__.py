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

# Not `from typing import TYPE_CHECKING`: importing typing costs the hook command (which must
# start within its latency bound) several milliseconds; type checkers read this the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from debug_sink.errors import DebugSinkError, PermanentError, TransientError
    from debug_sink.read.diff import StateDiff
    from debug_sink.read.queries import DebugQueries
    from debug_sink.read.timeline import TimelineEntry
    from debug_sink.sdk.drops import DropReason
    from debug_sink.sdk.emitter import Emitter, EmitterConfig, EmitterStats, MemoryEmitter
    from debug_sink.sdk.manager import DebugStateManager
    from debug_sink.sdk.workflows import Step, TransformationIds
    from debug_sink.settings import Settings
    from debug_sink.wire.canonical import canonical_json, state_hash
    from debug_sink.wire.events import (
        ErrorEvent,
        EventKind,
        HookEvent,
        SnapshotEvent,
        StepEvent,
        SuccessEvent,
        TransformationEvent,
    )
    from debug_sink.wire.redact import Redactor

__version__ = "0.1.0"

_WHERE: dict[str, str] = {
    "DebugStateManager": "sdk.manager",
    "Step": "sdk.workflows",
    "TransformationIds": "sdk.workflows",
    "DebugQueries": "read.queries",
    "StateDiff": "read.diff",
    "TimelineEntry": "read.timeline",
    "Emitter": "sdk.emitter",
    "EmitterConfig": "sdk.emitter",
    "EmitterStats": "sdk.emitter",
    "MemoryEmitter": "sdk.emitter",
    "DropReason": "sdk.drops",
    "EventKind": "wire.events",
    "SnapshotEvent": "wire.events",
    "ErrorEvent": "wire.events",
    "SuccessEvent": "wire.events",
    "StepEvent": "wire.events",
    "TransformationEvent": "wire.events",
    "HookEvent": "wire.events",
    "Settings": "settings",
    "DebugSinkError": "errors",
    "TransientError": "errors",
    "PermanentError": "errors",
    "canonical_json": "wire.canonical",
    "state_hash": "wire.canonical",
    "Redactor": "wire.redact",
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
