"""The ``hook`` section's inputs are a Claude Code session the hook command maps, and its
figures reach the report."""

from __future__ import annotations

import itertools
import random
from collections import Counter

from debug_sink.bench import report
from debug_sink.bench.scenarios.hook import session_inputs
from debug_sink.hooks.mapping import map_hook
from debug_sink.settings import Settings
from tests.unit.bench.test_report import render


class TestHookScenario:
    """Inputs and report rows of the hook benchmark."""

    def test_one_session_of_prompts_tool_calls_and_failures(self) -> None:
        inputs = list(itertools.islice(session_inputs(random.Random(1)), 200))
        events = Counter(i["hook_event_name"] for i in inputs)
        assert set(events) == {
            "UserPromptSubmit",
            "PreToolUse",
            "PostToolUse",
            "PostToolUseFailure",
            "Stop",
        }
        ended = events["PostToolUse"] + events["PostToolUseFailure"]
        assert events["PreToolUse"] - ended in (0, 1)  # the slice may end between the two
        assert 0.05 < events["PostToolUseFailure"] / events["PreToolUse"] < 0.2
        assert len({i["session_id"] for i in inputs}) == 1

    def test_every_input_maps_to_events_the_sink_accepts(self) -> None:
        from debug_sink.hooks.finish import Finisher

        finisher = Finisher(Settings())
        state: dict[str, object] = {}
        kinds: Counter[str] = Counter()
        for n, hook in enumerate(itertools.islice(session_inputs(random.Random(2)), 60)):
            for kind, event in map_hook(hook, state, 1_800_000_000.0 + n).records:
                finisher.finish(kind, event)
                kinds[kind] += 1
        assert kinds["hook"] == 60
        assert kinds["error"] > 0
        assert kinds["success"] > 0  # recoveries of the failed calls

    def test_report_rows(self) -> None:
        figures = {"p50": 61.2, "p95": 90.0, "p99": 120.4, "count": 400}
        results = {
            "hook": {
                "broker_up_ms": figures,
                "broker_down_ms": {**figures, "p50": 70},
                "interpreter_ms": {**figures, "p50": 21, "p99": 30, "count": 100},
            }
        }
        text = render(report.details_table(results))
        assert "61 / 120 ms (400)" in text
        assert "70 / 120 ms (400)" in text
        assert "21 / 30 ms (100)" in text
        assert "broker down" in text
        assert "the floor" in text
