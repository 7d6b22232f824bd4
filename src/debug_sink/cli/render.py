"""The read commands' text: ``show``, ``workflows``, ``errors``, ``patterns``,
``known-fixes`` and ``dead-letters list`` rendered for a terminal, in one style.

Owns :class:`WorkflowView` (everything ``show`` displays about one workflow), the renderers
(``render_*``), and the layout every list shares, :func:`render_rows`: a table when its kept
columns fit the width, else one block per row (a bold key line, then ``label  value``
lines). Other commands with a list to show (``correlate --report``) use it too.

Guarantees: pure -- data in, text out, for a given width, with colour or without -- so tests
snapshot the text; no I/O, no database. Times are shown in UTC. What tells rows apart and
what an operator copies -- identifiers, types, counts, origins -- is never cut and never
wrapped: its column is as wide as its longest value, or, when the columns that must stay whole
do not fit the width together, the list is laid out as blocks instead of a table. Free text
(messages, reasons, agent lists) wraps; only an error's last message and a dead letter's
value preview may be shortened with ``…``. Untrusted text is passed through
:func:`~debug_sink.cli.common.printable` and printed with markup off.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from debug_sink.cli.common import printable
from debug_sink.durations import show_ms

if TYPE_CHECKING:
    from uuid import UUID

    from debug_sink.read.diff import Change
    from debug_sink.read.queries import ErrorDiff
    from debug_sink.read.timeline import TimelineEntry

__all__ = [
    "Column",
    "WorkflowView",
    "render_dead_letters",
    "render_errors",
    "render_known_fixes",
    "render_patterns",
    "render_rows",
    "render_show",
    "render_workflows",
]

#: The width when none is given (the commands pass the terminal's).
DEFAULT_WIDTH: Final = 100
_MAX_DIFF_LINES: Final = 12
_MAX_VALUE_CHARS: Final = 60
_MAX_MESSAGE_CHARS: Final = 300
#: An error's message and a hand-over's reason in ``show`` (free text, up to the broker's
#: message size): longer ones end with ``…`` and their length.
_MAX_TEXT_CHARS: Final = 2000
#: Agent names of one workflow in ``show`` and ``workflows``.
_AGENTS_SHOWN: Final = 20
#: Narrowest a wrapping column may become before the list is laid out as blocks.
_MIN_TEXT_WIDTH: Final = 10
#: Between two columns of the table style: the (blank) divider and one space of padding.
_GAP: Final = 2
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
_WORKFLOW_STYLE: Final = {
    "running": "yellow",
    "failed": "bold red",
    "unrecovered": "red",
    "recovered": "green",
    "ok": "green",
}


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """Everything ``show`` displays about one workflow."""

    correlation_id: UUID
    summary: Mapping[str, Any]
    #: The first events by time, at most the reader's limit (see ``more``).
    timeline: Sequence[TimelineEntry]
    diffs: Mapping[UUID, ErrorDiff]
    #: The workflow has events after the last of ``timeline`` that are not shown.
    more: bool = False


@dataclass(frozen=True, slots=True)
class Column:
    """A column of :func:`render_rows`.

    ``keep``: the values are never cut nor wrapped (identifiers, types, counts, origins).
    Otherwise the text wraps (``overflow="fold"``) or, with ``"ellipsis"``, is shortened to
    one line. ``detail``: shown apart from the table -- in a second table keyed by the first
    column -- and as a line of each block when the list is laid out as blocks.
    """

    name: str
    keep: bool = False
    justify: Literal["left", "right"] = "left"
    overflow: Literal["fold", "ellipsis"] = "fold"
    detail: bool = False


Cell = str | Text


# -- the shared layout --------------------------------------------------------------------


def _console(width: int | None, color: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        markup=False,
        width=width or DEFAULT_WIDTH,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        soft_wrap=False,
        emoji=False,
    )
    return console, buffer


def _text(buffer: io.StringIO) -> str:
    """The rendered text without the padding rich adds at the end of lines."""
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _table(title: str | None = None) -> Table:
    """The one table style: a rule under the header, no edges, the title on the left."""
    return Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title=title,
        title_justify="left",
        title_style="bold",
        header_style="bold",
    )


def _cell_width(cell: Cell) -> int:
    plain = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in plain.split("\n")), default=0)


def _widths(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int
) -> list[int] | None:
    """Each column's width in a table of ``width`` columns, or None when it cannot be laid
    out as one: a kept column is as wide as its longest value; the others share what is left
    in proportion to their longest values, each at least :data:`_MIN_TEXT_WIDTH` (or its
    longest value, when shorter) and never wider than that value."""
    natural = [
        max([cell_len(c.name), *(_cell_width(r[i]) for r in rows)]) for i, c in enumerate(columns)
    ]
    widths = [n if c.keep else 0 for n, c in zip(natural, columns, strict=True)]
    flexible = [i for i, c in enumerate(columns) if not c.keep]
    room = width - sum(widths) - _GAP * (len(columns) - 1)
    floors = {i: min(natural[i], _MIN_TEXT_WIDTH) for i in flexible}
    if room < sum(floors.values()):
        return None
    wanted = sum(natural[i] for i in flexible)
    if wanted <= room:
        for i in flexible:
            widths[i] = natural[i]
        return widths
    # Shrink the widest first: every flexible column gets its floor, then the room left is
    # shared in proportion to what each wants beyond its floor.
    extra = room - sum(floors.values())
    beyond = {i: natural[i] - floors[i] for i in flexible}
    total_beyond = sum(beyond.values()) or 1
    for i in flexible:
        widths[i] = floors[i] + beyond[i] * extra // total_beyond
    return widths


def _add_column(table: Table, column: Column, width: int) -> None:
    if column.keep:
        table.add_column(column.name, justify=column.justify, no_wrap=True, width=width)
    elif column.overflow == "ellipsis":
        table.add_column(
            column.name, justify=column.justify, no_wrap=True, overflow="ellipsis", width=width
        )
    else:
        table.add_column(column.name, justify=column.justify, overflow="fold", width=width)


def _print_table(
    console: Console,
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    widths: Sequence[int],
) -> None:
    table = _table(title)
    for column, width in zip(columns, widths, strict=True):
        _add_column(table, column, width)
    for cells in rows:
        table.add_row(*cells)
    console.print(table)


def render_rows(
    console: Console,
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
) -> None:
    """Print ``rows`` (one cell per column; the first column is the row's key) as a table
    when the columns that must stay whole fit ``console.width``, else as one block per row.
    See :class:`Column` and the module doc."""
    main = [i for i, c in enumerate(columns) if not c.detail]
    details = [0, *(i for i, c in enumerate(columns) if c.detail)]
    main_columns = [columns[i] for i in main]
    main_rows = [[row[i] for i in main] for row in rows]
    detail_columns = [columns[i] for i in details]
    detail_rows = [[row[i] for i in details] for row in rows]
    main_widths = _widths(main_columns, main_rows, console.width)
    detail_widths = _widths(detail_columns, detail_rows, console.width)
    if main_widths is not None and detail_widths is not None:
        _print_table(console, title, main_columns, main_rows, main_widths)
        if len(details) > 1:
            console.print()
            _print_table(console, None, detail_columns, detail_rows, detail_widths)
        return
    if title:
        console.print(Text(title, style="bold"))
    label_width = max(cell_len(c.name) for c in columns[1:]) if len(columns) > 1 else 0
    for row in rows:
        console.print()
        key = row[0].copy() if isinstance(row[0], Text) else Text(row[0])
        key.stylize("bold")
        key.overflow = "fold"
        console.print(key)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=label_width, style="dim")
        grid.add_column(overflow="fold")
        for column, cell in zip(columns[1:], row[1:], strict=True):
            if _cell_width(cell) == 0:
                continue
            grid.add_row(column.name, cell)
        console.print(grid, style=None, overflow="fold")


# -- formatting helpers -------------------------------------------------------------------


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


def _short_when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


_duration = show_ms


def _short(value: Any) -> str:
    return str(value)[:8] if value else "-"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else f'"{value}"'
    return _clip(text, _MAX_VALUE_CHARS)


def _change_line(change: Change) -> str:
    # The state's keys and values are agents' text: shown escaped, like every other.
    line = _change_text(change)
    return str(printable(line))


def _change_text(change: Change) -> str:
    if change.op == "added":
        return f"+ {change.where}: {_value(change.after)}"
    if change.op == "removed":
        return f"- {change.where}: {_value(change.before)}"
    return f"~ {change.where}: {_value(change.before)} -> {_value(change.after)}"


def _count(summary: Mapping[str, Any], key: str) -> int:
    return int(summary.get(key) or 0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _styled(value: str, styles: Mapping[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


# -- show ---------------------------------------------------------------------------------


def _describe(entry: TimelineEntry, view: WorkflowView) -> tuple[Text, Text]:
    """(event label, details) of one timeline entry."""
    data = entry.data
    if entry.kind == "step":
        metadata = data.get("metadata")
        if isinstance(metadata, Mapping) and "otel" in metadata:
            # A span's step number is its start time (OTel has none): not worth showing.
            label = "span" + (f" try {entry.attempt}" if (entry.attempt or 1) > 1 else "")
        else:
            label = f"step {entry.step_number}"
            if (entry.attempt or 1) > 1:
                label += f".{entry.attempt}"
        status = str(data.get("status", ""))
        details = Text(f"{data.get('operation_name')} ({data.get('step_type')})  ")
        details.append(status, style=_STATUS_STYLE.get(status, ""))
        if data.get("duration_ms") is not None:
            details.append(f"  {_duration(data['duration_ms'])}")
        if data.get("step_description"):
            details.append(f"  {_first_line(str(data['step_description']))}")
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
            details.append(f"  {_long_text(str(data['reason']))}")
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
        details.append(f" {data.get('error_type')}: {_long_text(str(data.get('error_message')))}")
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


def _first_line(text: str) -> str:
    """A description's first line, at most twice :data:`_MAX_VALUE_CHARS` characters."""
    stripped = text.strip()
    line = stripped.splitlines()[0] if stripped else ""
    if line != stripped:
        line += " …"
    return _clip(line, _MAX_VALUE_CHARS * 2)


def _agents(names: Sequence[str] | None) -> str:
    """At most :data:`_AGENTS_SHOWN` agent names, and how many more (a workflow's steps may
    run in thousands of differently named workers)."""
    names = names or []
    shown = ", ".join(names[:_AGENTS_SHOWN]) or "-"
    if len(names) > _AGENTS_SHOWN:
        shown += f" and {len(names) - _AGENTS_SHOWN:,} more"
    return shown


def _long_text(text: str) -> str:
    """Free text cut at :data:`_MAX_TEXT_CHARS`, with its length when cut."""
    if len(text) <= _MAX_TEXT_CHARS:
        return text
    return f"{text[:_MAX_TEXT_CHARS]}… ({len(text):,} characters)"


def _diff_text(diff: ErrorDiff) -> str:
    if diff.skipped:
        return "\nstate: not compared (the states of earlier errors used the reading budget)"
    if diff.error_snapshot_id is None:
        return ""  # the error carries no state: nothing to compare (hook errors, for one)
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


def render_show(
    view: WorkflowView, *, width: int | None = DEFAULT_WIDTH, color: bool = False
) -> str:
    """The text of ``debug-sink show`` for ``view``."""
    view = printable(view)
    console, buffer = _console(width, color)
    s = view.summary
    console.print(Text(f"workflow {view.correlation_id}", style="bold"))
    console.print(f"agents: {_agents(s.get('agents_involved'))}")
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
    first = view.timeline[0].at if view.timeline else None
    rows: list[list[Cell]] = []
    for entry in view.timeline:
        label, details = _describe(entry, view)
        rows.append([_time(entry.at, first), label, entry.agent_name or "-", details])
    console.print()
    render_rows(
        console,
        None,
        [
            Column("time", keep=True),
            Column("event", keep=True),
            Column("agent", keep=True),
            Column("details"),
        ],
        rows,
    )
    if view.more:
        console.print(
            f"\nshown: the first {len(view.timeline):,} events by time; the workflow has more "
            "(show --limit N for more)"
        )
    return _text(buffer)


# -- workflows ----------------------------------------------------------------------------


def render_workflows(
    rows: Sequence[Mapping[str, Any]],
    since: datetime,
    *,
    width: int | None = DEFAULT_WIDTH,
    color: bool = False,
    more: bool = False,
    older: str | None = None,
    scanned_to: datetime | None = None,
) -> str:
    """The text of ``debug-sink workflows``: one row per workflow, newest activity first.
    ``more``: there are older ones (the last row's ``--before`` cursor is printed);
    ``older``: the cursor of the next page, printed; ``scanned_to``: the list stopped
    looking at that moment before the page was full (said, with ``older``)."""
    rows = list(printable(rows))
    console, buffer = _console(width, color)
    if older is None and more and rows:
        older = str(rows[-1]["cursor"])
    stopped = (
        f"looked back to {_when(scanned_to)} without filling the page; older: --before {older}"
        if scanned_to is not None and older is not None
        else None
    )
    if not rows:
        console.print(f"no workflows active since {_when(since)}" if stopped is None else
                      f"no workflows found since {_when(since)}: {stopped}")  # fmt: skip
        return _text(buffer)
    title = (
        f"{_plural(len(rows), 'workflow')} active since {_when(since)}, latest first (times in UTC)"
    )
    cells: list[list[Cell]] = []
    for r in rows:
        errors = int(r.get("error_count") or 0)
        unrecovered = int(r.get("unrecovered_error_count") or 0)
        cells.append(
            [
                str(r["correlation_id"]),
                _styled(str(r["status"]), _WORKFLOW_STYLE),
                f"{errors} ({unrecovered} open)" if unrecovered else str(errors),
                str(r.get("success_count") or 0),
                _duration(r.get("duration_ms")) or "0 ms",
                _short_when(r.get("last_event_at")),
                _agents(r.get("agents")),
            ]
        )
    render_rows(
        console,
        title,
        [
            Column("workflow", keep=True),
            Column("status", keep=True),
            Column("errors", keep=True, justify="right"),
            Column("successes", keep=True, justify="right"),
            Column("duration", keep=True, justify="right"),
            Column("last activity", keep=True),
            Column("agents"),
        ],
        cells,
    )
    if stopped is not None:
        console.print()
        console.print(stopped)
    elif older is not None:
        console.print()
        console.print(f"older: --before {older}")
    return _text(buffer)


# -- errors -------------------------------------------------------------------------------


def render_errors(
    rows: Sequence[Mapping[str, Any]],
    since: datetime,
    *,
    width: int | None = DEFAULT_WIDTH,
    color: bool = False,
) -> str:
    """The text of ``debug-sink errors``: one row per error type, with its latest workflow."""
    rows = printable(rows)
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no errors since {_when(since)}")
        return _text(buffer)
    total = sum(int(r["error_count"]) for r in rows)
    cells: list[list[Cell]] = []
    for r in rows:
        cells.append(
            [
                str(r["error_type"]),
                str(r["error_count"]),
                str(r["workflow_count"]),
                _styled(str(r.get("worst_severity")), _SEVERITY_STYLE),
                f"{r['recovered_count']}/{r['error_count']}",
                ", ".join(r.get("agents") or []),
                _short_when(r.get("last_seen")),
                _clip(str(r.get("last_message") or ""), _MAX_MESSAGE_CHARS),
                str(r.get("last_correlation_id") or "-"),
            ]
        )
    render_rows(
        console,
        f"{_plural(total, 'error')} since {_when(since)}, by type (times in UTC)",
        [
            Column("error type", keep=True),
            Column("count", keep=True, justify="right"),
            Column("workflows", keep=True, justify="right"),
            Column("worst", keep=True),
            Column("recovered", keep=True, justify="right"),
            Column("agents"),
            Column("last seen", keep=True),
            Column("last message", overflow="ellipsis"),
            Column("latest workflow", keep=True, detail=True),
        ],
        cells,
    )
    return _text(buffer)


# -- patterns and known fixes -------------------------------------------------------------


def render_patterns(
    rows: Sequence[Mapping[str, Any]],
    min_success_count: int,
    *,
    width: int | None = DEFAULT_WIDTH,
    color: bool = False,
) -> str:
    """The text of ``debug-sink patterns``."""
    rows = printable(rows)
    console, buffer = _console(width, color)
    if not rows:
        console.print(f"no recovery patterns with at least {min_success_count} successes")
        return _text(buffer)
    cells: list[list[Cell]] = []
    for r in rows:
        confidence = r.get("avg_confidence")
        cells.append(
            [
                str(r.get("error_type")),
                str(r.get("recovery_strategy") or "-"),
                str(r.get("success_count")),
                str(r.get("workflow_count") or "-"),
                _duration(r.get("avg_recovery_duration_ms")) or "-",
                f"{confidence:.2f}" if isinstance(confidence, int | float) else "-",
                _short_when(r.get("last_correlated_at")),
            ]
        )
    render_rows(
        console,
        f"recovery patterns (>= {min_success_count} successes; times in UTC)",
        [
            Column("error type", keep=True),
            Column("strategy", keep=True),
            Column("successes", keep=True, justify="right"),
            Column("workflows", keep=True, justify="right"),
            Column("avg time", keep=True, justify="right"),
            Column("confidence", keep=True, justify="right"),
            Column("last seen", keep=True),
        ],
        cells,
    )
    return _text(buffer)


def render_known_fixes(
    rows: Sequence[Mapping[str, Any]],
    error_type: str,
    scope: str = "",
    *,
    width: int | None = DEFAULT_WIDTH,
    color: bool = False,
) -> str:
    """The text of ``debug-sink known-fixes``: strategies ranked by recoveries, each with its
    example workflows."""
    rows = printable(rows)
    error_type, scope = printable(error_type), printable(scope)
    console, buffer = _console(width, color)
    where = f"{error_type}" + (f" ({scope})" if scope else "")
    if not rows:
        console.print(f"no recoveries recorded for {where}")
        return _text(buffer)
    cells: list[list[Cell]] = []
    for r in rows:
        rate, confidence = r.get("success_rate"), r.get("avg_confidence")
        cells.append(
            [
                str(r["recovery_strategy"]),
                str(r["success_count"]),
                f"{rate * 100:.1f}%" if rate is not None else "-",
                _duration(r.get("avg_recovery_ms")) or "-",
                f"{confidence:.2f}" if confidence is not None else "-",
                str(r.get("stated_count", "-")),
                "\n".join(str(x) for x in r.get("example_correlation_ids") or []) or "-",
            ]
        )
    render_rows(
        console,
        f"known fixes for {where}",
        [
            Column("strategy", keep=True),
            Column("recovered", keep=True, justify="right"),
            Column("rate", keep=True, justify="right"),
            Column("avg time", keep=True, justify="right"),
            Column("confidence", keep=True, justify="right"),
            Column("stated", keep=True, justify="right"),
            Column("example workflows", keep=True, detail=True),
        ],
        cells,
    )
    return _text(buffer)


# -- dead letters -------------------------------------------------------------------------


def render_dead_letters(
    rows: Sequence[Mapping[str, Any]],
    *,
    width: int | None = DEFAULT_WIDTH,
    color: bool = False,
) -> str:
    """The text of ``debug-sink dead-letters list``, newest first."""
    rows = printable(rows)
    console, buffer = _console(width, color)
    if not rows:
        console.print("no dead letters")
        return _text(buffer)
    cells: list[list[Cell]] = []
    for r in rows:
        received = r["received_at"]
        if isinstance(received, str):
            received = datetime.fromisoformat(received)
        cells.append(
            [
                str(r["id"]),
                received.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                f"{r['topic']}[{r['partition']}]@{r['offset']}",
                str(r["error_class"]),
                str(r["reason"]),
                f"{_clip(repr(r['value_preview']), _MAX_VALUE_CHARS)} ({r['value_bytes']} B)",
            ]
        )
    render_rows(
        console,
        f"{_plural(len(rows), 'dead letter')}, newest first (times in UTC)",
        [
            Column("id", keep=True, justify="right"),
            Column("received", keep=True),
            Column("origin", keep=True),
            Column("class", keep=True),
            Column("reason"),
            Column("value", overflow="ellipsis"),
        ],
        cells,
    )
    return _text(buffer)
