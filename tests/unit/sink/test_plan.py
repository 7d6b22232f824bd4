"""Pure planning of a batch: dedupe, aliases, parking, step folding (no services)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from debug_sink.sink.batch import Batch, BatchBuilder, Item, Origin
from debug_sink.sink.plan import (
    PARENT_KINDS,
    REFERENCES,
    Lookups,
    Pending,
    fold_step,
    lookups_needed,
    make_plan,
)
from debug_sink.sink.tables import COLUMNS, record_of
from debug_sink.wire.canonical import canonical_json, state_hash
from debug_sink.wire.events import MODELS, EventKind
from debug_sink.wire.validation import Rejected

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CORR = uuid.uuid4()


def ev(kind: EventKind, **fields: Any) -> Any:
    base: dict[str, Any] = {"id": uuid.uuid4(), "correlation_id": CORR}
    defaults: dict[EventKind, dict[str, Any]] = {
        EventKind.SNAPSHOT: {
            "snapshot_type": "checkpoint",
            "agent_name": "a",
            "agent_state": {"k": 1},
            "captured_at": T0,
        },
        EventKind.ERROR: {
            "error_type": "E",
            "error_category": "agent",
            "error_severity": "low",
            "error_message": "m",
            "agent_name": "a",
            "occurred_at": T0,
        },
        EventKind.STEP: {
            "step_number": 1,
            "step_type": "execution",
            "agent_name": "a",
            "operation_name": "op",
            "status": "started",
        },
    }
    body = {**base, **defaults[kind], **fields}
    if kind is EventKind.SNAPSHOT:
        body.setdefault("state_hash", state_hash(body["agent_state"]))
    return MODELS[kind].model_construct(**body)


def pending(kind: EventKind, event: Any, offset: int = 0) -> Pending:
    return Pending(kind, event, Origin("t", 0, offset))


def lookups(
    existing: dict[EventKind, set[uuid.UUID]] | None = None,
    aliases: dict[uuid.UUID, uuid.UUID] | None = None,
    keys: dict[tuple[uuid.UUID, str], uuid.UUID] | None = None,
) -> Lookups:
    return Lookups(existing or {}, aliases or {}, keys or {})


class TestSnapshotDedupe:
    """The first snapshot of a (correlation_id, state_hash) wins; later ones become aliases."""

    def test_duplicate_in_batch_is_aliased_and_references_rewritten(self) -> None:
        kept, dup = ev(EventKind.SNAPSHOT), ev(EventKind.SNAPSHOT)
        err = ev(EventKind.ERROR, state_snapshot_id=dup.id)
        plan = make_plan(
            [
                pending(EventKind.SNAPSHOT, kept),
                pending(EventKind.SNAPSHOT, dup),
                pending(EventKind.ERROR, err),
            ],
            lookups(),
        )
        assert [s.id for s in plan.rows[EventKind.SNAPSHOT]] == [kept.id]
        assert plan.aliases == [(dup.id, kept.id)]
        assert plan.rows[EventKind.ERROR][0].state_snapshot_id == kept.id
        assert plan.parked == []
        assert plan.duplicates == 1

    def test_duplicate_of_a_stored_snapshot_is_aliased_not_parked(self) -> None:
        stored = uuid.uuid4()
        dup = ev(EventKind.SNAPSHOT)
        plan = make_plan(
            [pending(EventKind.SNAPSHOT, dup)], lookups(keys={(CORR, dup.state_hash): stored})
        )
        assert plan.aliases == [(dup.id, stored)]
        assert plan.parked == []
        assert EventKind.SNAPSHOT not in plan.rows

    def test_duplicate_of_a_parked_snapshot_waits_with_it(self) -> None:
        kept = ev(EventKind.SNAPSHOT, parent_snapshot_id=uuid.uuid4())  # parent missing
        dup = ev(EventKind.SNAPSHOT)
        plan = make_plan(
            [pending(EventKind.SNAPSHOT, kept), pending(EventKind.SNAPSHOT, dup, 1)], lookups()
        )
        assert plan.aliases == []
        assert {p.pending.event.id: p.waiting_for for p in plan.parked} == {
            kept.id: (kept.parent_snapshot_id,),
            dup.id: (kept.id,),
        }

    def test_known_alias_resolves_a_later_reference(self) -> None:
        dropped, kept = uuid.uuid4(), uuid.uuid4()
        err = ev(EventKind.ERROR, state_snapshot_id=dropped)
        plan = make_plan(
            [pending(EventKind.ERROR, err)],
            lookups(existing={EventKind.SNAPSHOT: {kept}}, aliases={dropped: kept}),
        )
        assert plan.rows[EventKind.ERROR][0].state_snapshot_id == kept

    def test_same_state_in_another_workflow_is_kept(self) -> None:
        a = ev(EventKind.SNAPSHOT)
        b = ev(EventKind.SNAPSHOT, correlation_id=uuid.uuid4())
        plan = make_plan(
            [pending(EventKind.SNAPSHOT, a), pending(EventKind.SNAPSHOT, b)], lookups()
        )
        assert len(plan.rows[EventKind.SNAPSHOT]) == 2
        assert plan.aliases == []

    def test_an_id_resent_with_another_state_in_one_batch_is_the_first(self) -> None:
        """The row written is the first of its id; its state is the first's too."""
        first = ev(EventKind.SNAPSHOT, agent_state={"s": "A"})
        again = ev(EventKind.SNAPSHOT, id=first.id, agent_state={"s": "B"})
        plan = make_plan(
            [
                Pending(EventKind.SNAPSHOT, first, Origin("t", 0, 0), state_json=b'{"s":"A"}'),
                Pending(EventKind.SNAPSHOT, again, Origin("t", 0, 1), state_json=b'{"s":"B"}'),
            ],
            lookups(),
        )
        assert plan.state_json[first.id] == b'{"s":"A"}'
        assert plan.aliases == []

    def test_a_stored_id_resent_with_another_state_is_no_key_of_it(self) -> None:
        """A stored snapshot re-sent with another state is a no-op; a new snapshot of that
        state is kept as itself, not made an alias of the stored one (whose state differs)."""
        stored = ev(EventKind.SNAPSHOT, agent_state={"s": "A"})
        resent = ev(EventKind.SNAPSHOT, id=stored.id, agent_state={"s": "B"})
        new = ev(EventKind.SNAPSHOT, agent_state={"s": "B"})
        err = ev(EventKind.ERROR, state_snapshot_id=new.id)
        plan = make_plan(
            [
                pending(EventKind.SNAPSHOT, resent),
                pending(EventKind.SNAPSHOT, new, 1),
                pending(EventKind.ERROR, err, 2),
            ],
            lookups({EventKind.SNAPSHOT: {stored.id}}),
        )
        assert plan.aliases == []
        assert {r.id for r in plan.rows[EventKind.SNAPSHOT]} == {stored.id, new.id}
        assert plan.rows[EventKind.ERROR][0].state_snapshot_id == new.id

    def test_a_stored_id_resent_with_a_kept_state_is_not_made_an_alias(self) -> None:
        stored = ev(EventKind.SNAPSHOT, agent_state={"s": "A"})
        other = ev(EventKind.SNAPSHOT, agent_state={"s": "B"})
        resent = ev(EventKind.SNAPSHOT, id=stored.id, agent_state={"s": "B"})
        plan = make_plan(
            [pending(EventKind.SNAPSHOT, resent)],
            lookups({EventKind.SNAPSHOT: {stored.id}}, keys={(CORR, other.state_hash): other.id}),
        )
        assert plan.aliases == []


