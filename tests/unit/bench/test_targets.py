"""The targets of issue 7 against results: met, missed, not measured."""

from __future__ import annotations

from debug_sink.bench import targets
from tests.unit.bench.sample import sample_results


class TestTargets:
    """Targets of issue 7 evaluated against results."""

    def test_met_missed_and_not_measured(self) -> None:
        """Higher-is-better ratios and lower-is-better latencies; absent values are None."""
        by_name = {t.name: t for t in targets.evaluate_targets(sample_results())}
        assert by_name["sink / raw COPY, shipped schema"].met is True
        assert by_name["sink / raw COPY, literal seed schema"].met is False
        assert by_name["sink / naive consumer"].met is True
        assert by_name["p99 produce -> committed at 2k/s"].met is False
        assert by_name["p95 timeline"].met is True
        assert by_name["p95 recovery_patterns"].met is False
        assert by_name["p95 known_fixes"].met is None
        assert by_name["peak RSS draining the backlog"].met is None
        assert by_name["two sinks / one sink"].value is None

    def test_limits_match_the_issue(self) -> None:
        """Each target's limit and direction are those of issue 7."""
        limits = {t.name: (t.limit, t.higher_is_better) for t in targets.evaluate_targets({})}
        assert limits["sink / raw COPY, shipped schema"] == (0.85, True)
        assert limits["sink / raw COPY, literal seed schema"] == (2.0, True)
        assert limits["sink / naive consumer"] == (8.0, True)
        assert limits["p99 produce -> committed at 2k/s"] == (500.0, False)
        assert limits["peak RSS draining the backlog"] == (300.0, False)
        assert limits["p95 capture_state_snapshot"] == (5.0, False)
        for name in targets.PER_WORKFLOW_QUERIES:
            assert limits[f"p95 {name}"] == (10.0, False)
        for name in targets.AGGREGATE_QUERIES:
            assert limits[f"p95 {name}"] == (50.0, False)
        assert limits["two sinks / one sink"] == (1.4, True)
        assert limits["p99 SDK capture_snapshot"] == (1.0, False)
        assert limits["p99 debug-sink hook wall time"] == (150.0, False)

    def test_boundary_counts_as_met(self) -> None:
        """A value equal to its limit meets it, in either direction."""
        assert targets.Target("x", 1.4, 1.4, True).met is True
        assert targets.Target("y", 500.0, 500.0, False).met is True
