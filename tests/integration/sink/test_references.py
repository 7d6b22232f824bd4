"""References across topics: parking, release, grace-period expiry, snapshot dedupe, steps.

The main scenario runs two sinks of ONE consumer group over the same database (the broker
needs ~5 s to form a group, so every case shares the two runs):

- run 1 sees children whose parents are not produced yet (they are parked), the first half
  of the snapshot-dedupe cases and the first lifecycle events of several workflow steps;
- run 2 (the same group, resuming from the offsets stored in PostgreSQL) sees the parents,
  the second half of the dedupe cases and the remaining lifecycle events.

Grace-period expiry has its own sink (``park_grace_seconds=1``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from debug_sink.sink.tables import create_pool
from debug_sink.sink.writer import BatchWriter
from debug_sink.wire.canonical import canonical_json
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.conftest import kafka_names

SN, ER, SU, ST, TR = (
    EventKind.SNAPSHOT,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.TRANSFORMATION,
)


def _hash(state: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(state)).hexdigest()


def _metric(sink: Any, name: str) -> float:
    value = sink.metrics.registry.get_sample_value(name)
    return 0.0 if value is None else float(value)


@dataclass
class Scenario:
    ev: dict[str, dict[str, Any]]  # every event produced, by a short name
    rows: dict[str, dict[str, Any]]  # table -> id -> row, after run 2
    parked_after_run1: list[dict[str, Any]]
    rows_after_run1: dict[str, set[str]]
    aliases: dict[str, str]
    dead_letters: list[dict[str, Any]]
    dlq: list[Any]
    sinks: tuple[Any, Any]


TABLES = {
    SN: "debug_state_snapshots",
    ER: "debug_error_events",
    SU: "debug_success_events",
    ST: "debug_workflow_steps",
    TR: "agent_transformation_events",
}


async def _rows(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES.values():
        out[table] = {str(r["id"]): dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")}
    return out


async def _run_scenario(module_db: str, kafka_bootstrap: str) -> Scenario:
    """Run 1 and run 2 of the module docstring, then read the dead-letter topic back."""
    kafka = kafka_names(kafka_bootstrap)
    corr, corr_d, corr_other = s.uid(), s.uid(), s.uid()
    state_x, state_y, state_z, state_w = (
        {"plan": "x"},
        {"plan": "y"},
        {"plan": "z"},
        {"plan": "w"},
    )
    ev: dict[str, dict[str, Any]] = {}
    # -- child before parent (the parents come in run 2) --------------------------------
    ev["S_A"] = s.snapshot(corr, {"where": "A"})
    ev["E_A"] = s.error(corr, state_snapshot_id=ev["S_A"]["id"])
    ev["SU_A"] = s.success(corr, state_snapshot_id=ev["S_A"]["id"])
    ev["TR_A"] = s.transformation(corr, state_snapshot_id=ev["S_A"]["id"])
    # a transitive chain: step -> step -> error -> snapshot, all missing in run 1
    ev["S_B"] = s.snapshot(corr, {"where": "B"})
    ev["E_B"] = s.error(corr, state_snapshot_id=ev["S_B"]["id"])
    ev["T_B"] = s.step(
        corr, 7, "failed", started_at=s.ts(0), completed_at=s.ts(1), error_event_id=ev["E_B"]["id"]
    )
    ev["T_B2"] = s.step(corr, 8, "started", started_at=s.ts(1), parent_step_id=ev["T_B"]["id"])
    # a parked child that PostgreSQL rejects once its parent lands
    ev["S_P"] = s.snapshot(corr, {"where": "P"})
    ev["E_P"] = s.error(corr, error_message="boom", state_snapshot_id=ev["S_P"]["id"])
    # -- snapshot dedupe ----------------------------------------------------------------
    ev["D1"] = s.snapshot(corr_d, state_x)
    ev["D2"] = s.snapshot(corr_d, {**state_x})  # same state, another id: dropped
    ev["E_D2"] = s.error(corr_d, state_snapshot_id=ev["D2"]["id"])
    ev["D7"] = s.snapshot(corr_d, state_z, parent_snapshot_id=ev["D2"]["id"])
    ev["D3"] = s.snapshot(corr_other, state_x)  # same state, other workflow: a row
    ev["D4"] = s.snapshot(corr_d, state_w, state_hash="0" * 64)  # wrong hash: replaced
    ev["D5"] = s.snapshot(corr_d, state_y)
    # the kept snapshot is itself parked (its parent DM comes in run 2): its duplicate DK2,
    # and an error naming DK2, wait with it
    corr_k = s.uid()
    ev["DM"] = s.snapshot(corr_k, {"plan": "m"})
    ev["DK"] = s.snapshot(corr_k, {"plan": "k"}, parent_snapshot_id=ev["DM"]["id"])
    ev["DK2"] = s.snapshot(corr_k, {"plan": "k"})
    ev["E_DK2"] = s.error(corr_k, state_snapshot_id=ev["DK2"]["id"])
    # -- steps ----------------------------------------------------------------------------
    step_id = {name: s.uid() for name in ("a", "b", "c", "d1", "d2", "e")}
    ev["T_a_start"] = s.step(corr, 1, "started", id=step_id["a"], started_at=s.ts(0))
    ev["T_a_end"] = s.step(
        corr, 1, "completed", id=step_id["a"], completed_at=s.ts(3), output_data={"ok": True}
    )
    ev["T_e_end"] = s.step(corr, 2, "completed", id=step_id["e"], completed_at=s.ts(8))
    ev["T_e_start"] = s.step(corr, 2, "started", id=step_id["e"], started_at=s.ts(6))
    ev["T_b_end"] = s.step(
        corr, 3, "completed", id=step_id["b"], completed_at=s.ts(5), metadata={"end": 1}
    )
    ev["T_c_start"] = s.step(
        corr, 5, "started", id=step_id["c"], started_at=s.ts(10), input_data={"q": 1}
    )
    ev["T_d1_start"] = s.step(corr, 4, "started", id=step_id["d1"], started_at=s.ts(20))
    ev["T_d1_end"] = s.step(corr, 4, "failed", id=step_id["d1"], completed_at=s.ts(21))
    ev["T_d2_start"] = s.step(corr, 4, "started", id=step_id["d2"], attempt=2, started_at=s.ts(22))
    ev["T_d2_end"] = s.step(
        corr, 4, "completed", id=step_id["d2"], attempt=2, completed_at=s.ts(25)
    )
    # -- run 2 only -------------------------------------------------------------------------
    ev["D6"] = s.snapshot(corr_d, {**state_y})  # duplicate of D5 from an earlier batch
    ev["E_D6"] = s.error(corr_d, state_snapshot_id=ev["D6"]["id"])
    ev["E_D2_late"] = s.error(corr_d, state_snapshot_id=ev["D2"]["id"])  # via the alias table
    ev["T_b_start"] = s.step(
        corr, 3, "started", id=step_id["b"], started_at=s.ts(2), metadata={"start": 1}
    )
    ev["T_c_end"] = s.step(corr, 5, "completed", id=step_id["c"], completed_at=s.ts(14))

    kinds = {"S": SN, "D": SN, "E": ER, "SU": SU, "TR": TR, "T": ST}

    def kind_of(name: str) -> EventKind:
        return kinds["D" if name.startswith("D") else name.split("_", maxsplit=1)[0]]

    run1 = [
        "E_A",
        "SU_A",
        "TR_A",
        "T_B2",
        "T_B",
        "E_B",
        "E_P",
        "D1",
        "D2",
        "E_D2",
        "D7",
        "D3",
        "D4",
        "D5",
        "DK",
        "DK2",
        "E_DK2",
        "T_a_start",
        "T_a_end",
        "T_e_end",
        "T_e_start",
        "T_b_end",
        "T_c_start",
        "T_d1_start",
        "T_d1_end",
        "T_d2_start",
        "T_d2_end",
    ]
    run2 = ["S_A", "S_B", "S_P", "D6", "E_D6", "E_D2_late", "D2", "DM", "T_b_start", "T_c_end"]

    conn = await asyncpg.connect(module_db)
    try:
        await conn.execute(
            "ALTER TABLE debug_error_events ADD CONSTRAINT no_boom CHECK (error_message <> 'boom')"
        )
        settings = s.sink_settings(module_db, kafka)
        await s.create_topics(kafka, partitions=1)
        await s.produce(kafka, [(s.topic(kafka, kind_of(n)), ev[n]) for n in run1])
        sink1 = await s.run_sink(settings)
        parked = [
            dict(r)
            for r in await conn.fetch(
                "SELECT kind, event_id::text, waiting_for::text[] FROM sink_parked_events"
            )
        ]
        after1 = {t: set(r) for t, r in (await _rows(conn)).items()}
        await s.produce(kafka, [(s.topic(kafka, kind_of(n)), ev[n]) for n in run2])
        sink2 = await s.run_sink(settings)
        rows = await _rows(conn)
        aliases = {
            str(r["alias_id"]): str(r["snapshot_id"])
            for r in await conn.fetch("SELECT alias_id, snapshot_id FROM sink_snapshot_aliases")
        }
        dead = [dict(r) for r in await conn.fetch("SELECT * FROM sink_dead_letters")]
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
    finally:
        await conn.close()
    dlq = await s.read_topic(kafka_bootstrap, kafka.dead_letter_topic)
    return Scenario(ev, rows, parked, after1, aliases, dead, dlq, (sink1, sink2))


scenario_run, scenario, test_scenario_runs = s.scenario_fixtures(
    _run_scenario, "both sink runs, the dead-letter topic read back"
)


def _ids(sc: Scenario, kind: EventKind) -> set[str]:
    return set(sc.rows[TABLES[kind]])


class TestChildBeforeParent:
    """A child whose parent row is not there yet is parked in PostgreSQL (not written, not
    lost), and written with its reference intact as soon as the parent lands."""

    async def test_parked_in_run_1(self, scenario: Scenario) -> None:
        """After run 1 every orphan (and every child of an orphan, transitively) is parked,
        waiting for exactly the id it misses, and none of them is a row yet."""
        ev = scenario.ev
        waiting = {
            (p["kind"], p["event_id"]): set(p["waiting_for"]) for p in scenario.parked_after_run1
        }
        assert waiting == {
            ("error", ev["E_A"]["id"]): {ev["S_A"]["id"]},
            ("success", ev["SU_A"]["id"]): {ev["S_A"]["id"]},
            ("transformation", ev["TR_A"]["id"]): {ev["S_A"]["id"]},
            ("error", ev["E_B"]["id"]): {ev["S_B"]["id"]},
            ("step", ev["T_B"]["id"]): {ev["E_B"]["id"]},
            ("step", ev["T_B2"]["id"]): {ev["T_B"]["id"]},
            ("error", ev["E_P"]["id"]): {ev["S_P"]["id"]},
            ("snapshot", ev["DK"]["id"]): {ev["DM"]["id"]},
            ("snapshot", ev["DK2"]["id"]): {ev["DK"]["id"]},
            ("error", ev["E_DK2"]["id"]): {ev["DK"]["id"]},
        }
        after1 = scenario.rows_after_run1
        for name in ("E_A", "E_B", "E_P"):
            assert ev[name]["id"] not in after1["debug_error_events"]
        assert ev["SU_A"]["id"] not in after1["debug_success_events"]
        assert ev["TR_A"]["id"] not in after1["agent_transformation_events"]
        assert ev["T_B"]["id"] not in after1["debug_workflow_steps"]
        assert ev["T_B2"]["id"] not in after1["debug_workflow_steps"]
        assert _metric(scenario.sinks[0], "debug_sink_events_parked_total") == 10

    async def test_released_with_reference_when_parent_lands(self, scenario: Scenario) -> None:
        """Run 2 writes the parents; the parked children land with the reference set."""
        ev, rows = scenario.ev, scenario.rows
        sa = uuid.UUID(ev["S_A"]["id"])
        assert rows["debug_error_events"][ev["E_A"]["id"]]["state_snapshot_id"] == sa
        assert rows["debug_success_events"][ev["SU_A"]["id"]]["state_snapshot_id"] == sa
        assert rows["agent_transformation_events"][ev["TR_A"]["id"]]["state_snapshot_id"] == sa

    async def test_transitive_chain_released_in_order(self, scenario: Scenario) -> None:
        """step -> step -> error -> snapshot, all missing: once the snapshot lands, the
        whole chain lands in the same transaction, every reference intact."""
        ev, rows = scenario.ev, scenario.rows
        error = rows["debug_error_events"][ev["E_B"]["id"]]
        assert error["state_snapshot_id"] == uuid.UUID(ev["S_B"]["id"])
        t_b = rows["debug_workflow_steps"][ev["T_B"]["id"]]
        assert t_b["error_event_id"] == uuid.UUID(ev["E_B"]["id"])
        assert t_b["status"] == "failed"
        t_b2 = rows["debug_workflow_steps"][ev["T_B2"]["id"]]
        assert t_b2["parent_step_id"] == uuid.UUID(ev["T_B"]["id"])
        assert _metric(scenario.sinks[1], "debug_sink_events_released_total") == 9

    async def test_parked_event_rejected_by_postgres_is_dead_lettered(
        self, scenario: Scenario
    ) -> None:
        """A parked event that PostgreSQL rejects when released becomes a 'database' dead
        letter in the table (its parked row is gone, nothing is stuck), with its origin; its
        raw bytes are gone (the offset was committed when it was parked), so the letter holds
        the validated event as JSON, keyed by correlation_id."""
        ev = scenario.ev
        assert len(scenario.dead_letters) == 1
        letter = scenario.dead_letters[0]
        assert letter["error_class"] == "database"
        assert "no_boom" in letter["reason"]
        assert letter["topic"].endswith("error_events")
        # one partition per topic: E_P is the third message of the error topic
        assert (letter["partition"], letter["offset"]) == (0, 2)
        assert orjson.loads(letter["value"])["id"] == ev["E_P"]["id"]
        assert letter["key"] == ev["E_P"]["correlation_id"].encode()
        assert ev["E_P"]["id"] not in scenario.rows["debug_error_events"]

    async def test_parked_event_rejected_by_postgres_is_on_the_dead_letter_topic(
        self, scenario: Scenario
    ) -> None:
        """The same dead letter goes to the dead-letter topic, with the error headers."""
        assert len(scenario.dlq) == 1
        msg = scenario.dlq[0]
        letter = scenario.dead_letters[0]
        assert msg.value == letter["value"]
        assert msg.key == letter["key"]
        headers = dict(msg.headers)
        assert headers["__connect.errors.topic"] == letter["topic"].encode()
        assert headers["__connect.errors.offset"] == str(letter["offset"]).encode()
        assert headers["__connect.errors.exception.class.name"] == b"database"
        assert headers["__connect.errors.exception.message"].decode() == letter["reason"]


class TestSnapshotDedupe:
    """Snapshots are stored once per (correlation_id, state_hash); every reference to a
    dropped duplicate resolves to the kept snapshot."""

    async def test_one_row_per_state_and_workflow(self, scenario: Scenario) -> None:
        """Same state, same workflow, other id: dropped (in one batch and across batches);
        same state in another workflow: a row of its own."""
        ev = scenario.ev
        assert _ids(scenario, SN) == {
            ev[n]["id"] for n in ("S_A", "S_B", "S_P", "D1", "D3", "D4", "D5", "D7", "DM", "DK")
        }
        assert scenario.aliases == {
            ev["D2"]["id"]: ev["D1"]["id"],
            ev["D6"]["id"]: ev["D5"]["id"],
            ev["DK2"]["id"]: ev["DK"]["id"],
        }
        d1 = scenario.rows["debug_state_snapshots"][ev["D1"]["id"]]
        d3 = scenario.rows["debug_state_snapshots"][ev["D3"]["id"]]
        assert d1["state_hash"] == d3["state_hash"] == _hash({"plan": "x"})

    async def test_references_to_dropped_snapshot_resolve_to_kept(self, scenario: Scenario) -> None:
        """An error (same batch or a later batch, through sink_snapshot_aliases) and a
        snapshot's parent_snapshot_id that name the dropped id point at the kept one."""
        ev, rows = scenario.ev, scenario.rows
        d1, d5 = uuid.UUID(ev["D1"]["id"]), uuid.UUID(ev["D5"]["id"])
        assert rows["debug_error_events"][ev["E_D2"]["id"]]["state_snapshot_id"] == d1
        assert rows["debug_error_events"][ev["E_D2_late"]["id"]]["state_snapshot_id"] == d1
        assert rows["debug_error_events"][ev["E_D6"]["id"]]["state_snapshot_id"] == d5
        assert rows["debug_state_snapshots"][ev["D7"]["id"]]["parent_snapshot_id"] == d1

    async def test_duplicate_of_a_parked_snapshot_waits_with_it(self, scenario: Scenario) -> None:
        """When the kept snapshot is parked (its parent is missing), its duplicate and the
        events naming the duplicate wait with it, then resolve to it once it lands."""
        ev, rows = scenario.ev, scenario.rows
        dk = uuid.UUID(ev["DK"]["id"])
        assert rows["debug_state_snapshots"][ev["DK"]["id"]]["parent_snapshot_id"] == uuid.UUID(
            ev["DM"]["id"]
        )
        assert ev["DK2"]["id"] not in rows["debug_state_snapshots"]
        assert rows["debug_error_events"][ev["E_DK2"]["id"]]["state_snapshot_id"] == dk

    async def test_wrong_producer_hash_is_replaced(self, scenario: Scenario) -> None:
        """A producer-sent state_hash that is not the hash of the state is replaced, and
        counted."""
        row = scenario.rows["debug_state_snapshots"][scenario.ev["D4"]["id"]]
        assert row["state_hash"] == _hash({"plan": "w"})
        assert _metric(scenario.sinks[0], "debug_sink_state_hash_replaced_total") == 1

    async def test_duplicates_counted(self, scenario: Scenario) -> None:
        """D2 in run 1; D6, the re-sent D2 and (once its kept snapshot landed) DK2 in run 2."""
        assert _metric(scenario.sinks[0], "debug_sink_snapshots_deduplicated_total") == 1
        assert _metric(scenario.sinks[1], "debug_sink_snapshots_deduplicated_total") == 3