class TestReferences:
    """Children of missing parents are parked, transitively; with expire they dangle."""

    def test_missing_parent_parks_child_and_grandchild(self) -> None:
        missing = uuid.uuid4()
        err = ev(EventKind.ERROR, state_snapshot_id=missing)
        step = ev(EventKind.STEP, error_event_id=err.id)
        plan = make_plan(
            [pending(EventKind.ERROR, err), pending(EventKind.STEP, step, 1)], lookups()
        )
        assert plan.rows == {}
        assert {p.pending.event.id: p.waiting_for for p in plan.parked} == {
            err.id: (missing,),
            step.id: (err.id,),
        }

    def test_a_parent_parked_later_in_the_batch_parks_its_children(self) -> None:
        # Children first: each learns that its parent is parked only after it was planned.
        missing = uuid.uuid4()
        err = ev(EventKind.ERROR, state_snapshot_id=missing)
        child = ev(EventKind.STEP, error_event_id=err.id)
        grandchild = ev(EventKind.STEP, parent_step_id=child.id)
        plan = make_plan(
            [
                pending(EventKind.STEP, grandchild),
                pending(EventKind.STEP, child, 1),
                pending(EventKind.ERROR, err, 2),
            ],
            lookups(),
        )
        assert plan.rows == {}
        assert {p.pending.event.id: p.waiting_for for p in plan.parked} == {
            err.id: (missing,),
            child.id: (err.id,),
            grandchild.id: (child.id,),
        }

    def test_a_parked_event_waits_for_every_missing_parent(self) -> None:
        missing = uuid.uuid4()
        snap = ev(EventKind.SNAPSHOT, parent_snapshot_id=uuid.uuid4())  # parked
        step = ev(EventKind.STEP, pre_state_snapshot_id=snap.id, error_event_id=missing)
        plan = make_plan(
            [pending(EventKind.STEP, step), pending(EventKind.SNAPSHOT, snap, 1)], lookups()
        )
        waits = {p.pending.event.id: set(p.waiting_for) for p in plan.parked}
        assert waits[step.id] == {snap.id, missing}

    def test_parking_reaches_the_fixpoint_on_random_batches(self) -> None:
        """Parked = the least set such that every other event's references are stored or
        written by an event outside it (an event already stored never waits), whatever the
        order; checked against that definition, iterated naively."""
        rng = random.Random(7)
        kinds = (EventKind.SNAPSHOT, EventKind.ERROR, EventKind.STEP)
        for _ in range(400):
            size = rng.randint(1, 12)
            ids = [uuid.uuid4() for _ in range(size)]
            kind_of = [rng.choice(kinds) for _ in range(size)]
            outside = [uuid.uuid4() for _ in range(3)]
            stored: dict[EventKind, set[uuid.UUID]] = {kind: set() for kind in EventKind}
            batch = []
            for index in range(size):
                kind, fields = kind_of[index], {}
                for name, parent in REFERENCES[kind].items():
                    roll = rng.random()
                    inside = [ids[j] for j in range(size) if kind_of[j] is parent]
                    if roll < 0.4:
                        continue
                    if roll < 0.8 and inside:
                        fields[name] = rng.choice(inside)
                    else:
                        fields[name] = rng.choice(outside)
                        if rng.random() < 0.5:
                            stored[parent].add(fields[name])
                # Distinct states: dedupe is not what this checks.
                extra = {"agent_state": {"i": index}} if kind is EventKind.SNAPSHOT else {}
                event = ev(kind, id=ids[index], **extra, **fields)
                if rng.random() < 0.1:
                    stored[kind].add(event.id)
                batch.append(pending(kind, event, index))
            plan = make_plan(batch, lookups(existing=stored))

            def refs(item: Pending) -> list[tuple[EventKind, uuid.UUID]]:
                return [
                    (parent, getattr(item.event, name))
                    for name, parent in REFERENCES[item.kind].items()
                    if getattr(item.event, name) is not None
                ]

            parked: set[int] = set()
            while True:
                written = {
                    (item.kind, item.event.id)
                    for index, item in enumerate(batch)
                    if index not in parked
                }
                more = {
                    index
                    for index, item in enumerate(batch)
                    if index not in parked
                    and not (item.kind is not EventKind.STEP and item.event.id in stored[item.kind])
                    and any(
                        ref[1] not in stored[ref[0]] and ref not in written for ref in refs(item)
                    )
                }
                if not more:
                    break
                parked |= more
            assert {p.pending.origin.offset for p in plan.parked} == parked
            parked_ids = {batch[index].event.id for index in parked}
            batch_ids = {item.event.id for item in batch}
            for p in plan.parked:
                assert p.waiting_for
                unstored = {
                    value for parent, value in refs(p.pending) if value not in stored[parent]
                }
                for wait in p.waiting_for:  # a parked event of the batch, or in neither
                    assert wait in unstored
                    assert wait in parked_ids or wait not in batch_ids

    def test_parent_in_same_batch_or_database_is_available(self) -> None:
        snap = ev(EventKind.SNAPSHOT)
        stored = uuid.uuid4()
        e1 = ev(EventKind.ERROR, state_snapshot_id=snap.id)
        e2 = ev(EventKind.ERROR, state_snapshot_id=stored)
        plan = make_plan(
            [
                pending(EventKind.ERROR, e1),
                pending(EventKind.SNAPSHOT, snap),
                pending(EventKind.ERROR, e2),
            ],
            lookups(existing={EventKind.SNAPSHOT: {stored}}),
        )
        assert plan.parked == []
        assert len(plan.rows[EventKind.ERROR]) == 2

    def test_expired_reference_is_nulled_and_kept_in_metadata(self) -> None:
        missing = uuid.uuid4()
        err = ev(EventKind.ERROR, state_snapshot_id=missing, metadata={"x": 1})
        plan = make_plan([pending(EventKind.ERROR, err)], lookups(), expire=True)
        row = plan.rows[EventKind.ERROR][0]
        assert row.state_snapshot_id is None
        assert row.metadata == {"x": 1, "dangling_references": {"state_snapshot_id": str(missing)}}
        assert plan.dangling == 1

    def test_a_producers_dangling_references_that_is_no_object_is_kept_beside(self) -> None:
        """The sink's key sent by the producer as a string, list or null: no crash (the
        periodic release would die on it every time), the producer's value kept."""
        for sent in ("hostile", [1, 2], None):
            missing = uuid.uuid4()
            err = ev(
                EventKind.ERROR, state_snapshot_id=missing, metadata={"dangling_references": sent}
            )
            plan = make_plan([pending(EventKind.ERROR, err)], lookups(), expire=True)
            metadata = plan.rows[EventKind.ERROR][0].metadata
            assert metadata["dangling_references"] == {"state_snapshot_id": str(missing)}
            assert metadata.get("dangling_references_sent") == sent

    def test_lookups_name_own_and_referenced_ids(self) -> None:
        snap = ev(EventKind.SNAPSHOT)
        err = ev(EventKind.ERROR, state_snapshot_id=snap.id)
        needed = lookups_needed([pending(EventKind.SNAPSHOT, snap), pending(EventKind.ERROR, err)])
        assert needed.ids[EventKind.SNAPSHOT] == {snap.id}
        assert needed.ids[EventKind.ERROR] == {err.id}
        assert needed.snapshot_keys == {(CORR, snap.state_hash)}


