"""The periodic jobs' commands: ``debug-sink correlate``, ``known-fixes`` and ``purge``.

Owns their flags and output (``correlate --report``: how far the correlator's inference
agrees with the links agents stated). The work is the components': the
:class:`~debug_sink.jobs.correlator.Correlator`, the ``known_fixes()`` query of
:class:`~debug_sink.read.queries.DebugQueries`, :class:`~debug_sink.jobs.retention.Retention`.
Inside ``debug-sink run`` the same jobs run on a schedule (:mod:`debug_sink.jobs.schedule`).

Exit codes: 0 done (also when another replica holds the job's lock: nothing to do here),
1 permanent error, 3 PostgreSQL unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from debug_sink.cli.common import (
    Subparsers,
    add_connection_flags,
    add_json_flag,
    add_output_flags,
    configure,
    duration,
    output_of,
    positive_int,
    positive_seconds,
    print_json,
    printable,
    read,
    settings_from,
)
from debug_sink.cli.show import since_argument
from debug_sink.errors import ConfigurationError
from debug_sink.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from debug_sink.jobs.periodic import Job

__all__ = ["parse_age", "register"]


def parse_age(text: str) -> timedelta:
    """``purge --older-than``: ``90d``, ``36h``, ``2w``, a bare number of days (the one
    duration grammar); otherwise a one-line :class:`~debug_sink.errors.ConfigurationError`."""
    return duration(
        text, invalid="invalid age {text!r}: use a number with d (days), h, m or w, e.g. 90d"
    )


# -- correlate ----------------------------------------------------------------------------


def _correlate(args: argparse.Namespace) -> int:
    from debug_sink.jobs.correlator import Correlator, correlator_job

    settings = settings_from(args)
    configure(settings)
    settings.require_dsn()
    if args.report:
        return _agreement_report(args, settings)
    correlator = Correlator.from_settings(settings)
    if args.rebuild_known_fixes:
        asyncio.run(correlator.rebuild_known_fixes())
        print(
            "known_fix_occurrences, known_fix_stats and correlator_operations recomputed "
            "from the retained rows"
        )
        return 0
    if args.once:
        result = asyncio.run(correlator.run_once())
        if args.json:
            print_json(result.as_dict())
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
    job = correlator_job(settings, interval=args.interval)
    if job is None:
        raise ConfigurationError(
            "the correlator interval is 0 (disabled): pass --once or --interval SECONDS"
        )
    asyncio.run(_correlate_forever(job))
    return 0


def _agreement_report(args: argparse.Namespace, settings: Settings) -> int:
    """Inference against stated links, over the errors since ``--since`` (read side only)."""
    from debug_sink.jobs.correlator import Agreement

    since: datetime | None = args.since
    rows = read(settings, lambda queries: queries.correlator_agreement(since))
    scopes = [
        {
            "agent_name": row["agent_name"],
            **Agreement(row["agreed"], row["wrong"], row["missed"]).as_dict(),
        }
        for row in rows
    ]
    if args.json:
        print_json({"since": since, "total": scopes[0], "agents": scopes[1:]})
        return 0
    window = f"errors since {since.isoformat(timespec='seconds')}" if since else "all errors"
    total = scopes[0]
    if not total["agreed"] + total["wrong"] + total["missed"]:
        print(f"no stated links to compare inference with ({window})")
        return 0
    print(f"inference against the links agents stated ({window}):")
    header = ("", "agreed", "wrong", "missed", "precision", "recall")
    table = [header] + [
        (
            "all" if scope["agent_name"] is None else printable(scope["agent_name"]),
            str(scope["agreed"]),
            str(scope["wrong"]),
            str(scope["missed"]),
            _ratio(scope["precision"]),
            _ratio(scope["recall"]),
        )
        for scope in scopes
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    print(
        "agreed: inference found the stated link; wrong: it linked an error elsewhere than "
        "the agents said; missed: it did not find a stated link"
    )
    return 0


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


async def _correlate_forever(job: Job) -> None:
    """Run the correlator until a signal, as the service's job: a database outage is waited
    out (retried at the next tick, logged), never the end of the command."""
    from debug_sink.jobs.periodic import run_periodically
    from debug_sink.signals import run_until_signal

    stopping = asyncio.Event()

    async def loop() -> None:
        await run_periodically(job, stopping, first_at_once=True)

    await run_until_signal(loop, stopping.set)


# -- known-fixes --------------------------------------------------------------------------


def _known_fixes(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure(settings)
    settings.require_dsn()
    rows = read(
        settings,
        lambda queries: queries.known_fixes(
            args.error_type, args.agent, args.operation, limit=args.limit
        ),
    )
    if args.json:
        print_json(rows)
        return 0
    scope = " ".join(
        f"{k}={v}"
        for k, v in (("agent", args.agent), ("operation", args.operation))
        if v is not None
    )
    from debug_sink.cli.render import render_known_fixes

    output = output_of(args)
    sys.stdout.write(
        render_known_fixes(rows, args.error_type, scope, width=output.width, color=output.color)
    )
    return 0


# -- purge --------------------------------------------------------------------------------


def _purge(args: argparse.Namespace) -> int:
    from debug_sink.jobs.retention import Retention

    settings = settings_from(args)
    configure(settings)
    settings.require_dsn()
    if args.older_than is not None:
        age = parse_age(args.older_than)
    elif settings.retention_days > 0:
        age = timedelta(days=settings.retention_days)
    else:
        raise ConfigurationError(
            f"{ENV_PREFIX}RETENTION_DAYS is 0 (disabled): pass --older-than, e.g. --older-than 90d"
        )
    if age < timedelta(days=1) and not args.dry_run and not args.yes:
        raise ConfigurationError(
            f"--older-than {args.older_than} deletes rows less than a day old (workflows "
            "that may still be running): pass --yes to do it, or --dry-run to count"
        )
    retention = Retention.from_settings(settings, batch_size=args.batch_size)
    result = asyncio.run(retention.purge(age, dry_run=args.dry_run))
    if args.json:
        print_json(result.as_dict())
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


def register(sub: Subparsers) -> None:
    """Add ``correlate``, ``known-fixes`` and ``purge``."""
    correlate = sub.add_parser(
        "correlate",
        help="link errors to the successes that recovered them",
        description="Run the correlator: once (--once), or every --interval seconds until "
        "SIGTERM. Safe next to running sinks: one run at a time across replicas.",
    )
    add_connection_flags(correlate)
    correlate.add_argument("--once", action="store_true", help="one run, then exit")
    correlate.add_argument(
        "--interval",
        type=positive_seconds,
        help=f"seconds between runs (default: ${ENV_PREFIX}CORRELATOR_INTERVAL)",
    )
    correlate.add_argument(
        "--rebuild-known-fixes",
        action="store_true",
        help="recompute the known-fixes aggregates and the per-operation success counts "
        "from the retained rows",
    )
    correlate.add_argument(
        "--report",
        action="store_true",
        help="how far inference agrees with the links agents stated (precision, recall); "
        "reads only",
    )
    correlate.add_argument(
        "--since",
        type=since_argument,
        metavar="WHEN",
        help="with --report: errors since a duration ago (24h, 7d) or an ISO 8601 time "
        "(default: all retained)",
    )
    add_json_flag(correlate)
    correlate.set_defaults(handler=_correlate)

    fixes = sub.add_parser(
        "known-fixes",
        help="ranked recovery strategies for an error type",
        description="What recovered ERROR_TYPE before: strategies ranked by recoveries, with "
        "success rate (recovered / occurred), average time to recover, average confidence and "
        "example correlation ids.",
    )
    add_connection_flags(fixes)
    fixes.add_argument("error_type", metavar="ERROR_TYPE")
    fixes.add_argument("--agent", help="only errors of this agent")
    fixes.add_argument("--operation", help="only errors of this operation")
    fixes.add_argument(
        "--limit", type=positive_int, default=10, help="at most this many strategies"
    )
    add_output_flags(fixes)
    fixes.set_defaults(handler=_known_fixes)

    purge = sub.add_parser(
        "purge",
        help="delete debug events older than an age, in small batches",
        description="Delete rows older than --older-than (default: "
        f"${ENV_PREFIX}RETENTION_DAYS days) in batches of --batch-size rows, each its own "
        "short transaction; the sink keeps writing meanwhile.",
    )
    add_connection_flags(purge)
    purge.add_argument(
        "--older-than",
        metavar="AGE",
        help=f"e.g. 90d, 36h, 2w (default: ${ENV_PREFIX}RETENTION_DAYS days)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purge.add_argument(
        "--yes", action="store_true", help="confirm an age under a day (deletes recent rows)"
    )
    purge.add_argument("--batch-size", type=int, default=5000, help="rows per transaction")
    add_json_flag(purge)
    purge.set_defaults(handler=_purge)