def _step(scenario: Scenario, name: str) -> dict[str, Any]:
    return scenario.rows["debug_workflow_steps"][scenario.ev[name]["id"]]


def _at(seconds: float) -> datetime:
    return datetime.fromisoformat(s.ts(seconds))


class TestStepLifecycle:
    """Lifecycle events of one step (same id) merge into one row, in either order; a retry
    (new id, same step_number, next attempt) is a row of its own."""

    async def test_start_and_end_in_one_batch(self, scenario: Scenario) -> None:
        """started then completed, one batch: completed, both times, duration, output."""
        row = _step(scenario, "T_a_start")
        assert (row["status"], row["started_at"], row["completed_at"], row["duration_ms"]) == (
            "completed",
            _at(0),
            _at(3),
            3000,
        )
        assert orjson.loads(row["output_data"]) == {"ok": True}

    async def test_end_before_start_in_one_batch(self, scenario: Scenario) -> None:
        """completed produced before started, one batch: the same row."""
        row = _step(scenario, "T_e_start")
        assert (row["status"], row["started_at"], row["completed_at"], row["duration_ms"]) == (
            "completed",
            _at(6),
            _at(8),
            2000,
        )

    async def test_end_before_start_across_batches(self, scenario: Scenario) -> None:
        """completed in run 1, started in run 2: status stays completed, started_at comes
        from the start event, the duration is completed_at - started_at, metadata merged."""
        row = _step(scenario, "T_b_start")
        assert (row["status"], row["started_at"], row["completed_at"], row["duration_ms"]) == (
            "completed",
            _at(2),
            _at(5),
            3000,
        )
        assert orjson.loads(row["metadata"]) == {"start": 1, "end": 1}

    async def test_start_then_end_across_batches(self, scenario: Scenario) -> None:
        """started in run 1, completed (no started_at, no duration) in run 2."""
        row = _step(scenario, "T_c_start")
        assert (row["status"], row["started_at"], row["completed_at"], row["duration_ms"]) == (
            "completed",
            _at(10),
            _at(14),
            4000,
        )
        assert orjson.loads(row["input_data"]) == {"q": 1}

    async def test_retry_is_its_own_row(self, scenario: Scenario) -> None:
        """attempt 1 failed and attempt 2 completed of step 4: two rows."""
        rows = [r for r in scenario.rows["debug_workflow_steps"].values() if r["step_number"] == 4]
        got = sorted(
            (r["attempt"], r["status"], r["started_at"], r["completed_at"], r["duration_ms"])
            for r in rows
        )
        assert got == [
            (1, "failed", _at(20), _at(21), 1000),
            (2, "completed", _at(22), _at(25), 3000),
        ]


