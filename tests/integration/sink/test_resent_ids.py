"""Ids sent again with other contents, through the BatchWriter into PostgreSQL (no broker).

An event id is one row: re-sending it is a no-op for every kind, whatever it carries --
except the lifecycle events of a step, which fold into the step's row by the same rule in a
batch (plan.fold_step) and against the stored row (the SQL merge of tables.py), where a
terminal event's values win, its step number and attempt too. A step id sent again by
another workflow changes nothing. The stored ``state_hash`` is the hash of the state as
stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from debug_sink.wire.canonical import canonical_json
from tests import support as s
from tests.integration.sink.writing import Sink
from tests.support import ER, SN, ST


async def _snapshot(sink: Sink, event: dict[str, Any]) -> tuple[Any, str] | None:
    row = await sink.conn.fetchrow(
        "SELECT agent_state::text AS state, state_hash FROM debug_state_snapshots "
        "WHERE id = $1::uuid",
        event["id"],
    )
    return None if row is None else (orjson.loads(row["state"]), row["state_hash"])


def _hash(state: Any) -> str:
    return hashlib.sha256(canonical_json(state)).hexdigest()


class TestSnapshots:
    async def test_an_id_resent_with_another_state_keeps_the_first(self, sink: Sink) -> None:
        corr = s.uid()
        first = s.snapshot(corr, {"s": "A"})
        await sink.write((SN, first), (SN, {**first, "agent_state": {"s": "B"}}))
        assert await _snapshot(sink, first) == ({"s": "A"}, _hash({"s": "A"}))
        await sink.write((SN, {**first, "agent_state": {"s": "C"}}))
        assert await _snapshot(sink, first) == ({"s": "A"}, _hash({"s": "A"}))

    async def test_a_new_snapshot_of_the_state_a_stored_id_is_resent_with(self, sink: Sink) -> None:
        """It is stored as itself, and what references it points at it: the re-sent id
        (a no-op) is no snapshot of that state."""
        corr = s.uid()
        x = s.snapshot(corr, {"s": "A"})
        await sink.write((SN, x))
        y = s.snapshot(corr, {"s": "B"})
        err = s.error(corr, state_snapshot_id=y["id"])
        result = await sink.write((SN, {**x, "agent_state": {"s": "B"}}), (SN, y), (ER, err))
        assert result.duplicates == 0
        assert await _snapshot(sink, y) == ({"s": "B"}, _hash({"s": "B"}))
        stored = await sink.row(ER, err)
        assert stored is not None
        assert str(stored["state_snapshot_id"]) == y["id"]
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_snapshot_aliases") == 0

    async def test_the_stored_hash_is_the_hash_of_the_stored_state(self, sink: Sink) -> None:
        """PostgreSQL's jsonb has no negative zero: -0.0 is hashed as it is stored, 0.0."""
        corr = s.uid()
        odd = s.snapshot(corr, {"v": -0.0, "w": [-0.0, -0.05], "n": 1e20})
        await sink.write((SN, odd))
        stored = await _snapshot(sink, odd)
        assert stored is not None
        state, state_hash = stored
        assert state_hash == _hash(state)


class TestSteps:
    async def test_the_terminal_events_numbers_win_in_either_order(self, sink: Sink) -> None:
        """In one batch and across batches, whichever of start and end comes first."""
        corr = s.uid()
        rows = []
        for together in (True, False):
            for end_first in (True, False):
                start = s.step(corr, 1, "started", attempt=1)
                end = {**s.step(corr, 2, "completed", attempt=2), "id": start["id"]}
                events = [(ST, end), (ST, start)] if end_first else [(ST, start), (ST, end)]
                if together:
                    await sink.write(*events)
                else:
                    for event in events:
                        await sink.write(event)
                row = await sink.row(ST, start)
                assert row is not None
                rows.append((row["step_number"], row["attempt"], row["status"]))
        assert rows == [(2, 2, "completed")] * 4

    async def test_an_id_sent_by_another_workflow_changes_nothing(self, sink: Sink) -> None:
        """In one batch and across batches: the step stays its workflow's."""
        for together in (True, False):
            corr = s.uid()
            mine = s.step(corr, 1, "started", agent_name="me")
            theirs = {
                **s.step(s.uid(), 7, "completed", agent_name="mallory"),
                "id": mine["id"],
                "output_data": {"from": "B"},
            }
            if together:
                await sink.write((ST, mine), (ST, theirs))
            else:
                await sink.write((ST, mine))
                await sink.write((ST, theirs))
            row = await sink.row(ST, mine)
            assert row is not None
            assert (str(row["correlation_id"]), row["agent_name"]) == (corr, "me")
            assert (row["step_number"], row["status"], row["output_data"]) == (1, "started", None)

    async def test_another_workflows_event_first_in_a_batch_takes_nothing(self, sink: Sink) -> None:
        """The owner's completion lands even when another workflow's event with the same id
        comes before it in the batch."""
        corr = s.uid()
        mine = s.step(corr, 1, "started", agent_name="me")
        await sink.write((ST, mine))
        theirs = {**s.step(s.uid(), 7, "failed", agent_name="mallory"), "id": mine["id"]}
        done = {**s.step(corr, 1, "completed", agent_name="me"), "id": mine["id"]}
        await sink.write((ST, theirs), (ST, done))
        row = await sink.row(ST, mine)
        assert row is not None
        assert (str(row["correlation_id"]), row["status"], row["agent_name"]) == (
            corr,
            "completed",
            "me",
        )

    async def test_another_workflows_event_after_the_owners_in_a_batch(self, sink: Sink) -> None:
        """The owner's completion, then another workflow's event with the same id, in one
        batch, the step stored already: the owner's completion lands, the other changes
        nothing. (From a red team's tests: both were merged by one statement, which
        PostgreSQL refuses -- "ON CONFLICT DO UPDATE command cannot affect row a second
        time", not a data error -- so the batch failed for good, and again after every
        restart: a crash loop on valid events.)"""
        corr = s.uid()
        mine = s.step(corr, 1, "started", agent_name="me")
        await sink.write((ST, mine))
        done = {**s.step(corr, 1, "completed", agent_name="me"), "id": mine["id"]}
        theirs = {**s.step(s.uid(), 7, "failed", agent_name="mallory"), "id": mine["id"]}
        result = await sink.write((ST, done), (ST, theirs))
        assert (result.dead_letters, result.rows) == ([], {})
        row = await sink.row(ST, mine)
        assert row is not None
        assert (str(row["correlation_id"]), row["status"], row["agent_name"]) == (
            corr,
            "completed",
            "me",
        )
