"""The Live page's figures from a sink's own /metrics (debug_sink.ui.live)."""

from __future__ import annotations

import pytest

from debug_sink.metrics import Metrics
from debug_sink.ui.live import Scraper, parse, rates


def exposition(consumed: int, written: int) -> str:
    """What a real sink's /metrics says after consuming and writing these many events."""
    metrics = Metrics()
    metrics.consumed.labels(topic="debug.error_events").inc(consumed)
    metrics.consumed.labels(topic="debug.workflow_steps").inc(consumed)
    metrics.written.labels(kind="error").inc(written)
    metrics.dead_letters.labels(topic="debug.error_events", error_class="schema").inc(3)
    metrics.lag.labels(topic="debug.error_events", partition="0").set(7)
    metrics.lag.labels(topic="debug.error_events", partition="1").set(5)
    metrics.parked_rows.set(4)
    metrics.correlator_runs.labels(outcome="ran").inc(2)
    metrics.batches.inc(9)
    return metrics.render().decode()


class TestParse:
    """The sink's exposition becomes the page's figures, summed over labels."""

    def test_figures(self) -> None:
        figures = parse(exposition(10, 15))
        assert figures.events_consumed == 20
        assert figures.events_by_topic == {"debug.error_events": 10, "debug.workflow_steps": 10}
        assert figures.rows_written == 15
        assert figures.dead_letters == 3
        assert figures.lag == 12
        assert figures.lag_by_partition == {"debug.error_events[0]": 7, "debug.error_events[1]": 5}
        assert figures.parked == 4
        assert figures.correlator_runs == {"ran": 2}
        assert figures.batches == 9
        assert figures.version

    def test_rates_between_two_readings(self) -> None:
        before, after = parse(exposition(10, 15)), parse(exposition(30, 55))
        got = rates(before, after, 2.0)
        assert got["events"] == 20.0  # (60 - 20) / 2
        assert got["rows"] == 20.0
        assert got["dead_letters"] == 0.0

    def test_a_restarted_sink_counts_from_zero(self) -> None:
        got = rates(parse(exposition(100, 100)), parse(exposition(5, 5)), 1.0)
        assert got["events"] == 10.0


class TestScraper:
    async def test_a_sink_that_does_not_answer_is_down_with_the_reason(self) -> None:
        (reading,) = await Scraper(["http://127.0.0.1:9/metrics"], timeout=1).read()
        assert reading.figures is None
        assert reading.error is not None
        assert "unreachable" in reading.error

    @pytest.mark.parametrize("url", ["http://127.0.0.1:1/metrics"])
    async def test_first_reading_has_no_rates(self, url: str) -> None:
        (reading,) = await Scraper([url], timeout=1).read()
        assert reading.rates is None
