"""The workflow page's waterfall (debug_sink.ui.waterfall): rows, nesting, bars and marks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from debug_sink.read.timeline import TimelineEntry, order_timeline
from debug_sink.ui.waterfall import WIDTH, build_waterfall

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def step(
    number: int,
    start: float,
    end: float | None,
    *,
    attempt: int = 1,
    status: str = "completed",
    parent: uuid.UUID | None = None,
    agent: str = "coder",
    operation: str = "op",
    **data: Any,
) -> TimelineEntry:
    row = {
        "started_at": at(start).isoformat(),
        "completed_at": at(end).isoformat() if end is not None else None,
        "status": status,
        "operation_name": operation,
        "parent_step_id": str(parent) if parent else None,
        **data,
    }
    return TimelineEntry("step", uuid.uuid4(), at(start), agent, number, attempt, (), row)


def event(kind: Any, ms: float, *, number: int | None = None, agent: str = "coder", **data: Any):
    return TimelineEntry(kind, uuid.uuid4(), at(ms), agent, number, None, (), data)


class TestRows:
    """One row per step number under one parent; attempts are segments of that row."""

    def test_attempts_side_by_side_on_one_row(self) -> None:
        first = step(1, 0, 100, status="failed")
        retry = step(1, 150, 300, attempt=2)
        second = step(2, 300, 1000)
        fall = build_waterfall(order_timeline([second, retry, first]))
        rows = [r for r in fall.rows if r.kind == "step"]
        assert [r.number for r in rows] == ["1", "2"]
        assert [s.label for s in rows[0].segments] == ["attempt 1", "attempt 2"]
        assert [s.status for s in rows[0].segments] == ["failed", "completed"]

    def test_bars_on_one_axis(self) -> None:
        """The axis runs from the first to the last moment; a bar's x and width are its
        start and duration on it, 0..WIDTH."""
        a = step(1, 0, 250)
        b = step(2, 250, 1000)
        fall = build_waterfall(order_timeline([a, b]))
        assert fall.start == T0
        assert fall.span_ms == 1000
        first, second = (r.segments[0] for r in fall.rows)
        assert (first.x, first.width) == (0.0, 250.0)
        assert (second.x, second.width) == (250.0, 750.0)
        assert second.duration_ms == 750
        assert fall.ticks == [0, 250, 500, 750, 1000]

    def test_children_nest_under_their_parent(self) -> None:
        """A step whose parent_step_id is an attempt of another row is a row below it, one
        level deeper, before the parent's later siblings."""
        parent = step(1, 0, 500, status="failed", operation="draft")
        sibling = step(3, 600, 900, operation="review")
        child = step(2, 510, 590, parent=parent.id, operation="draft_from_template")
        grandchild = step(4, 520, 560, parent=child.id, operation="render")
        fall = build_waterfall(order_timeline([sibling, grandchild, child, parent]))
        shown = [(r.label, r.depth) for r in fall.rows if r.kind == "step"]
        assert shown == [("draft", 0), ("draft_from_template", 1), ("render", 2), ("review", 0)]

    def test_unknown_parent_is_a_top_row(self) -> None:
        orphan = step(1, 0, 10, parent=uuid.uuid4())
        (row,) = build_waterfall([orphan]).rows
        assert row.depth == 0

    def test_open_step_runs_to_the_end_of_the_axis(self) -> None:
        done = step(1, 0, 400)
        running = step(2, 400, None, status="started")
        later = event("success", 1000, number=1, success_type="task_completion")
        fall = build_waterfall(order_timeline([done, running, later]))
        segment = next(r for r in fall.rows if r.number == "2").segments[0]
        assert segment.open
        assert segment.x + segment.width == WIDTH

    def test_tiny_step_still_visible(self) -> None:
        long = step(1, 0, 100_000)
        tiny = step(2, 100_000, 100_000)
        fall = build_waterfall([long, tiny])
        assert next(r for r in fall.rows if r.number == "2").segments[0].width >= 2.0


class TestCallsAndMarks:
    """LLM calls sit under their step; errors, successes and hand-overs mark their row."""

    def test_llm_call_row_under_its_step(self) -> None:
        a = step(1, 0, 1000, agent="coder")
        call = event("llm_call", 800, number=1, agent="coder", latency_ms=300, tool_name="m-1")
        fall = build_waterfall(order_timeline([a, call]))
        kinds = [(r.kind, r.depth) for r in fall.rows]
        assert kinds == [("step", 0), ("llm", 1)]
        bar = fall.rows[1].segments[0]
        assert bar.label == "m-1"
        assert (bar.x, bar.width) == (500.0, 300.0)  # ends at its time, latency long

    def test_error_marks_the_step_that_references_it(self) -> None:
        error = event("error", 90, number=1, error_type="TimeoutError", error_message="slow")
        failed = step(1, 0, 100, status="failed", error_event_id=str(error.id))
        other = step(2, 100, 200)
        fall = build_waterfall(order_timeline([failed, other, error]))
        row = next(r for r in fall.rows if r.number == "1")
        (mark,) = row.markers
        assert (mark.kind, mark.label, mark.x) == ("error", "TimeoutError: slow", 450.0)

    def test_handover_marks_the_workflow_row_on_top(self) -> None:
        a = step(1, 0, 100)
        handover = event(
            "transformation", 50, source_agent="a", target_agent="b", transformation_type="x"
        )
        fall = build_waterfall(order_timeline([a, handover]))
        assert fall.rows[0].kind == "workflow"
        assert fall.rows[0].markers[0].label == "a -> b (x)"

    def test_nothing_to_draw(self) -> None:
        fall = build_waterfall([])
        assert (fall.start, fall.rows) == (None, [])
