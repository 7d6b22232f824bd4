"""``debug-sink migrate up | down | status``: the schema migrations of the database.

Owns the three subcommands' flags and output; applying, rolling back and reporting are
:mod:`debug_sink.db.migrate`'s (an advisory lock serialises concurrent runs). ``status``
exits 1 when an applied migration's file has changed since it was applied.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from debug_sink.cli.common import (
    EXIT_ERROR,
    Subparsers,
    add_connection_flags,
    add_json_flag,
    print_json,
    settings_from,
)

__all__ = ["register"]


def _migrate(args: argparse.Namespace) -> int:
    from debug_sink.db import migrate

    settings = settings_from(args)
    dsn = settings.require_dsn()
    schema = settings.db_schema

    def progress(what: str, migration: migrate.Migration, elapsed_ms: float) -> None:
        print(f"{what} {migration.label} in {elapsed_ms:.0f} ms", flush=True)

    if args.action == "up":
        done = asyncio.run(migrate.migrate_up(dsn, schema=schema, to=args.to, on_progress=progress))
        head = args.to if args.to is not None else migrate.head_version()
        print(f"schema {schema!r} is at version {head}" + ("" if done else " (nothing to apply)"))
    elif args.action == "down":
        done = asyncio.run(
            migrate.migrate_down(dsn, schema=schema, to=args.to, on_progress=progress)
        )
        print(
            f"schema {schema!r} is at version {args.to}"
            + ("" if done else " (nothing to roll back)")
        )
    else:
        statuses = asyncio.run(migrate.migration_status(dsn, schema=schema))
        if args.json:
            print_json(migrate.status_rows(statuses))
        else:
            for s in statuses:
                when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else "-"
                took = f"{s.execution_time_ms} ms" if s.execution_time_ms is not None else ""
                print(f"{s.version:03d}  {s.state:<8} {s.name:<40} {when}  {took}")
        if any(s.state == "changed" for s in statuses):
            print("error: an applied migration's file has changed", file=sys.stderr)
            return EXIT_ERROR
    return 0


def register(sub: Subparsers) -> None:
    """Add ``migrate`` with its ``up``, ``down`` and ``status`` actions."""
    parser = sub.add_parser("migrate", help="apply, roll back or show schema migrations")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("up", "apply pending migrations"),
        ("down", "roll back migrations above a version"),
        ("status", "list migrations and their state"),
    ):
        action = actions.add_parser(name, help=helptext)
        add_connection_flags(action)
        if name == "up":
            action.add_argument("--to", type=int, help="stop at this version (default: latest)")
        elif name == "down":
            action.add_argument(
                "--to",
                type=int,
                required=True,
                help="roll back every migration above this version (0 = all)",
            )
        else:
            add_json_flag(action)
        action.set_defaults(handler=_migrate)
