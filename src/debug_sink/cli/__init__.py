"""The ``debug-sink`` command line: one module per command group, :mod:`.common` for what
they share (connection flags and the settings they give, logging, JSON output, exit codes),
:mod:`.render` for the human views' text, :mod:`.app` for the parser and :func:`main`.

Nothing outside this package imports it (``python -m debug_sink`` aside): components take
settings, never arguments."""

from __future__ import annotations

from debug_sink.cli.app import main

__all__ = ["main"]
