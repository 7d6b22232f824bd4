"""The printed tables (rendered without colour)."""

from __future__ import annotations

from rich.console import Console

from debug_sink.bench import report
from debug_sink.bench.targets import evaluate_targets
from tests.unit.bench.sample import sample_results


def render(table: object, width: int = 160) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(table)
    return console.export_text()


class TestReport:
    """The printed tables."""

    def test_results_table(self) -> None:
        """One row per target with its value, limit and status; notes as the caption."""
        results = sample_results()
        text = render(report.results_table(results, evaluate_targets(results)))
        assert "sink / raw COPY, shipped schema" in text
        assert "0.90x" in text
        assert "\u2265 0.85x" in text
        assert "510 ms" in text
        assert "\u2264 500 ms" in text
        assert text.count("MISSED") == 3
        assert "not measured" in text
        assert "a note for the caption" in text

    def test_details_table(self) -> None:
        """Rates, latencies and query percentiles; a query that failed shows its note."""
        text = render(report.details_table(sample_results()))
        assert "9,000 (11.5)" in text
        assert "8,000 (10,000)" in text
        assert "120 / 510 ms (1,999/s)" in text
        assert "2.00 ms" in text
        assert "not measured: no function" in text
