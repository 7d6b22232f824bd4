"""The human views' text: ``show``, ``patterns`` and ``errors`` rendered for a terminal.

Owns :class:`WorkflowView` (everything ``show`` displays about one workflow) and the three
renderers, :func:`render_show`, :func:`render_patterns` and :func:`render_errors`.

Guarantees: pure -- data in, text out, for a given width, with colour or without -- so tests
snapshot the text; no I/O, no database. Times are shown in UTC.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from debug_sink.cli.common import printable

if TYPE_CHECKING:
    from uuid import UUID

    from debug_sink.read.diff import Change
    from debug_sink.read.queries import ErrorDiff
    from debug_sink.read.timeline import TimelineEntry

__all__ = ["WorkflowView", "render_errors", "render_patterns", "render_show"]

_MAX_DIFF_LINES: Final = 12
_MAX_VALUE_CHARS: Final = 60
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


# -- formatting helpers -------------------------------------------------------------------


def _text(buffer: io.StringIO) -> str:
    """The rendered text without the padding rich adds at the end of lines."""
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _console(width: int | None, color: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        markup=False,
        width=width or 100,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
    return console, buffer


def _table(title: str | None = None) -> Table:
    """The views' one table style: a rule under the header, no edges, the title on the left."""
    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left"
    )


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
    view = printable(view)
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
    table = _table()
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


# -- patterns and errors ------------------------------------------------------------------


def render_patterns(
    rows: Sequence[Mapping[str, Any]],
    min_success_count: int,
    *,
    width: int | None = 100,
    color: bool = False,
) -> str:
    """The text of ``debug-sink patterns``."""
    rows = printable(rows)
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no recovery patterns with at least {min_success_count} successes")
        return _text(buffer)
    table = _table(f"recovery patterns (>= {min_success_count} successes)")
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
    rows = printable(rows)
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no errors since {_when(since)}")
        return _text(buffer)
    total = sum(int(r["error_count"]) for r in rows)
    table = _table(f"{total} error{'' if total == 1 else 's'} since {_when(since)}, by type")
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
