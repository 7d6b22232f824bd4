"""``debug-sink run``: the long-running service, the debug topics consumed into PostgreSQL.

Owns the command's flags, its ``--help`` (every setting with its environment variable and
default, :func:`settings_help`) and the process-wide garbage-collector tuning of the service.
The service itself is :class:`~debug_sink.sink.runner.Sink` with the periodic jobs; SIGTERM
or Ctrl-C stops it cleanly (the batch in flight commits).
"""

from __future__ import annotations

import argparse
import asyncio

from debug_sink.cli.common import Subparsers, add_connection_flags, configure, settings_from
from debug_sink.settings import ENV_PREFIX, Settings

__all__ = ["register", "settings_help"]


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


def _run(args: argparse.Namespace) -> int:
    from debug_sink.jobs.schedule import periodic_jobs
    from debug_sink.metrics import Metrics
    from debug_sink.signals import run_until_signal
    from debug_sink.sink.runner import Sink

    settings = settings_from(args)
    configure(settings)
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
    if settings.event_loop == "uvloop":
        # libuv's loop: the sink's work is many small round trips to PostgreSQL and the
        # broker, where the loop's own overhead shows. A 200k-event drain, alternating
        # three times each: 5,256-5,550 events/s against 4,788-5,050 with asyncio's loop;
        # latency at 2k/s and peak RSS unchanged (docs/PERFORMANCE.md).
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
    return 0


def _tune_gc() -> None:
    """Fewer garbage collections for the long-running sink process -- but not too few.

    The sink allocates short-lived objects (decoded events) at a high rate while as many live
    ones sit in the batches in flight; with CPython's defaults (a young collection every 700
    allocations) collection takes a share of the process's time. A young collection every
    10,000 allocations (and the older generations every 10 of the younger) keeps most of
    that gain. Rarer collections cost memory out of proportion: with (100,000, 50, 100) the
    process's C heap grew for the whole drain -- 1,003 MB peak on a 1M-event backlog, 342-365
    MB on 300k against 244-257 MB with these thresholds, for 4% more events/s -- although
    ``gc.DEBUG_SAVEALL`` found almost no cyclic garbage (docs/PERFORMANCE.md, "Memory").
    ``freeze`` moves the start-up objects (modules, settings, the pydantic schemas) out of
    every future collection.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def register(sub: Subparsers) -> None:
    """Add ``run``."""
    parser = sub.add_parser(
        "run",
        help="consume debug.* topics into PostgreSQL (the long-running service)",
        description="Consume the debug topics into PostgreSQL, exactly once.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_flags(parser, kafka=True)
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit 0 once every assigned partition is caught up and written "
        "(backfills, tests, benchmarks)",
    )
    parser.set_defaults(handler=_run)
