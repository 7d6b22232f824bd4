"""The ``debug-sink`` command line: one module per command group, :mod:`.common` for what
they share (connection flags and the settings they give, logging, JSON output, exit codes),
:mod:`.render` for the human views' text, :mod:`.app` for the parser and :func:`main`.

Nothing outside this package imports it (``python -m debug_sink`` aside): components take
settings, never arguments.

One shortcut: ``debug-sink hook`` is the command Claude Code runs for every hook event, and
its bound is its whole wall time, start-up included; building the full parser loads every
command module (about a second). So :func:`main` hands ``debug-sink hook ARGS`` to the hook
command (:func:`debug_sink.hooks.command.main`, the same flags as the ``hook`` entry of
:mod:`.app`) before importing anything else."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``debug-sink ARGS`` (``argv`` default: the process's); the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "hook":
        from debug_sink.hooks.command import main as hook_main

        return hook_main(args[1:], prog="debug-sink hook")
    from debug_sink.cli.app import main as app_main

    return app_main(args)
