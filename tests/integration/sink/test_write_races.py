"""The writer against another replica that stores the same event between this transaction's
lookups and its COPY.

The writer COPYs the rows whose id its lookups did not find straight into the tables
(writer.py, step 3). An event another writer committed in between fails that COPY: on the
table's primary key, or for a snapshot of the same state on its (correlation_id, state_hash)
key. The writer must then run the transaction again (not bisect the batch and dead-letter a
valid event), and the second run must find the event and skip, merge or alias it: one row per
event, no dead letter. Races lost again and again end in DatabaseUnavailable, with nothing
committed, for the sink's loop to retry.

Each case injects the other writer's commit right after this writer's lookups (a wrapped
``_plan``), against real PostgreSQL.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from debug_sink.errors import DatabaseUnavailable
from debug_sink.sink import offsets
from debug_sink.sink.batch import Batch
from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.events import TABLES, EventKind
from tests import support as s


def _batch(events: list[tuple[EventKind, dict[str, Any]]], *, first_offset: int) -> Batch:
    return s.batch_of(events, itertools.count(first_offset))


@pytest_asyncio.fixture
async def pools(db_dsn: str) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    ours = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    theirs = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, init=init_connection)
    try:
        yield ours, theirs
    finally:
        await ours.close()
        await theirs.close()


def _raced(
    monkeypatch: pytest.MonkeyPatch,
    writer: BatchWriter,
    other: BatchWriter,
    intruders: list[Batch],
) -> Callable[[], int]:
    """Make ``other`` write ``intruders[k]`` (and commit) right after ``writer``'s k-th
    lookups (the first being 0). Returns a counter of ``writer``'s plans."""
    plans = 0
    real_plan = BatchWriter._plan

    async def plan_then_intrude(self: BatchWriter, conn: Any, pending: Any, **kw: Any) -> Any:
        nonlocal plans
        plan = await real_plan(self, conn, pending, **kw)
        if self is writer:
            plans += 1
            if plans <= len(intruders):
                await other.write(intruders[plans - 1])
        return plan

    monkeypatch.setattr(BatchWriter, "_plan", plan_then_intrude)
    return lambda: plans


CORR = str(uuid.uuid4())
STATE = {"goal": "summarise", "step": 3}


def _cases() -> dict[str, tuple[list[Any], list[Any]]]:
    """Case -> (this writer's events, the other writer's events)."""
    error = s.error(CORR)
    hook = s.hook(CORR)
    started = s.step(CORR, 1, "started", started_at=s.ts(0))
    completed = s.step(
        CORR, 1, "completed", id=started["id"], completed_at=s.ts(4), output_data={"n": 1}
    )
    ours_snapshot = s.snapshot(CORR, STATE)
    theirs_snapshot = s.snapshot(CORR, STATE)  # the same state under another id
    success = s.success(CORR, state_snapshot_id=ours_snapshot["id"])
    return {
        "the same error": (
            [(EventKind.ERROR, error), (EventKind.SUCCESS, s.success(CORR))],
            [(EventKind.ERROR, error)],
        ),
        "the same hook event": ([(EventKind.HOOK, hook)], [(EventKind.HOOK, hook)]),
        "the other lifecycle event of a step": (
            [(EventKind.STEP, completed)],
            [(EventKind.STEP, started)],
        ),
        "a snapshot of the same state": (
            [(EventKind.SNAPSHOT, ours_snapshot), (EventKind.SUCCESS, success)],
            [(EventKind.SNAPSHOT, theirs_snapshot)],
        ),
    }


