"""``debug-sink replay``: re-consume topics into the same tables, exactly once (backfill).

Owns the command's flags, its settings (the replay's own consumer group, never the live
sink's), the printed plan, the progress display and the summary. Planning and running a
replay, and what it guarantees, are :mod:`debug_sink.sink.replay`'s.

Exit codes: 0 done, 130 interrupted (run it again with the same ``--group-id`` and
``--topics`` to resume: the summary prints that command), 1 or 3 for an error
(:attr:`~debug_sink.errors.DebugSinkError.exit_code`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from debug_sink.cli.common import (
    EXIT_INTERRUPTED,
    Subparsers,
    add_bootstrap_flag,
    add_connection_flags,
    add_json_flag,
    configure,
    print_json,
    settings_from,
)
from debug_sink.durations import parse_time
from debug_sink.errors import ConfigurationError
from debug_sink.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from debug_sink.sink.replay import PartitionPlan, ReplaySummary, StartSpec

__all__ = ["register", "time_argument"]

#: ``on_progress(done, total)`` of :func:`~debug_sink.sink.replay.run_replay`.
Progress = Callable[[int, int], None]


def time_argument(text: str) -> datetime:
    """``--since``, an argparse ``type``: an ISO 8601 time
    (:func:`~debug_sink.durations.parse_time`); otherwise a usage error."""
    try:
        return parse_time(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _spec(args: argparse.Namespace) -> StartSpec:
    from debug_sink.sink.replay import StartSpec, parse_offsets

    if args.from_beginning:
        return StartSpec("beginning")
    if args.from_offsets is not None:
        return StartSpec("offsets", offsets=parse_offsets(args.from_offsets))
    if args.since is not None:
        return StartSpec("since", since=args.since)
    return StartSpec("resume")


def _settings(args: argparse.Namespace) -> Settings:
    """The replay's settings: its own consumer group, the topics and metrics port asked for."""
    from debug_sink.sink.replay import default_group_id

    base = settings_from(args, group_id=None)  # the environment's: the live sink's
    group_id = args.group_id or default_group_id()
    if group_id == base.group_id:
        raise ConfigurationError(
            f"--group-id {group_id!r} is the live sink's consumer group "
            f"({ENV_PREFIX}GROUP_ID); a replay needs a group of its own"
        )
    overrides = {"group_id": group_id, "topic_pattern": args.topics}
    settings = settings_from(args, **overrides, metrics_port=args.metrics_port)
    if args.topics is None:
        return settings
    # --topics is the whole selection: the OTLP topics it does not match are not replayed
    # (the live sink subscribes to them beside its pattern; a replay of one topic does not).
    pattern = settings.topic_pattern
    otlp = {t: e for t, e in settings.otlp_topic_encodings.items() if re.search(pattern, t)}
    return settings_from(args, **overrides, otlp_topics=otlp, metrics_port=args.metrics_port)


def _print_plan(plan: Sequence[PartitionPlan], out: TextIO) -> None:
    if not plan:
        print("no partition matches the topic pattern", file=out)
        return
    width = max(len(p.topic) for p in plan)
    print(f"{'topic':<{width}}  {'part':>4}  {'start':>10}  {'end':>10}  {'to read':>10}", file=out)
    per_topic: dict[str, int] = {}
    for p in plan:
        per_topic[p.topic] = per_topic.get(p.topic, 0) + p.count
        print(
            f"{p.topic:<{width}}  {p.partition:>4}  {p.start:>10}  {p.end:>10}  {p.count:>10}",
            file=out,
        )
    print(f"total: {sum(per_topic.values())} events in {len(plan)} partitions", file=out)
    _print_notes(plan, out)


def _print_notes(plan: Sequence[PartitionPlan], out: TextIO) -> None:
    """A ``note:`` line for each ``--from-offsets`` offset that was clamped."""
    for p in plan:
        if p.asked is not None:
            where = "past the end" if p.asked > p.end else "below the log start"
            print(
                f"note: {p.topic}[{p.partition}]: offset {p.asked} asked is {where}; "
                f"read from {p.start}",
                file=out,
            )


