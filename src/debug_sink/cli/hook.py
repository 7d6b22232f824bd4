"""``debug-sink hook``: the Claude Code hook command, through the full command line.

Owns the ``hook`` command's registration. Without flags it handles one hook event from
stdin exactly as ``debug-sink-hook`` does (and exits 0 whatever happens); its flags
(``--flush``, ``--status``, ``--stop``, ``--settings``) administer the spool and its shipper
(:mod:`debug_sink.hooks.admin`).

Put ``debug-sink-hook`` in ``.claude/settings.json`` rather than ``debug-sink hook``: the
latter loads every command module first (about a second on the machines we measured, where
the hook's bound is 150 ms); both do the same.
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
        description="The Claude Code hook command (prefer the faster debug-sink-hook in "
        ".claude/settings.json; `debug-sink hook --settings` prints the block to paste). "
        "Without flags: read one hook event's JSON from stdin, spool its debug events for "
        "the background shipper, print known fixes for a failed tool; always exit 0.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_hook)
