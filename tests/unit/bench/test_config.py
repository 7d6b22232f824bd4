"""Sizes and sections of a run."""

from __future__ import annotations

import pytest

from debug_sink.bench import config


class TestConfiguration:
    """Sizes and sections."""

    def test_quick_and_full_sizes(self) -> None:
        """``--quick`` shrinks every size; ``--events`` overrides the backlog either way."""
        quick = config.BenchConfig.make(quick=True)
        full = config.BenchConfig.make()
        assert (quick.query_events, full.query_events) == (1_000_000, 10_000_000)
        assert full.events == 200_000
        assert full.rss_events == 1_000_000
        assert quick.events < full.events
        assert quick.rss_events <= quick.events
        assert full.latency_rates == (2_000, 10_000)
        assert config.BenchConfig.make(quick=True, events=5000).events == 5000

    def test_sections(self) -> None:
        """``--only`` keeps the canonical order; unknown names are refused."""
        assert config.BenchConfig.make(only=["sdk", "throughput"]).sections == (
            "throughput",
            "sdk",
        )
        with pytest.raises(ValueError, match="unknown section"):
            config.BenchConfig.make(only=["nope"])

    def test_workload_repeats_and_prefill(self) -> None:
        """The realistic workload into 5M events, 3 repeats by default (quick: 500k); both
        overridable; an unknown workload or fewer than one repeat is refused."""
        full = config.BenchConfig.make()
        assert (full.workload, full.repeats, full.prefill_events) == ("realistic", 3, 5_000_000)
        assert full.realistic
        quick = config.BenchConfig.make(quick=True, repeats=1, prefill=0, workload="simple")
        assert (quick.workload, quick.repeats, quick.prefill_events) == ("simple", 1, 0)
        assert not quick.realistic
        assert config.BenchConfig.make(quick=True).prefill_events == 500_000
        with pytest.raises(ValueError, match="unknown workload"):
            config.BenchConfig.make(workload="best")
        with pytest.raises(ValueError, match="repeats"):
            config.BenchConfig.make(repeats=0)

    def test_wal_segments(self) -> None:
        """32 WAL segments prepared by default, full and quick; 0 (a cold server) allowed;
        negative or absurd counts refused."""
        assert config.BenchConfig.make().wal_segments == 32
        assert config.BenchConfig.make(quick=True, wal_segments=0).wal_segments == 0
        for bad in (-1, 257):
            with pytest.raises(ValueError, match="wal segments"):
                config.BenchConfig.make(wal_segments=bad)
