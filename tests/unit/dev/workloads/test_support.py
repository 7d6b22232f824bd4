"""The support-ticket workload (debug_sink.dev.workloads.support): reproducible, consistent
truth, valid wire events, and the fleet its module docstring describes (no database)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from debug_sink.dev.synthetic import Event, Workload
from debug_sink.dev.workloads import WORKLOADS, support
from debug_sink.dev.workloads.delivery import event_time
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
CONFIG = ValidationConfig()


def small(stated: float = 0.0, seed: int | None = None) -> Workload:
    return support.generate(
        support.SupportConfig(workflows=120, stated_fraction=stated, seed=seed or 303)
    )


def rows_by_id(workload: Workload) -> dict[UUID, Event]:
    return {e.row["id"]: e for wave in workload.waves for e in wave}


def of_kind(workload: Workload, kind: str) -> list[dict[str, Any]]:
    return [e.row for e in rows_by_id(workload).values() if e.kind == kind]


@pytest.fixture(scope="module")
def workload() -> Workload:
    return small()


class TestRegistry:
    def test_registered_as_tuning(self) -> None:
        """Held out until its misses chose correlator rules (issue 13)."""
        spec = WORKLOADS["support"]
        assert spec.role == "tuning"
        made = spec.make(7, 0.0)
        assert made.truth == support.generate(support.SupportConfig(seed=7)).truth

    def test_default_size(self) -> None:
        workload = WORKLOADS["support"].make(None, 0.0)
        assert len(workload.waves) == 6
        assert len({e.row["correlation_id"] for w in workload.waves for e in w}) == 300
        assert 800 <= len(workload.truth) <= 1500


class TestGenerate:
    """Deterministic, truth and statements consistent, delivery as documented."""

    def test_same_config_same_workload(self, workload: Workload) -> None:
        second = small()
        assert workload.truth == second.truth
        assert workload.describe() == second.describe()
        assert [[(e.row["id"], e.arrival) for e in w] for w in workload.waves] == [
            [(e.row["id"], e.arrival) for e in w] for w in second.waves
        ]
        assert small(seed=5).truth != workload.truth

    def test_truth_pairs_are_errors_before_successes_of_one_ticket(
        self, workload: Workload
    ) -> None:
        rows = rows_by_id(workload)
        assert len(rows) == workload.errors + workload.successes + workload.steps
        assert workload.truth
        for error_id, success_id in workload.truth:
            error, success = rows[error_id], rows[success_id]
            assert (error.kind, success.kind) == ("error", "success")
            assert error.row["correlation_id"] == success.row["correlation_id"]
            assert error.row["occurred_at"] < success.row["occurred_at"]
        recovered = {e for e, _ in workload.truth}
        assert workload.unrecovered_errors == workload.errors - len(recovered) > 50

    def test_every_event_is_a_valid_wire_event(self, workload: Workload) -> None:
        for event in rows_by_id(workload).values():
            kind = EventKind(event.kind)
            result = decode(
                TOPIC_OF[kind],
                orjson.dumps(event.row),
                timestamp_ms=1_767_225_600_000,
                config=CONFIG,
            )
            assert isinstance(result, Accepted), (event.row, result)

    def test_step_references_are_events_of_the_ticket(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        for step in of_kind(workload, "step"):
            for column, kind in (("error_event_id", "error"), ("success_event_id", "success")):
                if step[column] is not None:
                    assert rows[step[column]].kind == kind
                    assert rows[step[column]].row["correlation_id"] == step["correlation_id"]

    def test_statements_are_true_and_only_where_stated(self, workload: Workload) -> None:
        assert workload.stated == set()
        assert not any(s.get("recovers_error_ids") for s in of_kind(workload, "success"))
        stated = small(stated=0.5)
        assert stated.truth == workload.truth  # stating changes nothing else
        assert stated.stated
        assert stated.stated < stated.truth
        named = {
            (error, s["id"])
            for s in of_kind(stated, "success")
            for error in s.get("recovers_error_ids") or ()
        }
        assert named == stated.stated

    def test_duplicate_and_late_deliveries(self, workload: Workload) -> None:
        delivered = Counter(e.row["id"] for wave in workload.waves for e in wave)
        assert sum(delivered.values()) == workload.deliveries
        assert sum(1 for n in delivered.values() if n > 1) > 10
        rows = rows_by_id(workload)
        late = [(e, s) for e, s in workload.truth if rows[e].wave > rows[s].wave]
        assert late
        # a wave lasts 40 minutes: some events arrive one or more waves after they happened
        delays = [e.arrival - event_time(e.row) for wave in workload.waves for e in wave]
        assert sum(1 for d in delays if d > timedelta(minutes=40)) > 50
        assert max(delays) > timedelta(minutes=120)


class TestConventions:
    """What distinguishes the support fleet, as documented."""

    def test_shape(self, workload: Workload) -> None:
        successes = of_kind(workload, "success")
        agents = {s["agent_name"] for s in successes}
        assert agents == set(support.AGENTS)
        # operations recur as new work within a ticket
        searches = Counter(
            s["correlation_id"] for s in successes if s["operation_name"] == "search_articles"
        )
        assert max(searches.values()) >= 4
        # tool agents of one ticket in parallel: overlapping steps of different agents
        steps = of_kind(workload, "step")
        by_ticket: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for step in steps:
            if step["agent_name"] in support.TOOL_AGENTS:
                by_ticket[step["correlation_id"]].append(step)
        assert any(
            a["agent_name"] != b["agent_name"]
            and a["started_at"] < b["completed_at"]
            and b["started_at"] < a["completed_at"]
            for group in by_ticket.values()
            for a in group
            for b in group
        )

    def test_retries_reported_three_ways(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        steps = of_kind(workload, "step")
        # in place: same step_number, attempt + 1
        retried = [s for s in steps if s["attempt"] > 1]
        assert retried
        failed = {
            (
                s["correlation_id"],
                s["agent_name"],
                s["operation_name"],
                s["step_number"],
                s["attempt"],
            )
            for s in steps
            if s["status"] == "failed"
        }
        assert all(
            (
                s["correlation_id"],
                s["agent_name"],
                s["operation_name"],
                s["step_number"],
                s["attempt"] - 1,
            )
            in failed
            for s in retried
        )
        # retry_count on successes of agents that write no step rows
        stepped = {(s["correlation_id"], s["agent_name"]) for s in steps}
        counted = [
            s
            for s in of_kind(workload, "success")
            if s["retry_count"] > 0 and (s["correlation_id"], s["agent_name"]) not in stepped
        ]
        assert counted
        # a silent client retry: retry_count > 0 and no reported error recovered
        recovering = {s for _, s in workload.truth}
        assert any(s["id"] not in recovering for s in counted)
        # retries reported as nothing: a recovery by a same-operation success, retry_count 0
        assert any(
            rows[s].row["retry_count"] == 0
            and rows[s].row["operation_name"] == rows[e].row["operation_name"]
            for e, s in workload.truth
        )

    def test_circuit_breaker_alternatives_and_escalation(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        assert any(s["status"] == "skipped" for s in of_kind(workload, "step"))
        pairs = [(rows[e].row, rows[s].row) for e, s in workload.truth]
        alternative = [
            (e, s)
            for e, s in pairs
            if e["agent_name"] == s["agent_name"] and e["operation_name"] != s["operation_name"]
        ]
        assert any(s["success_type"] == "recovery_success" for _, s in alternative)
        assert any(s["success_type"] == "task_completion" for _, s in alternative)
        assert any(
            (s["success_factors"] or {}).get("strategy") == "alternative_tool"
            for _, s in alternative
        )
        human = [(e, s) for e, s in pairs if s["agent_name"] == support.HUMAN]
        assert human
        assert all(s["operation_name"] == "resolve_manually" for _, s in human)
        assert all(s["occurred_at"] - e["occurred_at"] > timedelta(seconds=30) for e, s in human)
        assert max(s["occurred_at"] - e["occurred_at"] for e, s in human) > timedelta(minutes=30)
        # one human resolution recovering errors of several agents or operations
        per_success: dict[UUID, set[tuple[str, str]]] = defaultdict(set)
        for e, s in human:
            per_success[s["id"]].add((e["agent_name"], e["operation_name"]))
        assert any(len(ops) > 1 for ops in per_success.values())
        # human successes that recover nothing (reviews)
        recovering = {s for _, s in workload.truth}
        assert any(
            s["agent_name"] == support.HUMAN and s["id"] not in recovering
            for s in of_kind(workload, "success")
        )

    def test_give_ups_followed_by_new_work_of_the_same_operation(self, workload: Workload) -> None:
        recovered = {e for e, _ in workload.truth}
        recovering = {s for _, s in workload.truth}
        successes = of_kind(workload, "success")
        unrecovered = [e for e in of_kind(workload, "error") if e["id"] not in recovered]
        traps = [
            e
            for e in unrecovered
            if any(
                s["id"] not in recovering
                and (s["correlation_id"], s["agent_name"], s["operation_name"])
                == (e["correlation_id"], e["agent_name"], e["operation_name"])
                and timedelta(0) < s["occurred_at"] - e["occurred_at"] < timedelta(seconds=15)
                for s in successes
            )
        ]
        assert len(traps) > 10
        # some of them declared a strategy they did not follow
        assert any(e["recovery_strategy"] in ("retry", "fallback", "escalate") for e in traps)

    def test_what_errors_say(self, workload: Workload) -> None:
        errors = of_kind(workload, "error")
        strategies = Counter(e["recovery_strategy"] for e in errors)
        assert {"retry", "escalate", "skip", None} <= set(strategies)
        assert strategies["fallback"] + strategies["alternative_tool"] > 0
        attempted = Counter(e["recovery_attempted"] for e in errors)
        assert attempted[True]
        assert attempted[False]
        # agents that never set recovery_attempted, even on errors they do recover
        rows = rows_by_id(workload)
        assert any(not rows[e].row["recovery_attempted"] for e, _ in workload.truth)
        # ... and agents that set it, then give up when the circuit breaker opens
        recovered = {e for e, _ in workload.truth}
        assert any(e["recovery_attempted"] and e["id"] not in recovered for e in errors)
