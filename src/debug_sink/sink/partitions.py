"""The partitions this group member owns, each with its lifecycle in one object.

A partition is *assigned* by the group coordinator, then *positioned*: the consumer seeks to
the offset stored in PostgreSQL (the sink keeps it paused until then, so nothing is fetched
from a wrong position). A positioned partition is fetched unless *paused* for backpressure.
On revocation it is forgotten, and the :attr:`Assignment.generation` moves on so that work
built from the old assignment is recognisable (and abandoned: its next owner re-reads it).

Pure bookkeeping: no Kafka calls here. The fetcher applies the pause/resume sets this module
computes.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass(slots=True)
class PartitionState(Generic[P]):
    """One assigned partition."""

    partition: P
    #: Sought to the stored offset (or the log's beginning); until then paused in the client.
    positioned: bool = False
    #: Paused for backpressure (only a positioned partition can be).
    paused: bool = False


class Assignment(Generic[P]):
    """The assigned partitions and the generation of the assignment."""

    def __init__(self) -> None:
        self._states: dict[P, PartitionState[P]] = {}
        #: Moves on at every revocation: a batch built in an older generation is stale.
        self.generation = 0

    def __contains__(self, partition: object) -> bool:
        return partition in self._states

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[P]:
        return iter(list(self._states))

    def assign(self, partitions: Iterable[P]) -> None:
        """The new assignment (replacing the old one): nothing positioned, nothing paused."""
        self._states = {p: PartitionState(p) for p in partitions}

    def start_revocation(self) -> None:
        """Everything built from the current assignment becomes stale."""
        self.generation += 1

    def revoke(self, partitions: Iterable[P]) -> None:
        for p in partitions:
            self._states.pop(p, None)

    @property
    def unpositioned(self) -> set[P]:
        return {p for p, s in self._states.items() if not s.positioned}

    @property
    def positioned(self) -> set[P]:
        return {p for p, s in self._states.items() if s.positioned}

    @property
    def fetching(self) -> set[P]:
        """Positioned and not paused: what the client fetches."""
        return {p for p, s in self._states.items() if s.positioned and not s.paused}

    @property
    def all_positioned(self) -> bool:
        return all(s.positioned for s in self._states.values())

    def mark_positioned(self, partitions: Iterable[P]) -> None:
        for p in partitions:
            if (state := self._states.get(p)) is not None:
                state.positioned = True

    def is_positioned(self, partition: P) -> bool:
        state = self._states.get(partition)
        return state is not None and state.positioned

    def repause(self, wanted: Collection[P]) -> tuple[set[P], set[P]]:
        """Make exactly the positioned partitions of ``wanted`` paused; returns the sets to
        (pause, resume) in the client."""
        pause: set[P] = set()
        resume: set[P] = set()
        for p, state in self._states.items():
            want = state.positioned and p in wanted
            if want and not state.paused:
                pause.add(p)
            elif state.paused and not want:
                resume.add(p)
            state.paused = want
        return pause, resume
