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
from typing import TYPE_CHECKING, Any, Final

import orjson
from asyncpg import PostgresError, UndefinedFunctionError

from debug_sink.bench.harness import COPY_ORDER, connection
from debug_sink.bench.internals import TABLES, Correlator, sqlfiles
from debug_sink.bench.stats import summarize
from debug_sink.bench.workload import STACK_TRACE, STATE_1K
from debug_sink.read.queries import DebugQueries

if TYPE_CHECKING:
    import asyncpg

    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["queries"]

#: Rows per workflow of the SQL fill (``sql/bench.sql``), each standing for one event.
_EVENTS_PER_WORKFLOW: Final = 10

#: The fill's steps after ``fill_workflows``, in order (names of queries in ``bench.sql``).
_FILL_STEPS: Final = (
    "fill_snapshots",
    "fill_errors",
    "fill_successes",
    "fill_steps",
    "fill_hooks",
    "fill_transformations",
    "fill_correlations",
)

Call = Callable[[int], Awaitable[Any]]


async def queries(h: Harness, _backlogs: Backlogs) -> None:
    workflows = max(1, h.cfg.query_events // _EVENTS_PER_WORKFLOW)
    dsn = await h.database("bench_queries")
    fill = await _fill(h, dsn, workflows)
    measured = await _measure(h, dsn, workflows)
    h.results["queries"] = {
        "events": workflows * _EVENTS_PER_WORKFLOW,
        "workflows": workflows,
        "fill": fill,
        "samples": h.cfg.query_samples,
        "queries": measured,
    }
    await h.drop_database("bench_queries")


async def _fill(h: Harness, dsn: str, workflows: int) -> dict[str, Any]:
    """Fill ``dsn`` with ``workflows`` workflows; seconds per step and the database size."""
    q = sqlfiles.load("bench.sql")
    tables = [*(TABLES[k] for k in COPY_ORDER), "debug_error_success_correlation"]
    state = orjson.dumps(STATE_1K).decode()
    timings: dict[str, Any] = {}
    async with connection(dsn, command_timeout=None) as conn:
        indexes = [
            (r["indexname"], r["indexdef"])
            for r in await conn.fetch(q["secondary_indexes"], tables)
        ]
        task = h.progress.add_task(
            f"queries: fill {workflows * _EVENTS_PER_WORKFLOW:,} events",
            total=len(_FILL_STEPS) + len(indexes) + 4,
        )
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        async with conn.transaction():
            for name, _ in indexes:
                await conn.execute(f'DROP INDEX "{name}"')
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(q["fill_workflows"], workflows)
            h.progress.advance(task)
            for name in _FILL_STEPS:
                t = time.perf_counter()
                if name == "fill_snapshots":
                    await conn.execute(q[name], state, len(state) + 30)
                elif name == "fill_errors":
                    await conn.execute(q[name], STACK_TRACE)
                else:
                    await conn.execute(q[name])
                timings[name] = round(time.perf_counter() - t, 1)
                h.progress.advance(task)
        t = time.perf_counter()
        for _, definition in indexes:
            await conn.execute(definition)
            h.progress.advance(task)
        timings["create_indexes"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        timings["vacuum_analyze"] = round(time.perf_counter() - t, 1)
        h.progress.advance(task)
        t = time.perf_counter()
        timings["known_fixes_aggregate"] = await _known_fixes_aggregate(h, dsn, conn)
        timings["rebuild_known_fixes"] = round(time.perf_counter() - t, 1)
        h.progress.advance(task)
        t = time.perf_counter()
        await _recovery_patterns_aggregate(h, conn)
        timings["rebuild_recovery_patterns"] = round(time.perf_counter() - t, 1)
        h.progress.advance(task)
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "steps_s": timings,
        "database_mb": round(size / 2**20),
    }


async def _known_fixes_aggregate(h: Harness, dsn: str, conn: asyncpg.Connection[Any]) -> str:
    """Fill known_fix_* as the correlator would: its own rebuild, else the bench's SQL."""
    try:
        await Correlator(dsn).rebuild_known_fixes()
        return "Correlator.rebuild_known_fixes()"
    except Exception as exc:
        note = f"known_fixes: Correlator.rebuild_known_fixes() failed ({exc!s:.120}); "
        q = sqlfiles.load("bench.sql")
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM known_fix_occurrences")
                await conn.execute("DELETE FROM known_fix_stats")
                await conn.execute(q["fill_known_fix_occurrences"])
                await conn.execute(q["fill_known_fix_stats"])
        except PostgresError as again:
            h.notes.append(note + f"bench fallback failed too: {again!s:.120}")
            return "empty"
        h.notes.append(note + "filled by the bench's SQL instead")
        return "bench SQL (fallback)"


async def _recovery_patterns_aggregate(h: Harness, conn: asyncpg.Connection[Any]) -> None:
    """The fill ran without triggers (replica role): recompute the aggregate that
    debug_error_recovery_patterns reads (migration 010)."""
    try:
        await conn.execute("SELECT recovery_patterns_rebuild()")
    except UndefinedFunctionError:  # a schema before 010: the view reads the links
        h.notes.append("recovery_patterns: no aggregate (before migration 010)")


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
