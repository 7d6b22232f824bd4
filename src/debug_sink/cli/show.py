"""The human views: ``debug-sink show``, ``debug-sink patterns`` and ``debug-sink errors``.

Owns reading a workflow (or recent errors, or recovery patterns) through
:class:`~debug_sink.read.queries.DebugQueries` and rendering it for a terminal with rich -- or as
JSON with ``--json``. :func:`register_commands` adds the three subcommands to the CLI's
parser; each handler returns the process exit code.

- ``show CORRELATION_ID``: a summary line, then the timeline (causal order, see
  :mod:`debug_sink.read.timeline`): steps with status and duration, snapshots, hand-overs, LLM
  calls, errors with severity and what recovered them, successes; under each error, the diff
  of its state against the last good snapshot before it. Exit 1 for an unknown or malformed
  id.
- ``patterns``: ``debug_error_recovery_patterns`` as a table.
- ``errors --since 1h``: recent errors grouped by type.

Rendering is pure (:func:`render_show`, :func:`render_patterns`, :func:`render_errors`
return text for a given width, colour or not), so tests snapshot it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from debug_sink.cli import app as _cli
from debug_sink.errors import DebugSinkError, TransientError
from debug_sink.read.diff import Change
from debug_sink.read.queries import DebugQueries, ErrorDiff
from debug_sink.read.timeline import TimelineEntry
from debug_sink.settings import ENV_PREFIX, Settings, load_settings

__all__ = [
    "WorkflowView",
    "load_workflow",
    "main",
    "parse_since",
    "register_commands",
    "render_errors",
    "render_patterns",
    "render_show",
    "workflow_json",
]

EXIT_NOT_FOUND: Final = 1
_MAX_DIFF_LINES: Final = 12
_MAX_VALUE_CHARS: Final = 60
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_STATUS_STYLE: Final = {
    "completed": "green",
    "failed": "bold red",
    "started": "yellow",
    "skipped": "dim",
}
_SEVERITY_STYLE: Final = {
    "low": "dim",
    "medium": "yellow",
    "high": "red",
    "critical": "bold white on red",
}


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """Everything ``show`` displays about one workflow."""

    correlation_id: UUID
    summary: Mapping[str, Any]
    timeline: Sequence[TimelineEntry]
    diffs: Mapping[UUID, ErrorDiff]


async def load_workflow(queries: DebugQueries, correlation_id: UUID) -> WorkflowView | None:
    """The workflow's summary, ordered timeline and error diffs; ``None`` when unknown."""
    if not await queries.workflow_exists(correlation_id):
        return None
    summary = await queries.get_workflow_debug_summary(correlation_id)
    timeline = await queries.timeline(correlation_id)
    diffs = await queries.error_diffs(timeline)
    return WorkflowView(correlation_id, summary, timeline, diffs)


# -- formatting helpers -------------------------------------------------------------------


