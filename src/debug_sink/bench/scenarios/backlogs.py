"""The backlogs and databases that several scenarios share, each made only once.

Owns :class:`Backlogs`: the throughput backlog (the realistic workload of
:mod:`~debug_sink.bench.realistic`, or the simple one), the small backlog of the per-row rival,
the prefilled database the realistic workload is written into (a template: every drain and
every copy gets a file copy of it, so each starts from the same table), the sink's drains of
the throughput backlog (``throughput`` runs them, ``rss`` under ``--quick`` and ``scaleout``
read the first), and :func:`check_rows`, the rows a drained backlog must leave.

Guarantees: each backlog is produced at most once per run and the prefill is made at most
once, whichever section asks first; the ``n``-th sink drain is run at most once; a wrong row
count is a note in the results, not an error. Not guaranteed: that the databases of drains
still exist after the section that made them (copies are dropped once measured).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from debug_sink.bench.fill import FILL_EVENTS_PER_WORKFLOW, fill
from debug_sink.bench.harness import COPY_ORDER, connection
from debug_sink.bench.internals import TABLES
from debug_sink.bench.produce import new_backlog
from debug_sink.bench.realistic import Realism
from debug_sink.bench.sinks import Drain, drain, in_group
from debug_sink.bench.workload import ROWS_PER_KIND

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness

__all__ = ["Backlogs", "Prefilled", "check_rows"]

#: Workflow numbers of the per-row rival's backlog start here: none is shared with another.
_PER_ROW_FIRST = 20_000_000


@dataclass(frozen=True, slots=True)
class Prefilled:
    """The template database of the realistic workload: its name, the rows it holds per
    table, and a transaction id every later write has (rows written into a copy of it have
    ``xmin`` at or above it)."""

    name: str
    rows: dict[str, int]
    events: int
    after_xid: int
    fill: dict[str, Any]


class Backlogs:
    """The run's shared backlogs, prefilled template and sink drains, made on first use."""

    def __init__(self, h: Harness) -> None:
        self._h = h
        self._throughput: dict[str, Any] | None = None
        self._per_row: dict[str, Any] | None = None
        self._prefilled: Prefilled | None = None
        self._prefill_done = False
        self._drains: dict[int, dict[str, Any]] = {}

    @property
    def realism(self) -> Realism | None:
        """The realistic workload's knobs, or None for the simple workload."""
        cfg = self._h.cfg
        if not cfg.realistic:
            return None
        return Realism(
            producers=cfg.producers,
            duplicates=cfg.duplicates,
            secrets=cfg.secrets,
            invalid=cfg.invalid,
            seed=cfg.seed,
        )

    async def throughput(self) -> dict[str, Any]:
        """The throughput backlog (produced once; every drain and rival reads it)."""
        if self._throughput is None:
            h = self._h
            self._throughput = await new_backlog(
                h, "tp", h.cfg.events, "produce backlog", realism=self.realism
            )
        return self._throughput

    async def per_row(self) -> dict[str, Any]:
        """A smaller backlog for the per-row rival (it runs at a few thousand events/s)."""
        if self._per_row is None:
            h = self._h
            self._per_row = await new_backlog(
                h,
                "row",
                h.cfg.per_row_events,
                "per-row rival: produce",
                first=_PER_ROW_FIRST,
                realism=self.realism,
            )
        return self._per_row

    async def prefilled(self) -> Prefilled | None:
        """The template database of the realistic workload (None: the simple workload
        writes into empty databases)."""
        h = self._h
        if self._prefill_done:
            return self._prefilled
        self._prefill_done = True
        if not h.cfg.realistic or h.cfg.prefill_events <= 0:
            return None
        name = "bench_prefill"
        dsn = await h.database(name)
        workflows = max(1, h.cfg.prefill_events // FILL_EVENTS_PER_WORKFLOW)
        filled = await fill(h, dsn, workflows, aggregates=False, label="prefill")
        async with connection(dsn) as conn:
            await conn.execute("CHECKPOINT")
            after = int(await conn.fetchval("SELECT pg_current_xact_id()::text::bigint"))
        self._prefilled = Prefilled(
            name,
            await h.table_counts(dsn),
            workflows * FILL_EVENTS_PER_WORKFLOW,
            after,
            filled,
        )
        return self._prefilled

    async def target(self, name: str) -> str:
        """A database to write a throughput backlog into: a copy of the prefilled template,
        or (simple workload) a fresh one with the shipped schema."""
        h = self._h
        prefilled = await self.prefilled()
        if prefilled is None:
            return await h.database(name)
        with h.step(f"copy the {prefilled.events:,}-event database"):
            return await h.database(name, template=prefilled.name)

    async def rows_after_prefill(self, dsn: str) -> dict[str, int]:
        """Rows per table of ``dsn`` beyond those of the prefilled template."""
        counts = await self._h.table_counts(dsn)
        prefilled = await self.prefilled()
        if prefilled is None:
            return counts
        return {t: n - prefilled.rows.get(t, 0) for t, n in counts.items()}

    def expected(self, backlog: dict[str, Any]) -> dict[str, int]:
        """The rows a drain of ``backlog`` leaves: every workflow's rows, one dead letter
        per invalid message sent, nothing parked."""
        expected = {TABLES[kind]: n * backlog["workflows"] for kind, n in ROWS_PER_KIND.items()}
        invalid = backlog.get("counts", {}).get("invalid", 0)
        expected.update({"sink_parked_events": 0, "sink_dead_letters": invalid})
        return expected

    async def sink_drain(self, n: int) -> dict[str, Any]:
        """The ``n``-th drain of the throughput backlog by one sink, into a database of its
        own (:meth:`target`): its figures, cores busy, CPU per event, the rows it left, and
        ``dsn`` and ``sinks``. The database is kept (the rivals' rows are exported from the
        first); :meth:`forget` drops it."""
        if n not in self._drains:
            h = self._h
            backlog = await self.throughput()
            name = f"bench_sink_{n}"
            dsn = await self.target(name)
            names = in_group(backlog["names"], f"-one-{n}")
            wall = time.perf_counter()
            drained = await drain(
                h, dsn, names, backlog["events"], f"sink: drain backlog ({n + 1})"
            )
            wall = time.perf_counter() - wall
            rows = await self.rows_after_prefill(dsn)
            check_rows(rows, self.expected(backlog), h.notes, f"sink drain {n + 1}")
            self._drains[n] = {
                "database": name,
                "dsn": dsn,
                "sinks": drained.sinks,
                "wall_s": round(wall, 3),
                **drain_figures(drained, backlog),
                "rows": rows,
            }
        return self._drains[n]

    async def forget(self, n: int) -> None:
        """Drop the database of the ``n``-th sink drain (its figures stay)."""
        drained = self._drains.get(n)
        if drained is not None and drained.get("database"):
            await self._h.drop_database(drained.pop("database"))


def drain_figures(drained: Drain, backlog: dict[str, Any]) -> dict[str, Any]:
    """A drain's figures with the cores it kept busy and its events per CPU-second of the
    consumer processes and PostgreSQL together (over the drain window)."""
    figures = drained.figures(backlog)
    cores = drained.cores_busy()
    figures["cores_busy"] = cores
    cpu = (cores.get("sinks", 0.0) + cores.get("postgres", 0.0)) * figures["window_s"]
    figures["cpu_s"] = round(cpu, 3)
    figures["events_per_cpu_s"] = round(figures["window_events"] / cpu) if cpu else None
    return figures


def check_rows(
    counts: dict[str, int], expected: dict[str, int], notes: list[str], section: str
) -> None:
    """The rows found are the rows expected (else: a note)."""
    wrong = {t: (counts.get(t), n) for t, n in expected.items() if counts.get(t) != n}
    if wrong:
        notes.append(f"{section}: unexpected row counts (found, expected): {wrong}")


def event_tables() -> list[str]:
    """The event tables, parents first."""
    return [TABLES[kind] for kind in COPY_ORDER]
