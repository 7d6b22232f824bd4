"""``debug-sink hook``: the Claude Code hook command, through the full command line.

Owns the ``hook`` command's registration. Without flags it handles one hook event from
stdin exactly as ``debug-sink-hook`` does (and exits 0 whatever happens); its flags
(``--flush``, ``--status``, ``--stop``, ``--settings``) administer the spool and its shipper
(:mod:`debug_sink.hooks.admin`).

``debug-sink hook`` never reaches this module when run as a command: the package's
:func:`~debug_sink.cli.main` hands ``hook`` to the hook command before the parser, and every
command module, is loaded (that costs about a second; the hook's bound is 150 ms). This entry
gives ``debug-sink --help`` its line and :func:`~debug_sink.cli.app.main` the same command.
``debug-sink-hook`` is the same command under its own entry point.
"""

from __future__ import annotations

import argparse

from debug_sink.cli.common import Subparsers

__all__ = ["register"]


def _hook(args: argparse.Namespace) -> int:
    from debug_sink.hooks.admin import run
    from debug_sink.hooks.command import run_hook

    status = run(args)
    return run_hook() if status is None else status


def register(sub: Subparsers) -> None:
    from debug_sink.hooks.admin import add_arguments

    parser = sub.add_parser(
        "hook",
        help="Claude Code hook: one hook event's JSON on stdin -> debug events (exit 0 always)",
        description="The Claude Code hook command (`debug-sink hook --settings` prints the "
        "block to paste into .claude/settings.json). Without flags: read one hook event's JSON "
        "from stdin, spool its debug events for the background shipper, print known fixes for "
        "a failed tool; always exit 0.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_hook)
