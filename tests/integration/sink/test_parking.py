"""Parked events through the BatchWriter (no broker): every parked event is found again by
the release lookup of the batch that writes its parent, transitively, or by the periodic
release; and its waits (sink_parked_waits, migration 009) follow it through park, re-park,
release, expiry and dead-lettering."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import asyncpg

from debug_sink.db import sqlfiles
from debug_sink.metrics import Metrics
from debug_sink.sink import parking
from debug_sink.sink.committer import Committer
from debug_sink.sink.handoff import Handoff
from debug_sink.sink.plan import REFERENCES
from debug_sink.sink.writer import BatchWriter
from tests import support as s
from tests.integration.sink.writing import Sink
from tests.support import ER, HK, SN, ST, SU, TR

_RELEASE_SQL = sqlfiles.load("parking.sql")["waiting_for_written"]


class TestReleaseLookup:
    """The batch that writes a parent writes the events parked for it, in its transaction."""

    async def test_parent_in_a_later_batch(self, sink: Sink) -> None:
        """Error, success and transformation wait for their snapshot (a hook waits for
        nothing); the batch bringing the snapshot writes them, references intact."""
        corr = s.uid()
        snap = s.snapshot(corr, {"k": 1})
        err = s.error(corr, state_snapshot_id=snap["id"])
        ok = s.success(corr, state_snapshot_id=snap["id"])
        tr = s.transformation(corr, state_snapshot_id=snap["id"])
        first = await sink.write((ER, err), (SU, ok), (TR, tr), (HK, s.hook(corr)))
        assert first.parked == 3
        assert await sink.waits() == {(snap["id"], e["id"]) for e in (err, ok, tr)}

        second = await sink.write((SN, snap))
        assert second.released == 3
        row = await sink.row(ER, err)
        assert row is not None
        assert str(row["state_snapshot_id"]) == snap["id"]
        assert await sink.waits() == set()

    async def test_transitive_chain(self, sink: Sink) -> None:
        """step -> step -> error -> snapshot, children first: all parked; the snapshot's
        batch writes the whole chain."""
        corr = s.uid()
        snap = s.snapshot(corr, {"k": 2})
        err = s.error(corr, state_snapshot_id=snap["id"])
        step1 = s.step(corr, 1, "failed", completed_at=s.ts(1), error_event_id=err["id"])
        step2 = s.step(corr, 2, "started", started_at=s.ts(2), parent_step_id=step1["id"])
        first = await sink.write((ST, step2), (ST, step1), (ER, err))
        assert first.parked == 3
        assert await sink.waits() == {
            (step1["id"], step2["id"]),
            (err["id"], step1["id"]),
            (snap["id"], err["id"]),
        }

        second = await sink.write((SN, snap))
        assert second.released == 3
        row = await sink.row(ST, step2)
        assert row is not None
        assert str(row["parent_step_id"]) == step1["id"]
        assert await sink.waits() == set()

    async def test_one_step_merged_twice_in_one_transaction(self, sink: Sink) -> None:
        """A stored step gets two events in one transaction: one in the batch (merged with
        the batch) and one parked earlier for its post-state snapshot, which the batch
        brings (merged in the release round). Each merge takes only its own staged rows: the
        second would otherwise fold the first again, and PostgreSQL refuses to update a row
        twice in one statement (the batch could then never be written)."""
        corr = s.uid()
        started = s.step(corr, 1, "started", started_at=s.ts(0))
        await sink.write((ST, started))
        snap = s.snapshot(corr, {"k": 9})
        completed = s.step(
            corr,
            1,
            "completed",
            id=started["id"],
            completed_at=s.ts(5),
            post_state_snapshot_id=snap["id"],
        )
        assert (await sink.write((ST, completed))).parked == 1

        again = s.step(corr, 1, "started", id=started["id"], started_at=s.ts(1))
        result = await sink.write((SN, snap), (ST, again))
        assert result.released == 1
        row = await sink.row(ST, started)
        assert row is not None
        assert row["status"] == "completed"
        assert str(row["post_state_snapshot_id"]) == snap["id"]
        assert row["started_at"] == s.T0
        assert await sink.waits() == set()

    async def test_reparked_event_is_found_by_its_remaining_parent(self, sink: Sink) -> None:
        """A step waiting for an error and a snapshot: the error's batch re-parks it waiting
        for the snapshot only (waiting_for and its waits updated); the snapshot's batch
        writes it."""
        corr = s.uid()
        snap = s.snapshot(corr, {"k": 3})
        err = s.error(corr)
        step = s.step(
            corr,
            1,
            "failed",
            completed_at=s.ts(1),
            error_event_id=err["id"],
            pre_state_snapshot_id=snap["id"],
        )
        await sink.write((ST, step))
        assert await sink.waits() == {(snap["id"], step["id"]), (err["id"], step["id"])}

        second = await sink.write((ER, err))
        assert (second.parked, second.released) == (0, 0)
        assert await sink.waits() == {(snap["id"], step["id"])}

        third = await sink.write((SN, snap))
        assert third.released == 1
        row = await sink.row(ST, step)
        assert row is not None
        assert (str(row["error_event_id"]), str(row["pre_state_snapshot_id"])) == (
            err["id"],
            snap["id"],
        )
        assert await sink.waits() == set()

    async def test_parked_event_rejected_on_release_is_dead_lettered(self, sink: Sink) -> None:
        """A released event PostgreSQL rejects becomes a dead letter; its waits go with its
        parked row."""
        await sink.conn.execute(
            "ALTER TABLE debug_error_events ADD CONSTRAINT no_boom CHECK (error_message <> 'boom')"
        )
        corr = s.uid()
        snap = s.snapshot(corr, {"k": 4})
        err = s.error(corr, error_message="boom", state_snapshot_id=snap["id"])
        await sink.write((ER, err))
        assert await sink.waits() == {(snap["id"], err["id"])}

        result = await sink.write((SN, snap))
        assert [d.error_class for d in result.dead_letters] == ["database"]
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 1
        assert await sink.waits() == set()
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0

    async def test_a_batch_releases_at_most_its_limit(self, sink: Sink) -> None:
        """A parent awaited by more parked events than the release limit: the batch writing
        it releases the limit's worth (not all: 100,000 events waiting for late parents
        were loaded into one transaction -- 161 MB of Python objects and 4 s for 30,000
        errors of 2 KB, from a red team's tests); the periodic release writes the rest,
        references intact, each event once."""
        corr = s.uid()
        snap = s.snapshot(corr, {"k": 3})
        errors = [s.error(corr, state_snapshot_id=snap["id"]) for _ in range(7)]
        # Three steps wait for the first errors (a second round, within the same budget).
        steps = [
            s.step(corr, n, "failed", completed_at=s.ts(n), error_event_id=errors[n]["id"])
            for n in range(3)
        ]
        await sink.write(*((ER, e) for e in errors), *((ST, st) for st in steps))
        writer = BatchWriter(sink.pool, group_id="parking", park_grace=600, release_limit=5)
        first = await writer.write(s.batch_of([(SN, snap)], itertools.count(100)))
        assert first.released == 5
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_parked_events") == 5

        rest = await writer.release_parked()
        assert rest.released == 5
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
        stored = await sink.conn.fetch(
            "SELECT state_snapshot_id FROM debug_error_events WHERE correlation_id = $1::uuid",
            corr,
        )
        assert [str(r[0]) for r in stored] == [snap["id"]] * 7
        for n, st in enumerate(steps):
            row = await sink.row(ST, st)
            assert row is not None
            assert str(row["error_event_id"]) == errors[n]["id"]

    async def test_only_awaitable_ids_are_looked_up(self, sink: Sink) -> None:
        """Hook events are nobody's parent: a batch of them looks nothing up."""
        corr = s.uid()
        hooks_only = await sink.write((HK, s.hook(corr)), (HK, s.hook(corr)))
        assert hooks_only.written == set()
        snap = s.snapshot(corr, {"k": 5})
        mixed = await sink.write((HK, s.hook(corr)), (SN, snap))
        assert mixed.written == {uuid.UUID(snap["id"])}

    async def test_lookup_reads_both_primary_keys(self, sink: Sink) -> None:
        """The lookup goes through the waits' primary key and then the parked rows' primary
        key (O(matches)), not a walk of the parked table."""
        await sink.conn.execute(
            "INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for, "
            'expires_at, topic, partition, "offset") '
            "SELECT 'error', gen_random_uuid(), gen_random_uuid(), '{}', "
            "ARRAY[gen_random_uuid()], clock_timestamp() + interval '1h', 't', 0, o "
            "FROM generate_series(1, 2000) AS o"
        )
        await sink.conn.execute("ANALYZE sink_parked_events, sink_parked_waits")
        awaited = [r[0] for r in await sink.conn.fetch("SELECT parent_id FROM sink_parked_waits")]
        plan = "\n".join(
            r[0]
            for r in await sink.conn.fetch(
                f"EXPLAIN {_RELEASE_SQL}", awaited[:20] + [uuid.uuid4() for _ in range(100)], 5000
            )
        )
        assert "Seq Scan" not in plan, plan
        assert "Index Cond: (parent_id = ANY" in plan, plan
        assert "Index Scan using sink_parked_events_pkey" in plan, plan
        assert "Index Cond: (id = ANY" in plan, plan


