"""Untrusted text (agent names, error types and messages, strategies) is printed as text:
rich markup in it is not interpreted, terminal control sequences in it are escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from debug_sink.cli.common import printable
from debug_sink.cli.render import WorkflowView, render_errors, render_patterns, render_show
from debug_sink.read.queries import ErrorDiff
from debug_sink.read.timeline import TimelineEntry

HOSTILE = "evil[/x] [bold red]boom[/] \x1b[31mred\x1b[0m\x07\r"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def assert_safe(text: str) -> None:
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "[/x]" in text  # shown as typed, not taken as markup
    assert "\\x1b[31mred" in text


class TestRendering:
    """Each view renders hostile strings literally, whatever the width."""

    @pytest.mark.parametrize("width", [80, 200])
    def test_errors(self, width: int) -> None:
        rows = [
            {
                "error_type": HOSTILE,
                "error_count": 1,
                "workflow_count": 1,
                "worst_severity": "high",
                "recovered_count": 0,
                "agents": [HOSTILE],
                "last_seen": NOW,
                "last_message": HOSTILE,
            }
        ]
        assert_safe(render_errors(rows, NOW, width=width))

    def test_patterns(self) -> None:
        rows = [
            {
                "error_type": HOSTILE,
                "recovery_strategy": HOSTILE,
                "success_count": 3,
                "workflow_count": 2,
                "avg_recovery_duration_ms": 10,
                "avg_confidence": 0.9,
                "last_correlated_at": NOW,
            }
        ]
        assert_safe(render_patterns(rows, 3, width=250))

    def test_show(self) -> None:
        error = TimelineEntry(
            kind="error",
            id=uuid.uuid4(),
            at=NOW,
            agent_name=HOSTILE,
            data={"error_type": HOSTILE, "error_message": HOSTILE, "error_severity": "high"},
        )
        view = WorkflowView(
            correlation_id=uuid.uuid4(),
            summary={"agents_involved": [HOSTILE]},
            timeline=[error],
            diffs={},
        )
        assert_safe(render_show(view, width=250))


class TestShowDetails:
    """A step shows the first line of its description; an error without state of its own gets
    no state line (there is nothing to compare)."""

    def view(self, *entries: TimelineEntry, diffs: dict[uuid.UUID, Any] | None = None) -> str:
        view = WorkflowView(
            correlation_id=uuid.uuid4(), summary={}, timeline=list(entries), diffs=diffs or {}
        )
        return render_show(view, width=250)

    def test_step_description(self) -> None:
        data = {"status": "completed", "operation_name": "prompt", "step_type": "turn"}
        short = TimelineEntry(
            kind="step",
            id=uuid.uuid4(),
            at=NOW,
            agent_name="a",
            step_number=1,
            data={**data, "step_description": "turn 1: Fix the cart total"},
        )
        long = TimelineEntry(
            kind="step",
            id=uuid.uuid4(),
            at=NOW,
            agent_name="a",
            step_number=2,
            data={**data, "step_description": "x" * 500 + "\nsecond line"},
        )
        hostile = TimelineEntry(
            kind="step",
            id=uuid.uuid4(),
            at=NOW,
            agent_name="a",
            step_number=3,
            data={**data, "step_description": HOSTILE},
        )
        text = self.view(short, long, hostile)
        assert "completed  turn 1: Fix the cart total\n" in text
        assert "x" * 119 + "…" in text
        assert "x" * 120 not in text
        assert "second line" not in text
        assert_safe(text)

    def test_no_state_line_for_an_error_without_state(self) -> None:
        error_id = uuid.uuid4()
        error = TimelineEntry(
            kind="error",
            id=error_id,
            at=NOW,
            agent_name="a",
            data={"error_type": "Bash: exit 1", "error_message": "m", "error_severity": "medium"},
        )
        stateless = ErrorDiff(error_id, uuid.uuid4(), None, None)
        assert "state" not in self.view(error, diffs={error_id: stateless})
        missing = ErrorDiff(error_id, uuid.uuid4(), uuid.uuid4(), None)
        assert "or the error's state is missing" in self.view(error, diffs={error_id: missing})


class TestPrintable:
    """printable escapes control characters in nested data and keeps the rest."""

    def test_nested(self) -> None:
        value = {"a": ["x\x1by", ("\x00", 1)], "b": "ok\n\ttab"}
        assert printable(value) == {"a": ["x\\x1by", ("\\x00", 1)], "b": "ok\n\ttab"}


def test_thousands_of_agents_are_counted_not_listed() -> None:
    """A workflow whose steps ran in 3,000 differently named workers: ``workflows`` and
    ``show`` name 20 and count the rest (every name was printed, in every row)."""
    import datetime as dt

    from debug_sink.cli.render import render_workflows

    agents = [f"worker-{n}" for n in range(3000)]
    row = {
        "correlation_id": uuid.uuid4(),
        "status": "ok",
        "agents": agents,
        "error_count": 0,
        "success_count": 0,
        "duration_ms": 1.0,
        "last_event_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        "cursor": "x",
    }
    text = render_workflows([row], dt.datetime(2026, 12, 1, tzinfo=dt.UTC), width=200)
    assert "worker-19" in text
    assert "worker-20" not in text  # nor 200, 2000...
    assert "2,980 more" in text
