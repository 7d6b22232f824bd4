"""``debug-sink migrate up | down | status``: the schema migrations of the database.

Owns the three subcommands' flags and output; applying, rolling back and reporting are
:mod:`debug_sink.db.migrate`'s (an advisory lock serialises concurrent runs). ``status``
exits 1 when an applied migration's file has changed since it was applied.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from debug_sink.cli.common import (
    EXIT_ERROR,
    Subparsers,
    add_connection_flags,
    add_json_flag,
    print_json,
    settings_from,
)
from debug_sink.errors import ConfigurationError

__all__ = ["register"]


def _migrate(args: argparse.Namespace) -> int:
    from debug_sink.db import migrate

    settings = settings_from(args)
    dsn = settings.require_dsn()
    schema = settings.db_schema
    # TLS as every other command connects: never plain text when the settings ask for TLS.
    ssl = settings.postgres_ssl()

    def progress(what: str, migration: migrate.Migration, elapsed_ms: float) -> None:
        print(f"{what} {migration.label} in {elapsed_ms:.0f} ms", flush=True)

    if args.action == "grant":
        return _grant(args, dsn, schema, ssl)
    if args.action == "up":
        done = asyncio.run(
            migrate.migrate_up(dsn, schema=schema, to=args.to, on_progress=progress, ssl=ssl)
        )
        version = asyncio.run(_version(dsn, schema, ssl))
        print(
            f"schema {schema!r} is at version {version}" + ("" if done else " (nothing to apply)")
        )
    elif args.action == "down":
        done = asyncio.run(
            migrate.migrate_down(dsn, schema=schema, to=args.to, on_progress=progress, ssl=ssl)
        )
        version = asyncio.run(_version(dsn, schema, ssl))
        print(
            f"schema {schema!r} is at version {version}"
            + ("" if done else " (nothing to roll back)")
        )
    else:
        statuses = asyncio.run(migrate.migration_status(dsn, schema=schema, ssl=ssl))
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


async def _version(dsn: str, schema: str, ssl: Any) -> int:
    """The highest migration applied to ``schema`` (0: none): what it is at, whatever was
    asked (``up --to 3`` on a schema at 15 leaves it at 15)."""
    from debug_sink.db import migrate

    statuses = await migrate.migration_status(dsn, schema=schema, ssl=ssl)
    return max((s.version for s in statuses if s.state != "pending"), default=0)


def _grant(args: argparse.Namespace, dsn: str, schema: str, ssl: Any) -> int:
    from debug_sink.db.grants import grant

    if args.writer is None and args.reader is None:
        raise ConfigurationError("name a role: --writer ROLE and/or --reader ROLE")
    asyncio.run(
        grant(
            dsn,
            schema=schema,
            writer=args.writer,
            reader=args.reader,
            create_roles=args.create_roles,
            ssl=ssl,
        )
    )
    for role, what in ((args.writer, "write rows (run)"), (args.reader, "read (queries)")):
        if role is not None:
            print(f"role {role!r} may now {what} in schema {schema!r}")
    return 0


def register(sub: Subparsers) -> None:
    """Add ``migrate`` with its ``up``, ``down``, ``status`` and ``grant`` actions."""
    parser = sub.add_parser("migrate", help="apply, roll back or show schema migrations")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("up", "apply pending migrations"),
        ("down", "roll back migrations above a version"),
        ("status", "list migrations and their state"),
        ("grant", "grant least privilege to the sink's role and the read side's role"),
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
        elif name == "grant":
            action.add_argument("--writer", metavar="ROLE", help="the role `run` connects as")
            action.add_argument("--reader", metavar="ROLE", help="the role read commands use")
            action.add_argument(
                "--create-roles",
                action="store_true",
                help="create missing roles (NOLOGIN; needs CREATEROLE)",
            )
        else:
            add_json_flag(action)
        action.set_defaults(handler=_migrate)
