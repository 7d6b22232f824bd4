"""The data-analysis workload (debug_sink.dev.workloads.analysis): reproducible, consistent
truth, valid wire events, and the fleet its module docstring describes (no database)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from debug_sink.dev.synthetic import Event, Workload
from debug_sink.dev.workloads import WORKLOADS, analysis
from debug_sink.dev.workloads.delivery import event_time
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
CONFIG = ValidationConfig()
SKEW = timedelta(milliseconds=2 * analysis.AnalysisConfig().clock_skew_ms)
WAVE = timedelta(minutes=35)


def small(stated: float = 0.0, seed: int | None = None) -> Workload:
    return analysis.generate(
        analysis.AnalysisConfig(workflows=100, stated_fraction=stated, seed=seed or 505)
    )


def rows_by_id(workload: Workload) -> dict[UUID, Event]:
    return {e.row["id"]: e for wave in workload.waves for e in wave}


def of_kind(workload: Workload, kind: str) -> list[dict[str, Any]]:
    return [e.row for e in rows_by_id(workload).values() if e.kind == kind]


def pair(row: dict[str, Any]) -> tuple[UUID, str]:
    return row["correlation_id"], row["agent_name"]


def loops(workload: Workload) -> dict[UUID, list[dict[str, Any]]]:
    """Recovering success id -> the errors it recovers."""
    rows = rows_by_id(workload)
    out: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for e, s in workload.truth:
        out[s].append(rows[e].row)
    return out


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The default workload: 250 requests, enough for the shares."""
    return WORKLOADS["analysis"].make(None, 0.0)


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
        spec = WORKLOADS["analysis"]
        assert spec.role == "held-out"
        made = spec.make(7, 0.0)
        assert made.truth == analysis.generate(analysis.AnalysisConfig(seed=7)).truth
        stated = spec.make(1, 0.5)
        assert stated.stated
        assert stated.stated < stated.truth

    def test_default_size(self, workload: Workload) -> None:
        assert len(workload.waves) == 6
        assert len({e.row["correlation_id"] for w in workload.waves for e in w}) == 250
        assert 550 <= len(workload.truth) <= 1000


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

    def test_truth_pairs_are_errors_before_successes_of_one_request(
        self, workload: Workload
    ) -> None:
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

    def test_step_references_are_events_of_the_request(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        for step in of_kind(workload, "step"):
            assert (step["error_event_id"] is None) != (step["success_event_id"] is None)
            for column, kind in (("error_event_id", "error"), ("success_event_id", "success")):
                if step[column] is not None:
                    event = rows[step[column]].row
                    assert rows[step[column]].kind == kind
                    assert pair(event) == pair(step)
                    assert event["operation_name"] in (step["operation_name"], None)
                    assert event["execution_step"] == step["step_number"]

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
        # per (request, agent) pair: all of its recoveries stated, or none
        rows = rows_by_id(stated)
        by_pair: dict[tuple[UUID, str], set[bool]] = defaultdict(set)
        for link in stated.truth:
            by_pair[pair(rows[link[1]].row)].add(link in stated.stated)
        assert all(len(values) == 1 for values in by_pair.values())
        share = sum(True in values for values in by_pair.values()) / len(by_pair)
        assert 0.35 < share < 0.65

    def test_duplicate_and_late_deliveries(self, workload: Workload) -> None:
        delivered: dict[UUID, list[Event]] = defaultdict(list)
        for wave in workload.waves:
            for event in wave:
                delivered[event.row["id"]].append(event)
        assert sum(len(copies) for copies in delivered.values()) == workload.deliveries
        twice = [copies for copies in delivered.values() if len(copies) > 1]
        assert 0.04 < len(twice) / len(delivered) < 0.06
        assert all(copies[0].row == copies[1].row for copies in twice)
        # 8% of the deliveries a wave or more late, plus some flushed errors
        delays = [e.arrival - event_time(e.row) for w in workload.waves for e in w]
        assert 0.07 < sum(1 for d in delays if d > WAVE) / len(delays) < 0.14

    def test_buffered_errors_arrive_after_their_recovery(self, workload: Workload) -> None:
        rows = rows_by_id(workload)

        def delay(event: Event) -> timedelta:
            return event.arrival - event_time(event.row)

        errors: dict[tuple[UUID, str], list[Event]] = defaultdict(list)
        for event in rows.values():
            if event.kind == "error":
                errors[pair(event.row)].append(event)
        # a pair buffers all of its errors (10-60 min), sends its successes at once
        several = [group for group in errors.values() if len(group) >= 2]
        flushed = [g for g in several if all(delay(e) > timedelta(minutes=9) for e in g)]
        assert 0.08 < len(flushed) / len(several) < 0.25
        # ... so errors arrive after the success that recovered them, waves later
        after = [
            (e, s)
            for e, s in workload.truth
            if rows[e].wave > rows[s].wave
            and timedelta(minutes=9) < delay(rows[e]) < timedelta(minutes=61)
            and delay(rows[s]) < timedelta(minutes=1)
        ]
        assert len(after) > 30


class TestConventions:
    """What distinguishes the analysis fleet, as documented."""

    def test_shape(self, workload: Workload) -> None:
        successes, errors = of_kind(workload, "success"), of_kind(workload, "error")
        assert {(s["agent_name"], s["operation_name"]) for s in successes} == {
            ("orchestrator", "plan_analysis"),
            ("orchestrator", "compose_answer"),
            ("sql_agent", "run_query"),
            ("web_agent", "search"),
            ("web_agent", "fetch_page"),
            ("python_agent", "execute_code"),
            ("python_agent", "execute_code_chunked"),
            ("critic", "check_answer"),
            ("analyst", "review_answer"),
        }
        assert {(e["agent_name"], e["operation_name"]) for e in errors} == {
            ("sql_agent", "run_query"),
            ("web_agent", "fetch_page"),
            ("python_agent", "execute_code"),
            ("python_agent", "execute_code_chunked"),
            ("critic", "check_answer"),
        } | {(agent, None) for agent in ("sql_agent", "web_agent", "python_agent", "critic")}
        # run_query recurs as new work: several passes in a request, most recovering nothing
        recovering = {s for _, s in workload.truth}
        passes = [s for s in successes if s["operation_name"] == "run_query"]
        assert max(Counter(s["correlation_id"] for s in passes).values()) >= 6
        assert sum(s["id"] not in recovering for s in passes) > 0.6 * len(passes)

    def test_parallel_queries(self, workload: Workload) -> None:
        """The worker pool: run_query steps of one request overlap, and so do repair loops."""
        by_request: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for step in of_kind(workload, "step"):
            if step["operation_name"] == "run_query":
                by_request[step["correlation_id"]].append(step)
        assert any(
            a["step_number"] != b["step_number"]
            and a["started_at"] < b["completed_at"]
            and b["started_at"] < a["completed_at"]
            for group in by_request.values()
            for a in group
            for b in group
        )
        rows = rows_by_id(workload)
        spans: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
        for success, errors in loops(workload).items():
            row = rows[success].row
            if row["operation_name"] == "run_query":
                first = min(e["occurred_at"] for e in errors)
                spans[row["correlation_id"]].append((first, row["occurred_at"]))
        overlapping = sum(
            1
            for group in spans.values()
            for i, a in enumerate(group)
            for b in group[i + 1 :]
            if a[0] < b[1] and b[0] < a[1]
        )
        assert overlapping >= 3

    def test_query_repair_loops(
        self, workload: Workload, step_of: dict[UUID, dict[str, Any]]
    ) -> None:
        rows = rows_by_id(workload)
        query_loops = {
            s: errors
            for s, errors in loops(workload).items()
            if rows[s].row["operation_name"] == "run_query"
        }
        for s, errors in query_loops.items():
            assert {e["agent_name"] for e in errors} == {"sql_agent"}
            assert {e["operation_name"] for e in errors} <= {"run_query", None}
            assert {e["error_type"] for e in errors} <= {
                "SyntaxError",
                "UndefinedColumn",
                "QueryTimeout",
            }
            # each rerun a new call: a new step, attempt 1
            numbers = [e["execution_step"] for e in errors] + [rows[s].row["execution_step"]]
            assert len(set(numbers)) == len(numbers)
            assert all(
                step_of[i]["attempt"] == 1 for i in [e["id"] for e in errors] + [s] if i in step_of
            )
        sizes = Counter(len(errors) for errors in query_loops.values())
        assert set(sizes) == {1, 2, 3, 4, 5}
        assert sizes[1] > sizes[3] > sizes[5]
        # 15% of the loops never fixed: their failures never recovered, not by another pass
        failures = [e for e in of_kind(workload, "error") if e["agent_name"] == "sql_agent"]
        recovered = {e for e, _ in workload.truth}
        unfixed = [e for e in failures if e["id"] not in recovered]
        assert 0.08 < len(unfixed) / len(failures) < 0.25
        later_pass = defaultdict(list)
        for success in of_kind(workload, "success"):
            if success["operation_name"] == "run_query":
                later_pass[success["correlation_id"]].append(success["occurred_at"])
        assert (
            sum(any(t > e["occurred_at"] for t in later_pass[e["correlation_id"]]) for e in unfixed)
            > len(unfixed) / 3
        )

    def test_code_repair_loops(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        for s, errors in loops(workload).items():
            operation = rows[s].row["operation_name"]
            if operation == "execute_code":
                assert {e["error_type"] for e in errors} <= {"KeyError", "ValueError"}
            if any(e["error_type"] == "MemoryError" for e in errors):
                assert operation == "execute_code_chunked"
                assert sum(e["error_type"] == "MemoryError" for e in errors) == 1
        # the chunked run follows a MemoryError only, and never raises one
        chunked = [
            s for s in of_kind(workload, "success") if s["operation_name"] == "execute_code_chunked"
        ]
        recovering = {s for _, s in workload.truth}
        assert chunked
        assert all(s["id"] in recovering for s in chunked)
        assert all(
            e["error_type"] != "MemoryError"
            for e in of_kind(workload, "error")
            if e["operation_name"] == "execute_code_chunked"
        )
        # given-up tasks
        recovered = {e for e, _ in workload.truth}
        code_errors = [e for e in of_kind(workload, "error") if e["agent_name"] == "python_agent"]
        assert 0.03 < sum(e["id"] not in recovered for e in code_errors) / len(code_errors) < 0.2

    def test_proxy_retries(self, workload: Workload, step_of: dict[UUID, dict[str, Any]]) -> None:
        successes = [s for s in of_kind(workload, "success") if s["agent_name"] == "web_agent"]
        proxied = [s for s in successes if s["success_factors"] == {"via": "proxy"}]
        proxied_ids = {s["id"] for s in proxied}
        recovering = loops(workload)
        assert {s["id"] for s in successes if s["id"] in recovering} == proxied_ids
        assert all(s["success_factors"] is None for s in successes if s["id"] not in proxied_ids)
        for s in proxied:
            (error,) = recovering[s["id"]]
            assert error["error_type"] in ("HTTP403", "HTTP429", "ConnectTimeout")
            assert error["execution_step"] == s["execution_step"]  # the same step
            if s["id"] in step_of:
                assert step_of[s["id"]]["attempt"] == 2
        assert {s["retry_count"] for s in proxied} == {0, 1}
        assert not any(
            s["retry_count"] for s in of_kind(workload, "success") if s["id"] not in proxied_ids
        )
        # giving up on a URL: the next fetch is new work, it recovers nothing
        recovered = {e for e, _ in workload.truth}
        fetch_errors = [e for e in of_kind(workload, "error") if e["agent_name"] == "web_agent"]
        unrecovered = [e for e in fetch_errors if e["id"] not in recovered]
        assert 0.3 < len(unrecovered) / len(fetch_errors) < 0.7
        fetched_after = defaultdict(list)
        for s in successes:
            if s["operation_name"] == "fetch_page" and s["success_factors"] is None:
                fetched_after[s["correlation_id"]].append(s["occurred_at"])
        assert any(
            any(t > e["occurred_at"] for t in fetched_after[e["correlation_id"]])
            for e in unrecovered
        )

    def test_critic_and_analyst(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        successes, errors = of_kind(workload, "success"), of_kind(workload, "error")
        rejections = [e for e in errors if e["error_type"] == "AnswerRejected"]
        assert {e["agent_name"] for e in rejections} == {"critic"}
        rejected = {e["correlation_id"] for e in rejections}
        assert 0.13 < len(rejected) / 250 < 0.3
        recovering = loops(workload)
        by_human: list[tuple[Any, dict[str, Any]]] = []
        for s, recovered in recovering.items():
            row = rows[s].row
            if any(e["error_type"] == "AnswerRejected" for e in recovered):
                assert {e["error_type"] for e in recovered} == {"AnswerRejected"}
                assert (row["agent_name"], row["operation_name"]) in {
                    ("critic", "check_answer"),
                    ("analyst", "review_answer"),
                }
                if row["agent_name"] == "analyst":
                    by_human.append((max(e["occurred_at"] for e in recovered), row))
        # the human answers 10 minutes to 3 hours after the rejection that asked
        assert by_human
        for asked, review in by_human:
            delay = review["occurred_at"] - asked
            assert timedelta(minutes=10) - SKEW < delay < timedelta(hours=3) + SKEW
        # the orchestrator's recompose is ordinary work
        assert not any(rows[s].row["agent_name"] == "orchestrator" for s in recovering)
        composes = Counter(
            s["correlation_id"] for s in successes if s["operation_name"] == "compose_answer"
        )
        assert max(composes.values()) == 3
        # answers delivered with a caveat: rejections never recovered
        recovered_ids = {e for e, _ in workload.truth}
        assert any(e["id"] not in recovered_ids for e in rejections)
        of_request: dict[UUID, list[bool]] = defaultdict(list)
        for e in rejections:
            of_request[e["correlation_id"]].append(e["id"] in recovered_ids)
        assert all(all(flags) or flags == [False] * 3 for flags in of_request.values())
        # the critic's passes are validation_pass, and nothing else is
        types = {
            (s["agent_name"] == "critic", s["success_type"] == "validation_pass") for s in successes
        }
        assert types == {(True, True), (False, False)}

    def test_what_agents_report(self, workload: Workload) -> None:
        errors, successes = of_kind(workload, "error"), of_kind(workload, "success")
        steps = of_kind(workload, "step")
        assert all(r["execution_step"] is not None for r in errors + successes)
        reporting = {pair(r) for r in errors + successes}
        assert 0.18 < len({pair(s) for s in steps} & reporting) / len(reporting) < 0.33
        by_pair: dict[tuple[UUID, str], list[dict[str, Any]]] = defaultdict(list)
        for e in errors:
            by_pair[pair(e)].append(e)
        groups = list(by_pair.values())
        # operation_name left null by 20% of the pairs, on all of their errors
        unnamed = [{e["operation_name"] is None for e in group} for group in groups]
        assert all(len(flags) == 1 for flags in unnamed)
        assert 0.12 < sum(flags == {True} for flags in unnamed) / len(groups) < 0.28
        # recovery_strategy: 60% of the pairs, words of the agent's vocabulary
        declaring = [g for g in groups if any(e["recovery_strategy"] for e in g)]
        assert 0.5 < len(declaring) / len(groups) < 0.7
        assert all(all(e["recovery_strategy"] for e in g) for g in declaring)
        for group in declaring:
            agent = group[0]["agent_name"]
            words = {w for pair_ in analysis.VOCABULARY[agent].values() for w in pair_}
            assert {e["recovery_strategy"] for e in group} <= words
        strategies = Counter(e["recovery_strategy"] for e in errors)
        assert strategies["rewrite_query"] > strategies["retry"] / 2 > 10
        # recovery_attempted by half of the pairs, on the errors a recovery attempt follows
        recovered = {e for e, _ in workload.truth}
        attempted = [
            {e["recovery_attempted"] for e in g if e["id"] in recovered}
            for g in groups
            if any(e["id"] in recovered for e in g)
        ]
        assert all(len(flags) == 1 for flags in attempted)
        assert 0.4 < sum(flags == {True} for flags in attempted) / len(attempted) < 0.6
        # recovery_success only for recoveries, by ~40% of the recovering pairs (not the critic)
        rows = rows_by_id(workload)
        recovering: dict[tuple[UUID, str], set[str]] = defaultdict(set)
        for _, s in workload.truth:
            if rows[s].row["agent_name"] != "critic":
                recovering[pair(rows[s].row)].add(rows[s].row["success_type"])
        assert all(len(types) == 1 for types in recovering.values())
        share = sum(types == {"recovery_success"} for types in recovering.values())
        assert 0.3 < share / len(recovering) < 0.5
        assert all(
            s["id"] in {link[1] for link in workload.truth}
            for s in successes
            if s["success_type"] == "recovery_success"
        )
        assert Counter(s["success_type"] for s in successes).most_common(1)[0][0] == (
            "task_completion"
        )