@pytest.mark.parametrize("case", list(_cases()))
async def test_an_event_stored_by_another_writer_after_the_lookups(
    case: str,
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, theirs = _cases()[case]
    batch = _batch(ours, first_offset=100)
    writer = BatchWriter(pools[0], group_id="g", park_grace=600)
    other = BatchWriter(pools[1], group_id="other", park_grace=600)
    plans = _raced(monkeypatch, writer, other, [_batch(theirs, first_offset=0)])

    result = await writer.write(batch)
    assert plans() == 2, "the lost race was not run again (or was bisected)"
    assert result.dead_letters == []
    assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 0
    assert await offsets.stored(conn, "g", list(batch.next_offsets)) == batch.next_offsets
    for kind, body in ours + theirs:
        if kind is EventKind.SNAPSHOT:
            continue
        count = await conn.fetchval(
            f"SELECT count(*) FROM {TABLES[kind]} WHERE id = $1", uuid.UUID(body["id"])
        )
        assert count == 1, (kind, body["id"])

    if case == "the other lifecycle event of a step":
        (row,) = await conn.fetch("SELECT * FROM debug_workflow_steps")
        assert row["status"] == "completed"
        assert row["started_at"] is not None
        assert row["duration_ms"] == 4000
    if case == "a snapshot of the same state":
        (their_snapshot,) = [body for _, body in theirs]
        (our_snapshot, success) = [body for _, body in ours]
        assert await conn.fetchval("SELECT count(*) FROM debug_state_snapshots") == 1
        assert (
            str(
                await conn.fetchval(
                    "SELECT snapshot_id FROM sink_snapshot_aliases WHERE alias_id = $1",
                    uuid.UUID(our_snapshot["id"]),
                )
            )
            == their_snapshot["id"]
        )
        # the success's reference was rewritten to the kept snapshot
        assert (
            str(
                await conn.fetchval(
                    "SELECT state_snapshot_id FROM debug_success_events WHERE id = $1",
                    uuid.UUID(success["id"]),
                )
            )
            == their_snapshot["id"]
        )


async def test_races_lost_again_and_again_end_in_database_unavailable(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five errors, each stored by the other writer just after one of five attempts' lookups:
    every attempt loses. Nothing of the batch is committed; the caller's next try lands it."""
    errors = [s.error(CORR) for _ in range(5)]
    batch = _batch([(EventKind.ERROR, e) for e in errors], first_offset=100)
    writer = BatchWriter(pools[0], group_id="g", park_grace=600)
    other = BatchWriter(pools[1], group_id="other", park_grace=600)
    intruders = [_batch([(EventKind.ERROR, e)], first_offset=n) for n, e in enumerate(errors)]
    plans = _raced(monkeypatch, writer, other, intruders)

    with pytest.raises(DatabaseUnavailable):
        await writer.write(batch)
    assert plans() == 5
    assert await offsets.stored(conn, "g", list(batch.next_offsets)) == {}

    result = await writer.write(batch)
    assert result.dead_letters == []
    assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 5
    assert await offsets.stored(conn, "g", list(batch.next_offsets)) == batch.next_offsets


async def test_re_delivered_events_of_every_kind_are_skipped_or_merged(
    pools: tuple[asyncpg.Pool, asyncpg.Pool], conn: asyncpg.Connection
) -> None:
    """Stored rows are not inserted again (they would fail the COPY), and a repeated id in
    one batch is written once: a batch of every kind, then the same batch twice in one."""
    snapshot = s.snapshot(CORR, STATE)
    transformation = s.transformation(CORR, state_snapshot_id=snapshot["id"])
    started = s.step(CORR, 1, "started", started_at=s.ts(0))
    completed = s.step(CORR, 1, "completed", id=started["id"], completed_at=s.ts(2))
    events = [
        (EventKind.SNAPSHOT, snapshot),
        (EventKind.TRANSFORMATION, transformation),
        (EventKind.ERROR, s.error(CORR, state_snapshot_id=snapshot["id"])),
        (EventKind.SUCCESS, s.success(CORR)),
        (EventKind.HOOK, s.hook(CORR)),
        (EventKind.STEP, started),
    ]
    writer = BatchWriter(pools[0], group_id="g", park_grace=600)
    await writer.write(_batch(events, first_offset=0))
    before = {
        table: await conn.fetch(f"SELECT * FROM {table} ORDER BY id") for table in TABLES.values()
    }
    again = [*events, (EventKind.STEP, completed), *events]
    result = await writer.write(_batch(again, first_offset=len(events)))
    assert result.dead_letters == []
    for table, rows in before.items():
        after = await conn.fetch(f"SELECT * FROM {table} ORDER BY id")
        if table == TABLES[EventKind.STEP]:
            (row,) = after
            assert row["status"] == "completed"
            assert row["duration_ms"] == 2000
        else:
            assert after == rows, table


async def test_a_parent_deleted_after_the_lookups_fails_the_batch_before_step_4(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another session deletes a parent (retention, an operator) between the lookups and the
    commit, so a child's foreign key fails. The batch, written in one go, fails its check
    before step 4: no parked event released in the same transaction is taken for the
    offender, and no dead letter is published. Written again, the child parks for its
    parent, the parked event is released, nothing is dead-lettered."""
    corr = str(uuid.uuid4())
    parent = s.snapshot(corr, {"k": "parent"})
    later = s.snapshot(corr, {"k": "later"})
    waiting = s.error(corr, state_snapshot_id=later["id"])
    published: list[Any] = []

    async def publish(letters: list[Any]) -> None:
        published.extend(letters)

    writer = BatchWriter(pools[0], group_id="g", park_grace=600, publish_dead_letters=publish)
    first = await writer.write(
        _batch([(EventKind.SNAPSHOT, parent), (EventKind.ERROR, waiting)], first_offset=0)
    )
    assert first.parked == 1

    child = s.success(corr, state_snapshot_id=parent["id"])
    plans = 0
    real_plan = BatchWriter._plan

    async def plan_then_delete(self: BatchWriter, c: Any, pending: Any, **kw: Any) -> Any:
        nonlocal plans
        plan = await real_plan(self, c, pending, **kw)
        plans += 1
        if plans == 1:
            await conn.execute(
                "DELETE FROM debug_state_snapshots WHERE id = $1", uuid.UUID(parent["id"])
            )
        return plan

    monkeypatch.setattr(BatchWriter, "_plan", plan_then_delete)
    result = await writer.write(
        _batch([(EventKind.SUCCESS, child), (EventKind.SNAPSHOT, later)], first_offset=10)
    )
    assert published == []
    assert result.dead_letters == []
    assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 0
    released = await conn.fetchval(
        "SELECT state_snapshot_id FROM debug_error_events WHERE id = $1", uuid.UUID(waiting["id"])
    )
    assert str(released) == later["id"]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM sink_parked_events WHERE event_id = $1", uuid.UUID(child["id"])
        )
        == 1
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM debug_success_events WHERE id = $1", uuid.UUID(child["id"])
        )
        == 0
    )
