"""The browser-automation workload (debug_sink.dev.workloads.web): reproducible, consistent
truth, valid wire events, and the fleet its module docstring describes (no database)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from debug_sink.dev.synthetic import Event, Workload
from debug_sink.dev.workloads import WORKLOADS, web
from debug_sink.dev.workloads.delivery import event_time
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
CONFIG = ValidationConfig()
SKEW = timedelta(milliseconds=2 * web.WebConfig().clock_skew_ms)
WAVE = timedelta(minutes=35)


def small(stated: float = 0.0, seed: int | None = None) -> Workload:
    return web.generate(web.WebConfig(workflows=100, stated_fraction=stated, seed=seed or 606))


def rows_by_id(workload: Workload) -> dict[UUID, Event]:
    return {e.row["id"]: e for wave in workload.waves for e in wave}


def of_kind(workload: Workload, kind: str) -> list[dict[str, Any]]:
    return [e.row for e in rows_by_id(workload).values() if e.kind == kind]


def pair(row: dict[str, Any]) -> tuple[UUID, str]:
    return row["correlation_id"], row["agent_name"]


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The default workload: 300 tasks, enough for the shares."""
    return WORKLOADS["web"].make(None, 0.0)


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
        spec = WORKLOADS["web"]
        assert spec.role == "held-out"
        made = spec.make(7, 0.0)
        assert made.truth == web.generate(web.WebConfig(seed=7)).truth
        stated = spec.make(1, 0.5)
        assert stated.stated
        assert stated.stated < stated.truth

    def test_default_size(self, workload: Workload) -> None:
        assert len(workload.waves) == 6
        assert len({e.row["correlation_id"] for w in workload.waves for e in w}) == 300
        assert 400 <= len(workload.truth) <= 1200


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
        # an error is recovered at most once; 15-25% of the errors never
        recovered = Counter(e for e, _ in workload.truth)
        assert max(recovered.values()) == 1
        assert workload.unrecovered_errors == workload.errors - len(recovered)
        assert 0.15 <= workload.unrecovered_errors / workload.errors <= 0.25

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
        assert 0.03 < len(twice) / len(delivered) < 0.05
        assert all(copies[0].row == copies[1].row for copies in twice)
        rows = rows_by_id(workload)
        assert [(e, s) for e, s in workload.truth if rows[e].wave > rows[s].wave]
        delays = [e.arrival - event_time(e.row) for w in workload.waves for e in w]
        assert 0.08 < sum(1 for d in delays if d > WAVE) / len(delays) < 0.16

    def test_clock_skew_between_agents(self) -> None:
        """The same seed without skew: the same events, each agent of a task shifted by its own
        offset of at most ``clock_skew_ms``."""
        skewed = small()
        exact = web.generate(web.WebConfig(workflows=100, seed=606, clock_skew_ms=0))
        plain = {e.row["id"]: e.row for w in exact.waves for e in w if e.kind != "step"}
        offsets: dict[tuple[UUID, str], set[timedelta]] = defaultdict(set)
        for w in skewed.waves:
            for e in w:
                if e.kind != "step":
                    offsets[pair(e.row)].add(
                        e.row["occurred_at"] - plain[e.row["id"]]["occurred_at"]
                    )
        assert all(len(values) == 1 for values in offsets.values())
        shifts = [next(iter(values)) for values in offsets.values()]
        assert all(abs(d) <= timedelta(milliseconds=300) for d in shifts)
        assert len(set(shifts)) > len(shifts) / 2


