"""The arithmetic of the measurements: percentiles, summaries, drain windows, cores busy."""

from __future__ import annotations

import pytest

from debug_sink.bench import stats
from debug_sink.bench.stats import CpuSample, cores_busy


class TestStatistics:
    """Percentiles, summaries and the drain window."""

    @pytest.mark.parametrize(
        ("values", "q", "expected"),
        [
            ([1, 2, 3, 4], 50, 2.5),
            ([4, 1, 3, 2], 0, 1),
            ([4, 1, 3, 2], 100, 4),
            ([10], 99, 10),
            (list(range(1, 101)), 99, 99.01),
            ([0, 10], 95, 9.5),
        ],
    )
    def test_percentile_interpolates_linearly(
        self, values: list[float], q: float, expected: float
    ) -> None:
        """Linear interpolation between closest ranks, independent of input order."""
        assert stats.percentile(values, q) == pytest.approx(expected)

    def test_percentile_rejects_empty_and_out_of_range(self) -> None:
        """No percentile of nothing, none outside 0..100."""
        with pytest.raises(ValueError, match="empty"):
            stats.percentile([], 50)
        with pytest.raises(ValueError, match="outside"):
            stats.percentile([1.0], 101)

    def test_summarize(self) -> None:
        """count, p50, p95, p99, max and mean; an empty input gives only a zero count."""
        summary = stats.summarize([float(v) for v in range(1, 101)])
        assert summary == {
            "count": 100,
            "p50": 50.5,
            "p95": 95.05,
            "p99": 99.01,
            "max": 100.0,
            "mean": 50.5,
        }
        assert stats.summarize([]) == {"count": 0}

    def test_drain_window_excludes_the_first_batch(self) -> None:
        """Events committed between the first and the last commit: the first batch's events
        were committed at the window's start and do not count."""
        batches = [
            stats.BatchLine(at=12.0, events=300, duration_ms=5),
            stats.BatchLine(at=10.0, events=100, duration_ms=5),
            stats.BatchLine(at=11.0, events=200, duration_ms=5),
        ]
        assert stats.drain_window(batches) == (500, 2.0)
        assert stats.drain_window(batches, after=10.5) == (300, 1.0)
        assert stats.drain_window(batches[:1]) == (0, 0.0)
        assert stats.drain_window([]) == (0, 0.0)


class TestCoresBusy:
    """cores_busy: average cores per component over a window, from cumulative CPU samples."""

    def test_interpolates_between_samples(self) -> None:
        samples = [
            CpuSample(at=100.0, sinks=0.0, postgres=0.0, broker=0.0),
            CpuSample(at=102.0, sinks=2.0, postgres=1.0, broker=0.2),
            CpuSample(at=104.0, sinks=4.0, postgres=1.0, broker=0.4),
        ]
        out = cores_busy(samples, 101.0, 103.0)
        assert out == {"sinks": 1.0, "postgres": 0.25, "broker": 0.1, "total": 1.35}

    def test_empty_window_or_too_few_samples(self) -> None:
        """An empty window or a single sample gives no figures rather than a guess."""
        one = [CpuSample(at=1.0, sinks=0.0, postgres=0.0, broker=0.0)]
        assert cores_busy(one, 0.0, 2.0) == {}
        assert cores_busy(one * 2, 2.0, 2.0) == {}


class TestSpread:
    """spread: the median and range of repeated measurements."""

    def test_median_min_max_and_runs(self) -> None:
        """Odd and even counts (the middle two averaged); the runs kept in order."""
        assert stats.spread([3.0, 1.0, 2.0]) == {
            "median": 2.0,
            "min": 1.0,
            "max": 3.0,
            "runs": [3.0, 1.0, 2.0],
        }
        assert stats.spread([4, 1, 3, 2])["median"] == 2.5
        assert stats.spread([]) == {}
