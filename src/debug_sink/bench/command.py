"""``debug-sink bench``: the command line of the benchmark.

Owns :func:`register_commands` (the ``bench`` sub-command, its flags and help) and the handler
that runs the bench and prints its report; :func:`main` is the same without the ``debug-sink``
wiring (``python -m debug_sink.bench``).

Guarantees: loading this module costs argparse and :mod:`debug_sink.bench.config` only --
``debug-sink`` loads it for every command, so the bench's services, drivers and the sink's
internals are imported when ``bench`` runs, not before. Not guaranteed: anything about the
run itself (:mod:`debug_sink.bench.run`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from debug_sink.bench.config import SECTIONS, WORKLOADS, BenchConfig, unknown_sections

__all__ = ["main", "register_commands"]


def _sections(value: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(unknown_sections(unknown))
    return chosen


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from debug_sink.bench.report import print_report
    from debug_sink.bench.run import run_bench
    from debug_sink.logs import configure_logging

    # The SDK section runs an emitter in this process: its log lines would cut the table.
    configure_logging("warning", "auto")
    config = BenchConfig.make(
        quick=args.quick,
        events=args.events,
        only=args.only,
        workload=args.workload,
        repeats=args.repeats,
        prefill=args.prefill,
        wal_segments=args.wal_segments,
    )
    console = Console(stderr=True)
    results = asyncio.run(run_bench(config, console=console, keep=args.keep))
    print_report(results, args.json)
    return 0


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` to the ``debug-sink`` command line."""
    parser = sub.add_parser(
        "bench",
        help="measure throughput, latency, memory, queries and scale-out against the targets",
        description="Measure the sink, the read queries and the SDK against the performance "
        "targets, side by side in one run, with services of its own (see docs/PERFORMANCE.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: finishes in about two minutes"
    )
    parser.add_argument(
        "--events",
        type=int,
        help="events of the throughput backlog (default 200000; --quick 40000)",
    )
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="realistic",
        help="realistic (default, the headline: random ids, a table already holding millions "
        "of events, several producers, re-sent, redacted and invalid messages) or simple "
        "(the best case: increasing ids, empty tables, one producer, all valid)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="drains per throughput figure, reported as median and min-max (default 3)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        metavar="EVENTS",
        help="events already in the tables of the realistic workload "
        "(default 5000000; --quick 500000)",
    )
    parser.add_argument(
        "--wal-segments",
        type=int,
        metavar="N",
        help="WAL segments the bench server prepares before measuring, recycled as on a "
        "server that has run for a while (default 32; 0 = a new server's cold WAL)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default="debug-sink-bench.json",
        help="write the results here (default: debug-sink-bench.json; '' = no)",
    )
    parser.add_argument(
        "--only",
        type=_sections,
        metavar="SECTIONS",
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary data directory (PostgreSQL data, exports)",
    )
    parser.set_defaults(handler=_bench)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m debug_sink.bench``: the same as ``debug-sink bench``."""
    parser = argparse.ArgumentParser(prog="debug-sink")
    sub = parser.add_subparsers(dest="command")
    register_commands(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