def _text(buffer: io.StringIO) -> str:
    """The rendered text without the padding rich adds at the end of lines."""
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _console(width: int | None, color: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or 100,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
    return console, buffer


def _time(value: datetime | str | None, first: datetime | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.astimezone(UTC)
    text = value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if first is not None and value.date() != first.astimezone(UTC).date():
        text = value.strftime("%m-%d ") + text
    return text


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _short_when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%m-%d %H:%M:%S") if value is not None else "-"


def _duration(ms: float | int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def _short(value: Any) -> str:
    return str(value)[:8] if value else "-"


def _value(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _change_line(change: Change) -> str:
    if change.op == "added":
        return f"+ {change.where}: {_value(change.after)}"
    if change.op == "removed":
        return f"- {change.where}: {_value(change.before)}"
    return f"~ {change.where}: {_value(change.before)} -> {_value(change.after)}"


def _count(summary: Mapping[str, Any], key: str) -> int:
    return int(summary.get(key) or 0)


# -- show ---------------------------------------------------------------------------------


def _describe(entry: TimelineEntry, view: WorkflowView) -> tuple[Text, Text]:
    """(event label, details) of one timeline entry."""
    data = entry.data
    if entry.kind == "step":
        label = f"step {entry.step_number}"
        if (entry.attempt or 1) > 1:
            label += f".{entry.attempt}"
        status = str(data.get("status", ""))
        details = Text(f"{data.get('operation_name')} ({data.get('step_type')})  ")
        details.append(status, style=_STATUS_STYLE.get(status, ""))
        if data.get("duration_ms") is not None:
            details.append(f"  {_duration(data['duration_ms'])}")
        return Text(label, style="bold"), details
    if entry.kind == "snapshot":
        details = Text(
            f"#{_short(entry.id)} {data.get('snapshot_type')}  "
            f"{data.get('variables_count') or 0} keys, "
            f"{data.get('state_size_bytes') or 0} B"
        )
        return Text("snapshot", style="cyan"), details
    if entry.kind == "transformation":
        details = Text(
            f"{data.get('source_agent')} -> {data.get('target_agent')} "
            f"({data.get('transformation_type')})"
        )
        if data.get("reason"):
            details.append(f"  {data['reason']}")
        return Text("handover", style="magenta"), details
    if entry.kind == "llm_call":
        details = Text(str(data.get("tool_name") or "?"))
        score = data.get("quality_score")
        if isinstance(score, int | float):
            details.append(f"  quality {score:.2f}")
        if data.get("success_classification"):
            details.append(f"  {data['success_classification']}")
        if isinstance(data.get("latency_ms"), int | float):
            details.append(f"  {_duration(data['latency_ms'])}")
        return Text("llm call", style="blue"), details
    if entry.kind == "error":
        severity = str(data.get("error_severity", ""))
        details = Text()
        details.append(f"[{severity}]", style=_SEVERITY_STYLE.get(severity, ""))
        details.append(f" {data.get('error_type')}: {data.get('error_message')}")
        details.append("\n" + _recovery_text(data))
        diff = view.diffs.get(entry.id)
        if diff is not None:
            details.append(_diff_text(diff))
        return Text("ERROR", style="bold red"), details
    # success
    details = Text(f"{data.get('success_type')}  {data.get('operation_name')}")
    if isinstance(data.get("quality_score"), int | float):
        details.append(f"  quality {data['quality_score']:.2f}")
    if data.get("execution_time_ms") is not None:
        details.append(f"  {_duration(data['execution_time_ms'])}")
    return Text("success", style="green"), details


def _recovery_text(data: Mapping[str, Any]) -> str:
    recoveries = data.get("recoveries") or []
    if recoveries:
        parts = []
        for r in recoveries:
            how = r.get("recovery_strategy") or "unknown strategy"
            after = _duration(r.get("recovery_duration_ms"))
            parts.append(
                f"{how} -> {r.get('success_type')} {r.get('operation_name')}"
                + (f" after {after}" if after else "")
            )
        return "recovered by " + "; ".join(parts)
    if data.get("recovery_successful") is True:
        return f"recovered ({data.get('recovery_strategy') or 'strategy not given'})"
    if data.get("resolved_at"):
        return "resolved"
    if data.get("recovery_attempted"):
        return f"recovery attempted ({data.get('recovery_strategy') or '?'}), not recovered"
    return "not recovered"


def _diff_text(diff: ErrorDiff) -> str:
    if diff.before_snapshot_id is None:
        return "\nstate: no good snapshot before this error to compare with"
    if diff.diff is None:
        return (
            f"\nstate: snapshot #{_short(diff.before_snapshot_id)} or the error's state is missing"
        )
    if not diff.diff:
        return f"\nstate unchanged since snapshot #{_short(diff.before_snapshot_id)}"
    changes = diff.diff.changes
    lines = [
        f"\nstate vs snapshot #{_short(diff.before_snapshot_id)}: {len(diff.diff.added)} "
        f"added, {len(diff.diff.removed)} removed, {len(diff.diff.changed)} changed"
    ]
    lines += ["  " + _change_line(c) for c in changes[:_MAX_DIFF_LINES]]
    if len(changes) > _MAX_DIFF_LINES:
        lines.append(f"  ... {len(changes) - _MAX_DIFF_LINES} more")
    return "\n".join(lines)


def render_show(view: WorkflowView, *, width: int | None = 100, color: bool = False) -> str:
    """The text of ``debug-sink show`` for ``view``."""
    console, buffer = _console(width, color)
    s = view.summary
    console.print(Text(f"workflow {view.correlation_id}", style="bold"))
    agents = ", ".join(s.get("agents_involved") or []) or "-"
    console.print(f"agents: {agents}")
    console.print(
        f"from {_when(s.get('first_event_at'))} to {_when(s.get('last_event_at'))}"
        f" ({_duration(s.get('duration_ms')) or '0 ms'})"
    )
    console.print(
        f"steps {_count(s, 'step_count')} ({_count(s, 'failed_step_count')} failed), "
        f"errors {_count(s, 'error_count')} ({_count(s, 'unrecovered_error_count')} "
        f"unrecovered), recoveries {_count(s, 'recovery_count')}"
    )
    console.print(
        f"successes {_count(s, 'success_count')}, snapshots {_count(s, 'snapshot_count')}, "
        f"llm calls {_count(s, 'llm_call_count')}, "
        f"handovers {_count(s, 'transformation_count')}"
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("time", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("agent", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("details", overflow="fold")
    first = view.timeline[0].at if view.timeline else None
    for entry in view.timeline:
        label, details = _describe(entry, view)
        table.add_row(_time(entry.at, first), label, entry.agent_name or "-", details)
    console.print()
    console.print(table)
    return _text(buffer)


def _jsonable(value: Any) -> Any:
    if isinstance(value, TimelineEntry):
        return {
            "kind": value.kind,
            "id": value.id,
            "at": value.at,
            "agent_name": value.agent_name,
            "step_number": value.step_number,
            "attempt": value.attempt,
            "follows": list(value.follows),
            "data": dict(value.data),
        }
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def workflow_json(view: WorkflowView) -> bytes:
    """The ``--json`` document of ``show``: summary, timeline (each error with its
    ``state_diff``)."""
    timeline = []
    for entry in view.timeline:
        item = _jsonable(entry)
        if entry.kind == "error":
            diff = view.diffs.get(entry.id)
            item["state_diff"] = diff.as_dict() if diff is not None else None
        timeline.append(item)
    document = {
        "correlation_id": view.correlation_id,
        "summary": dict(view.summary),
        "timeline": timeline,
    }
    return (
        orjson.dumps(
            document, default=_jsonable, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        )
        + b"\n"
    )


# -- patterns and errors ------------------------------------------------------------------


def render_patterns(
    rows: Sequence[Mapping[str, Any]],
    min_success_count: int,
    *,
    width: int | None = 100,
    color: bool = False,
) -> str:
    """The text of ``debug-sink patterns``."""
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no recovery patterns with at least {min_success_count} successes")
        return _text(buffer)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=f"recovery patterns (>= {min_success_count} successes)",
        title_justify="left",
    )
    for name, justify in (
        ("error type", "left"),
        ("strategy", "left"),
        ("successes", "right"),
        ("workflows", "right"),
        ("avg recovery", "right"),
        ("confidence", "right"),
        ("last seen (UTC)", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        confidence = r.get("avg_confidence")
        table.add_row(
            str(r.get("error_type")),
            str(r.get("recovery_strategy") or "-"),
            str(r.get("success_count")),
            str(r.get("workflow_count") or "-"),
            _duration(r.get("avg_recovery_duration_ms")) or "-",
            f"{confidence:.2f}" if isinstance(confidence, float) else "-",
            _short_when(r.get("last_correlated_at")),
        )
    console.print(table)
    return _text(buffer)


def render_errors(
    rows: Sequence[Mapping[str, Any]],
    since: datetime,
    *,
    width: int | None = 100,
    color: bool = False,
) -> str:
    """The text of ``debug-sink errors``."""
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no errors since {_when(since)}")
        return _text(buffer)
    total = sum(int(r["error_count"]) for r in rows)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=f"{total} error{'' if total == 1 else 's'} since {_when(since)}, by type",
        title_justify="left",
    )
    table.add_column("error type", overflow="fold", min_width=12)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("workflows", justify="right", no_wrap=True)
    table.add_column("worst", no_wrap=True)
    table.add_column("recovered", justify="right", no_wrap=True)
    table.add_column("agents", overflow="fold", min_width=8)
    table.add_column("last seen (UTC)", no_wrap=True)
    table.add_column("last message", overflow="ellipsis", no_wrap=True, ratio=1)
    for r in rows:
        severity = str(r.get("worst_severity"))
        table.add_row(
            str(r["error_type"]),
            str(r["error_count"]),
            str(r["workflow_count"]),
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            f"{r['recovered_count']}/{r['error_count']}",
            ", ".join(r.get("agents") or []),
            _short_when(r.get("last_seen")),
            str(r.get("last_message") or ""),
        )
    console.print(table)
    return _text(buffer)


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``30m``, ``1h``, ``2d``, ``1w`` (ago) or an ISO 8601 time -> an aware datetime."""
    match = _SINCE.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 1h, 2d, 1w) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- commands -----------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(postgres_dsn=args.dsn, db_schema=args.schema)


def _color(args: argparse.Namespace) -> bool:
    return not args.no_color and sys.stdout.isatty()


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _show(args: argparse.Namespace) -> int:
    try:
        correlation_id = UUID(args.correlation_id)
    except ValueError:
        print(
            f"debug-sink: {args.correlation_id!r} is not a correlation id (a UUID)", file=sys.stderr
        )
        return EXIT_NOT_FOUND
    settings = _settings(args)

    async def main() -> int:
        async with await DebugQueries.from_settings(settings) as queries:
            view = await load_workflow(queries, correlation_id)
        if view is None:
            print(
                f"debug-sink: no debug events for workflow {correlation_id} in schema "
                f"{settings.db_schema!r}",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        if args.json:
            sys.stdout.buffer.write(workflow_json(view))
        else:
            sys.stdout.write(render_show(view, width=args.width, color=_color(args)))
        return 0

    return _run(main())


def _patterns(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def main() -> int:
        async with await DebugQueries.from_settings(settings) as queries:
            rows = await queries.get_recovery_patterns(args.min_success_count)
        if args.json:
            sys.stdout.buffer.write(
                orjson.dumps(rows, default=_jsonable, option=orjson.OPT_INDENT_2) + b"\n"
            )
        else:
            sys.stdout.write(
                render_patterns(rows, args.min_success_count, width=args.width, color=_color(args))
            )
        return 0

    return _run(main())


def _errors(args: argparse.Namespace) -> int:
    settings = _settings(args)
    since: datetime = args.since

    async def main() -> int:
        async with await DebugQueries.from_settings(settings) as queries:
            rows = await queries.get_error_groups(since, limit=args.limit)
        if args.json:
            sys.stdout.buffer.write(
                orjson.dumps(
                    {"since": since, "groups": rows}, default=_jsonable, option=orjson.OPT_INDENT_2
                )
                + b"\n"
            )
        else:
            sys.stdout.write(render_errors(rows, since, width=args.width, color=_color(args)))
        return 0

    return _run(main())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
    parser.add_argument(
        "--schema", help=f"database schema (default: ${ENV_PREFIX}DB_SCHEMA or public)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--width", type=int, help="output width (default: the terminal's)")
    parser.add_argument("--no-color", action="store_true", help="never use colour")


def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``show``, ``patterns`` and ``errors`` (handler in ``args.handler``)."""
    show = subparsers.add_parser(
        "show",
        help="a workflow's debug timeline: steps, errors, recoveries, state diffs",
        description="Show one workflow: its steps with status and duration, errors with "
        "severity and the recovery that fixed them, LLM calls, and at each error the state "
        "diff against the last good snapshot.",
    )
    show.add_argument("correlation_id", metavar="CORRELATION_ID", help="the workflow's UUID")
    _common(show)
    show.set_defaults(handler=_show)

    patterns = subparsers.add_parser(
        "patterns",
        help="recovery strategies that worked, per error type",
        description="Rows of debug_error_recovery_patterns, most successful first.",
    )
    patterns.add_argument(
        "--min-success-count",
        type=int,
        default=3,
        metavar="N",
        help="only patterns with at least N successes (default: 3)",
    )
    _common(patterns)
    patterns.set_defaults(handler=_patterns)

    errors = subparsers.add_parser(
        "errors",
        help="recent errors grouped by type",
        description="Errors that occurred since a time, grouped by error type.",
    )
    errors.add_argument(
        "--since",
        type=parse_since,
        default="1h",
        metavar="WHEN",
        help="a duration ago (30m, 1h, 2d, 1w) or an ISO 8601 time (default: 1h)",
    )
    errors.add_argument("--limit", type=int, default=50, help="at most this many error types")
    _common(errors)
    errors.set_defaults(handler=_errors)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m debug_sink.cli.show COMMAND ...``: the three commands without the full CLI."""
    parser = argparse.ArgumentParser(prog="python -m debug_sink.cli.show")
    register_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except TransientError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return _cli.EXIT_UNAVAILABLE
    except DebugSinkError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return _cli.EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
