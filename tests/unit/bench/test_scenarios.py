"""The registry of measured scenarios."""

from __future__ import annotations

from debug_sink.bench.config import SECTIONS
from debug_sink.bench.scenarios import SCENARIOS


class TestScenarios:
    """SCENARIOS: one scenario per section, in the order the sections run."""

    def test_one_scenario_per_section(self) -> None:
        """Every section the command line accepts has a scenario, and nothing else does."""
        assert tuple(SCENARIOS) == SECTIONS
