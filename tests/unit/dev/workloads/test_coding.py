"""The coding-agent workload (debug_sink.dev.workloads.coding): reproducible, consistent truth,
valid wire events, and the fleet its module docstring describes (no database)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from debug_sink.dev.synthetic import Event, Workload
from debug_sink.dev.workloads import WORKLOADS, coding
from debug_sink.dev.workloads.delivery import event_time
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
CONFIG = ValidationConfig()
SKEW = timedelta(milliseconds=2 * coding.CodingConfig().clock_skew_ms)


def small(stated: float = 0.0, seed: int | None = None) -> Workload:
    return coding.generate(
        coding.CodingConfig(workflows=120, stated_fraction=stated, seed=seed or 404)
    )


def rows_by_id(workload: Workload) -> dict[UUID, Event]:
    return {e.row["id"]: e for wave in workload.waves for e in wave}


def of_kind(workload: Workload, kind: str) -> list[dict[str, Any]]:
    return [e.row for e in rows_by_id(workload).values() if e.kind == kind]


def pair(row: dict[str, Any]) -> tuple[UUID, str]:
    return row["correlation_id"], row["agent_name"]


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The default workload: 300 tasks, enough for the shares."""
    return WORKLOADS["coding"].make(None, 0.0)


@pytest.fixture(scope="module")
def step_of(workload: Workload) -> dict[UUID, dict[str, Any]]:
    """The step row of each error and success that has one."""
    out = {}
    for step in of_kind(workload, "step"):
        for column in ("error_event_id", "success_event_id"):
            if step[column] is not None:
                out[step[column]] = step
    return out


class TestRegistry:
    def test_registered_as_held_out(self) -> None:
        spec = WORKLOADS["coding"]
        assert spec.role == "held-out"
        made = spec.make(7, 0.0)
        assert made.truth == coding.generate(coding.CodingConfig(seed=7)).truth
        stated = spec.make(1, 0.5)
        assert stated.stated
        assert stated.stated < stated.truth

    def test_default_size(self, workload: Workload) -> None:
        assert len(workload.waves) == 6
        assert len({e.row["correlation_id"] for w in workload.waves for e in w}) == 300
        assert 800 <= len(workload.truth) <= 1500


