"""The public API is debug_sink.__all__: pinned here, so a change to it is deliberate."""

from __future__ import annotations

import subprocess
import sys

import debug_sink

PUBLIC_API = [
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


class TestPublicApi:
    def test_all_is_pinned(self) -> None:
        """__all__ lists exactly the public names, sorted."""
        assert debug_sink.__all__ == PUBLIC_API

    def test_every_name_resolves(self) -> None:
        """Each public name is importable from the package."""
        for name in PUBLIC_API:
            assert getattr(debug_sink, name) is not None, name
        from debug_sink import DebugStateManager, canonical_json
        from debug_sink.sdk.manager import DebugStateManager as sdk_manager
        from debug_sink.wire.canonical import canonical_json as shared

        assert DebugStateManager is sdk_manager
        assert canonical_json is shared

    def test_unknown_name(self) -> None:
        assert not hasattr(debug_sink, "NoSuchThing")

    def test_importing_errors_does_not_load_drivers(self) -> None:
        """The package's names are lazy: the CLI's error imports do not pull in aiokafka."""
        code = (
            "import sys, debug_sink.errors; "
            "print('aiokafka' in sys.modules, 'asyncpg' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.split() == ["False", "False"]