class TestStepFolding:
    """Lifecycle events of one step fold into one row, whatever their order."""

    def test_either_order_gives_the_same_row(self) -> None:
        sid = uuid.uuid4()
        start = ev(EventKind.STEP, id=sid, started_at=T0, input_data={"q": 1})
        end = ev(
            EventKind.STEP,
            id=sid,
            status="completed",
            completed_at=T0 + timedelta(seconds=2),
            output_data={"a": 2},
        )
        forward, backward = fold_step(start, end), fold_step(end, start)
        for row in (forward, backward):
            assert row.status == "completed"
            assert row.started_at == T0
            assert row.completed_at == T0 + timedelta(seconds=2)
            assert row.input_data == {"q": 1}
            assert row.output_data == {"a": 2}

    def test_the_terminal_events_step_number_and_attempt_win(self) -> None:
        sid = uuid.uuid4()
        start = ev(EventKind.STEP, id=sid, step_number=1, attempt=1, started_at=T0)
        end = ev(EventKind.STEP, id=sid, step_number=2, attempt=2, status="completed")
        for row in (fold_step(start, end), fold_step(end, start)):
            assert (row.step_number, row.attempt, row.status) == (2, 2, "completed")

    def test_an_event_of_another_workflow_changes_nothing(self) -> None:
        sid = uuid.uuid4()
        mine = ev(EventKind.STEP, id=sid, started_at=T0)
        theirs = ev(
            EventKind.STEP,
            id=sid,
            correlation_id=uuid.uuid4(),
            status="completed",
            agent_name="mallory",
            output_data={"from": "B"},
        )
        assert fold_step(mine, theirs) is mine

    def test_in_batch_lifecycle_is_one_row(self) -> None:
        sid = uuid.uuid4()
        plan = make_plan(
            [
                pending(EventKind.STEP, ev(EventKind.STEP, id=sid, started_at=T0)),
                pending(
                    EventKind.STEP, ev(EventKind.STEP, id=sid, status="failed", completed_at=T0), 1
                ),
            ],
            lookups(),
        )
        assert [r.status for r in plan.rows[EventKind.STEP]] == ["failed"]


