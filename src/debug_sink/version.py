"""The installed package's version, for ``debug-sink --version`` and
``debug_sink_build_info``. Owns nothing else; imports nothing of the package."""

from __future__ import annotations

import importlib.metadata

__all__ = ["package_version"]


def package_version() -> str:
    """The installed debug-sink distribution's version; ``unknown`` when the package is
    imported from a source tree that was never installed."""
    try:
        return importlib.metadata.version("debug-sink")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
