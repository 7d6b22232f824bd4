"""``throughput``: the sink's rate on a realistic backlog, against raw COPY and a naive consumer.

N events of a realistic mix (:func:`~debug_sink.bench.workload.iter_workload`) are produced
into the broker first, then ``debug-sink run --exit-when-idle`` drains them
(:class:`~debug_sink.bench.scenarios.backlogs.Backlogs`). Measured: the events committed
between the sink's first and last ``batch_committed`` log line, divided by the time between
them (start-up and the group join are excluded; so is the first batch, whose events were
committed at the window's start). On the same rows, in the same run, the rivals of
:mod:`~debug_sink.bench.scenarios.rivals`. Ratios compare the time to write the same events:
``sink events/s`` against ``events / time to copy their rows``. Diagnostic: the same mix
without references between events (nothing can wait for a parent, so nothing is parked)
drained by one sink.

Owns the ``throughput`` section of the results. Guarantees: the section is in the results as
soon as the sink and its rivals are measured, before the diagnostic runs. Not guaranteed:
absolute rates on a shared machine -- the ratios are what the targets hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_sink.bench.scenarios.rivals import (
    SEED_SCHEMA_MISSING,
    copy_into,
    export_rows,
    naive,
)
from debug_sink.bench.workload import iter_workload, workload_mix

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["throughput"]


async def throughput(h: Harness, backlogs: Backlogs) -> None:
    backlog = await backlogs.throughput()
    single = await backlogs.single_sink()
    out: dict[str, Any] = {
        "events": backlog["events"],
        "workflows": backlog["workflows"],
        "mean_event_bytes": round(backlog["bytes"] / backlog["events"]),
        "mix": {k: round(v, 4) for k, v in workload_mix(iter_workload(1, tag=h.tag)).items()},
        "produce": {k: backlog[k] for k in ("seconds", "events_per_s")},
        "sink": {k: v for k, v in single.items() if k not in ("dsn", "sinks")},
    }
    eps = single["events_per_s"]
    files = await export_rows(h, single["dsn"])
    rows = sum(n for _, n in files.values())
    with h.step("(a) \\copy into the shipped schema"):
        copy_a = await copy_into(h, await h.database("bench_copy_shipped"), files, {})
    with h.step("(b) \\copy into the literal seed schema"):
        seed = await h.database("bench_copy_seed", schema="seed")
        copy_b = await copy_into(h, seed, files, SEED_SCHEMA_MISSING)
    events = backlog["events"]
    for key, seconds in (("copy_shipped", copy_a), ("copy_seed", copy_b)):
        out[key] = {
            "rows": rows,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds),
            "events_per_s": round(events / seconds),
        }
    out["ratio_copy_shipped"] = round(eps / out["copy_shipped"]["events_per_s"], 3)
    out["ratio_copy_seed"] = round(eps / out["copy_seed"]["events_per_s"], 3)
    rival = await naive(h)
    out["naive"] = rival
    out["ratio_naive"] = round(eps / rival["events_per_s"], 3)
    for name in ("bench_copy_shipped", "bench_copy_seed", "bench_naive"):
        await h.drop_database(name)
    h.results["throughput"] = out
    no_references = await backlogs.no_references()
    out["sink_no_references"] = {k: v for k, v in no_references.items() if k != "names"}
    out["ratio_copy_shipped_no_references"] = round(
        out["sink_no_references"]["events_per_s"] / out["copy_shipped"]["events_per_s"], 3
    )
