"""The printed tables (rendered without colour)."""

from __future__ import annotations

from rich.console import Console

from debug_sink.bench import report
from debug_sink.bench.targets import evaluate_targets
from tests.unit.bench.sample import sample_results


def render(table: object, width: int = 200) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(table)
    return console.export_text()


class TestReport:
    """The printed tables."""

    def test_results_table(self) -> None:
        """One row per target with its issue, value, limit and status; notes as the
        caption."""
        results = sample_results()
        text = render(report.results_table(results, evaluate_targets(results)))
        assert "one sink / raw COPY (medians)" in text
        assert "0.65x" in text
        assert "\u2265 0.60x" in text
        assert "510 ms" in text
        assert "\u2264 150 ms" in text
        assert text.count("MISSED") == 3
        assert "not measured" in text
        assert "a note for the caption" in text

    def test_details_table(self) -> None:
        """Rates as median (min-max) of the repeats, CPU efficiency and cores, latencies and
        query percentiles; a query that failed shows its note."""
        text = render(report.details_table(sample_results()))
        assert "realistic (40,000, 500,000, 3)" in text
        assert "9,000 (8,500\u20139,400)" in text
        assert "13,846 (13,000\u201314,000)" in text
        assert "3,600 (3,000\u20134,000)" in text
        assert "8,000 (7,000\u20138,100)" in text
        assert "0.80 / 0.50 / 0.05 = 1.35" in text
        assert "120 / 510 ms (1,999/s)" in text
        assert "1.50 ms" in text
        assert "not measured: no function" in text
