"""A workflow's waterfall: its steps as bars on one time axis, nested by parent step, the
attempts of a step side by side on one row, LLM calls under the step that made them, errors
and successes as marks where they happened.

Owns :func:`build_waterfall`, pure (timeline entries in, a :class:`Waterfall` out, no I/O),
which the workflow page draws with one SVG per row (positions are SVG attributes on a
0..:data:`WIDTH` axis, never inline styles, so the page keeps its strict CSP).

Rules:

- a row is a step number under one parent step (``parent_step_id``): its attempts are
  segments of that row, in attempt order; rows nest under the row of their parent step and
  siblings are ordered by start time, then step number;
- a step's bar runs from ``started_at`` to ``completed_at`` (else ``started_at`` +
  ``duration_ms``); a step still open runs to the end of the axis and says so;
- an LLM call is a bar ending at its time and ``latency_ms`` long, on an "LLM calls" row
  under the step row of its ``execution_step`` (and agent, when one matches);
- an error or a success marks the row of the step that references it (the step's
  ``error_event_id`` / ``success_event_id``), else the row of its ``execution_step``; a
  hand-over, and anything without a step, marks the "workflow" row on top;
- the axis runs from the earliest to the latest moment of all of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

from debug_sink.read.timeline import TimelineEntry

__all__ = [
    "MARKER_LABEL_CHARS",
    "WIDTH",
    "Marker",
    "Row",
    "Segment",
    "Waterfall",
    "build_waterfall",
]

#: The axis of every row's SVG: 0 is the workflow's first moment, WIDTH its last.
WIDTH: Final = 1000.0
#: The narrowest bar drawn, so that a 1 ms step is still visible.
_MIN_BAR: Final = 2.0
#: Characters of a mark's label (an error's type and message): the page shows it twice.
MARKER_LABEL_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class Segment:
    """A bar: an attempt of a step, or an LLM call."""

    id: UUID
    x: float
    width: float
    start_ms: float
    duration_ms: float
    status: str
    label: str
    open: bool = False


@dataclass(frozen=True, slots=True)
class Marker:
    """A moment on a row: an error, a success or a hand-over."""

    id: UUID
    kind: Literal["error", "success", "transformation"]
    x: float
    at_ms: float
    label: str


@dataclass(slots=True)
class Row:
    """One line of the waterfall."""

    kind: Literal["workflow", "step", "llm"]
    depth: int
    label: str
    agents: list[str] = field(default_factory=list)
    number: str = ""
    segments: list[Segment] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    #: Earliest start, for ordering siblings.
    start_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Waterfall:
    """The rows in display order and the axis: ``start`` (the first moment) and ``span_ms``;
    ``ticks`` are the axis labels at 0, 1/4, 1/2, 3/4 and the whole span (in ms)."""

    start: datetime | None
    span_ms: float
    rows: Sequence[Row]

    @property
    def ticks(self) -> list[float]:
        return [self.span_ms * i / 4 for i in range(5)]


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


@dataclass(slots=True)
class _Step:
    entry: TimelineEntry
    start: datetime
    end: datetime | None
    parent: UUID | None


def _steps(entries: Sequence[TimelineEntry]) -> list[_Step]:
    steps = []
    for entry in entries:
        if entry.kind != "step":
            continue
        data = entry.data
        start = _moment(data.get("started_at")) or entry.at
        end = _moment(data.get("completed_at"))
        duration = _number(data.get("duration_ms"))
        if end is None and duration is not None and data.get("status") != "started":
            end = start + timedelta(milliseconds=duration)
        steps.append(_Step(entry, start, end, _uuid(data.get("parent_step_id"))))
    return steps


_MAX_LATENCY_MS = 86_400_000.0


def _llm_bounds(entry: TimelineEntry) -> tuple[datetime, datetime]:
    latency = _number(entry.data.get("latency_ms"))
    if latency is None or latency < 0:
        return entry.at, entry.at
    # An agent's figure: at most a day is drawn (1e15 ms would overflow the date).
    return entry.at - timedelta(milliseconds=min(latency, _MAX_LATENCY_MS)), entry.at


def build_waterfall(entries: Sequence[TimelineEntry]) -> Waterfall:
    """The waterfall of a workflow's ordered timeline (see the module doc)."""
    steps = _steps(entries)
    moments: list[datetime] = []
    for s in steps:
        moments.append(s.start)
        if s.end is not None:
            moments.append(s.end)
    for entry in entries:
        if entry.kind == "llm_call":
            moments.extend(_llm_bounds(entry))
        elif entry.kind != "step":
            moments.append(entry.at)
    if not moments:
        return Waterfall(None, 0.0, [])
    first, last = min(moments), max(moments)
    span_ms = max((last - first).total_seconds() * 1000, 1.0)

    def ms(moment: datetime) -> float:
        return (moment - first).total_seconds() * 1000

    def x(offset_ms: float) -> float:
        return round(min(max(offset_ms / span_ms, 0.0), 1.0) * WIDTH, 2)

    def bar(start_ms: float, duration_ms: float) -> tuple[float, float]:
        left = x(start_ms)
        width = max(x(start_ms + duration_ms) - left, _MIN_BAR)
        return min(left, WIDTH - _MIN_BAR), width

    # -- rows of steps: one per (parent step, step number), attempts side by side
    by_id = {s.entry.id: s for s in steps}
    groups: dict[tuple[UUID | None, int | None], list[_Step]] = defaultdict(list)
    for s in steps:
        parent = s.parent if s.parent in by_id else None
        groups[(parent, s.entry.step_number)].append(s)
    row_of_step: dict[UUID, Row] = {}
    rows_of: dict[tuple[UUID | None, int | None], Row] = {}
    for key, members in groups.items():
        members.sort(key=lambda s: (s.entry.attempt or 1, s.start))
        number = "" if key[1] is None else str(key[1])
        operations = _unique(str(s.entry.data.get("operation_name") or "?") for s in members)
        row = Row(
            "step",
            0,
            " / ".join(operations),
            _unique(s.entry.agent_name or "?" for s in members),
            number,
            start_ms=min(ms(s.start) for s in members),
        )
        for s in members:
            start_ms = ms(s.start)
            is_open = s.end is None
            duration = (span_ms - start_ms) if is_open else max(ms(s.end) - start_ms, 0.0)  # type: ignore[arg-type]
            left, width = bar(start_ms, duration)
            attempt = s.entry.attempt or 1
            row.segments.append(
                Segment(
                    s.entry.id,
                    left,
                    width,
                    start_ms,
                    duration,
                    str(s.entry.data.get("status") or "?"),
                    f"attempt {attempt}",
                    is_open,
                )
            )
            row_of_step[s.entry.id] = row
        rows_of[key] = row

    # Children of a row: the rows whose parent step is one of its attempts.
    children: dict[int | None, list[Row]] = defaultdict(list)
    for (parent, _), row in rows_of.items():
        children[None if parent is None else id(row_of_step[parent])].append(row)

    # -- LLM calls under their step's row, errors and successes on it
    llm_rows: dict[int | None, Row] = {}
    workflow_row = Row("workflow", 0, "workflow")

    def row_for(entry: TimelineEntry, ref: str | None) -> Row | None:
        if ref is not None:
            for s in steps:
                if _uuid(s.entry.data.get(ref)) == entry.id:
                    return row_of_step[s.entry.id]
        if entry.step_number is None:
            return None
        candidates = [row for (_, number), row in rows_of.items() if number == entry.step_number]
        for row in candidates:
            if entry.agent_name in row.agents:
                return row
        return candidates[0] if candidates else None

    for entry in entries:
        if entry.kind == "llm_call":
            home = row_for(entry, None)
            start, end = _llm_bounds(entry)
            start_ms = ms(start)
            duration = ms(end) - start_ms
            left, width = bar(start_ms, duration)
            model = str(entry.data.get("tool_name") or "?")
            segment = Segment(
                entry.id,
                left,
                width,
                start_ms,
                duration,
                str(entry.data.get("success_classification") or "call"),
                model,
            )
            home_key = id(home) if home is not None else None
            llm = llm_rows.get(home_key)
            if llm is None:
                agents = list(home.agents) if home is not None else []
                llm = Row("llm", 1 if home is not None else 0, "LLM calls", agents)
                llm_rows[home_key] = llm
            llm.segments.append(segment)
            if entry.agent_name and entry.agent_name not in llm.agents:
                llm.agents.append(entry.agent_name)
        elif entry.kind in ("error", "success", "transformation"):
            if entry.kind == "error":
                home = row_for(entry, "error_event_id")
                label = f"{entry.data.get('error_type')}: {entry.data.get('error_message')}"
            elif entry.kind == "success":
                home = row_for(entry, "success_event_id")
                label = f"{entry.data.get('success_type')} {entry.data.get('operation_name')}"
            else:
                home = None
                label = (
                    f"{entry.data.get('source_agent')} -> {entry.data.get('target_agent')}"
                    f" ({entry.data.get('transformation_type')})"
                )
            target = home or workflow_row
            offset = ms(entry.at)
            if len(label) > MARKER_LABEL_CHARS:  # an error's message: free text, any length
                label = label[:MARKER_LABEL_CHARS] + "…"
            target.markers.append(Marker(entry.id, entry.kind, x(offset), offset, label))

    # -- display order: depth first, siblings by start then number
    ordered: list[Row] = []
    if workflow_row.markers:
        ordered.append(workflow_row)
    if None in llm_rows:
        ordered.append(llm_rows[None])

    def siblings(parent: int | None) -> list[Row]:
        return sorted(
            children.get(parent, []),
            key=lambda r: (r.start_ms, int(r.number) if r.number else -1),
        )

    # Iterative (a chain of thousands of nested steps is data, not a recursion limit), and
    # every row once: rows only reachable through a cycle of parents (agents' data) follow
    # at the top level.
    placed: set[int] = set()
    roots = siblings(None)
    every = [row for rows in children.values() for row in rows]
    while True:
        stack = [(row, 0) for row in reversed(roots) if id(row) not in placed]
        while stack:
            row, depth = stack.pop()
            if id(row) in placed:
                continue
            placed.add(id(row))
            row.depth = depth
            ordered.append(row)
            llm = llm_rows.get(id(row))
            if llm is not None:
                llm.depth = depth + 1
                ordered.append(llm)
            stack.extend((child, depth + 1) for child in reversed(siblings(id(row))))
        roots = [row for row in every if id(row) not in placed][:1]
        if not roots:
            break
    return Waterfall(first, span_ms, ordered)


def _unique(values: Any) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)
