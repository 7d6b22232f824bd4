"""The ``debug-sink`` command line: one module per command group, :mod:`.common` for what
they share (settings from flags, output, exit codes, signals)."""

from __future__ import annotations

from debug_sink.cli.app import main

__all__ = ["main"]
