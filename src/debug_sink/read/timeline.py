"""The order of a workflow's timeline: causal first, then time, then a fixed tie-break.

Owns :func:`order_timeline`, the pure function that ``DebugQueries.timeline`` uses to put a
workflow's steps, snapshots, transformations, LLM calls, errors and successes into one list.
Synchronous, no I/O, deterministic: the same entries always give the same order, whatever
order they come in.

Timestamps alone cannot order a workflow: events of one workflow come from several agents
whose clocks may be skewed, and many share a timestamp (a snapshot and the error it belongs
to are captured in the same millisecond). So the order is a *topological* order of the
"must come before" relation below, and among the entries that may come next the one with the
smallest key ``(at, RANK[kind], id)`` goes first. When no clock is skewed this is simply time
order with ties broken by kind and then id; when one is, causality wins over the clock.

"Must come before" (A -> B means A is listed before B):

1. references, given by the caller as :attr:`TimelineEntry.follows`: a snapshot -> the error,
   success or transformation that references it; a parent snapshot -> its child; a step -> the
   error or success it references; an error -> the success that recovered it;
2. step numbers: steps are grouped by ``(step_number, attempt)`` and the groups are a chain
   in that order (step 2 starts after step 1, a retry after the first attempt): the
   step number is treated as a workflow-wide sequence;
3. an entry that carries a step number ``n`` (``execution_step``) comes after the first step
   group of number ``n`` (or, when there is none, the last group below ``n``) and before the
   first group above ``n``.

Ties in the key are broken by :data:`RANK` (a step starts before what happens in it, a state
is captured before the error that carries it, a success follows the error it recovers), then
by id. If the relation has a cycle (inconsistent references), the smallest remaining entry
by key is taken next, so ordering never fails.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

__all__ = ["RANK", "EntryKind", "TimelineEntry", "last_good_snapshots", "order_timeline"]

EntryKind = Literal["step", "transformation", "snapshot", "llm_call", "error", "success"]

#: Tie-break between kinds at the same timestamp.
RANK: Final[Mapping[str, int]] = {
    "step": 0,
    "transformation": 1,
    "snapshot": 2,
    "llm_call": 3,
    "error": 4,
    "success": 5,
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a workflow's timeline.

    ``at`` is the event's own time (a step's start); ``step_number`` is the step it belongs
    to (a step's own number, else the event's ``execution_step``); ``attempt`` is set for
    steps; ``follows`` lists ids of entries that must come before this one; ``data`` holds the
    row's fields.
    """

    kind: EntryKind
    id: UUID
    at: datetime
    agent_name: str | None = None
    step_number: int | None = None
    attempt: int | None = None
    follows: tuple[UUID, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[datetime, int, str]:
        """The tie-break key among entries free to come next."""
        return (self.at, RANK[self.kind], str(self.id))


def order_timeline(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """``entries`` in timeline order (see the module docstring). Duplicated ids keep one.

    Linear in the entries and their references: the steps of one (number, attempt) group are
    joined to the groups before and after through two marker nodes of the group ("all of it
    done", "it may start"), not by an edge per pair of steps, so a workflow of thousands of
    same-numbered steps (agents' data) orders as fast as any other."""
    by_id: dict[UUID, TimelineEntry] = {}
    for entry in entries:
        by_id.setdefault(entry.id, entry)
    nodes = sorted(by_id.values(), key=lambda e: e.key)
    # Nodes: entry ids, and ("done", group) / ("start", group) markers, never output.
    successors: dict[Any, set[Any]] = defaultdict(set)

    def edge(before: Any, after: Any) -> None:
        if before != after:
            successors[before].add(after)

    for entry in nodes:
        for ref in entry.follows:
            if ref in by_id:
                edge(ref, entry.id)

    groups: dict[tuple[int, int], list[UUID]] = defaultdict(list)
    for entry in nodes:
        if entry.kind == "step" and entry.step_number is not None:
            groups[(entry.step_number, entry.attempt or 1)].append(entry.id)
    chain = sorted(groups)
    for group, members in groups.items():
        for step_id in members:
            edge(("start", group), step_id)
            edge(step_id, ("done", group))
    for earlier, later in itertools.pairwise(chain):
        edge(("done", earlier), ("start", later))

    numbers = [g[0] for g in chain]
    for entry in nodes:
        if entry.kind == "step" or entry.step_number is None or not chain:
            continue
        n = entry.step_number
        first_at_or_above = bisect.bisect_left(numbers, n)
        first_above = bisect.bisect_right(numbers, n)
        if first_at_or_above < len(chain) and numbers[first_at_or_above] == n:
            before_group: tuple[int, int] | None = chain[first_at_or_above]
        else:
            before_group = chain[first_at_or_above - 1] if first_at_or_above else None
        if before_group is not None:
            edge(("done", before_group), entry.id)
        if first_above < len(chain):
            edge(entry.id, ("start", chain[first_above]))

    indegree: dict[Any, int] = defaultdict(int)
    for targets in successors.values():
        for target in targets:
            indegree[target] += 1
    done: set[Any] = set()
    ready: list[tuple[Any, UUID]] = []

    def finish(node: Any) -> None:
        """``node`` is placed: its successors lose a predecessor; markers pass on at once."""
        pending = [node]
        while pending:
            current = pending.pop()
            done.add(current)
            for target in successors.get(current, ()):
                indegree[target] -= 1
                if indegree[target] == 0 and target not in done:
                    if isinstance(target, tuple):
                        pending.append(target)
                    else:
                        heapq.heappush(ready, (by_id[target].key, target))

    for group in chain:  # markers nothing waits for
        for marker in (("start", group), ("done", group)):
            if indegree[marker] == 0 and marker not in done:
                finish(marker)
    for e in nodes:
        if indegree[e.id] == 0:
            heapq.heappush(ready, (e.key, e.id))
    ordered: list[TimelineEntry] = []
    fallback = iter(nodes)  # sorted by key: the next when a cycle blocks progress
    while len(ordered) < len(nodes):
        if ready:
            _, current = heapq.heappop(ready)
            if current in done:
                continue
        else:
            current = next(e.id for e in fallback if e.id not in done)
        ordered.append(by_id[current])
        finish(current)
    return ordered


def last_good_snapshots(ordered: Sequence[TimelineEntry]) -> dict[UUID, UUID | None]:
    """For each error of an ordered timeline: the last good snapshot before it, or ``None``.

    Good means any snapshot type but ``error``. The error's own agent is preferred; when that
    agent has no good snapshot before the error, the last good snapshot of any agent is
    taken. The error's own state snapshot (its ``state_snapshot_id``) is its "after" state and
    never its "before" -- unless the sink deduplicated it into an earlier good snapshot, in
    which case the state did not change and the diff is empty.
    """
    by_agent: dict[str | None, UUID] = {}
    last_any: UUID | None = None
    result: dict[UUID, UUID | None] = {}
    for entry in ordered:
        if entry.kind == "snapshot" and entry.data.get("snapshot_type") != "error":
            by_agent[entry.agent_name] = entry.id
            last_any = entry.id
        elif entry.kind == "error":
            result[entry.id] = by_agent.get(entry.agent_name, last_any)
    return result
