"""The targets of issue 15 (and those of issue 7 it kept) against results."""

from __future__ import annotations

from debug_sink.bench import targets
from tests.unit.bench.sample import sample_results


class TestTargets:
    """Targets evaluated against results: met, missed, not measured."""

    def test_met_missed_and_not_measured(self) -> None:
        """Higher-is-better ratios and lower-is-better latencies; absent values are None."""
        by_name = {t.name: t for t in targets.evaluate_targets(sample_results())}
        assert by_name["one sink / raw COPY (medians)"].met is True
        assert by_name["one sink / typical consumer (c)"].met is False
        assert by_name["sink events per CPU-s / raw COPY's"].met is True
        assert by_name["two sinks / raw COPY (medians)"].met is None
        assert by_name["p99 produce -> committed at 2k/s"].met is False
        assert by_name["p99 produce -> committed at 10k/s"].met is None
        assert by_name["p95 timeline"].met is True
        assert by_name["p95 recovery_patterns"].met is False
        assert by_name["p95 known_fixes"].met is None
        assert by_name["peak RSS draining the backlog"].met is None
        assert by_name["two sinks / one sink"].value is None

    def test_limits_match_the_issues(self) -> None:
        """Each target's limit, direction and issue: 15's table, then what it kept of 7."""
        found = {
            t.name: (t.limit, t.higher_is_better, t.issue) for t in targets.evaluate_targets({})
        }
        assert found["one sink / raw COPY (medians)"] == (0.6, True, 15)
        assert found["two sinks / raw COPY (medians)"] == (0.85, True, 15)
        assert found["one sink / typical consumer (c)"] == (3.0, True, 15)
        assert found["sink events per CPU-s / raw COPY's"] == (0.5, True, 15)
        assert found["p99 produce -> committed at 10k/s"] == (300.0, False, 15)
        assert found["p99 produce -> committed at 2k/s"] == (150.0, False, 15)
        assert found["peak RSS draining the backlog"] == (200.0, False, 15)
        for name in targets.PER_WORKFLOW_QUERIES:
            assert found[f"p95 {name}"] == (2.0, False, 15)
        assert found["p95 capture_state_snapshot"] == (5.0, False, 7)
        for name in targets.AGGREGATE_QUERIES:
            assert found[f"p95 {name}"] == (50.0, False, 7)
        assert found["two sinks / one sink"] == (1.4, True, 7)
        assert found["p99 SDK capture_snapshot"] == (1.0, False, 7)
        assert found["p99 debug-sink hook wall time"] == (150.0, False, 16)

    def test_boundary_counts_as_met(self) -> None:
        """A value equal to its limit meets it, in either direction."""
        assert targets.Target("x", 1.4, 1.4, True).met is True
        assert targets.Target("y", 500.0, 500.0, False).met is True
