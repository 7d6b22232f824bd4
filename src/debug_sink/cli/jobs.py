"""The periodic jobs' commands and their wiring into ``debug-sink run``.

Owns ``debug-sink correlate``, ``debug-sink known-fixes`` and ``debug-sink purge``
(:func:`register_commands` adds them to the CLI's sub-parsers) and :func:`periodic_jobs`, the
list of jobs the ``run`` service schedules. Thin like the rest of the CLI: parse, build
settings, configure logging, ``asyncio.run`` the component, print.

Exit codes: 0 done (also when another replica holds the job's lock: nothing to do here),
1 permanent error, 3 PostgreSQL unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson

from debug_sink.db.pg import connection
from debug_sink.errors import ConfigurationError
from debug_sink.jobs.correlator import Correlator
from debug_sink.jobs.retention import Retention, parse_age
from debug_sink.logs import configure_logging
from debug_sink.settings import ENV_PREFIX, Settings

__all__ = ["fetch_known_fixes", "register_commands"]


def _settings(args: argparse.Namespace) -> Settings:
    from debug_sink.settings import load_settings

    settings = load_settings(postgres_dsn=args.dsn, db_schema=args.schema)
    configure_logging(settings.log_level, settings.log_format)
    settings.require_dsn()
    return settings


def _print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_json_default).decode() + "\n"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


# -- correlate ----------------------------------------------------------------------------


def _correlate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    correlator = Correlator.from_settings(settings)
    if args.rebuild_known_fixes:
        asyncio.run(correlator.rebuild_known_fixes())
        print("known_fix_occurrences and known_fix_stats recomputed from the retained rows")
        return 0
    if args.once:
        result = asyncio.run(correlator.run_once())
        if args.json:
            _print_json(result.as_dict())
        elif not result.ran:
            print("another correlator run is in progress; nothing done")
        else:
            print(
                f"examined {result.errors_examined} errors and {result.successes_examined} "
                f"successes in {result.workflows} workflows ({result.new_errors} new errors, "
                f"{result.new_successes} new successes); {result.links_made} links made, "
                f"{result.links_moved} moved, {result.errors_marked_recovered} errors marked "
                f"recovered, in {result.duration_s * 1000:.0f} ms"
            )
        return 0
    interval = args.interval if args.interval is not None else settings.correlator_interval
    if interval <= 0:
        raise ConfigurationError(
            "the correlator interval is 0 (disabled): pass --once or --interval SECONDS"
        )
    asyncio.run(_correlate_forever(correlator, interval))
    return 0


async def _correlate_forever(correlator: Correlator, interval: float) -> None:
    from debug_sink.signals import run_until_signal

    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            await correlator.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)

    await run_until_signal(loop, stopping.set)


# -- known-fixes --------------------------------------------------------------------------


async def fetch_known_fixes(
    dsn: str,
    error_type: str,
    *,
    schema: str = "public",
    agent: str | None = None,
    operation: str | None = None,
    limit: int = 10,
    ssl: Any = None,
) -> list[dict[str, Any]]:
    """Rows of the SQL function ``known_fixes()`` as dicts."""
    async with connection(dsn, schema=schema, ssl=ssl, application_name="debug-sink-cli") as conn:
        rows = await conn.fetch(
            "SELECT * FROM known_fixes($1, $2, $3, $4)", error_type, agent, operation, limit
        )
    return [dict(row) for row in rows]


def _known_fixes(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rows = asyncio.run(
        fetch_known_fixes(
            settings.require_dsn(),
            args.error_type,
            schema=settings.db_schema,
            agent=args.agent,
            operation=args.operation,
            limit=args.limit,
            ssl=settings.postgres_ssl(),
        )
    )
    if args.json:
        _print_json(
            [
                {**row, "example_correlation_ids": [str(x) for x in row["example_correlation_ids"]]}
                for row in rows
            ]
        )
        return 0
    scope = " ".join(
        f"{k}={v}"
        for k, v in (("agent", args.agent), ("operation", args.operation))
        if v is not None
    )
    if not rows:
        print(f"no recoveries recorded for {args.error_type}" + (f" ({scope})" if scope else ""))
        return 0
    header = ("strategy", "recovered", "rate", "avg time", "confidence", "examples")
    table = [header] + [
        (
            str(r["recovery_strategy"]),
            str(r["success_count"]),
            f"{float(r['success_rate']) * 100:.1f}%" if r["success_rate"] is not None else "-",
            _duration(r["avg_recovery_ms"]),
            f"{float(r['avg_confidence']):.2f}" if r["avg_confidence"] is not None else "-",
            ", ".join(str(x) for x in r["example_correlation_ids"][:3]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    print(f"known fixes for {args.error_type}" + (f" ({scope})" if scope else ""))
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        )
    return 0


def _duration(ms: Decimal | None) -> str:
    if ms is None:
        return "-"
    value = float(ms)
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


# -- purge --------------------------------------------------------------------------------


def _purge(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.older_than is not None:
        age = parse_age(args.older_than)
    elif settings.retention_days > 0:
        age = timedelta(days=settings.retention_days)
    else:
        raise ConfigurationError(
            f"{ENV_PREFIX}RETENTION_DAYS is 0 (disabled): pass --older-than, e.g. --older-than 90d"
        )
    retention = Retention.from_settings(settings, batch_size=args.batch_size)
    result = asyncio.run(retention.purge(age, dry_run=args.dry_run))
    if args.json:
        _print_json(result.as_dict())
        return 0
    if not result.ran:
        print("another purge is in progress; nothing done")
        return 0
    verb = "would delete" if result.dry_run else "deleted"
    assert result.cutoff is not None
    print(f"{verb} rows older than {result.cutoff.isoformat(timespec='seconds')}:")
    for table, count in result.deleted.items():
        print(f"  {table:<34} {count:>12,}")
    if result.skipped_tables:
        print(f"busy, left for the next run: {', '.join(result.skipped_tables)}")
    return 0


# -- registration -------------------------------------------------------------------------


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
    parser.add_argument("--schema", help=f"database schema (default: ${ENV_PREFIX}DB_SCHEMA)")


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``correlate``, ``known-fixes`` and ``purge`` to the CLI."""
    correlate = sub.add_parser(
        "correlate",
        help="link errors to the successes that recovered them",
        description="Run the correlator: once (--once), or every --interval seconds until "
        "SIGTERM. Safe next to running sinks: one run at a time across replicas.",
    )
    _connection_flags(correlate)
    correlate.add_argument("--once", action="store_true", help="one run, then exit")
    correlate.add_argument(
        "--interval",
        type=float,
        help=f"seconds between runs (default: ${ENV_PREFIX}CORRELATOR_INTERVAL)",
    )
    correlate.add_argument(
        "--rebuild-known-fixes",
        action="store_true",
        help="recompute the known-fixes aggregate from the retained rows",
    )
    correlate.add_argument("--json", action="store_true", help="machine-readable output")
    correlate.set_defaults(handler=_correlate)

    fixes = sub.add_parser(
        "known-fixes",
        help="ranked recovery strategies for an error type",
        description="What recovered ERROR_TYPE before: strategies ranked by recoveries, with "
        "success rate (recovered / occurred), average time to recover, average confidence and "
        "example correlation ids.",
    )
    _connection_flags(fixes)
    fixes.add_argument("error_type", metavar="ERROR_TYPE")
    fixes.add_argument("--agent", help="only errors of this agent")
    fixes.add_argument("--operation", help="only errors of this operation")
    fixes.add_argument("--limit", type=int, default=10, help="at most this many strategies")
    fixes.add_argument("--json", action="store_true", help="machine-readable output")
    fixes.set_defaults(handler=_known_fixes)

    purge = sub.add_parser(
        "purge",
        help="delete debug events older than an age, in small batches",
        description="Delete rows older than --older-than (default: "
        f"${ENV_PREFIX}RETENTION_DAYS days) in batches of --batch-size rows, each its own "
        "short transaction; the sink keeps writing meanwhile.",
    )
    _connection_flags(purge)
    purge.add_argument(
        "--older-than",
        metavar="AGE",
        help=f"e.g. 90d, 36h, 2w (default: ${ENV_PREFIX}RETENTION_DAYS days)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purge.add_argument("--batch-size", type=int, default=5000, help="rows per transaction")
    purge.add_argument("--json", action="store_true", help="machine-readable output")
    purge.set_defaults(handler=_purge)