class TestStateJson:
    """The canonical agent_state computed by validation reaches the writer's COPY record, so
    the state is serialised once; without it (a parked event re-read) the writer computes it."""

    def test_carried_to_the_rows_through_alias_rewrites(self) -> None:
        dropped, kept = uuid.uuid4(), uuid.uuid4()
        snap = ev(EventKind.SNAPSHOT, parent_snapshot_id=dropped)  # rewritten to `kept`
        other = ev(EventKind.SNAPSHOT, agent_state={"k": 2})
        plan = make_plan(
            [
                Pending(EventKind.SNAPSHOT, snap, Origin("t", 0, 0), state_json=b'{"k":1}'),
                pending(EventKind.SNAPSHOT, other, 1),
            ],
            lookups(existing={EventKind.SNAPSHOT: {kept}}, aliases={dropped: kept}),
        )
        assert plan.rows[EventKind.SNAPSHOT][0].parent_snapshot_id == kept
        assert plan.state_json == {snap.id: b'{"k":1}'}

    def test_record_uses_it_or_computes_it(self) -> None:
        snap = ev(EventKind.SNAPSHOT, agent_state={"b": [1, 2], "a": "x"})
        column = {name: i for i, name in enumerate(COLUMNS[EventKind.SNAPSHOT])}
        computed = record_of(EventKind.SNAPSHOT, snap)
        assert computed[column["agent_state"]] == canonical_json(snap.agent_state)
        assert computed[column["state_size_bytes"]] == len(canonical_json(snap.agent_state))
        given = canonical_json(snap.agent_state)
        record = record_of(EventKind.SNAPSHOT, snap, given)
        assert record[column["agent_state"]] is given
        assert record == computed

    def test_hook_events_are_nobodys_parent(self) -> None:
        assert EventKind.HOOK not in PARENT_KINDS
        assert set(EventKind) - PARENT_KINDS == {EventKind.HOOK}


