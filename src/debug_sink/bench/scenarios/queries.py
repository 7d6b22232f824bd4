"""``queries``: p50/p95 of each read path on a database of millions of events.

A database of 10M events (1M workflows; ``--quick``: 1M) filled with SQL
(``sql/bench.sql``: secondary indexes built after the fill, ``VACUUM ANALYZE``, the known-fixes
and recovery-patterns aggregates rebuilt as the jobs would), then p50/p95 of each read path,
called as users call them (:class:`~debug_sink.read.queries.DebugQueries`,
``capture_state_snapshot()`` in autocommit) on workflows spread over the table.

Owns the ``queries`` section of the results. Guarantees: every read path is warmed up before
it is timed; a read path that fails is reported with its error (``note``) and the others are
still measured. Not guaranteed: that the fill resembles years of real traffic beyond its
row counts and sizes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from debug_sink.bench.fill import FILL_EVENTS_PER_WORKFLOW, fill
from debug_sink.bench.harness import connection
from debug_sink.bench.internals import sqlfiles
from debug_sink.bench.stats import summarize
from debug_sink.bench.workload import STATE_1K
from debug_sink.read.queries import DebugQueries

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["queries"]

Call = Callable[[int], Awaitable[Any]]


async def queries(h: Harness, _backlogs: Backlogs) -> None:
    workflows = max(1, h.cfg.query_events // FILL_EVENTS_PER_WORKFLOW)
    dsn = await h.database("bench_queries")
    filled = await fill(h, dsn, workflows, aggregates=True)
    measured = await _measure(h, dsn, workflows)
    h.results["queries"] = {
        "events": workflows * FILL_EVENTS_PER_WORKFLOW,
        "workflows": workflows,
        "fill": filled,
        "samples": h.cfg.query_samples,
        "queries": measured,
    }
    await h.drop_database("bench_queries")


async def _measure(h: Harness, dsn: str, workflows: int) -> dict[str, Any]:
    """p50/p95 (:func:`~debug_sink.bench.stats.summarize`) of each read path, in ms."""
    q = sqlfiles.load("bench.sql")
    n = h.cfg.query_samples
    async with connection(dsn) as conn:
        ids = [r[0] for r in await conn.fetch(q["sample_workflows"], n, workflows)]
        rng = random.Random(h.cfg.seed)
        rng.shuffle(ids)
        error_types = [
            r[0]
            for r in await conn.fetch("SELECT DISTINCT error_type FROM debug_error_events LIMIT 20")
        ]
        reads = await DebugQueries.connect(dsn, max_size=1)

        async def capture(i: int) -> Any:
            state = orjson.dumps({**STATE_1K, "capture": i, "at": time.time()}).decode()
            return await conn.fetchval(
                "SELECT capture_state_snapshot('checkpoint', $1::uuid, 'bench-agent', "
                "$2::jsonb, 'bench capture', NULL, 1)",
                ids[i % len(ids)],
                state,
            )

        calls: dict[str, Call] = {
            "capture_state_snapshot": capture,
            "errors_by_correlation_id": lambda i: reads.get_errors(ids[i % len(ids)]),
            "debug_workflow_context": lambda i: reads.get_workflow_context(ids[i % len(ids)]),
            "get_workflow_debug_summary": lambda i: reads.get_workflow_debug_summary(
                ids[i % len(ids)]
            ),
            "timeline": lambda i: reads.timeline(ids[i % len(ids)]),
            "recovery_patterns": lambda i: reads.get_recovery_patterns(3),
            "known_fixes": lambda i: reads.known_fixes(error_types[i % len(error_types)]),
        }
        try:
            return await _time_calls(h, calls, n)
        finally:
            await reads.close()


async def _time_calls(h: Harness, calls: dict[str, Call], n: int) -> dict[str, Any]:
    """Each call ``n`` times after a warm-up: its summary in ms, or why it was not measured."""
    out: dict[str, Any] = {}
    task = h.progress.add_task("queries: measure", total=len(calls) * n)
    for name, call in calls.items():
        try:
            for i in range(5):  # warm-up: plans cached, pages read once
                await call(n + i)
            times = []
            for i in range(n):
                t = time.perf_counter()
                await call(i)
                times.append((time.perf_counter() - t) * 1000)
                h.progress.advance(task)
            out[name] = summarize(times)
        except Exception as exc:
            out[name] = {"note": f"not measured: {type(exc).__name__}: {exc}"[:300]}
    return out
