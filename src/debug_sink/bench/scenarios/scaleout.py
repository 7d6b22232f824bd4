"""``scaleout``: two sinks in one consumer group against one.

Two sink processes in one consumer group drain the throughput backlog (4 partitions per topic)
into a fresh database; ratio against the single sink of ``throughput``. Measured from the
first commit after the group settled (the last partition assignment). The same for the
no-references backlog, as a diagnostic.

Owns the ``scaleout`` section of the results. Guarantees: the single sink it compares with
drained the same backlog in the same run (made here if ``throughput`` did not run). Not
guaranteed: that the group settled before the end -- then the whole drain is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_sink.bench.scenarios.backlogs import check_rows
from debug_sink.bench.sinks import drain, in_group
from debug_sink.bench.stats import drain_window

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["scaleout"]


async def scaleout(h: Harness, backlogs: Backlogs) -> None:
    backlog = await backlogs.throughput()
    single = await backlogs.single_sink()
    out = await _two_sinks(h, backlog, single, "bench_scale", "scale-out: two sinks drain")
    # The same without references: capacity scaling free of the parking effect (two
    # consumers see more topics per fetch, so they park less: see PERFORMANCE.md).
    no_references = await backlogs.no_references()
    out["no_references"] = await _two_sinks(
        h,
        no_references,
        no_references,
        "bench_scale_nr",
        "scale-out, no references: two sinks drain",
    )
    h.results["scaleout"] = out


async def _two_sinks(
    h: Harness, backlog: dict[str, Any], single: dict[str, Any], database: str, label: str
) -> dict[str, Any]:
    """Two sinks drain ``backlog`` into ``database``; figures against ``single``'s."""
    dsn = await h.database(database)
    names = in_group(backlog["names"], "-two")
    drained = await drain(h, dsn, names, backlog["events"], label, processes=2)
    sinks = drained.sinks
    counts = await h.table_counts(dsn)
    check_rows(counts, backlog["workflows"], h.notes, label)
    batches = [b for s in sinks for b in s.batches]
    whole_events, whole_s = drain_window(batches)
    settled = max((max(s.assigned_at) for s in sinks if s.assigned_at), default=None)
    events, seconds = drain_window(batches, after=settled)
    if seconds <= 0:
        events, seconds = whole_events, whole_s
    eps = events / seconds if seconds else 0.0
    await h.drop_database(database)
    return {
        "events": backlog["events"],
        "events_per_s": round(eps),
        "events_per_s_whole": round(whole_events / whole_s) if whole_s else None,
        "single_events_per_s": single["events_per_s"],
        "ratio": round(eps / single["events_per_s"], 3) if single["events_per_s"] else None,
        "window_events": events,
        "window_s": round(seconds, 3),
        "parked": sum(b.parked for b in batches),
        "single_parked": single["parked"],
        "cores_busy": drained.cores_busy(settled),
        "single_cores_busy": single.get("cores_busy", {}),
        "batches_per_process": [len(s.batches) for s in sinks],
        "rebalances_per_process": [len(s.assigned_at) for s in sinks],
        "note": "events/s from the first commit after the last partition assignment "
        "(the group settled) to the last commit; whole: from the first commit",
    }
