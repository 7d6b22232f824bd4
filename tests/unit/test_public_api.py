"""The public API is debug_sink.__all__: pinned here, so a change to it is deliberate."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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

    @pytest.mark.parametrize("name", [n for n in PUBLIC_API if n != "__version__"])
    def test_every_name_is_the_object_its_module_defines(self, name: str) -> None:
        """Each public name is a class or function, and the package gives the very object
        defined in the module the package's name map points at (not a copy, not a
        re-export of something defined elsewhere)."""
        where = debug_sink._WHERE.get(name)
        assert where is not None, f"{name} is in __all__ but has no owning module"
        owner = importlib.import_module(f"debug_sink.{where}")
        exported = getattr(debug_sink, name)
        assert exported is getattr(owner, name)
        assert inspect.isclass(exported) or inspect.isfunction(exported), type(exported)
        assert exported.__module__ == owner.__name__
        assert exported.__name__ == name
        from debug_sink import DebugStateManager, canonical_json
        from debug_sink.sdk.manager import DebugStateManager as sdk_manager
        from debug_sink.wire.canonical import canonical_json as shared

        assert DebugStateManager is sdk_manager
        assert canonical_json is shared

    def test_the_name_map_has_no_names_outside_all(self) -> None:
        """Every name the package resolves lazily is public: no hidden exports."""
        assert set(debug_sink._WHERE) == set(PUBLIC_API) - {"__version__"}

    def test_version_is_the_project_version(self, repo_root: Path) -> None:
        """__version__ is the version pyproject.toml ships the package as."""
        with (repo_root / "pyproject.toml").open("rb") as file:
            assert debug_sink.__version__ == tomllib.load(file)["project"]["version"]

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
