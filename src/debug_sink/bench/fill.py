"""Databases of millions of events, filled with SQL rather than through the sink.

Owns :func:`fill`: a migrated database filled with ``generate_series`` (``sql/bench.sql``) --
workflows of :data:`FILL_EVENTS_PER_WORKFLOW` rows (3 snapshots with ~1 KB states, an error
with a stack trace, a success, 3 steps, an LLM hook event, a transformation; a correlator link
for 3 workflows in 5), ids that look random (md5), the secondary indexes dropped before the
fill and built after it, ``VACUUM ANALYZE``, and optionally the aggregates the read paths use
rebuilt as the jobs would. The ``queries`` section reads such a database; the realistic
throughput backlog is written into copies of one (``Harness.prefilled``).

Guarantees: the rows are consistent (every reference resolves), so the fill skips the
foreign-key triggers (``session_replication_role = replica``). Not guaranteed: that the fill
resembles years of real traffic beyond its row counts and sizes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import orjson
from asyncpg import PostgresError, UndefinedFunctionError

from debug_sink.bench.harness import COPY_ORDER, connection
from debug_sink.bench.internals import TABLES, Correlator, sqlfiles
from debug_sink.bench.workload import STACK_TRACE, STATE_1K

if TYPE_CHECKING:
    import asyncpg

    from debug_sink.bench.harness import Harness

__all__ = ["FILL_EVENTS_PER_WORKFLOW", "fill"]

#: Rows per workflow of the SQL fill (``sql/bench.sql``), each standing for one event.
FILL_EVENTS_PER_WORKFLOW: Final = 10

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


async def fill(
    h: Harness, dsn: str, workflows: int, *, aggregates: bool, label: str = "queries"
) -> dict[str, Any]:
    """Fill ``dsn`` with ``workflows`` workflows of :data:`FILL_EVENTS_PER_WORKFLOW` rows
    (``aggregates``: and rebuild the correlator's and the recovery patterns' aggregates);
    seconds per step and the database size."""
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
            f"{label}: fill {workflows * FILL_EVENTS_PER_WORKFLOW:,} events",
            total=len(_FILL_STEPS) + len(indexes) + 2 + 2 * aggregates,
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
        if aggregates:
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
