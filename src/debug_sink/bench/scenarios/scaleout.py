"""``scaleout``: two sinks in one consumer group, against raw COPY and against one sink.

Two sink processes in one consumer group drain the throughput backlog (4 partitions per topic)
into a copy of the prefilled database, ``repeats`` times; measured from the first commit
after the group settled (the last partition assignment) to the last commit. Ratios of medians
against raw COPY of the same rows and against one sink, both from ``throughput`` (one sink
is drained here if that section did not run; raw COPY is then not compared).

Owns the ``scaleout`` section of the results. Guarantees: every drain is checked for the rows
it must leave. Not guaranteed: that the group settled before the end -- then the whole drain
is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_sink.bench.scenarios.backlogs import check_rows, drain_figures
from debug_sink.bench.scenarios.throughput import median_of
from debug_sink.bench.sinks import drain, in_group
from debug_sink.bench.stats import drain_window, spread

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["scaleout"]


async def scaleout(h: Harness, backlogs: Backlogs) -> None:
    backlog = await backlogs.throughput()
    runs = []
    for n in range(h.cfg.repeats):
        runs.append(await _two_sinks(h, backlogs, backlog, n))
    tp = h.results.get("throughput") or {}
    one = median_of(tp.get("sink", {}))
    if one is None:
        one = (await backlogs.sink_drain(0))["events_per_s"]
        await backlogs.forget(0)
    copy = median_of(tp.get("copy_shipped", {}))
    two = spread([r["events_per_s"] for r in runs])
    two_median = float(two["median"])
    efficiency = spread([r["events_per_cpu_s"] for r in runs if r["events_per_cpu_s"]])
    copy_eff = median_of(tp.get("copy_shipped", {}), "events_per_cpu_s")
    h.results["scaleout"] = {
        "events": backlog["events"],
        "events_per_s": two,
        "events_per_cpu_s": efficiency,
        "single_events_per_s": one,
        "copy_shipped_events_per_s": copy,
        "ratio": round(two_median / one, 3) if one else None,
        "ratio_copy_shipped": round(two_median / copy, 3) if copy else None,
        "ratio_efficiency": (
            round(float(efficiency["median"]) / copy_eff, 3) if efficiency and copy_eff else None
        ),
        "cores_busy": {
            part: spread([r["cores_busy"].get(part, 0.0) for r in runs])
            for part in ("sinks", "postgres", "broker", "total")
        },
        "runs": runs,
        "note": "events/s from the first commit after the last partition assignment "
        "(the group settled) to the last commit; whole: from the first commit",
    }


async def _two_sinks(
    h: Harness, backlogs: Backlogs, backlog: dict[str, Any], n: int
) -> dict[str, Any]:
    """Two sinks drain ``backlog`` into a database of their own: the ``n``-th time."""
    name = f"bench_scale_{n}"
    dsn = await backlogs.target(name)
    names = in_group(backlog["names"], f"-two-{n}")
    drained = await drain(
        h, dsn, names, backlog["events"], f"scale-out: two sinks drain ({n + 1})", processes=2
    )
    sinks = drained.sinks
    check_rows(
        await backlogs.rows_after_prefill(dsn),
        backlogs.expected(backlog),
        h.notes,
        f"scale-out {n + 1}",
    )
    await h.drop_database(name)
    batches = [b for s in sinks for b in s.batches]
    whole_events, whole_s = drain_window(batches)
    settled = max((max(s.assigned_at) for s in sinks if s.assigned_at), default=None)
    events, seconds = drain_window(batches, after=settled)
    if seconds <= 0:
        events, seconds = whole_events, whole_s
        settled = None
    cores = drained.cores_busy(settled)
    cpu = (cores.get("sinks", 0.0) + cores.get("postgres", 0.0)) * seconds
    whole = drain_figures(drained, backlog)
    return {
        "events_per_s": round(events / seconds) if seconds else 0,
        "events_per_s_whole": whole["events_per_s"],
        "window_events": events,
        "window_s": round(seconds, 3),
        "parked": whole["parked"],
        "cores_busy": cores,
        "events_per_cpu_s": round(events / cpu) if cpu else None,
        "batches_per_process": [len(s.batches) for s in sinks],
        "rebalances_per_process": [len(s.assigned_at) for s in sinks],
        "peak_rss_mb": whole["peak_rss_mb"],
        "problems": whole["problems"],
    }
