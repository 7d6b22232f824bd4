"""What the sink's throughput is compared with, on the same events in the same run.

Owns the rivals of ``throughput``:

- (a) ``psql \\copy`` of exactly the rows the sink wrote (exported from its database,
  :func:`export_rows`) into a database like the one the sink wrote into (a copy of the
  prefilled one, or a fresh one) with the shipped schema -- the ceiling;
- (b) the same rows into the user's literal seed schema (``sql/bench_seed_schema.sql``, an
  empty database) -- both :func:`copy_into`, which also measures the CPU of psql and of
  PostgreSQL;
- (c) the consumer a platform engineer would write first and (d) one ``INSERT`` per event in
  autocommit (:mod:`debug_sink.bench.typical`), both reading the backlog from the broker as
  the sink does (:func:`consumer_rival`).

Guarantees: the copies time only the import (one psql, one transaction per table,
foreign-key order). Not guaranteed: a fair fight -- (c) and (d) skip redaction, dead letters,
snapshot dedupe and exactly-once, and write into a database without foreign keys (they could
not order parents before children): all of that flatters them.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from debug_sink.bench.harness import COPY_ORDER
from debug_sink.bench.internals import COLUMNS, TABLES, EventKind
from debug_sink.bench.procfs import cpu_seconds, process_children
from debug_sink.bench.scenarios.backlogs import drain_figures
from debug_sink.bench.sinks import PER_ROW, TYPICAL, Stalled, drain, in_group

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["SEED_SCHEMA_MISSING", "consumer_rival", "copy_into", "export_rows"]

#: Columns the literal seed schema does not have (always NULL / 1 in the bench's rows).
SEED_SCHEMA_MISSING: Final[dict[EventKind, tuple[str, ...]]] = {
    EventKind.SNAPSHOT: ("metadata",),
    EventKind.SUCCESS: ("recovers_error_ids",),
    EventKind.STEP: ("attempt",),
}


async def export_rows(
    h: Harness, dsn: str, after_xid: int | None = None
) -> dict[EventKind, tuple[Path, int]]:
    """``\\copy`` every event table's rows (the writer's columns) out of ``dsn``: those a
    drain wrote (``after_xid``: written by a transaction at or after it, i.e. not the
    prefill's)."""
    directory = h.root / "export"
    directory.mkdir(exist_ok=True)
    files: dict[EventKind, tuple[Path, int]] = {}
    where = "" if after_xid is None else f" WHERE xmin::text::bigint >= {int(after_xid)}"
    for kind in COPY_ORDER:
        path = directory / f"{TABLES[kind]}.tsv"
        cols = ", ".join(COLUMNS[kind])
        await h.psql(dsn, f"\\copy (SELECT {cols} FROM {TABLES[kind]}{where}) TO '{path}'")
        with path.open("rb") as f:
            files[kind] = (path, sum(1 for _ in f))
    return files


async def copy_into(
    h: Harness,
    dsn: str,
    files: dict[EventKind, tuple[Path, int]],
    missing: Mapping[EventKind, tuple[str, ...]],
) -> dict[str, float]:
    """``\\copy`` the exported files into ``dsn`` (one psql, one transaction per table,
    foreign-key order). Columns in ``missing`` are cut from the files first. Returns the
    ``seconds`` it took and the CPU seconds of psql and of PostgreSQL meanwhile
    (``cpu_s``, ``psql_cpu_s``, ``postgres_cpu_s``)."""
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
    pg_pid = h.postgres.pid
    pg_before = cpu_seconds(pg_pid, children=process_children()) if pg_pid else None
    children_before = _children_cpu()
    started = time.perf_counter()
    await h.psql(dsn, *commands)
    seconds = time.perf_counter() - started
    psql_cpu = _children_cpu() - children_before
    pg_after = cpu_seconds(pg_pid, children=process_children()) if pg_pid else None
    postgres_cpu = (pg_after - pg_before) if pg_after is not None and pg_before is not None else 0
    return {
        "seconds": round(seconds, 3),
        "psql_cpu_s": round(psql_cpu, 3),
        "postgres_cpu_s": round(postgres_cpu, 3),
        "cpu_s": round(psql_cpu + postgres_cpu, 3),
    }


def _children_cpu() -> float:
    """User + system CPU seconds of this process's children that have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: A rival that commits nothing for this long is stalled (longer than its group join can
#: take: typical._JOIN_ATTEMPTS x typical._JOIN_TIMEOUT_S = 120 s).
_STALL_S: Final = 180.0
#: Drains of a rival tried before giving up on it.
_RIVAL_ATTEMPTS: Final = 3


async def consumer_rival(
    h: Harness,
    backlogs: Backlogs,
    n: int,
) -> dict[str, Any]:
    """Rivals (c) and (d), the ``n``-th time: a copy of the database the sink writes into,
    without foreign keys (see :mod:`debug_sink.bench.typical`); the typical consumer drains
    the throughput backlog into it, then the per-row consumer drains its smaller backlog
    into the same database. Their figures, as :func:`~.backlogs.drain_figures` gives them.

    A rival has no stall recovery, and now and then one stopped receiving mid-drain (seen
    twice against Tansu; others were the broker's wrong ListOffsets(earliest), which the
    typical consumer now sidesteps as the sink does). A drain that commits nothing for
    :data:`_STALL_S` is thrown away and run again from the start, into a fresh copy with a
    new group; ``stalled`` counts them."""
    stalled = 0
    for attempt in range(_RIVAL_ATTEMPTS):
        try:
            result = await _consumer_rival(h, backlogs, n, attempt)
        except Stalled as exc:
            stalled += 1
            h.notes.append(f"{exc}: thrown away, drained again from the start")
            continue
        return {**result, "stalled": stalled}
    raise RuntimeError(f"rival {n + 1}: stalled in each of {_RIVAL_ATTEMPTS} drains")


async def _consumer_rival(h: Harness, backlogs: Backlogs, n: int, attempt: int) -> dict[str, Any]:
    backlog = await backlogs.throughput()
    name = f"bench_rival_{n}"
    dsn = await backlogs.target(name)
    suffix = f"{n}" if attempt == 0 else f"{n}-retry{attempt}"

    async def figures(
        of: dict[str, Any], group: str, label: str, program: Sequence[str]
    ) -> dict[str, Any]:
        drained = await drain(
            h,
            dsn,
            in_group(of["names"], f"-{group}-{suffix}"),
            of["events"],
            f"{label} ({n + 1})",
            stall_s=_STALL_S,
            program=program,
        )
        return drain_figures(drained, of)

    try:
        dropped = await h.drop_foreign_keys(dsn)
        typical = await figures(backlog, "typical", "(c) typical consumer", TYPICAL)
        per_row = await figures(
            await backlogs.per_row(), "per-row", "(d) per-row consumer", PER_ROW
        )
    finally:
        await h.drop_database(name)
    return {"typical": typical, "per_row": per_row, "foreign_keys_dropped": dropped}
