"""What the emitter still holds when the agent's process exits without close().

An agent that forgets ``close()`` -- or whose ``asyncio.run(main())`` ends by a return, by
``sys.exit`` or by an uncaught exception, or a ``multiprocessing`` child that simply returns --
must not lose its queued events without a trace: at exit they are delivered within
``close_timeout``, and what cannot be is counted and logged.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(60)

_PRELUDE = """
import asyncio, atexit, multiprocessing, multiprocessing.util, sys, uuid

emitter = None

def report():
    s = emitter.stats
    print("REPORT", len(emitter.messages), s.queued, dict(s.dropped_by_reason), emitter.closed,
          flush=True)

# Registered before the SDK is imported: atexit runs it after the SDK's own exit hook.
atexit.register(report)

from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter
from debug_sink.settings import Settings
from debug_sink.wire.events import SnapshotEvent

class Connecting(MemoryEmitter):
    # Takes a moment to connect, as a producer does: the agent loop ends first.

    connected_on = None

    async def _open_transport(self):
        if self.connected_on is not asyncio.get_running_loop():
            await asyncio.sleep(0.2)
            self.connected_on = asyncio.get_running_loop()
        await super()._open_transport()

def make(close_timeout=10.0):
    global emitter
    emitter = Connecting(Settings.model_construct(), EmitterConfig(close_timeout=close_timeout))
    return emitter

def snapshot(i):
    return SnapshotEvent(id=uuid.uuid4(), correlation_id=uuid.UUID(int=1),
                         snapshot_type="checkpoint", agent_name="a", agent_state={"i": i})

async def capture(n, paused=False):
    emitter.paused = paused
    for i in range(n):
        assert await emitter.emit(snapshot(i))
"""

_ENDINGS = {
    "return": "make(); asyncio.run(capture(50))",
    "sys.exit": textwrap.dedent(
        """
        async def main():
            await capture(50)
            sys.exit(3)
        make(); asyncio.run(main())
        """
    ),
    "uncaught exception": textwrap.dedent(
        """
        async def main():
            await capture(50)
            raise RuntimeError("the agent failed")
        make(); asyncio.run(main())
        """
    ),
    "multiprocessing fork child": textwrap.dedent(
        """
        def child():
            # The child's own report: multiprocessing children leave through os._exit,
            # past atexit, after multiprocessing's finalizers (this one runs last).
            multiprocessing.util.Finalize(None, report, exitpriority=-100)
            asyncio.run(capture(50))
        make()
        emitter.closed  # the parent made it; only the child captures
        atexit.unregister(report)
        p = multiprocessing.get_context("fork").Process(target=child)
        p.start(); p.join(30)
        sys.exit(p.exitcode)
        """
    ),
}


def run(script: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + script],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    return done, time.monotonic() - began


def report_of(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT")]
    assert len(lines) == 1, (done.stdout, done.stderr)
    return lines[0]


class TestExitWithoutClose:
    @pytest.mark.parametrize("ending", list(_ENDINGS))
    def test_queued_events_are_delivered_at_exit(self, ending: str) -> None:
        done, _ = run(_ENDINGS[ending])
        # 50 delivered, none left, none dropped, closed.
        assert report_of(done) == "REPORT 50 0 {} True", (done.stdout, done.stderr)

    def test_with_the_broker_away_exit_keeps_close_timeout_and_counts_the_drops(self) -> None:
        done, took = run("make(close_timeout=0.5); asyncio.run(capture(50, paused=True))")
        assert report_of(done) == "REPORT 0 0 {'close_timeout': 50} True", done.stderr
        assert "emitter_events_dropped" in done.stdout + done.stderr
        assert took < 10, took
