"""The ``debug-sink`` command: parse arguments, build settings, configure logging, run.

Thin on purpose: every command delegates to a module that does the work. Errors from the
error tree end the process with a one-line message on stderr and a non-zero exit code, never
a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from debug_sink.errors import DebugSinkError, TransientError
from debug_sink.settings import ENV_PREFIX, Settings, load_settings
from debug_sink.signals import EXIT_INTERRUPTED, run_until_signal

EXIT_ERROR = 1
EXIT_UNAVAILABLE = 3

Handler = Callable[[argparse.Namespace], int]


def settings_help() -> str:
    """Every setting with its environment variable and default, for ``--help``."""
    lines = ["settings (environment variables; flags override them):"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, tuple):
            default = ",".join(default) if len(default) < 4 else f"[{len(default)} patterns]"
        shown = "(unset)" if default is None else default
        lines.append(f"  {ENV_PREFIX}{name.upper():<28} default: {shown}")
        if field.description:
            lines.append(f"      {field.description}")
    return "\n".join(lines)


# -- migrate ------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    from debug_sink.db import migrate

    settings = load_settings(postgres_dsn=args.dsn, db_schema=args.schema)
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
            sys.stdout.write(
                orjson.dumps(migrate.status_rows(statuses), option=orjson.OPT_INDENT_2).decode()
                + "\n"
            )
        else:
            for s in statuses:
                when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else "-"
                took = f"{s.execution_time_ms} ms" if s.execution_time_ms is not None else ""
                print(f"{s.version:03d}  {s.state:<8} {s.name:<40} {when}  {took}")
        if any(s.state == "changed" for s in statuses):
            print("error: an applied migration's file has changed", file=sys.stderr)
            return EXIT_ERROR
    return 0


def _add_migrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply, roll back or show schema migrations")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("up", "apply pending migrations"),
        ("down", "roll back migrations above a version"),
        ("status", "list migrations and their state"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
        action.add_argument(
            "--schema", help=f"target schema (default: ${ENV_PREFIX}DB_SCHEMA or public)"
        )
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
            action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(handler=_migrate)


# -- schemas ------------------------------------------------------------------------------


def _schemas(args: argparse.Namespace) -> int:
    from debug_sink.wire import events

    directory = Path(args.dir)
    if args.write:
        events.write_schemas(directory)
        print(f"wrote {len(events.json_schemas())} JSON Schemas to {directory}")
        return 0
    sys.stdout.write(
        orjson.dumps(
            events.json_schemas(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ).decode()
    )
    sys.stdout.write("\n")
    return 0


def _add_schemas(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("schemas", help="print or write the JSON Schema of every topic")
    parser.add_argument("--write", action="store_true", help="write them to --dir")
    parser.add_argument("--dir", default="schemas", help="target directory (default: schemas)")
    parser.set_defaults(handler=_schemas)


# -- run ----------------------------------------------------------------------------------


def _kafka_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "postgres_dsn": getattr(args, "dsn", None),
        "kafka_bootstrap_servers": getattr(args, "bootstrap_servers", None),
        "group_id": getattr(args, "group_id", None),
        "db_schema": getattr(args, "schema", None),
    }


def _run(args: argparse.Namespace) -> int:
    from debug_sink.jobs.periodic import periodic_jobs
    from debug_sink.logs import configure_logging
    from debug_sink.metrics import Metrics
    from debug_sink.sink.runner import Sink

    settings = load_settings(**_kafka_overrides(args))
    configure_logging(settings.log_level, settings.log_format)
    settings.require_dsn()

    async def main() -> None:
        metrics = Metrics()
        sink = Sink(
            settings,
            exit_when_idle=args.exit_when_idle,
            metrics=metrics,
            jobs=periodic_jobs(settings, metrics=metrics),
        )
        await run_until_signal(sink.run, sink.stop)

    _tune_gc()
    asyncio.run(main())
    return 0


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for the long-running sink process.

    The sink allocates a few hundred thousand short-lived objects per second (decoded events)
    while as many live ones sit in the batches in flight; with CPython's defaults (a young
    collection every 700 allocations, full ones walking every live object) collection took a
    third of the process's time. Its data has almost no reference cycles, so collecting ~140x
    less often frees the same memory: measured +30-40% events/s for +30-50 MB peak RSS
    (docs/PERFORMANCE.md). ``freeze`` moves the start-up objects (modules, settings, the
    pydantic schemas) out of every future collection.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
    parser.add_argument(
        "--bootstrap-servers",
        help=f"Kafka bootstrap servers (default: ${ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument("--group-id", help=f"consumer group (default: ${ENV_PREFIX}GROUP_ID)")
    parser.add_argument("--schema", help=f"database schema (default: ${ENV_PREFIX}DB_SCHEMA)")


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="consume debug.* topics into PostgreSQL (the long-running service)",
        description="Consume the debug topics into PostgreSQL, exactly once.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_flags(parser)
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit 0 once every assigned partition is caught up and written "
        "(backfills, tests, benchmarks)",
    )
    parser.set_defaults(handler=_run)


# -- dead letters -------------------------------------------------------------------------


def _dead_letters(args: argparse.Namespace) -> int:
    from debug_sink.durations import parse_duration
    from debug_sink.sink.deadletters import list_dead_letters

    settings = load_settings(postgres_dsn=args.dsn, db_schema=args.schema)
    since = parse_duration(args.since, what="--since") if args.since else None
    rows = asyncio.run(
        list_dead_letters(
            settings.require_dsn(),
            schema=settings.db_schema,
            since=since,
            topic=args.topic,
            error_class=args.error_class,
            limit=args.limit,
        )
    )
    if args.json:
        sys.stdout.write(
            orjson.dumps([r.as_dict() for r in rows], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return 0
    if not rows:
        print("no dead letters")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "received", "origin", "class", "reason", "value")
    for r in rows:
        table.add_row(
            str(r.id),
            r.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.topic}[{r.partition}]@{r.offset}",
            r.error_class,
            r.reason,
            f"{r.value_preview[:60]!r} ({r.value_bytes} B)",
        )
    Console().print(table)
    return 0


def _add_dead_letters(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dead-letters", help="inspect rejected messages")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest dead letters first")
    listing.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
    listing.add_argument("--schema", help=f"database schema (default: ${ENV_PREFIX}DB_SCHEMA)")
    listing.add_argument("--since", help="only this recent, e.g. 30m, 1h, 7d")
    listing.add_argument("--topic", help="only from this topic")
    listing.add_argument("--error-class", help="only this class, e.g. schema, not_json")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_dead_letters)


# -- entry point --------------------------------------------------------------------------

REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_run,
    _add_migrate,
    _add_schemas,
    _add_dead_letters,
]

#: Modules whose ``register_commands(subparsers)`` adds commands that live next to the code
#: they drive: the periodic jobs, the human views, dev mode and replay, the benchmark.
EXTENSIONS = (
    "debug_sink.cli.jobs",
    "debug_sink.cli.show",
    "debug_sink.dev.session",
    "debug_sink.bench.harness",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="debug-sink",
        description="Kafka -> PostgreSQL sink for AI agents' debug events.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(sub)
    for module in EXTENSIONS:
        importlib.import_module(module).register_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except TransientError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except DebugSinkError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("debug-sink: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
