"""Synthetic workloads in the database: loading them, measuring the correlator on them.

Owns :func:`load` (COPY a wave of events into the tables), :func:`measure` (load the waves
one by one, run the correlator after each, score the links against the truth) and
:func:`bulk_fill` (many small workflows in seconds, for retention and cost tests). The
workloads themselves come from :mod:`debug_sink.dev.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson

from debug_sink.db import sqlfiles
from debug_sink.dev.synthetic import (
    ERROR_COLUMNS,
    STEP_COLUMNS,
    SUCCESS_COLUMNS,
    Event,
    Score,
    Workload,
    score,
)
from debug_sink.jobs.correlator import MIN_CONFIDENCE, Correlator

__all__ = ["bulk_fill", "load", "measure"]

#: The table and columns of each kind of synthetic event.
_TABLES: Final = {
    "error": ("debug_error_events", ERROR_COLUMNS),
    "success": ("debug_success_events", SUCCESS_COLUMNS),
    "step": ("debug_workflow_steps", STEP_COLUMNS),
}


async def load(conn: asyncpg.Connection, events: Sequence[Event]) -> dict[str, int]:
    """COPY ``events`` into their tables in one transaction; returns rows per table.

    ``conn`` is a plain asyncpg connection (default codecs: jsonb as text). A step whose error
    or success is not in ``events`` keeps no reference to it (it lands in a later wave)."""
    written: dict[str, int] = {}
    async with conn.transaction():
        for kind, (table, columns) in _TABLES.items():
            records = [tuple(_encode(e.row[c]) for c in columns) for e in events if e.kind == kind]
            if kind == "step":
                # A step whose error / success lands in a later wave keeps no reference.
                present = {e.row["id"] for e in events if e.kind != "step"}
                records = [_drop_missing(r, columns, present) for r in records]
            if records:
                await conn.copy_records_to_table(table, records=records, columns=columns)
            written[table] = len(records)
    return written


def _encode(value: Any) -> Any:
    # asyncpg's default jsonb codec takes text
    return orjson.dumps(value).decode() if isinstance(value, dict) else value


def _drop_missing(
    record: tuple[Any, ...], columns: Sequence[str], present: set[UUID]
) -> tuple[Any, ...]:
    values = list(record)
    for name in ("error_event_id", "success_event_id"):
        index = columns.index(name)
        if values[index] is not None and values[index] not in present:
            values[index] = None
    return tuple(values)


async def measure(
    dsn: str, workload: Workload, *, schema: str = "public", min_confidence: float | None = None
) -> tuple[Score, list[Any]]:
    """Load ``workload`` wave by wave, run the correlator after each wave, score the links.
    Returns the score and each run's :class:`~debug_sink.jobs.correlator.CorrelatorResult`."""
    correlator = Correlator(
        dsn,
        schema=schema,
        min_confidence=MIN_CONFIDENCE if min_confidence is None else min_confidence,
    )
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    runs = []
    try:
        for wave in workload.waves:
            await load(conn, wave)
            runs.append(await correlator.run_once())
        links = await conn.fetch(
            "SELECT error_event_id, success_event_id FROM debug_error_success_correlation"
        )
    finally:
        await conn.close()
    return score(((r[0], r[1]) for r in links), workload.truth), runs


async def bulk_fill(
    conn: asyncpg.Connection,
    workflows: int,
    *,
    old: int = 0,
    old_days: float = 90.0,
    links: bool = True,
) -> dict[str, int]:
    """Fill the tables fast (generate_series, one transaction) with ``workflows`` small
    workflows of 10 rows each (``sql/synthetic.sql``), the first ``old`` of them more than
    ``old_days`` days old. Returns rows per table. For retention tests and benchmarks."""
    q = sqlfiles.load("synthetic.sql")
    steps = ["fill_snapshots", "fill_errors", "fill_successes", "fill_steps"]
    if links:
        steps.append("fill_correlations")
    steps.append("fill_aliases")
    written: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute(q["fill_workflows"], workflows, old, old_days)
        for name in steps:
            status = await conn.execute(q[name])
            written[name.removeprefix("fill_")] = int(status.split()[-1])
    return written
