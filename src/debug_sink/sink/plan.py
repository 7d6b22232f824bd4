"""Planning a batch: snapshot dedupe, references across topics, step lifecycles.

Pure and synchronous: the writer asks :func:`lookups_needed` which ids and snapshot keys to
look up in PostgreSQL, runs those queries, and :func:`make_plan` decides, without I/O:

- which snapshots are duplicates of ``(correlation_id, state_hash)`` (already stored, or
  earlier in the batch) and become aliases of the kept snapshot;
- every reference to a snapshot is rewritten through the aliases, so it points at the kept
  snapshot;
- which events must be *parked* because a referenced parent exists neither in the database
  nor among the rows this batch writes (transitively: a child of a parked event is parked);
  with ``expire=True`` such references are set to NULL instead and the original ids kept in
  the event's ``metadata["dangling_references"]``;
- lifecycle events of one workflow step are folded into one row (end before start too).

Guarantee: every event given is in exactly one of ``rows`` (to write), ``parked`` or
``duplicates`` (snapshots replaced by an alias). Not guaranteed: that the parents still
exist at commit time (the foreign keys check that; the writer retries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from debug_sink.sink.batch import Origin
from debug_sink.wire.events import TERMINAL_STEP_STATUSES, EventKind

#: reference field -> kind of the parent row, per kind of event.
REFERENCES: dict[EventKind, dict[str, EventKind]] = {
    EventKind.SNAPSHOT: {
        "transformation_event_id": EventKind.TRANSFORMATION,
        "parent_snapshot_id": EventKind.SNAPSHOT,
    },
    EventKind.ERROR: {"state_snapshot_id": EventKind.SNAPSHOT},
    EventKind.SUCCESS: {"state_snapshot_id": EventKind.SNAPSHOT},
    EventKind.STEP: {
        "pre_state_snapshot_id": EventKind.SNAPSHOT,
        "post_state_snapshot_id": EventKind.SNAPSHOT,
        "error_event_id": EventKind.ERROR,
        "success_event_id": EventKind.SUCCESS,
        "parent_step_id": EventKind.STEP,
    },
    EventKind.TRANSFORMATION: {
        "state_snapshot_id": EventKind.SNAPSHOT,
        "error_event_id": EventKind.ERROR,
        "success_event_id": EventKind.SUCCESS,
    },
    EventKind.HOOK: {},
}

#: The kinds a reference can point at: only ids of these kinds can be awaited by a parked
#: event (hook events are nobody's parent).
PARENT_KINDS: frozenset[EventKind] = frozenset(
    parent for references in REFERENCES.values() for parent in references.values()
)

#: The order in which kinds are written (parents first; the foreign keys are deferred anyway).
WRITE_ORDER: tuple[EventKind, ...] = (
    EventKind.TRANSFORMATION,
    EventKind.SNAPSHOT,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.HOOK,
)

#: Step fields whose value a `started` event only fills in, and a terminal event overrides.
STEP_FOLDED = (
    "session_id",
    "step_type",
    "agent_name",
    "operation_name",
    "step_description",
    "pre_state_snapshot_id",
    "post_state_snapshot_id",
    "error_event_id",
    "success_event_id",
    "duration_ms",
    "parent_step_id",
    "depends_on_steps",
    "input_data",
    "output_data",
    "completed_at",
)


@dataclass(frozen=True, slots=True)
class Pending:
    """One event to plan: fresh from Kafka, or released from the parked table.

    ``state_json``: for a snapshot fresh from validation, the canonical JSON of its
    ``agent_state`` (:attr:`debug_sink.wire.validation.Accepted.state_json`), so that the writer
    does not serialise the state again; ``None`` otherwise (e.g. re-read from the parked
    table), and then the writer computes it.
    """

    kind: EventKind
    event: Any  # a frozen pydantic model of events.py
    origin: Origin
    parked_id: int | None = None
    state_json: bytes | None = None


@dataclass(frozen=True, slots=True)
class Lookups:
    """What the database already holds, for the ids and keys :func:`lookups_needed` named."""

    existing: Mapping[EventKind, set[UUID]]
    aliases: Mapping[UUID, UUID]
    snapshot_keys: Mapping[tuple[UUID, str], UUID]


@dataclass(frozen=True, slots=True)
class Needed:
    ids: dict[EventKind, set[UUID]]
    snapshot_keys: set[tuple[UUID, str]]


@dataclass(slots=True)
class Parked:
    """An event that waits; ``waiting_for``: each of its references the plan found neither
    stored nor written (a duplicate snapshot: the snapshot it duplicates)."""

    pending: Pending
    waiting_for: tuple[UUID, ...]


@dataclass(slots=True)
class Plan:
    rows: dict[EventKind, list[Any]] = field(default_factory=dict)
    aliases: list[tuple[UUID, UUID]] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    duplicates: int = 0
    dangling: int = 0
    #: parked-table ids that this plan writes (or aliases): delete them with the batch.
    released: list[int] = field(default_factory=list)
    #: snapshot id -> canonical JSON of its agent_state, for the snapshot rows whose Pending
    #: carried it (see :class:`Pending`).
    state_json: dict[UUID, bytes] = field(default_factory=dict)
    #: Per kind, the ids the database held when the plan was made (the lookups): a row of
    #: ``rows`` whose id is here is a re-delivery, to merge (a step) or to skip.
    stored: Mapping[EventKind, set[UUID]] = field(default_factory=dict)

    def count(self) -> dict[str, int]:
        return {kind.value: len(rows) for kind, rows in self.rows.items() if rows}


def _refs(kind: EventKind, event: Any) -> Iterable[tuple[str, EventKind, UUID]]:
    for name, parent in REFERENCES[kind].items():
        value = getattr(event, name)
        if value is not None:
            yield name, parent, value


def lookups_needed(pending: Iterable[Pending]) -> Needed:
    """Ids (own and referenced) and snapshot keys the planner must know the state of."""
    ids: dict[EventKind, set[UUID]] = {kind: set() for kind in EventKind}
    keys: set[tuple[UUID, str]] = set()
    for item in pending:
        ids[item.kind].add(item.event.id)
        for _, parent, value in _refs(item.kind, item.event):
            ids[parent].add(value)
        if item.kind is EventKind.SNAPSHOT:
            keys.add((item.event.correlation_id, item.event.state_hash))
    return Needed(ids, keys)


def fold_step(current: Any, new: Any) -> Any:
    """Fold two lifecycle events of one step (same id) into the row they describe.

    A terminal event (completed/failed/skipped) overrides -- its step number and attempt
    too; a ``started`` event only fills what is missing. ``started_at`` is the earliest
    known. The same rule runs in SQL when the row already exists (the steps' upsert in
    tables.py), so arrival order never changes the result. An event of another workflow
    (the same id sent with another ``correlation_id``) changes nothing: an id is one step
    of one workflow, as it is one row of every other kind.
    """
    if new.correlation_id != current.correlation_id:
        return current
    if new.status in TERMINAL_STEP_STATUSES:
        winner, loser = new, current
    else:
        winner, loser = current, new
    update: dict[str, Any] = {
        "status": winner.status,
        "step_number": winner.step_number,
        "attempt": winner.attempt,
    }
    for name in STEP_FOLDED:
        value = getattr(winner, name)
        update[name] = value if value is not None else getattr(loser, name)
    starts = [s for s in (current.started_at, new.started_at) if s is not None]
    update["started_at"] = min(starts) if starts else None
    metadata = {**(loser.metadata or {}), **(winner.metadata or {})}
    update["metadata"] = metadata or None
    result = current.model_copy(update=update)
    return result


def effective_started_at(step: Any) -> Any:
    """The started_at to store: sent or derived (completed_at - duration_ms, or completed_at)."""
    if step.started_at is not None:
        return step.started_at
    if step.completed_at is not None and step.duration_ms is not None:
        return step.completed_at - timedelta(milliseconds=step.duration_ms)
    return step.completed_at


def make_plan(pending: list[Pending], lookups: Lookups, *, expire: bool = False) -> Plan:
    plan = Plan()
    aliases: dict[UUID, UUID] = dict(lookups.aliases)
    # Snapshots found by (correlation_id, state_hash) exist too, whatever ids were asked for.
    existing: dict[EventKind, set[UUID]] = {k: set(v) for k, v in lookups.existing.items()}
    existing.setdefault(EventKind.SNAPSHOT, set()).update(lookups.snapshot_keys.values())

    # 1. Snapshot dedupe, in arrival order: the first of a (correlation_id, state_hash) wins.
    #    An id stored already, or earlier in the batch, is that row whatever state it is
    #    re-sent with (its insert is a no-op): it neither keeps nor becomes a duplicate.
    kept_by_key: dict[tuple[UUID, str], UUID] = dict(lookups.snapshot_keys)
    duplicate_of: dict[UUID, Pending] = {}
    survivors: list[Pending] = []
    snapshot_ids = set(existing[EventKind.SNAPSHOT])
    for item in pending:
        if item.kind is EventKind.SNAPSHOT:
            event = item.event
            if event.id in aliases:  # a known duplicate sent again
                plan.duplicates += 1
                if item.parked_id is not None:
                    plan.released.append(item.parked_id)
                continue
            if event.id in snapshot_ids:
                survivors.append(item)
                continue
            snapshot_ids.add(event.id)
            key = (event.correlation_id, event.state_hash)
            kept = kept_by_key.get(key)
            if kept is not None and kept != event.id:
                aliases[event.id] = kept
                duplicate_of[event.id] = item
                continue
            kept_by_key[key] = event.id
        survivors.append(item)

    # 2. References, each read once: a reference to a duplicate snapshot is rewritten to the
    #    kept one; then it is available if in the database or written by this plan. An event
    #    with a reference to neither is parked, which takes its row out of the plan: whatever
    #    relied on that row is parked in turn (``relying`` names them, so one pass and the
    #    propagation reach the fixpoint without walking the batch again).
    writing: dict[EventKind, set[UUID]] = {kind: set() for kind in EventKind}
    for item in survivors:
        writing[item.kind].add(item.event.id)
    no_ids: set[UUID] = set()
    resolved: list[Pending] = []
    parked_ids: set[int] = set()
    relying: dict[tuple[EventKind, UUID], list[int]] = {}
    propagate: list[int] = []

    def stored_already(item: Pending) -> bool:
        # A replay or re-send (e.g. of an event written with a dangling reference): its
        # insert is a no-op, so it waits for nothing. (A step's row may still be folded.)
        return item.kind is not EventKind.STEP and item.event.id in existing.get(item.kind, no_ids)

    def park(index: int) -> None:
        parked_ids.add(index)
        item = resolved[index]
        own = writing[item.kind]
        if item.event.id in own:
            own.discard(item.event.id)
            propagate.extend(relying.pop((item.kind, item.event.id), ()))

    for index, survivor in enumerate(survivors):
        update: dict[str, UUID] | None = None
        missing = False
        for name, parent, sent in _refs(survivor.kind, survivor.event):
            value = sent
            if parent is EventKind.SNAPSHOT and sent in aliases:
                value = aliases[sent]
                if update is None:
                    update = {}
                update[name] = value
            if value in existing.get(parent, no_ids):
                continue
            if value in writing[parent]:
                relying.setdefault((parent, value), []).append(index)
            else:
                missing = True
        item = (
            replace(survivor, event=survivor.event.model_copy(update=update))
            if update
            else survivor
        )
        resolved.append(item)
        if not missing or stored_already(item):
            continue
        if expire:
            resolved[index] = _dangle(item, existing, writing)
            plan.dangling += 1
            continue
        park(index)
    while propagate:
        index = propagate.pop()
        if index not in parked_ids and not stored_already(resolved[index]):
            park(index)
    # What each parked event waits for: its references unavailable once all is parked.
    missing_of = {
        index: tuple(
            value
            for _, parent, value in _refs(resolved[index].kind, resolved[index].event)
            if value not in existing.get(parent, no_ids) and value not in writing[parent]
        )
        for index in parked_ids
    }

    # 3. Duplicates become aliases of the kept snapshot -- unless that snapshot is parked
    #    itself: then the duplicate waits with it (an alias must point at a stored row).
    for alias_id, item in duplicate_of.items():
        kept = aliases[alias_id]
        if kept in existing.get(EventKind.SNAPSHOT, ()) or kept in writing[EventKind.SNAPSHOT]:
            plan.aliases.append((alias_id, kept))
            plan.duplicates += 1
            if item.parked_id is not None:
                plan.released.append(item.parked_id)
        else:
            plan.parked.append(Parked(item, (kept,)))

    # 4. Rows per kind; step lifecycles folded by id.
    # By id and workflow: an id sent again by another workflow must not take the place of
    # the lifecycle event of the workflow that owns the row (the merge keeps the owner's).
    steps: dict[tuple[UUID, UUID], Any] = {}
    for index, item in enumerate(resolved):
        if index in parked_ids:
            plan.parked.append(Parked(item, missing_of[index]))
            continue
        if item.parked_id is not None:
            plan.released.append(item.parked_id)
        if item.kind is EventKind.STEP:
            key = (item.event.id, item.event.correlation_id)
            current = steps.get(key)
            steps[key] = item.event if current is None else fold_step(current, item.event)
        else:
            plan.rows.setdefault(item.kind, []).append(item.event)
            if item.state_json is not None:
                # The state of the row written: the first of its id (split_stored).
                plan.state_json.setdefault(item.event.id, item.state_json)
    if steps:
        plan.rows[EventKind.STEP] = list(steps.values())
    plan.stored = existing
    return plan


def split_stored(plan: Plan, kind: EventKind) -> tuple[list[Any], list[Any]]:
    """``kind``'s rows of ``plan`` as (new, stored): ``new`` are the first row of each id the
    database did not hold, which a plain insert can write; ``stored`` are the rows whose id
    it held. A repeated id within ``new`` is dropped (only steps, folded by id, may need the
    stored rows: every other kind is insert-once)."""
    held = plan.stored.get(kind, set())
    new: list[Any] = []
    stored: list[Any] = []
    seen: set[UUID] = set()
    for event in plan.rows.get(kind, ()):
        if event.id in held:
            stored.append(event)
        elif event.id not in seen:
            seen.add(event.id)
            new.append(event)
    return new, stored


def _dangle(
    item: Pending, existing: Mapping[EventKind, set[UUID]], writing: Mapping[EventKind, set[UUID]]
) -> Pending:
    """The event with its missing references NULL and the originals in its metadata."""
    dangling: dict[str, str] = {}
    update: dict[str, Any] = {}
    for name, parent, value in _refs(item.kind, item.event):
        if value not in existing.get(parent, ()) and value not in writing[parent]:
            dangling[name] = str(value)
            update[name] = None
    metadata = dict(item.event.metadata or {})
    sent = metadata.get("dangling_references")
    if sent is not None and not isinstance(sent, dict):
        # The producer's own value under the sink's key: kept beside it, never a crash.
        metadata["dangling_references_sent"] = sent
        sent = None
    metadata["dangling_references"] = {**(sent or {}), **dangling}
    update["metadata"] = metadata
    event: BaseModel = item.event.model_copy(update=update)
    return replace(item, event=event)
