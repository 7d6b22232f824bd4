"""``sdk``: the time an agent spends in each capture call.

:class:`~debug_sink.sdk.manager.DebugStateManager` capture calls against the embedded broker (a
real :class:`~debug_sink.sdk.emitter.Emitter`): the time of each call, p50/p99, between which
the agent yields to the event loop as it would to do other work.

Owns the ``sdk`` section of the results. Guarantees: the emitter is flushed before the run
goes on, and what it dropped is reported. Not guaranteed: the time to deliver an event -- the
calls hand events to a background sender; only the agent's side is timed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from debug_sink.bench.stats import summarize
from debug_sink.bench.workload import STATE_1K
from debug_sink.settings import Settings

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["sdk"]


async def sdk(h: Harness, _backlogs: Backlogs) -> None:
    try:
        from debug_sink.sdk.manager import DebugStateManager
    except ImportError:
        h.results["sdk"] = {"note": "not measured (SDK not available)"}
        return

    names = h.names("sdk")
    await h.create_topics(names["topic_prefix"])
    settings = Settings(
        kafka_bootstrap_servers=h.bootstrap,
        metrics_port=0,
        topic_prefix=names["topic_prefix"],
        topic_pattern=names["topic_pattern"],
    )
    n = h.cfg.sdk_calls
    task = h.progress.add_task("SDK: capture calls", total=n + n // 4)
    corr = uuid.uuid4()
    snapshot_s: list[float] = []
    error_s: list[float] = []
    async with DebugStateManager(settings) as debug:
        for i in range(50):
            await debug.capture_snapshot(corr, "bench-agent", {**STATE_1K, "warm": i})
        for i in range(n):
            state = {**STATE_1K, "i": i}
            t = time.perf_counter()
            await debug.capture_snapshot(corr, "bench-agent", state)
            snapshot_s.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0)  # the agent does other work between captures
            if i % 200 == 0:
                h.progress.update(task, completed=i)
        try:
            raise TimeoutError("GitHub API did not answer within 30 s")
        except TimeoutError as exc:
            error = exc
        for i in range(n // 4):
            t = time.perf_counter()
            await debug.capture_error_state(
                corr,
                "bench-agent",
                error,
                {**STATE_1K, "e": i},
                "high",
                operation_name="fetch_diff",
            )
            error_s.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0)
        await debug.flush(60)
        stats = debug.stats
    h.progress.update(task, completed=n + n // 4)
    h.results["sdk"] = {
        "emitter": "Emitter to the embedded broker (real sends in the background)",
        "capture_snapshot": summarize(snapshot_s),
        "capture_error_state": summarize(error_s),
        "dropped": _as_plain(getattr(stats, "dropped", None)),
    }


def _as_plain(value: Any) -> Any:
    """``value`` as JSON can hold it (the emitter's counters may be keyed by enums)."""
    if value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _as_plain(v) for k, v in value.items()}
    return str(value)
