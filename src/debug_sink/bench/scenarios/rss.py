"""``rss``: the peak resident memory of a sink draining a backlog.

Peak resident memory of the sink process while it drains a backlog (1M events of the run's
workload into an empty database -- what is in flight does not depend on what the tables
hold; ``--quick`` reuses the first throughput drain): the kernel's high-water mark
``VmHWM``, with psutil polling of ``rss`` as a fallback.

Owns the ``rss`` section of the results. Guarantees: a drain that does not finish within
``rss_timeout`` is stopped and reported as incomplete (``completed: false``); its peak so far
counts against the target only when it is already over the limit. Not guaranteed: the peak of
a complete drain in that case -- it is a lower bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_sink.bench.produce import new_backlog
from debug_sink.bench.scenarios.backlogs import check_rows
from debug_sink.bench.sinks import drain, peak_rss_mb
from debug_sink.bench.targets import RSS_LIMIT_MB

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["rss"]

#: Workflow numbers of the rss backlog start here: none is shared with another backlog.
_FIRST_WORKFLOW = 10_000_000


async def rss(h: Harness, backlogs: Backlogs) -> None:
    if h.cfg.rss_events <= h.cfg.events:
        single = await backlogs.sink_drain(0)
        await backlogs.forget(0)
        h.results["rss"] = {
            "events": (await backlogs.throughput())["events"],
            "peak_rss_mb": peak_rss_mb(single["sinks"]),
            "note": "measured while draining the throughput backlog",
        }
        return
    backlog = await new_backlog(
        h,
        "rss",
        h.cfg.rss_events,
        "rss: produce backlog",
        first=_FIRST_WORKFLOW,
        realism=backlogs.realism,
    )
    dsn = await h.database("bench_rss")
    drained = await drain(
        h,
        dsn,
        backlog["names"],
        backlog["events"],
        "rss: sink drains backlog",
        timeout=h.cfg.rss_timeout,
        partial_ok=True,
    )
    figures = {k: v for k, v in drained.figures(backlog).items() if k != "problems"}
    peak = peak_rss_mb(drained.sinks)
    out: dict[str, Any] = {"events": backlog["events"], **figures}
    if drained.sinks[0].timed_out:
        # A lower bound: it counts against the target only if it is already over.
        out["completed"] = False
        out["peak_rss_mb_so_far"] = peak
        if peak > RSS_LIMIT_MB:
            out["peak_rss_mb"] = peak
        h.notes.append(
            f"rss: the sink had committed {figures['events_committed']:,} of "
            f"{backlog['events']:,} events after {h.cfg.rss_timeout:.0f} s and was "
            "stopped; peak RSS so far is a lower bound"
        )
    else:
        out["completed"] = True
        out["peak_rss_mb"] = peak
        check_rows(await h.table_counts(dsn), backlogs.expected(backlog), h.notes, "rss")
    h.results["rss"] = out
    await h.drop_database("bench_rss")
