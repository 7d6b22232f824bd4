"""Delivery of generated events through Kafka, as the held-out workloads model it.

Owns :func:`deliver`: the events of generated workflows -> arrival waves. A wave is what lands
between two correlator runs. Each event arrives after a random delay; a share arrives one or
more waves late (a producer's retry, a slow partition), a share is delivered twice (a producer
re-sending after a lost acknowledgement: same id, the sink stores it once), and a whole agent
of a workflow can be offline for a while (every event of it late by the same number of waves).
Within a wave the order is arbitrary.

Not modelled: loss (every event arrives at least once), events outside the measured span.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from debug_sink.dev.synthetic import Event, Kind, Workload

__all__ = [
    "Delivery",
    "Generated",
    "Slot",
    "collect",
    "count_kinds",
    "deliver",
    "event_time",
    "number_slots",
    "numbered",
    "unrecovered_errors",
    "workload",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """How events travel: a wave lasts ``span_s / waves`` seconds from ``start``."""

    start: datetime
    span_s: float
    waves: int
    late_fraction: float
    late_waves: tuple[float, float]
    duplicate_fraction: float = 0.0


def event_time(row: dict[str, Any]) -> datetime:
    """When an event was produced: its occurred_at, or a step's completion (or start)."""
    at = row.get("occurred_at") or row.get("completed_at") or row["started_at"]
    assert isinstance(at, datetime)
    return at


def deliver(
    events: Iterable[tuple[Kind, dict[str, Any]]],
    rng: random.Random,
    how: Delivery,
    *,
    offline: dict[tuple[UUID, str], float] | None = None,
) -> list[list[Event]]:
    """The arrival waves of ``events``. ``offline`` maps (correlation_id, agent_name) to the
    number of waves every event of that agent in that workflow is delayed by."""
    wave_length = how.span_s / how.waves
    arrivals: list[tuple[datetime, Kind, dict[str, Any]]] = []
    for kind, row in events:
        copies = 2 if rng.random() < how.duplicate_fraction else 1
        for _ in range(copies):
            delay = rng.expovariate(1.0)
            if rng.random() < how.late_fraction:
                delay += rng.uniform(*how.late_waves) * wave_length
            if offline:
                delay += offline.get((row["correlation_id"], row["agent_name"]), 0) * wave_length
            arrivals.append((event_time(row) + timedelta(seconds=delay), kind, row))
    arrivals.sort(key=lambda item: item[0])
    waves: list[list[Event]] = [[] for _ in range(how.waves)]
    for arrival, kind, row in arrivals:
        index = min(how.waves - 1, int((arrival - how.start).total_seconds() // wave_length))
        waves[max(index, 0)].append(Event(kind, row, arrival, max(index, 0)))
    for wave in waves:
        rng.shuffle(wave)
    return waves


def count_kinds(events: Sequence[tuple[Kind, dict[str, Any]]]) -> dict[str, int]:
    """Events per kind, each counted once."""
    counts = {"error": 0, "success": 0, "step": 0}
    for kind, _ in events:
        counts[kind] += 1
    return counts


@dataclass(slots=True)
class Slot:
    """A step number to assign once the workflow has run: numbers follow start order
    (:func:`number_slots`)."""

    first_start: datetime
    number: int = 0


def number_slots(slots: Iterable[Slot]) -> None:
    """Number ``slots`` 1, 2, ... in the order they started."""
    for number, slot in enumerate(sorted(slots, key=lambda s: s.first_start), start=1):
        slot.number = number


class Generated(Protocol):
    """A generated workflow, as :func:`workload` reads it."""

    truth: set[tuple[UUID, UUID]]
    unrecovered: int
    stated: set[tuple[UUID, UUID]]


def unrecovered_errors(
    rows: Iterable[tuple[Kind, dict[str, Any], Slot | None]], truth: set[tuple[UUID, UUID]]
) -> int:
    """How many of a workflow's error ``rows`` no pair of ``truth`` recovers."""
    recovered = {error for error, _ in truth}
    return sum(1 for kind, row, _ in rows if kind == "error" and row["id"] not in recovered)


def numbered(
    rows: Iterable[tuple[Kind, dict[str, Any], Slot | None]],
) -> list[tuple[Kind, dict[str, Any]]]:
    """Rows whose step is known only once the workflow is complete (numbered in start order):
    a step row gets its slot's ``step_number``, an error or success with a slot its
    ``execution_step``."""
    out: list[tuple[Kind, dict[str, Any]]] = []
    for kind, row, slot in rows:
        copy = dict(row)
        if kind == "step":
            assert slot is not None
            copy["step_number"] = slot.number
        elif slot is not None:
            copy["execution_step"] = slot.number
        out.append((kind, copy))
    return out


def workload(
    flows: Sequence[Generated],
    events: list[tuple[Kind, dict[str, Any]]],
    rng: random.Random,
    how: Delivery,
    *,
    offline: dict[tuple[UUID, str], float] | None = None,
) -> Workload:
    """The :class:`~debug_sink.dev.synthetic.Workload` of generated workflows ``flows`` whose
    events are ``events``, delivered as ``how`` says."""
    return collect(flows, events, deliver(events, rng, how, offline=offline))


def collect(
    flows: Sequence[Generated],
    events: Sequence[tuple[Kind, dict[str, Any]]],
    waves: list[list[Event]],
) -> Workload:
    """The :class:`~debug_sink.dev.synthetic.Workload` of ``flows`` whose ``events`` arrive in
    ``waves`` (for a generator that delivers its events in parts)."""
    counts = count_kinds(events)
    return Workload(
        waves=waves,
        truth=set().union(*(flow.truth for flow in flows)),
        errors=counts["error"],
        successes=counts["success"],
        steps=counts["step"],
        unrecovered_errors=sum(flow.unrecovered for flow in flows),
        stated=set().union(*(flow.stated for flow in flows)),
    )
