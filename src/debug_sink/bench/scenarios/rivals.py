"""What the sink's throughput is compared with, on the same events in the same run.

Owns the three rivals of ``throughput``: (a) ``psql \\copy`` of exactly the rows the sink
wrote (exported from its database, :func:`export_rows`) into a fresh database with the shipped
schema -- the ceiling; (b) the same rows into the user's literal seed schema
(``sql/bench_seed_schema.sql``) -- both :func:`copy_into`; (c) a naive consumer
(:func:`naive`): decode and validate each event as the sink does, then one ``INSERT`` per
event in autocommit.

Guarantees: the copies time only the import (one psql, one transaction per table,
foreign-key order); the naive consumer uses the sink's own decoder, column lists and records.
Not guaranteed: a fair fight -- the naive consumer reads the events from memory in produce
order, which spares it Kafka and the foreign-key ordering problem: both flatter it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from debug_sink.bench.harness import COPY_ORDER, connection
from debug_sink.bench.internals import (
    COLUMNS,
    TABLES,
    Accepted,
    EventKind,
    ValidationConfig,
    decode,
    init_connection,
    record_of,
)
from debug_sink.bench.workload import ROWS_PER_WORKFLOW, iter_workload, stamp_at, workflows_for
from debug_sink.settings import TOPIC_SUFFIXES

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness

__all__ = ["SEED_SCHEMA_MISSING", "copy_into", "export_rows", "naive"]

#: Columns the literal seed schema does not have (always NULL / 1 in the bench's rows).
SEED_SCHEMA_MISSING: Final[dict[EventKind, tuple[str, ...]]] = {
    EventKind.SNAPSHOT: ("metadata",),
    EventKind.STEP: ("attempt",),
}

#: The columns a step's later lifecycle event fills in (the sink folds them the same way).
_STEP_LATER_COLUMNS: Final = (
    "completed_at",
    "duration_ms",
    "error_event_id",
    "success_event_id",
    "post_state_snapshot_id",
)


async def export_rows(h: Harness, dsn: str) -> dict[EventKind, tuple[Path, int]]:
    """``\\copy`` every event table's rows (the writer's columns) out of ``dsn``."""
    directory = h.root / "export"
    directory.mkdir(exist_ok=True)
    files: dict[EventKind, tuple[Path, int]] = {}
    for kind in COPY_ORDER:
        path = directory / f"{TABLES[kind]}.tsv"
        cols = ", ".join(COLUMNS[kind])
        await h.psql(dsn, f"\\copy (SELECT {cols} FROM {TABLES[kind]}) TO '{path}'")
        with path.open("rb") as f:
            files[kind] = (path, sum(1 for _ in f))
    return files


async def copy_into(
    h: Harness,
    dsn: str,
    files: dict[EventKind, tuple[Path, int]],
    missing: Mapping[EventKind, tuple[str, ...]],
) -> float:
    """Seconds to ``\\copy`` the exported files into ``dsn`` (one psql, one transaction per
    table, foreign-key order). Columns in ``missing`` are cut from the files first."""
    commands = []
    for kind in COPY_ORDER:
        path, _ = files[kind]
        cols = list(COLUMNS[kind])
        drop = missing.get(kind, ())
        if drop:
            keep = [i for i, c in enumerate(cols) if c not in drop]
            cut = path.with_suffix(".seed.tsv")
            with path.open("rb") as src, cut.open("wb") as dst:
                for line in src:
                    parts = line.rstrip(b"\n").split(b"\t")
                    dst.write(b"\t".join(parts[i] for i in keep) + b"\n")
            cols = [cols[i] for i in keep]
            path = cut
        commands.append(f"\\copy {TABLES[kind]} ({', '.join(cols)}) FROM '{path}'")
    started = time.perf_counter()
    await h.psql(dsn, *commands)
    return time.perf_counter() - started


async def naive(h: Harness) -> dict[str, Any]:
    """One INSERT per event, autocommit, after the sink's own decode and validation."""
    dsn = await h.database("bench_naive")
    workflows = workflows_for(h.cfg.naive_events)
    messages = list(iter_workload(workflows, tag=h.tag))
    prefix = "debug."
    config = ValidationConfig(topics={prefix + s: k for k, s in TOPIC_SUFFIXES.items()})
    sql = {kind: _insert_sql(kind) for kind in EventKind}
    task = h.progress.add_task("(c) naive consumer", total=len(messages))
    async with connection(dsn) as conn:
        await init_connection(conn)
        base = time.time() - 3600
        started = time.perf_counter()
        for i, message in enumerate(messages):
            result = decode(
                prefix + TOPIC_SUFFIXES[message.kind],
                message.stamped(stamp_at(base + i / 1000)),
                timestamp_ms=int(base * 1000),
                config=config,
            )
            assert isinstance(result, Accepted), result
            await conn.execute(sql[result.kind], *record_of(result.kind, result.event))
            if i % 500 == 0:
                h.progress.update(task, completed=i)
        elapsed = time.perf_counter() - started
    h.progress.update(task, completed=len(messages))
    rows = workflows * ROWS_PER_WORKFLOW
    return {
        "events": len(messages),
        "rows": rows,
        "seconds": round(elapsed, 3),
        "events_per_s": round(len(messages) / elapsed),
        "rows_per_s": round(rows / elapsed),
    }


def _insert_sql(kind: EventKind) -> str:
    """The naive consumer's statement for one event of ``kind``: insert once, except that a
    step's later lifecycle event updates its row."""
    cols = COLUMNS[kind]
    head = (
        f"INSERT INTO {TABLES[kind]} AS t ({', '.join(cols)}) VALUES "
        f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))}) ON CONFLICT (id) "
    )
    if kind is EventKind.STEP:
        sets = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, t.{c})" for c in _STEP_LATER_COLUMNS)
        return head + f"DO UPDATE SET status = EXCLUDED.status, {sets}"
    return head + "DO NOTHING"
