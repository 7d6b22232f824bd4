"""bench.sinks.drain's watchdog: a process that stops committing is stopped, not waited for.

A rival consumer stalled mid-drain (twice, against Tansu) and the bench then waited out its
30-minute timeout. The programs here are stand-ins that write the sink's log lines; the
harness is the part of one that ``drain`` uses (no PostgreSQL or broker is started).
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.progress import Progress

from debug_sink.bench.sinks import Stalled, drain

_BATCH = '{"event": "batch_committed", "events": 10, "duration_ms": 1.0}'


def _program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body), "utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")
    return name


def _harness(tmp_path: Path) -> Any:
    return SimpleNamespace(
        root=tmp_path,
        progress=Progress(disable=True),
        bootstrap="127.0.0.1:1",
        cfg=SimpleNamespace(session_timeout_ms=10_000),
        postgres=SimpleNamespace(pid=None),
        kafka=SimpleNamespace(pid=None),
    )


async def test_a_drain_that_stops_committing_is_stalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = _program(
        tmp_path,
        monkeypatch,
        "stalls",
        f"""
        import sys, time
        for _ in range(3):
            print({_BATCH!r}, file=sys.stderr, flush=True)
            time.sleep(0.2)
        time.sleep(600)  # received nothing more
        """,
    )
    started = time.monotonic()
    with pytest.raises(Stalled, match="no batch committed for 2 s"):
        await drain(
            _harness(tmp_path), "postgresql://x", {"group_id": "g"}, 100, "rival",
            stall_s=2, timeout=30, program=(program,),
        )  # fmt: skip
    assert time.monotonic() - started < 20  # stopped at the stall, not at the timeout


async def test_a_drain_that_keeps_committing_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slower than the stall window as a whole, but never silent for that long."""
    program = _program(
        tmp_path,
        monkeypatch,
        "steady",
        f"""
        import sys, time
        for _ in range(8):
            print({_BATCH!r}, file=sys.stderr, flush=True)
            time.sleep(0.5)
        """,
    )
    drained = await drain(
        _harness(tmp_path), "postgresql://x", {"group_id": "g"}, 80, "rival",
        stall_s=2, timeout=30, program=(program,),
    )  # fmt: skip
    assert sum(b.events for s in drained.sinks for b in s.batches) == 80
