"""The arithmetic of the measurements: percentiles, summaries, drain windows, cores busy.

Owns the pure functions that turn raw measurements into figures, and the two raw records they
read: :class:`BatchLine` (a sink's ``batch_committed`` log line) and :class:`CpuSample`
(cumulative CPU seconds per component at one instant).

Guarantees: no I/O and no clock; inputs are never modified; empty or too-short inputs give an
empty result (``{"count": 0}``, ``(0, 0.0)``, ``{}``) rather than an error, except
:func:`percentile`, which refuses them. Not guaranteed: more precision than the 3 decimals the
figures are rounded to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BatchLine",
    "CpuSample",
    "cores_busy",
    "drain_window",
    "percentile",
    "spread",
    "summarize",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default). ``ValueError`` on an empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """count, p50, p95, p99, max and mean of ``values`` (same unit), rounded to 3 decimals."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements of one figure (and the runs, in
    order); ``{}`` when there are none. The median of an even count is the mean of the
    middle two."""
    if not values:
        return {}
    return {
        "median": round(percentile(values, 50), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One ``batch_committed`` log line of a sink process."""

    at: float  # epoch seconds (the line's timestamp: just after the commit)
    events: int
    duration_ms: float
    parked: int = 0
    released: int = 0
    process: int = 0


def drain_window(batches: Sequence[BatchLine], *, after: float | None = None) -> tuple[int, float]:
    """``(events, seconds)`` committed from the first batch commit to the last.

    The first batch's events were committed at the window's start, so they are not counted:
    exactly the events of the later batches were written within the window. ``after``: only
    batches committed after that time (e.g. once a consumer group has settled).
    """
    chosen = sorted((b for b in batches if after is None or b.at > after), key=lambda b: b.at)
    if len(chosen) < 2:
        return 0, 0.0
    return sum(b.events for b in chosen[1:]), chosen[-1].at - chosen[0].at


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Cumulative CPU seconds of each component at one instant, sampled during a drain."""

    at: float  # epoch seconds
    sinks: float  # CPU seconds so far, per component
    postgres: float
    broker: float


def cores_busy(samples: Sequence[CpuSample], start: float, end: float) -> dict[str, float]:
    """Average cores each component kept busy between ``start`` and ``end`` (epoch seconds),
    interpolated between samples of their cumulative CPU time."""
    if end <= start or len(samples) < 2:
        return {}

    def at(t: float, field: str) -> float:
        before = [s for s in samples if s.at <= t] or [samples[0]]
        after = [s for s in samples if s.at >= t] or [samples[-1]]
        a, b = before[-1], after[0]
        va, vb = float(getattr(a, field)), float(getattr(b, field))
        return va if b.at == a.at else va + (vb - va) * (t - a.at) / (b.at - a.at)

    out = {
        field: round((at(end, field) - at(start, field)) / (end - start), 3)
        for field in ("sinks", "postgres", "broker")
    }
    out["total"] = round(sum(out.values()), 3)
    return out