class TestGenerate:
    """Deterministic, truth and statements consistent, delivery as documented."""

    def test_same_config_same_workload(self) -> None:
        first, second = small(), small()
        assert first.truth == second.truth
        assert first.describe() == second.describe()
        assert [[(e.row["id"], e.arrival) for e in w] for w in first.waves] == [
            [(e.row["id"], e.arrival) for e in w] for w in second.waves
        ]
        assert small(seed=5).truth != first.truth

    def test_truth_pairs_are_errors_before_successes_of_one_task(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        assert len(rows) == workload.errors + workload.successes + workload.steps
        for error_id, success_id in workload.truth:
            error, success = rows[error_id], rows[success_id]
            assert (error.kind, success.kind) == ("error", "success")
            assert error.row["correlation_id"] == success.row["correlation_id"]
            # not before the error beyond clock skew; strictly after on one agent's clock
            assert error.row["occurred_at"] < success.row["occurred_at"] + SKEW
            if error.row["agent_name"] == success.row["agent_name"]:
                assert error.row["occurred_at"] < success.row["occurred_at"]
        # an error is recovered at most once
        recovered = Counter(e for e, _ in workload.truth)
        assert max(recovered.values()) == 1
        assert workload.unrecovered_errors == workload.errors - len(recovered) > 100

    def test_every_event_is_a_valid_wire_event(self) -> None:
        for event in rows_by_id(small()).values():
            result = decode(
                TOPIC_OF[EventKind(event.kind)],
                orjson.dumps(event.row),
                timestamp_ms=1_767_225_600_000,
                config=CONFIG,
            )
            assert isinstance(result, Accepted), (event.row, result)

    def test_step_references_are_events_of_the_task(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        for step in of_kind(workload, "step"):
            assert (step["error_event_id"] is None) != (step["success_event_id"] is None)
            for column, kind in (("error_event_id", "error"), ("success_event_id", "success")):
                if step[column] is not None:
                    event = rows[step[column]].row
                    assert rows[step[column]].kind == kind
                    assert pair(event) == pair(step)
                    assert event["operation_name"] == step["operation_name"]

    def test_statements_are_true_and_only_where_stated(self, workload: Workload) -> None:
        assert workload.stated == set()
        assert not any(s.get("recovers_error_ids") for s in of_kind(workload, "success"))
        plain, stated = small(), small(stated=0.5)
        assert stated.truth == plain.truth  # stating changes nothing else
        assert stated.stated < stated.truth
        named = {
            (error, s["id"])
            for s in of_kind(stated, "success")
            for error in s.get("recovers_error_ids") or ()
        }
        assert named == stated.stated
        # per (task, agent) pair: all of its recoveries stated, or none
        rows = rows_by_id(stated)
        by_pair: dict[tuple[UUID, str], set[bool]] = defaultdict(set)
        for link in stated.truth:
            by_pair[pair(rows[link[1]].row)].add(link in stated.stated)
        assert all(len(values) == 1 for values in by_pair.values())
        share = sum(True in values for values in by_pair.values()) / len(by_pair)
        assert 0.4 < share < 0.6

    def test_duplicate_late_and_offline_deliveries(self, workload: Workload) -> None:
        delivered: dict[UUID, list[Event]] = defaultdict(list)
        for wave in workload.waves:
            for event in wave:
                delivered[event.row["id"]].append(event)
        assert sum(len(copies) for copies in delivered.values()) == workload.deliveries
        twice = [copies for copies in delivered.values() if len(copies) > 1]
        assert 0.02 < len(twice) / len(delivered) < 0.04
        assert all(copies[0].row == copies[1].row for copies in twice)
        rows = rows_by_id(workload)
        assert [(e, s) for e, s in workload.truth if rows[e].wave > rows[s].wave]
        # a wave lasts 35 minutes: some events arrive one or more waves after they happened
        wave_length = timedelta(minutes=35)
        delays = [e.arrival - event_time(e.row) for w in workload.waves for e in w]
        assert 0.05 < sum(1 for d in delays if d > wave_length) / len(delays) < 0.2
        # an offline coder: every event of it in a task at least a wave late
        late: dict[tuple[UUID, str], list[bool]] = defaultdict(list)
        for w in workload.waves:
            for event in w:
                if event.row["agent_name"].startswith("coder-"):
                    late[pair(event.row)].append(
                        event.arrival - event_time(event.row) > wave_length
                    )
        assert sum(1 for flags in late.values() if len(flags) >= 5 and all(flags)) >= 5


class TestConventions:
    """What distinguishes the coding fleet, as documented."""

    def test_shape(self, workload: Workload) -> None:
        successes = of_kind(workload, "success")
        assert {s["agent_name"] for s in successes} == set(coding.AGENTS)
        operations = {(s["agent_name"].split("-")[0], s["operation_name"]) for s in successes}
        assert operations == {
            ("planner", "plan_task"),
            ("planner", "split_subtasks"),
            ("coder", "read_file"),
            ("coder", "apply_patch"),
            ("coder", "run_command"),
            ("tester", "run_tests"),
            ("tester", "run_linter"),
            ("reviewer", "review_diff"),
            ("llm_router", "complete"),
            ("llm_router", "complete_fallback"),
            ("human", "approve_change"),
        }
        # run_tests recurs as new work: several passes in a task, most recovering nothing
        recovering = {s for _, s in workload.truth}
        passes = [s for s in successes if s["operation_name"] == "run_tests"]
        assert max(Counter(s["correlation_id"] for s in passes).values()) >= 4
        assert sum(s["id"] not in recovering for s in passes) > len(passes) / 2
        # subtasks in parallel: overlapping run_tests of the tester in one task
        by_task: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for step in of_kind(workload, "step"):
            if step["operation_name"] == "run_tests":
                by_task[step["correlation_id"]].append(step)
        assert any(
            a["step_number"] != b["step_number"]
            and a["started_at"] < b["completed_at"]
            and b["started_at"] < a["completed_at"]
            for group in by_task.values()
            for a in group
            for b in group
        )

    def test_fix_and_retest_loops(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        loops: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for e, s in workload.truth:
            if rows[s].row["operation_name"] == "run_tests":
                loops[s].append(rows[e].row)
        assert all(
            {(e["agent_name"], e["operation_name"], e["error_type"]) for e in errors}
            == {("tester", "run_tests", "TestFailure")}
            for errors in loops.values()
        )
        sizes = Counter(len(errors) for errors in loops.values())
        assert set(sizes) == {1, 2, 3, 4}
        assert sizes[1] > sizes[2] > sizes[3] > 0
        # a patch of a coder between two failures of a loop (the fix)
        patches = defaultdict(list)
        for row in of_kind(workload, "success"):
            if row["operation_name"] == "apply_patch":
                patches[row["correlation_id"]].append(row["occurred_at"])
        for errors in loops.values():
            times = sorted(e["occurred_at"] for e in errors)
            task = errors[0]["correlation_id"]
            for before, after in itertools.pairwise(times):
                assert any(before < t < after for t in patches[task])
        # 20% of the loops are given up: their failures are never recovered
        failures = [e for e in of_kind(workload, "error") if e["error_type"] == "TestFailure"]
        recovered = {e for e, _ in workload.truth}
        assert 0.1 < sum(e["id"] not in recovered for e in failures) / len(failures) < 0.3
        # ... and a later pass of the task (another subtask) does not recover them
        passes = defaultdict(list)
        for row in of_kind(workload, "success"):
            if row["operation_name"] == "run_tests":
                passes[row["correlation_id"]].append(row["occurred_at"])
        assert any(
            any(t > e["occurred_at"] for t in passes[e["correlation_id"]])
            for e in failures
            if e["id"] not in recovered
        )

    def test_transient_retries_reported_three_ways(
        self, workload: Workload, step_of: dict[UUID, dict[str, Any]]
    ) -> None:
        rows = rows_by_id(workload)
        retried = [
            (rows[e].row, rows[s].row)
            for e, s in workload.truth
            if rows[e].row["error_type"] in ("IOError", "TimeoutError", "RateLimitError")
            and rows[e].row["operation_name"] == rows[s].row["operation_name"]
        ]
        assert retried
        # attempt: same step_number, attempt + 1
        assert any(
            e["id"] in step_of
            and s["id"] in step_of
            and step_of[s["id"]]["step_number"] == step_of[e["id"]]["step_number"]
            and step_of[s["id"]]["attempt"] > step_of[e["id"]]["attempt"]
            for e, s in retried
        )
        # count: retry_count on the success, and no step row for the failed attempt
        assert any(s["retry_count"] > 0 and e["id"] not in step_of for e, s in retried)
        # none: retry_count 0, the retry a new step with attempt 1
        assert any(
            s["retry_count"] == 0
            and e["id"] in step_of
            and s["id"] in step_of
            and step_of[s["id"]]["attempt"] == 1
            and step_of[s["id"]]["step_number"] != step_of[e["id"]]["step_number"]
            for e, s in retried
        )

    def test_provider_fallback_reported_two_ways(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        fallbacks = [
            (rows[e].row, rows[s].row)
            for e, s in workload.truth
            if rows[s].row["agent_name"] == coding.ROUTER
            and (
                rows[s].row["operation_name"] == "complete_fallback"
                or rows[s].row["success_factors"] == {"model": "secondary"}
            )
        ]
        styles = Counter(s["operation_name"] for _, s in fallbacks)
        assert styles["complete"] > 5
        assert styles["complete_fallback"] > 5
        assert all(
            e["agent_name"] == coding.ROUTER and e["operation_name"] == "complete"
            for e, _ in fallbacks
        )

    def test_human_approval(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        approved = [
            (rows[e].row, rows[s].row)
            for e, s in workload.truth
            if rows[s].row["agent_name"] == coding.HUMAN
        ]
        assert approved
        for e, s in approved:
            assert (e["agent_name"], e["operation_name"], e["error_type"]) == (
                coding.REVIEWER,
                "review_diff",
                "PolicyViolation",
            )
            assert s["operation_name"] == "approve_change"
            delay = s["occurred_at"] - e["occurred_at"]
            assert timedelta(minutes=5) - SKEW < delay < timedelta(hours=2, seconds=10)
        violations = [e for e in of_kind(workload, "error") if e["error_type"] == "PolicyViolation"]
        reviews = [s for s in of_kind(workload, "success") if s["operation_name"] == "review_diff"]
        assert 0.04 < len(violations) / (len(violations) + len(reviews)) < 0.1
        recovered = {e for e, _ in workload.truth}
        assert any(e["id"] not in recovered for e in violations)  # never approved
        # routine sign-offs: approvals that recover nothing
        recovering = {s for _, s in workload.truth}
        assert any(
            s["agent_name"] == coding.HUMAN and s["id"] not in recovering
            for s in of_kind(workload, "success")
        )

    def test_what_agents_report(self, workload: Workload) -> None:
        errors, successes = of_kind(workload, "error"), of_kind(workload, "success")
        steps = of_kind(workload, "step")
        reporting = {pair(r) for r in errors + successes}
        assert 0.5 < len({pair(s) for s in steps} & reporting) / len(reporting) < 0.7
        numbered = {pair(r) for r in errors + successes if r.get("execution_step") is not None}
        assert 0.4 < len(numbered) / len(reporting) < 0.6
        by_pair: dict[tuple[UUID, str], list[dict[str, Any]]] = defaultdict(list)
        for e in errors:
            by_pair[pair(e)].append(e)
        # recovery_strategy: a quarter of the agents, always their one configured default
        strategies = [{e["recovery_strategy"] for e in group} for group in by_pair.values()]
        assert all(len(s) == 1 for s in strategies)
        assert 0.15 < sum(s != {None} for s in strategies) / len(strategies) < 0.35
        attempted = [any(e["recovery_attempted"] for e in group) for group in by_pair.values()]
        assert 0.1 < sum(attempted) / len(attempted) < 0.4
        # success types: mostly task_completion; recovery_success by ~30% of the agents that
        # recover something; validation_pass only for test and linter passes
        types = Counter(s["success_type"] for s in successes)
        assert types["task_completion"] > 0.8 * len(successes)
        assert {
            s["operation_name"] for s in successes if s["success_type"] == "validation_pass"
        } == {"run_tests", "run_linter"}
        rows = rows_by_id(workload)
        recovering: dict[tuple[UUID, str], set[str]] = defaultdict(set)
        for _, s in workload.truth:
            recovering[pair(rows[s].row)].add(rows[s].row["success_type"])
        share = sum("recovery_success" in t for t in recovering.values()) / len(recovering)
        assert 0.2 < share < 0.4
        assert all(
            s["id"] in {link[1] for link in workload.truth}
            for s in successes
            if s["success_type"] == "recovery_success"
        )