class TestBatchBuilder:
    """Batches close by count, bytes or age; offsets cover exactly the items."""

    @staticmethod
    def item(offset: int, partition: int = 0, size: int = 10) -> Item:
        return Item(
            Origin("t", partition, offset), None, b"x" * size, (), 0, Rejected("empty", "test")
        )

    def test_closes_by_count_bytes_and_age(self) -> None:
        now = [0.0]
        builder = BatchBuilder(max_events=3, max_bytes=100, max_age=1.0, clock=lambda: now[0])
        builder.add(self.item(0))
        assert not builder.due()
        now[0] = 1.0
        assert builder.due()
        builder.take()
        for i in range(3):
            builder.add(self.item(i))
        assert builder.full
        builder.take()
        builder.add(self.item(0, size=200))
        assert builder.full

    def test_next_offsets_per_partition(self) -> None:
        builder = BatchBuilder(10, 10_000, 10.0)
        for offset, partition in ((5, 0), (6, 0), (9, 1)):
            builder.add(self.item(offset, partition))
        batch: Batch = builder.take()
        assert batch.next_offsets == {("t", 0): 7, ("t", 1): 10}
        assert batch.offset_ranges() == {"t[0]": "5..6", "t[1]": "9..9"}
        assert len(builder) == 0

    def test_discard_keeps_other_partitions(self) -> None:
        builder = BatchBuilder(10, 10_000, 10.0)
        builder.add(self.item(1, 0))
        builder.add(self.item(2, 1))
        assert builder.discard([("t", 0)]) == 1
        assert builder.take().next_offsets == {("t", 1): 3}
