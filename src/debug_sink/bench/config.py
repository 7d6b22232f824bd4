"""What a bench run measures, how much, and the PostgreSQL settings it runs with.

Owns :data:`SECTIONS` (the measured scenarios, in the order they run), :class:`BenchConfig`
(the full and the ``--quick`` sizes) and :data:`PG_SETTINGS`.

Guarantees: :meth:`BenchConfig.make` refuses unknown section names and keeps the canonical
order whatever order they were given in. Imports only the standard library: the command line
loads this module for every ``debug-sink`` command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["PG_SETTINGS", "SECTIONS", "WORKLOADS", "BenchConfig"]

SECTIONS: Final = (
    "throughput",
    "latency",
    "rss",
    "queries",
    "pages",
    "scaleout",
    "sdk",
    "hook",
    "otlp",
    "decode",
)

#: The workloads of the throughput sections: ``realistic`` (the headline) and ``simple`` (the
#: best case of earlier rounds: increasing ids, empty tables, one producer in causal order,
#: nothing re-sent, redacted or invalid).
WORKLOADS: Final = ("realistic", "simple")

#: PostgreSQL settings of the bench server. Durable: fsync, synchronous_commit and
#: full_page_writes keep their defaults (on). Changed from the defaults: a buffer cache and a
#: WAL size an operator of a write-heavy database would set, and commit timestamps (for the
#: latency measurement; they cost one 10-byte SLRU entry per transaction).
PG_SETTINGS: Final[dict[str, str]] = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "track_commit_timestamp": "on",
    "max_connections": "100",
}


#: WAL segments the bench server prepares before measuring (``--wal-segments``).
DEFAULT_WAL_SEGMENTS: Final = 32


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to measure and how much. :meth:`make` gives the full or the ``--quick`` sizes.

    ``workload``: one of :data:`WORKLOADS`; the realistic one is written into copies of a
    database already holding ``prefill_events`` events, by ``producers`` producers, with
    ``duplicates`` of the messages re-sent, ``secrets`` of the workflows carrying
    credentials and ``invalid`` of them an invalid message. ``repeats``: drains (and copies)
    per throughput figure, reported as median and min-max.
    """

    quick: bool = False
    sections: tuple[str, ...] = SECTIONS
    events: int = 200_000
    partitions: int = 4
    workload: str = "realistic"
    repeats: int = 3
    prefill_events: int = 5_000_000
    producers: int = 4
    duplicates: float = 0.05
    secrets: float = 0.05
    invalid: float = 0.02
    latency_rates: tuple[int, ...] = (2_000, 10_000)
    latency_seconds: float = 15.0
    rss_events: int = 1_000_000
    query_events: int = 10_000_000
    query_samples: int = 200
    per_row_events: int = 20_000
    decode_events: int = 20_000
    sdk_calls: int = 20_000
    rss_timeout: float = 1500.0
    latency_wait: float = 300.0
    #: WAL segments the server prepares before measuring (:meth:`Harness.warm_wal`); 0 =
    #: the cold WAL of a new server, which zero-fills a 16 MB file every ~11,000 events.
    wal_segments: int = DEFAULT_WAL_SEGMENTS
    seed: int = 1
    #: The consumers' group session timeout: failure detection only, but Tansu holds a group
    #: join for about half of it (with the sink's default 30 s, 15 s per drain).
    session_timeout_ms: int = 6000

    @property
    def realistic(self) -> bool:
        return self.workload == "realistic"

    @classmethod
    def make(
        cls,
        *,
        quick: bool = False,
        events: int | None = None,
        only: Iterable[str] | None = None,
        workload: str = "realistic",
        repeats: int | None = None,
        prefill: int | None = None,
        wal_segments: int | None = None,
    ) -> BenchConfig:
        chosen = tuple(s for s in SECTIONS if only is None or s in set(only))
        unknown = set(only or ()) - set(SECTIONS)
        if unknown:
            raise ValueError(unknown_sections(unknown))
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
        if repeats is not None and repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if wal_segments is not None and not 0 <= wal_segments <= 256:
            raise ValueError(f"wal segments must be between 0 and 256, got {wal_segments}")
        wal = DEFAULT_WAL_SEGMENTS if wal_segments is None else wal_segments
        if quick:
            n = events or 40_000
            return cls(
                quick=True,
                events=n,
                prefill_events=500_000 if prefill is None else prefill,
                latency_seconds=4.0,
                latency_wait=60.0,
                rss_events=n,
                query_events=1_000_000,
                query_samples=50,
                # It runs at a few hundred to a few thousand events/s.
                per_row_events=min(n // 4, 2_000),
                decode_events=4_000,
                sdk_calls=2_000,
                session_timeout_ms=3000,
                sections=chosen,
                workload=workload,
                repeats=repeats or 3,
                wal_segments=wal,
            )
        n = events or 200_000
        return cls(
            events=n,
            prefill_events=5_000_000 if prefill is None else prefill,
            per_row_events=min(n, 20_000),
            sections=chosen,
            workload=workload,
            repeats=repeats or 3,
            wal_segments=wal,
        )


def unknown_sections(names: Iterable[str]) -> str:
    """The message for section names outside :data:`SECTIONS` (config and command line)."""
    return f"unknown section(s) {', '.join(sorted(names))}; choose from {', '.join(SECTIONS)}"
