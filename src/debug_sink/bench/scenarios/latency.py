"""``latency``: produce-to-committed time of a running sink at steady rates.

A sink runs (not in exit-when-idle mode); events are produced at a steady rate (2k and 10k
events/s) with the send time in the event's own timestamp (``captured_at``, ``occurred_at``,
``created_at``, a step's later of ``started_at``/``completed_at``). A row's commit time is
``pg_xact_commit_timestamp(xmin)`` (``track_commit_timestamp = on``): PostgreSQL's own record
of when the transaction that wrote it committed -- no trigger, no polling error. Latency =
commit time - send time, same host clock.

Owns the ``latency`` section of the results. Guarantees: each rate's percentiles cover only
the rows sent during that rate's phase; rows not committed within ``latency_wait`` are left
out with a note, not waited for. Not guaranteed: the rate asked for (``produced_per_s`` is
the rate achieved).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from debug_sink.bench.harness import COPY_ORDER, connection
from debug_sink.bench.internals import TABLES, EventKind
from debug_sink.bench.produce import produce_paced
from debug_sink.bench.sinks import mean_batch_events, sink_env, start_sink, stop
from debug_sink.bench.stats import summarize
from debug_sink.bench.workload import ROWS_PER_WORKFLOW, iter_workload, workflows_for

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["latency"]

#: Per table: the column holding the send time (a step's row keeps the later of its two).
_TIME_COLUMN: Final = {
    EventKind.SNAPSHOT: "captured_at",
    EventKind.ERROR: "occurred_at",
    EventKind.SUCCESS: "occurred_at",
    EventKind.STEP: "greatest(started_at, completed_at)",
    EventKind.TRANSFORMATION: "created_at",
    EventKind.HOOK: "created_at",
}

Phase = tuple[int, float, float, int]  # rate, first send, last send (epoch s), events


async def latency(h: Harness, _backlogs: Backlogs) -> None:
    names = h.names("lat")
    prefix = names["topic_prefix"]
    await h.create_topics(prefix)
    dsn = await h.database("bench_latency")
    sink, watcher = await start_sink(
        h, sink_env(h, dsn, names), exit_when_idle=False, label="latency"
    )
    task = h.progress.add_task("latency: sink joining the group", total=None)
    phases: list[Phase] = []
    try:
        await asyncio.wait_for(sink.positioned.wait(), 120)
        producer = h.producer()
        await producer.start()
        first = 0
        expected_rows = 0
        try:
            for rate in h.cfg.latency_rates:
                workflows = workflows_for(int(rate * h.cfg.latency_seconds))
                messages = list(iter_workload(workflows, tag=h.tag, first=first))
                first += workflows
                expected_rows += workflows * ROWS_PER_WORKFLOW
                h.progress.update(
                    task,
                    description=f"latency: {rate:,} events/s",
                    total=len(messages),
                    completed=0,
                )
                t0, t1 = await produce_paced(h, producer, prefix, messages, rate=rate, task=task)
                if not await _wait_rows(dsn, expected_rows, h.cfg.latency_wait):
                    h.notes.append(
                        f"latency at {rate:,}/s: not every row was committed within "
                        f"{h.cfg.latency_wait:.0f} s; percentiles cover the committed rows"
                    )
                phases.append((rate, t0, t1, len(messages)))
        finally:
            await producer.stop()
    finally:
        await stop([sink], [watcher])
    out: dict[str, Any] = {"seconds_per_rate": h.cfg.latency_seconds, "rates": {}}
    async with connection(dsn) as conn:
        for rate, t0, t1, count in phases:
            latencies: list[float] = []
            missing = 0
            for kind in COPY_ORDER:
                column = _TIME_COLUMN[kind]
                rows = await conn.fetch(
                    f"SELECT EXTRACT(EPOCH FROM pg_xact_commit_timestamp(xmin) - {column}) "
                    f"* 1000 AS ms FROM {TABLES[kind]} WHERE {column} BETWEEN $1 AND $2",
                    datetime.fromtimestamp(t0 - 0.001, UTC),
                    datetime.fromtimestamp(t1 + 0.001, UTC),
                )
                for r in rows:
                    if r["ms"] is None:
                        missing += 1
                    else:
                        latencies.append(float(r["ms"]))
            stats = summarize(latencies)
            out["rates"][str(rate)] = {
                "events": count,
                "rows": stats["count"],
                "rows_without_commit_ts": missing,
                "produced_per_s": round(count / (t1 - t0)),
                "p50_ms": stats.get("p50"),
                "p95_ms": stats.get("p95"),
                "p99_ms": stats.get("p99"),
                "max_ms": stats.get("max"),
            }
    out["batches"] = len(sink.batches)
    out["mean_batch_events"] = mean_batch_events(sink.batches)
    h.results["latency"] = out
    await h.drop_database("bench_latency")


async def _wait_rows(dsn: str, expected: int, timeout: float) -> bool:
    """Wait until the event tables hold ``expected`` rows; False after ``timeout``."""
    async with connection(dsn) as conn:
        deadline = time.monotonic() + timeout
        query = " + ".join(f"(SELECT count(*) FROM {TABLES[k]})" for k in COPY_ORDER)
        while time.monotonic() < deadline:
            if int(await conn.fetchval(f"SELECT {query}")) >= expected:
                return True
            await asyncio.sleep(0.25)
        return False
