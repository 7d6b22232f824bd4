"""Synthetic workloads in the database: loading them, measuring the correlator on them.

Owns :func:`load` (COPY a wave of events into the tables, skipping duplicate deliveries as
the sink does), :func:`measure` (load the waves one by one, parking steps whose parent has not
arrived as the sink does, run the correlator after each wave, score the links against the
truth) and :func:`bulk_fill` (many small workflows in seconds, for retention and cost tests).
The labeled workloads themselves come from :mod:`debug_sink.dev.synthetic` and
:mod:`debug_sink.dev.workloads`.
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
#: The references a synthetic row may hold: column -> kind of the referenced row.
_REFERENCES: Final[dict[str, dict[str, str]]] = {
    "step": {"error_event_id": "error", "success_event_id": "success", "parent_step_id": "step"},
}


async def load(
    conn: asyncpg.Connection, events: Sequence[Event], *, stored: set[UUID] | None = None
) -> dict[str, int]:
    """Write ``events`` into their tables in one transaction; returns rows per table.

    As the sink does: an event already stored (a duplicate delivery) is skipped, and a
    reference to a row that is neither in ``events`` nor in ``stored`` (ids known to be in
    the tables) is written as NULL -- the sink's answer once a parent's grace period is over.
    ``conn`` is a plain asyncpg connection (default codecs: jsonb as text)."""
    present = {e.row["id"] for e in events} | (stored or set())
    written: dict[str, int] = {}
    async with conn.transaction():
        for kind, (table, columns) in _TABLES.items():
            records = [
                _record(e.row, columns, _REFERENCES.get(kind, {}), present)
                for e in events
                if e.kind == kind
            ]
            written[table] = await _insert(conn, table, columns, records) if records else 0
    return written


async def _insert(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> int:
    """COPY into a staging table, then insert what is not there yet (ids are unique)."""
    stage = f"fill_{table}"
    await conn.execute(
        f"CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(stage, records=records, columns=columns)
    cols = ", ".join(columns)
    status = await conn.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT (id) DO NOTHING"
    )
    return int(status.split()[-1])


def _record(
    row: dict[str, Any], columns: Sequence[str], references: dict[str, str], present: set[UUID]
) -> tuple[Any, ...]:
    values = {c: row.get(c) for c in columns}
    for name in references:
        if values[name] is not None and values[name] not in present:
            values[name] = None
    # asyncpg's default jsonb codec takes text
    return tuple(orjson.dumps(v).decode() if isinstance(v, dict) else v for v in values.values())


def _release(held: list[Event], stored: set[UUID]) -> tuple[list[Event], list[Event]]:
    """Split ``held`` into what can be written now (every referenced row stored or written
    with it, transitively) and what waits for a parent still to come, as the sink parks it."""
    ready = list(held)
    while True:
        available = stored | {e.row["id"] for e in ready}
        keep = [
            e
            for e in ready
            if all(
                e.row.get(name) is None or e.row[name] in available
                for name in _REFERENCES.get(e.kind, {})
            )
        ]
        if len(keep) == len(ready):
            kept = {id(e) for e in keep}
            return keep, [e for e in held if id(e) not in kept]
        ready = keep


async def measure(
    dsn: str, workload: Workload, *, schema: str = "public", min_confidence: float | None = None
) -> tuple[Score, list[Any]]:
    """Load ``workload`` wave by wave, run the correlator after each wave, score the links.
    Returns the score and each run's :class:`~debug_sink.jobs.correlator.CorrelatorResult`.

    A step whose error, success or parent step has not arrived waits (parked) until it has;
    after the last wave what still waits is written with those references NULL."""
    correlator = Correlator(
        dsn,
        schema=schema,
        min_confidence=MIN_CONFIDENCE if min_confidence is None else min_confidence,
    )
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    runs = []
    stored: set[UUID] = set()
    parked: list[Event] = []
    try:
        for index, wave in enumerate(workload.waves):
            if index == len(workload.waves) - 1:
                ready, parked = parked + list(wave), []
            else:
                ready, parked = _release(parked + list(wave), stored)
            await load(conn, ready, stored=stored)
            stored |= {e.row["id"] for e in ready}
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