class TestPeriodicRelease:
    """release_parked() writes parked events whose parent was stored by someone else, and
    expired ones; it leaves the others waiting."""

    async def test_parent_stored_by_another_writer(self, sink: Sink) -> None:
        """An error parked for a snapshot that another writer stores (a replica whose lookup
        ran before the park committed, or capture_state_snapshot()): the periodic release
        writes it, reference intact; before that, it leaves it waiting."""
        corr = s.uid()
        snap_id = await sink.conn.fetchval("SELECT gen_random_uuid()")
        err = s.error(corr, state_snapshot_id=str(snap_id))
        other = s.error(corr, state_snapshot_id=s.uid())
        await sink.write((ER, err), (ER, other))
        nothing = await sink.writer().release_parked()
        assert (nothing.released, nothing.dangling) == (0, 0)

        await sink.conn.execute(
            "INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, agent_name, "
            "agent_state, state_hash) VALUES ($1, 'checkpoint', $2::uuid, 'a', '{}', md5('x'))",
            snap_id,
            corr,
        )
        result = await sink.writer().release_parked()
        assert (result.released, result.dangling) == (1, 0)
        row = await sink.row(ER, err)
        assert row is not None
        assert row["state_snapshot_id"] == snap_id
        assert await sink.waits() == {(other["state_snapshot_id"], other["id"])}

    async def test_parent_aliased(self, sink: Sink) -> None:
        """An error waiting for a snapshot id that becomes an alias of a stored snapshot."""
        corr = s.uid()
        kept = s.snapshot(corr, {"k": 6})
        duplicate = s.snapshot(corr, {"k": 6})
        err = s.error(corr, state_snapshot_id=duplicate["id"])
        await sink.write((ER, err))
        # Stored by another replica: the alias, not the parked error, is in its transaction.
        await sink.write((SN, kept))
        await sink.conn.execute(
            "INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id) VALUES ($1::uuid, $2::uuid)",
            duplicate["id"],
            kept["id"],
        )
        result = await sink.writer().release_parked()
        assert result.released == 1
        row = await sink.row(ER, err)
        assert row is not None
        assert str(row["state_snapshot_id"]) == kept["id"]
        assert await sink.waits() == set()

    async def test_expired(self, sink: Sink) -> None:
        """Past its grace period an event is written with the reference NULL; its waits go."""
        corr = s.uid()
        missing = s.uid()
        err = s.error(corr, state_snapshot_id=missing)
        await sink.write((ER, err), park_grace=0)
        assert await sink.waits() == {(missing, err["id"])}
        result = await sink.writer(park_grace=0).release_parked()
        assert (result.released, result.dangling) == (1, 1)
        row = await sink.row(ER, err)
        assert row is not None
        assert row["state_snapshot_id"] is None
        assert await sink.waits() == set()

    async def test_one_periodic_run_keeps_up_with_more_than_its_limit(self, sink: Sink) -> None:
        """12 events past their grace period and a release limited to 5 per transaction:
        one periodic run (the committer's job) writes all 12, in transactions of 5, 5 and 2.
        (From a red team's tests: one transaction of 5,000 per run -- every 5 s with the
        default grace -- released at most 1,000 events/s, so a producer whose events'
        parents never come, at more than that, grew the parked table without bound.)"""
        corr = s.uid()
        errors = [s.error(corr, state_snapshot_id=s.uid()) for _ in range(12)]
        await sink.write(*((ER, e) for e in errors), park_grace=0)
        writer = BatchWriter(sink.pool, group_id="parking", park_grace=0, release_limit=5)
        committer = Committer(
            writer,
            handoff=Handoff(),
            metrics=Metrics(),
            current_generation=lambda: 0,
            after_batch=lambda: None,
            stopping=asyncio.Event(),
            fetch_done=asyncio.Event(),
        )
        await committer.release_parked()
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
        assert (
            await sink.conn.fetchval(
                "SELECT count(*) FROM debug_error_events WHERE correlation_id = $1::uuid", corr
            )
            == 12
        )
        released = committer.metrics.registry.get_sample_value("debug_sink_events_released_total")
        assert released == 12
        assert committer.metrics.registry.get_sample_value("debug_sink_parked_rows") == 0

    async def test_expired_events_are_taken_without_scanning_the_waits(self, sink: Sink) -> None:
        """When the events past their grace period fill a release, it takes them by their
        expiry index alone: the scan of every awaited id (O(parked), the cost of finding
        events whose parent another writer stored) runs only when they do not. (From a red
        team's tests: a flood of orphans expiring paid that scan for each 5,000 released.)"""
        corr = s.uid()
        await sink.write(
            *((ER, s.error(corr, state_snapshot_id=s.uid())) for _ in range(7)), park_grace=0
        )
        statements: list[str] = []

        class Recording:
            def __init__(self, conn: asyncpg.Connection) -> None:
                self._conn = conn

            async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
                statements.append(sql)
                return await self._conn.fetch(sql, *args)

        scan = "sink_parked_waits"
        async with sink.pool.acquire() as conn, conn.transaction():
            fresh, expired = await parking.releasable(Recording(conn), limit=5)  # type: ignore[arg-type]
        assert (len(fresh), len(expired)) == (0, 5)
        assert not [sql for sql in statements if scan in sql]
        ids = [p.parked_id for p in expired]
        assert ids == sorted(ids)  # in parking order, as batches are planned

        statements.clear()
        async with sink.pool.acquire() as conn, conn.transaction():
            fresh, expired = await parking.releasable(Recording(conn), limit=10)  # type: ignore[arg-type]
        assert (len(fresh), len(expired)) == (0, 7)
        assert len([sql for sql in statements if scan in sql]) == 1

    async def test_a_full_release_says_there_may_be_more(self, sink: Sink) -> None:
        corr = s.uid()
        await sink.write(
            *((ER, s.error(corr, state_snapshot_id=s.uid())) for _ in range(7)), park_grace=0
        )
        writer = BatchWriter(sink.pool, group_id="parking", park_grace=0, release_limit=5)
        first, second, third = [await writer.release_parked() for _ in range(3)]
        assert [(r.released, r.more) for r in (first, second, third)] == [
            (5, True),
            (2, False),
            (0, False),
        ]

    async def test_a_parent_id_stored_as_another_kind_is_not_ready(self, sink: Sink) -> None:
        """Ids are per kind: an error whose state_snapshot_id is the id of a stored *error*
        still waits for that snapshot. The periodic release does not take it up again and
        again (it would be re-planned and parked again on every run, for the whole grace
        period), nor let a run's limit fill with such events ahead of an event whose parent
        did arrive. (From a red team's tests: five such errors parked first kept a release
        limited to five from ever reaching the sixth event, whose snapshot was stored.)"""
        corr = s.uid()
        stored = [s.error(corr) for _ in range(5)]
        await sink.write(*((ER, e) for e in stored))
        mixed_up = [s.error(corr, state_snapshot_id=e["id"]) for e in stored]
        assert (await sink.write(*((ER, e) for e in mixed_up))).parked == 5
        # A step waiting for one of them as its pre-state snapshot: the same.
        step = s.step(corr, 1, "started", started_at=s.ts(0), pre_state_snapshot_id=stored[0]["id"])
        snap_id = await sink.conn.fetchval("SELECT gen_random_uuid()")
        ready = s.error(corr, state_snapshot_id=str(snap_id))
        assert (await sink.write((ST, step), (ER, ready))).parked == 2
        await sink.conn.execute(
            "INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, agent_name, "
            "agent_state, state_hash) VALUES ($1, 'checkpoint', $2::uuid, 'a', '{}', md5('x'))",
            snap_id,
            corr,
        )
        async with sink.pool.acquire() as conn, conn.transaction():
            fresh, expired = await parking.releasable(conn, limit=100)
        assert ([p.event.id for p in fresh], expired) == ([uuid.UUID(ready["id"])], [])

        result = await sink.writer().release_parked(limit=5)
        assert (result.released, result.dangling) == (1, 0)
        row = await sink.row(ER, ready)
        assert row is not None
        assert row["state_snapshot_id"] == snap_id
        assert await sink.conn.fetchval("SELECT count(*) FROM sink_parked_events") == 6

    async def test_a_parent_of_the_awaited_kind_is_ready_whatever_field(self, sink: Sink) -> None:
        """Each reference field of each kind, its parent stored by another writer: ready.
        A duplicate snapshot waiting for its parked original is ready once that is stored."""
        corr = s.uid()
        ids = [await sink.conn.fetchval("SELECT gen_random_uuid()") for _ in range(5)]
        snap, err_id, ok_id, step_id, tr_id = (str(i) for i in ids)
        original = s.snapshot(corr, {"k": 9}, transformation_event_id=tr_id)
        duplicate = s.snapshot(corr, {"k": 9})
        waiting = [
            (ER, s.error(corr, state_snapshot_id=snap)),
            (SU, s.success(corr, state_snapshot_id=snap)),
            (TR, s.transformation(corr, state_snapshot_id=snap)),
            (TR, s.transformation(corr, error_event_id=err_id)),
            (TR, s.transformation(corr, success_event_id=ok_id)),
            (ST, s.step(corr, 1, "started", started_at=s.ts(0), pre_state_snapshot_id=snap)),
            (ST, s.step(corr, 2, "started", started_at=s.ts(0), post_state_snapshot_id=snap)),
            (ST, s.step(corr, 3, "started", started_at=s.ts(0), error_event_id=err_id)),
            (ST, s.step(corr, 4, "started", started_at=s.ts(0), success_event_id=ok_id)),
            (ST, s.step(corr, 5, "started", started_at=s.ts(0), parent_step_id=step_id)),
            (SN, s.snapshot(corr, {"k": 8}, parent_snapshot_id=snap)),
            (SN, original),
            (SN, duplicate),
        ]
        assert (await sink.write(*waiting)).parked == len(waiting)
        c = sink.conn
        await c.execute(
            "INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, agent_name, "
            "agent_state, state_hash) VALUES ($1, 'checkpoint', $2::uuid, 'a', '{}', md5('x'))",
            ids[0],
            corr,
        )
        await c.execute(
            "INSERT INTO debug_error_events (id, correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name) "
            "VALUES ($1, $2::uuid, 'E', 'agent', 'low', 'm', 'a')",
            ids[1],
            corr,
        )
        await c.execute(
            "INSERT INTO debug_success_events (id, correlation_id, success_type, operation_name, "
            "agent_name) VALUES ($1, $2::uuid, 'task_completion', 'op', 'a')",
            ids[2],
            corr,
        )
        await c.execute(
            "INSERT INTO debug_workflow_steps (id, correlation_id, step_number, step_type, "
            "agent_name, operation_name, status, started_at) "
            "VALUES ($1, $2::uuid, 9, 'execution', 'a', 'op', 'started', now())",
            ids[3],
            corr,
        )
        await c.execute(
            "INSERT INTO agent_transformation_events (id, correlation_id, source_agent, "
            "target_agent, transformation_type) VALUES ($1, $2::uuid, 'a', 'b', 't')",
            ids[4],
            corr,
        )
        async with sink.pool.acquire() as conn, conn.transaction():
            fresh, _ = await parking.releasable(conn, limit=100)
        # The duplicate waits for the original, not stored yet: not ready.
        assert len(fresh) == len(waiting) - 1
        result = await sink.writer().release_parked()
        assert result.released == len(waiting)
        assert await c.fetchval("SELECT count(*) FROM sink_parked_events") == 0


def test_the_release_query_knows_every_reference_field() -> None:
    """The ready query tells ready from not by the reference field holding the awaited id: every
    field of plan.REFERENCES is in it, and each field names one kind of parent whatever the
    kind of event (what lets the query read a field's kind from its name)."""
    sql = sqlfiles.load("parking.sql")["ready"]
    kind_of: dict[str, set[object]] = {}
    for references in REFERENCES.values():
        for name, parent in references.items():
            kind_of.setdefault(name, set()).add(parent)
            assert f"'{name}'" in sql, name
    assert all(len(kinds) == 1 for kinds in kind_of.values()), kind_of
