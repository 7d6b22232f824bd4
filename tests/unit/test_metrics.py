"""What /metrics carries beside the sink's own series: the process, the platform, the build."""

from __future__ import annotations

import platform

from debug_sink.metrics import Metrics
from debug_sink.version import package_version


class TestMetrics:
    """Every registry has the process and platform collectors and the build info."""

    def test_process_platform_and_build(self) -> None:
        text = Metrics().render().decode()
        for series in (
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "python_info{",
            "python_gc_collections_total",
        ):
            assert series in text, series
        build = (
            f'debug_sink_build_info{{python="{platform.python_version()}",'
            f'version="{package_version()}"}} 1.0'
        )
        assert build in text

    def test_two_registries_do_not_collide(self) -> None:
        """Sinks in one process (tests) each have their own registry with the same series."""
        first, second = Metrics(), Metrics()
        first.batches.inc()
        assert "debug_sink_batches_total 1.0" in first.render().decode()
        assert "debug_sink_batches_total 0.0" in second.render().decode()
