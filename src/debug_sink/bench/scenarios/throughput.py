"""``throughput``: the sink's rate on a backlog, against its rivals, repeated, side by side.

The backlog (the realistic workload by default, :mod:`~debug_sink.bench.realistic`) is
produced into the broker once. Then, ``repeats`` times, one round of:

1. ``debug-sink run --exit-when-idle`` drains it into a copy of the prefilled database
   (:class:`~debug_sink.bench.scenarios.backlogs.Backlogs`); measured: the events committed
   between its first and last ``batch_committed`` log line over the time between them
   (start-up and the group join excluded; so is the first batch, committed at the window's
   start), the cores it and PostgreSQL kept busy, and their events per CPU-second;
2. (a) ``psql \\copy`` of exactly the rows the first drain wrote into another copy of the
   prefilled database, and (b) into the literal seed schema (:mod:`.rivals`), with the CPU
   seconds of psql and PostgreSQL;
3. (c) the typical consumer and (d) the per-row consumer (:mod:`debug_sink.bench.typical`),
   reading from the broker like the sink.

Every figure is the median of the rounds, with min and max; the ratios are of medians. A
copy's rate in events/s is the backlog's events over the seconds the copy of their rows took.
Efficiency: events per CPU-second of the sink and PostgreSQL over the drain window, against
raw COPY's events per CPU-second of psql and PostgreSQL.

Owns the ``throughput`` section of the results. Guarantees: rounds run one after the other
(the rivals of a round run right after its sink: the figures of one round saw the same load);
the section is in the results even if a later round fails (with the rounds done). Not
guaranteed: absolute rates on a shared machine -- the ratios are what the targets hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from debug_sink.bench.machine import load_average
from debug_sink.bench.scenarios.rivals import (
    SEED_SCHEMA_MISSING,
    consumer_rival,
    copy_into,
    export_rows,
)
from debug_sink.bench.stats import spread
from debug_sink.bench.workload import iter_workload, workload_mix

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["median_of", "throughput"]

#: Figures of a drain kept per round (the rest is in the sink's log).
_DRAIN_FIGURES = (
    "events_per_s",
    "mb_per_s",
    "window_s",
    "batches",
    "mean_batch_events",
    "mean_batch_ms",
    "parked",
    "released",
    "peak_rss_mb",
    "cores_busy",
    "cpu_s",
    "events_per_cpu_s",
    "problems",
)


def median_of(part: dict[str, Any], key: str = "events_per_s") -> float | None:
    """The median of ``part[key]`` (a :func:`~debug_sink.bench.stats.spread`), or None."""
    figure = part.get(key)
    return figure.get("median") if isinstance(figure, dict) else None


async def throughput(h: Harness, backlogs: Backlogs) -> None:
    backlog = await backlogs.throughput()
    prefilled = await backlogs.prefilled()
    out: dict[str, Any] = {
        "workload": h.cfg.workload,
        "events": backlog["events"],
        "workflows": backlog["workflows"],
        "mean_event_bytes": round(backlog["bytes"] / backlog["events"]),
        "mix": {k: round(v, 4) for k, v in workload_mix(iter_workload(1, tag=h.tag)).items()},
        "produce": {k: backlog[k] for k in ("seconds", "events_per_s")},
        "backlog": backlog.get("counts"),
        "prefilled_events": prefilled.events if prefilled else 0,
        "prefill": prefilled.fill if prefilled else None,
        "repeats": h.cfg.repeats,
        "rounds": [],
    }
    h.results["throughput"] = out
    files: Any = None
    for n in range(h.cfg.repeats):
        load = load_average()
        sink = await backlogs.sink_drain(n)
        if files is None:
            with h.step("export the rows the sink wrote"):
                after = prefilled.after_xid if prefilled else None
                files = await export_rows(h, sink["dsn"], after)
        await backlogs.forget(n)
        with h.step(f"(a) \\copy into the shipped schema ({n + 1})"):
            target = await backlogs.target("bench_copy_shipped")
            copy_a = await copy_into(h, target, files, {})
            await h.drop_database("bench_copy_shipped")
        with h.step(f"(b) \\copy into the literal seed schema ({n + 1})"):
            seed = await h.database("bench_copy_seed", schema="seed")
            copy_b = await copy_into(h, seed, files, SEED_SCHEMA_MISSING)
            await h.drop_database("bench_copy_seed")
        rivals = await consumer_rival(h, backlogs, n)
        out["rounds"].append(
            {
                "load_average": [load, load_average()],
                "sink": {k: sink[k] for k in _DRAIN_FIGURES},
                "copy_shipped": copy_a,
                "copy_seed": copy_b,
                "typical": {k: rivals["typical"][k] for k in _DRAIN_FIGURES},
                "per_row": {k: rivals["per_row"][k] for k in _DRAIN_FIGURES},
                "rival_drains_stalled": rivals["stalled"],
            }
        )
        if n == 0:
            out["rows"] = sum(count for _, count in files.values())
            out["foreign_keys_dropped_for_rivals"] = rivals["foreign_keys_dropped"]
        _summarise(out, backlog["events"])


def _summarise(out: dict[str, Any], events: int) -> None:
    """Medians with min-max of every figure of the rounds so far, and ratios of medians."""
    rounds = out["rounds"]
    rows = out["rows"]

    def drains(name: str) -> dict[str, Any]:
        runs = [r[name] for r in rounds]
        return {
            "events_per_s": spread([r["events_per_s"] for r in runs]),
            "events_per_cpu_s": spread(
                [r["events_per_cpu_s"] for r in runs if r["events_per_cpu_s"]]
            ),
            "cores_busy": {
                part: spread([r["cores_busy"].get(part, 0.0) for r in runs])
                for part in ("sinks", "postgres", "broker", "total")
            },
            "mean_batch_events": spread([r["mean_batch_events"] for r in runs]),
            "mean_batch_ms": spread([r["mean_batch_ms"] for r in runs]),
            "parked": spread([r["parked"] for r in runs]),
            "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
        }

    def copies(name: str) -> dict[str, Any]:
        runs = [r[name] for r in rounds]
        return {
            "seconds": spread([r["seconds"] for r in runs]),
            "rows_per_s": spread([rows / r["seconds"] for r in runs]),
            "events_per_s": spread([events / r["seconds"] for r in runs]),
            "events_per_cpu_s": spread([events / r["cpu_s"] for r in runs if r["cpu_s"]]),
            "cpu_s": spread([r["cpu_s"] for r in runs]),
            "psql_cpu_s": spread([r["psql_cpu_s"] for r in runs]),
        }

    out["sink"] = drains("sink")
    out["copy_shipped"] = copies("copy_shipped")
    out["copy_seed"] = copies("copy_seed")
    out["typical"] = drains("typical")
    out["per_row"] = drains("per_row")
    sink = median_of(out["sink"])

    def ratio(other: float | None) -> float | None:
        return round(sink / other, 3) if sink and other else None

    out["ratio_copy_shipped"] = ratio(median_of(out["copy_shipped"]))
    out["ratio_copy_seed"] = ratio(median_of(out["copy_seed"]))
    out["ratio_typical"] = ratio(median_of(out["typical"]))
    out["ratio_per_row"] = ratio(median_of(out["per_row"]))
    sink_eff = median_of(out["sink"], "events_per_cpu_s")
    copy_eff = median_of(out["copy_shipped"], "events_per_cpu_s")
    out["ratio_efficiency"] = round(sink_eff / copy_eff, 3) if sink_eff and copy_eff else None
