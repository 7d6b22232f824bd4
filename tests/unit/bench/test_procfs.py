"""CPU seconds of a process from /proc (Linux only)."""

from __future__ import annotations

import os
import time

import pytest

from debug_sink.bench.procfs import cpu_seconds, process_children


class TestCpuSeconds:
    """cpu_seconds: a process's CPU time with its descendants, from /proc."""

    def test_reads_this_process_cpu(self) -> None:
        """/proc accounting sees CPU this process burns (Linux only)."""
        if not os.path.isdir("/proc"):
            pytest.skip("no /proc")
        before = cpu_seconds(os.getpid(), children=process_children())
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        after = cpu_seconds(os.getpid(), children=process_children())
        assert before is not None
        assert after is not None
        assert after - before >= 0.2
