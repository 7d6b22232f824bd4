"""The ``debug-sink`` command: one parser made of the command modules, and :func:`main`.

Owns the list of command modules (in the order ``--help`` lists their commands) and the one
place where a command's error becomes a line on stderr and an exit code. Thin on purpose:
each command module parses its flags, builds settings, configures logging and runs its
component; nothing here knows a command.

Guarantees: an error of the tree (:mod:`debug_sink.errors`) ends the process with
``debug-sink: error: <one line>`` and the error's
:attr:`~debug_sink.errors.DebugSinkError.exit_code` (1, or 3 when transient), Ctrl-C with
130 -- never a traceback. Usage errors are argparse's (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

from debug_sink.bench import command as bench
from debug_sink.cli import (
    deadletters,
    demo,
    dev,
    hook,
    jobs,
    migrate,
    replay,
    run,
    schemas,
    show,
    ui,
)
from debug_sink.cli.common import EXIT_INTERRUPTED, Subparsers
from debug_sink.errors import DebugSinkError
from debug_sink.version import package_version

__all__ = ["main", "make_parser"]

Handler = Callable[[argparse.Namespace], int]

#: Each command module's ``register(subparsers)``, in the order of ``debug-sink --help``.
REGISTER: Final[tuple[Callable[[Subparsers], None], ...]] = (
    run.register,
    migrate.register,
    schemas.register,
    deadletters.register,
    jobs.register,
    show.register,
    ui.register,
    dev.register,
    replay.register,
    demo.register,
    hook.register,
    bench.register_commands,
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors, which quote the command line (``unrecognized
    arguments: --dns postgresql://u:PASSWORD@db/x``), never print a secret. Subcommands'
    parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        from debug_sink.wire.secrets import default_scrubber

        super().error(default_scrubber().scrub(message))


def make_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="debug-sink",
        description="Kafka -> PostgreSQL sink for AI agents' debug events.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"debug-sink {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTER:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``debug-sink ARGS`` (``argv`` default: the process's); the exit code."""
    args = make_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DebugSinkError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("debug-sink: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