class TestConventions:
    """What distinguishes the web fleet, as documented."""

    def test_shape(self, workload: Workload) -> None:
        successes = of_kind(workload, "success")
        assert {s["agent_name"] for s in successes} == set(web.AGENTS)
        operations = {(s["agent_name"].split("-")[0], s["operation_name"]) for s in successes}
        assert operations == {
            ("orchestrator", "plan_task"),
            ("orchestrator", "dispatch"),
            ("orchestrator", "compile_result"),
            *(
                ("browser", op)
                for op in ("navigate", "click", "fill_form", "extract", "download", "login")
            ),
            ("captcha_solver", "solve_captcha"),
            ("scheduler", "reschedule"),
            ("llm_selector", "suggest_selector"),
        }
        # click recurs as new work: many in a task, most recovering nothing
        recovering = {s for _, s in workload.truth}
        clicks = [s for s in successes if s["operation_name"] == "click"]
        assert max(Counter(pair(s) for s in clicks).values()) >= 6
        assert sum(s["id"] not in recovering for s in clicks) > 0.8 * len(clicks)
        # no helper success recovers anything but the solver's
        assert all(
            s["operation_name"] not in ("reschedule", "suggest_selector", "dispatch")
            for s in successes
            if s["id"] in recovering
        )

    def test_recoveries_by_convention(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        by_type: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        for error_id, success_id in workload.truth:
            error = rows[error_id].row
            by_type[error["error_type"]].append((error, rows[success_id].row))
        assert set(by_type) == {
            "ElementNotFound",
            "NavigationTimeout",
            "SessionExpired",
            "CaptchaRequired",
            "HTTP429",
            "SelectorNotFound",
        }
        for error_type, links in by_type.items():
            for e, s in links:
                if error_type == "CaptchaRequired":
                    assert (s["agent_name"], s["operation_name"]) == (
                        "captcha_solver",
                        "solve_captcha",
                    )
                    delay = s["occurred_at"] - e["occurred_at"]
                    assert timedelta(seconds=10) - SKEW < delay < timedelta(minutes=5) + SKEW
                else:
                    assert pair(e) == pair(s)
                    assert e["operation_name"] == s["operation_name"]
                if error_type == "HTTP429":
                    assert s["occurred_at"] - e["occurred_at"] > timedelta(minutes=1)
        # the login between a SessionExpired and its re-run recovers nothing of it
        logins: dict[tuple[UUID, str], list[Any]] = defaultdict(list)
        for row in of_kind(workload, "success"):
            if row["operation_name"] == "login":
                logins[pair(row)].append(row["occurred_at"])
        assert by_type["SessionExpired"]
        for e, s in by_type["SessionExpired"]:
            assert any(e["occurred_at"] < t < s["occurred_at"] for t in logins[pair(e)])
        # CAPTCHAs: ~20% never solved
        captchas = [e for e in of_kind(workload, "error") if e["error_type"] == "CaptchaRequired"]
        solved = len(by_type["CaptchaRequired"]) / len(captchas)
        assert 0.65 < solved < 0.92
        # several HTTP429 of one action recovered by one re-run
        assert max(Counter(s["id"] for _, s in by_type["HTTP429"]).values()) >= 2

    def test_selector_drift_given_up_then_new_work(self, workload: Workload) -> None:
        rows = rows_by_id(workload)
        recovered = {e for e, _ in workload.truth}
        drift = [e for e in of_kind(workload, "error") if e["error_type"] == "SelectorNotFound"]
        lost = [e for e in drift if e["id"] not in recovered]
        assert lost
        successes = of_kind(workload, "success")
        later_same = [
            e
            for e in lost
            if any(
                pair(s) == pair(e)
                and s["operation_name"] == e["operation_name"]
                and s["occurred_at"] > e["occurred_at"]
                for s in successes
            )
        ]
        assert len(later_same) > len(lost) / 3
        links = [(rows[e].row, rows[s].row) for e, s in workload.truth if rows[e].row in drift]
        assert 0.55 < len(links) / (len(links) + len(lost) / 2) < 0.85

    def test_transient_retries_reported_three_ways(
        self, workload: Workload, step_of: dict[UUID, dict[str, Any]]
    ) -> None:
        rows = rows_by_id(workload)
        retried = [
            (rows[e].row, rows[s].row)
            for e, s in workload.truth
            if rows[e].row["error_type"] in ("ElementNotFound", "NavigationTimeout")
        ]
        assert any(
            e["id"] in step_of
            and s["id"] in step_of
            and step_of[s["id"]]["step_number"] == step_of[e["id"]]["step_number"]
            and step_of[s["id"]]["attempt"] > step_of[e["id"]]["attempt"]
            for e, s in retried
        )
        assert any(s["retry_count"] > 0 and e["id"] not in step_of for e, s in retried)
        assert any(
            s["retry_count"] == 0
            and e["id"] in step_of
            and s["id"] in step_of
            and step_of[s["id"]]["attempt"] == 1
            and step_of[s["id"]]["step_number"] != step_of[e["id"]]["step_number"]
            for e, s in retried
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
        strategies = Counter(e["recovery_strategy"] for e in errors)
        assert {"retry", "reauthenticate", "escalate", "fallback", "skip", "abort", None} <= set(
            strategies
        )
        assert 0.25 < strategies[None] / len(errors) < 0.55
        attempted = [any(e["recovery_attempted"] for e in group) for group in by_pair.values()]
        assert 0.2 < sum(attempted) / len(attempted) < 0.5
        types = Counter(s["success_type"] for s in successes)
        assert set(types) == {"task_completion", "recovery_success"}
        recovering = {s for _, s in workload.truth}
        assert all(
            s["id"] in recovering for s in successes if s["success_type"] == "recovery_success"
        )