def _progress_printer(
    json_output: bool,
) -> tuple[Progress | None, contextlib.AbstractContextManager[Any]]:
    """A callback for :func:`~debug_sink.sink.replay.run_replay`'s progress and the context
    that displays it: a rich bar on a terminal, a plain line every 5 s otherwise."""
    if json_output:
        return None, contextlib.nullcontext()
    if sys.stdout.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TextColumn("{task.fields[rate]:>8} ev/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
        )
        task = progress.add_task("replay", total=None, rate="-")
        start = time.monotonic()

        def update_bar(done: int, total: int) -> None:
            elapsed = max(time.monotonic() - start, 1e-6)
            progress.update(
                task, completed=done, total=max(total, done), rate=f"{done / elapsed:,.0f}"
            )

        return update_bar, progress
    last = [0.0, -1.0]  # when, and how many, last printed
    start = time.monotonic()

    def update_line(done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total and done != last[1]
        if now - last[0] < 5.0 and not finished:
            return
        last[0], last[1] = now, done
        rate = done / max(now - start, 1e-6)
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 and total > done else "-"
        print(f"replay: {done}/{total} events, {rate:,.0f} events/s, eta {eta}", flush=True)

    return update_line, contextlib.nullcontext()


def _dry_run(args: argparse.Namespace, settings: Settings, spec: StartSpec) -> int:
    from debug_sink.sink.replay import group_offsets, plan_replay

    configure(settings, level="warning")
    stored = (
        asyncio.run(group_offsets(settings, settings.group_id))
        if spec.mode == "resume" and settings.postgres_dsn is not None
        else None
    )
    plan = asyncio.run(plan_replay(settings, spec, stored=stored))
    if args.json:
        print_json(
            {
                "dry_run": True,
                "group_id": settings.group_id,
                "events": sum(p.count for p in plan),
                "partitions": [p.as_dict() for p in plan],
            }
        )
    else:
        print(f"dry run: group {settings.group_id}, nothing is written")
        _print_plan(plan, sys.stdout)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from debug_sink.sink.replay import group_offsets, plan_replay, run_replay

    settings = _settings(args)
    spec = _spec(args)
    if args.dry_run:
        return _dry_run(args, settings, spec)
    settings.require_dsn()
    configure(settings, level=None if args.verbose else "warning")

    async def main() -> ReplaySummary:
        stored = await group_offsets(settings, settings.group_id) if spec.mode == "resume" else {}
        plan = await plan_replay(settings, spec, stored=stored)
        if not args.json:
            resumed = " (resuming its stored offsets)" if stored else ""
            print(
                f"replay: group {settings.group_id}{resumed}, "
                f"{sum(p.count for p in plan)} events in {len(plan)} partitions",
                flush=True,
            )
            _print_notes(plan, sys.stdout)
        callback, display = _progress_printer(args.json)
        with display:
            return await run_replay(settings, plan, on_progress=callback)

    summary = asyncio.run(main())
    code = EXIT_INTERRUPTED if summary.interrupted else 0
    if args.json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary, _resume_command(summary.group_id, args.topics))
    return code


def _resume_command(group_id: str, topics: str | None) -> str:
    """The command that resumes this replay: the same group and the same selection (without
    ``--topics``, a resume would read every other topic from its log start)."""
    command = f"debug-sink replay --group-id {shlex.quote(group_id)}"
    return command if topics is None else f"{command} --topics {shlex.quote(topics)}"


def _print_summary(summary: ReplaySummary, resume: str) -> None:
    if summary.interrupted:
        print(f"interrupted: resume with {resume}")
    rate = summary.read / summary.seconds if summary.seconds > 0 else 0.0
    print(
        f"replayed {summary.read} events in {summary.seconds:.1f} s ({rate:,.0f} events/s) "
        f"through group {summary.group_id}"
    )
    print("rows added to the tables meanwhile (by this replay and any live sink):")
    for table, count in summary.rows_added.items():
        print(f"  {table:<30} {count:+d}")
    if summary.parked:
        print(
            f"{summary.parked} events are parked in sink_parked_events, waiting for a parent "
            "that is not stored: a running sink writes them when it arrives, or after "
            f"{ENV_PREFIX}PARK_GRACE_SECONDS with the reference NULL"
        )
    elif not summary.read:
        print("nothing was read")
    elif not any(summary.rows_added.values()):
        print("every event was already stored: nothing changed")
    print(
        f"resume or extend later with: {resume}; "
        f"forget it with: DELETE FROM sink_offsets WHERE group_id = '{summary.group_id}'"
    )


def register(sub: Subparsers) -> None:
    """Add ``replay``."""
    parser = sub.add_parser(
        "replay",
        help="re-consume topics into the same tables, exactly once (backfill, rebuild)",
        description="Re-consume the debug topics through a separate consumer group into the "
        "same tables. Events already stored are no-ops (every row is keyed by its event id), "
        "so a replay can run next to the live sink and over a populated database.",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning", action="store_true", help="every partition from its log start"
    )
    start.add_argument(
        "--from-offsets",
        metavar="T:P:O,...",
        help="these partitions from these offsets (other partitions are skipped)",
    )
    start.add_argument(
        "--since",
        type=time_argument,
        metavar="TIME",
        help="from the first record at or after TIME (ISO 8601, e.g. 2026-01-01T00:00:00Z)",
    )
    parser.add_argument(
        "--group-id",
        help="the replay's consumer group (default: debug-sink-replay-<UTC timestamp>-<6 random "
        "hex digits>); an existing replay group without a start option resumes",
    )
    parser.add_argument(
        "--topics",
        metavar="PATTERN",
        help=f"regex of the topics to replay (default: ${ENV_PREFIX}TOPIC_PATTERN)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be read; write nothing"
    )
    add_json_flag(parser, "plan or summary")
    add_connection_flags(parser)
    add_bootstrap_flag(parser)
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /metrics and /healthz during the replay (default: 0 = off)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every batch (default: warnings only)"
    )
    parser.set_defaults(handler=_replay)
