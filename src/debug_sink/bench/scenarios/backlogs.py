"""The backlogs that several scenarios drain, produced and drained by one sink only once.

Owns :class:`Backlogs`: the throughput backlog (``throughput`` drains it with one sink,
``rss`` under ``--quick`` reads that drain's memory, ``scaleout`` drains it again with two)
and the no-references backlog (a diagnostic for ``throughput`` and ``scaleout``); and
:func:`check_rows`, the row counts a drained backlog must leave.

Guarantees: each backlog is produced at most once per run and drained by a single sink at
most once, whichever section asks first; a wrong row count is a note in the results, not an
error. Not guaranteed: that the single sink's database still exists after the run's
``throughput`` section (it is kept until the run's directory goes).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from debug_sink.bench.internals import TABLES
from debug_sink.bench.produce import new_backlog
from debug_sink.bench.sinks import drain, in_group
from debug_sink.bench.workload import ROWS_PER_KIND

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness

__all__ = ["Backlogs", "check_rows"]

#: Figures of the no-references drain kept in the results.
_NO_REFERENCES_FIGURES = (
    "events_per_s",
    "mb_per_s",
    "window_s",
    "batches",
    "mean_batch_ms",
    "parked",
)


class Backlogs:
    """The run's shared backlogs and their single-sink drains, made on first use."""

    def __init__(self, h: Harness) -> None:
        self._h = h
        self._throughput: dict[str, Any] | None = None
        self._single_sink: dict[str, Any] | None = None
        self._no_references: dict[str, Any] | None = None

    async def throughput(self) -> dict[str, Any]:
        """The throughput backlog (produced once; scale-out drains it again)."""
        if self._throughput is None:
            h = self._h
            self._throughput = await new_backlog(h, "tp", h.cfg.events, "produce backlog")
        return self._throughput

    async def single_sink(self) -> dict[str, Any]:
        """The throughput backlog drained by one sink into ``bench_sink``: its figures, the
        cores busy, the rows it left, its ``dsn`` and its ``sinks``."""
        if self._single_sink is None:
            h = self._h
            backlog = await self.throughput()
            dsn = await h.database("bench_sink")
            names = in_group(backlog["names"], "-one")
            wall = time.perf_counter()
            drained = await drain(h, dsn, names, backlog["events"], "sink: drain backlog")
            wall = time.perf_counter() - wall
            self._single_sink = {
                "dsn": dsn,
                "sinks": drained.sinks,
                "wall_s": wall,
                **drained.figures(backlog),
                "cores_busy": drained.cores_busy(),
            }
            counts = await h.table_counts(dsn)
            self._single_sink["rows"] = counts
            check_rows(counts, backlog["workflows"], h.notes, "throughput")
        return self._single_sink

    async def no_references(self) -> dict[str, Any]:
        """Diagnostic: the same mix without references between events, so nothing can wait
        for a parent (no parking). The gap to ``sink`` is what parking costs. Produced and
        drained once; scale-out drains the same backlog again. Holds the backlog's ``names``,
        ``workflows`` and ``events``, then the figures of the drain."""
        if self._no_references is None:
            h = self._h
            backlog = await new_backlog(
                h, "nr", h.cfg.events, "no references: produce", references=False
            )
            dsn = await h.database("bench_no_refs")
            drained = await drain(
                h,
                dsn,
                in_group(backlog["names"], "-one"),
                backlog["events"],
                "no references: sink drains",
            )
            figures = drained.figures(backlog)
            await h.drop_database("bench_no_refs")
            self._no_references = {
                "names": backlog["names"],
                "workflows": backlog["workflows"],
                "events": backlog["events"],
                **{k: figures[k] for k in _NO_REFERENCES_FIGURES},
            }
        return self._no_references


def check_rows(counts: dict[str, int], workflows: int, notes: list[str], section: str) -> None:
    """Every generated row is stored, nothing parked or dead-lettered (else: a note)."""
    expected = {TABLES[kind]: n * workflows for kind, n in ROWS_PER_KIND.items()}
    expected.update({"sink_parked_events": 0, "sink_dead_letters": 0})
    wrong = {t: (counts.get(t), n) for t, n in expected.items() if counts.get(t) != n}
    if wrong:
        notes.append(f"{section}: unexpected row counts (found, expected): {wrong}")