async def test_grace_period_expiry(db_dsn: str, kafka: Any) -> None:
    """With park_grace_seconds=1, an error whose snapshot never comes is written once the
    grace period is over: state_snapshot_id NULL, the original id kept in
    metadata.dangling_references (next to the producer's metadata), and counted; the step
    waiting for that error lands with its reference intact."""
    corr = s.uid()
    missing = s.uid()
    err = s.error(corr, state_snapshot_id=missing, metadata={"origin": "test"})
    stp = s.step(
        corr, 1, "completed", started_at=s.ts(0), completed_at=s.ts(2), error_event_id=err["id"]
    )
    await s.produce(kafka, [(s.topic(kafka, ER), err), (s.topic(kafka, ST), stp)])
    settings = s.sink_settings(db_dsn, kafka, park_grace_seconds=1)
    sink = await s.run_sink(settings)
    conn = await asyncpg.connect(db_dsn)
    try:
        # The sink's periodic release may already have written them; else the grace period
        # ends within a second (by the database's clock, which decides expiry) and a release
        # pass (as the sink runs it) writes them now.
        async def expired() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT coalesce(bool_and(expires_at < clock_timestamp()), true) "
                    "FROM sink_parked_events"
                )
            )

        await s.eventually(expired, timeout=30, what="the grace period's end")
        pool = await create_pool(settings)
        try:
            result = await BatchWriter(
                pool, group_id=settings.group_id, park_grace=1
            ).release_parked()
        finally:
            await pool.close()
        assert _metric(sink, "debug_sink_references_expired_total") + result.dangling == 1
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
        row = await conn.fetchrow(
            "SELECT state_snapshot_id, metadata FROM debug_error_events WHERE id = $1::uuid",
            err["id"],
        )
        assert row["state_snapshot_id"] is None
        assert orjson.loads(row["metadata"]) == {
            "origin": "test",
            "dangling_references": {"state_snapshot_id": missing},
        }
        step_row = await conn.fetchrow(
            "SELECT error_event_id, status FROM debug_workflow_steps WHERE id = $1::uuid", stp["id"]
        )
        assert step_row["error_event_id"] == uuid.UUID(err["id"])
        assert step_row["status"] == "completed"
    finally:
        await conn.close()
