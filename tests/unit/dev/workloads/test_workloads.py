"""The labeled workloads (debug_sink.dev.workloads): reproducible, consistent truth, and each
one the fleet its module docstring describes (no database)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

import pytest

from debug_sink.dev import synthetic
from debug_sink.dev.synthetic import Event, Workload
from debug_sink.dev.workloads import WORKLOADS, branches, pipelines


def rows_by_id(workload: Workload) -> dict[UUID, Event]:
    return {e.row["id"]: e for wave in workload.waves for e in wave}


def small(name: str, stated: float = 0.0, seed: int | None = None) -> Workload:
    if name == "pipelines":
        return pipelines.generate(
            pipelines.PipelineConfig(workflows=40, stated_fraction=stated, seed=seed or 101)
        )
    return branches.generate(
        branches.BranchConfig(workflows=80, stated_fraction=stated, seed=seed or 202)
    )


class TestRegistry:
    """Which workloads tuned the weights and which are held out."""

    def test_roles(self) -> None:
        roles = {name: spec.role for name, spec in WORKLOADS.items()}
        assert roles == {
            "synthetic": "tuning",
            "synthetic-intended": "tuning",
            "pipelines": "held-out",
            "branches": "held-out",
            "support": "tuning",
            "coding": "held-out",
            "analysis": "held-out",
            "web": "held-out",
        }

    def test_the_default_synthetic_workload_is_unchanged_by_the_new_knob(self) -> None:
        """p_intended_strategy = 0 draws no random number: the README's workload stays."""
        workload = WORKLOADS["synthetic"].make(None, 0.0)
        assert (workload.errors, len(workload.truth), workload.unrecovered_errors) == (
            1242,
            964,
            278,
        )

    def test_intended_strategies_name_a_strategy_on_giving_up(self) -> None:
        plain = synthetic.generate(synthetic.SyntheticConfig(workflows=100))
        intended = synthetic.generate(
            synthetic.SyntheticConfig(workflows=100, p_intended_strategy=1.0)
        )

        def unrecovered_strategies(workload: Workload) -> Counter[Any]:
            recovered = {e for e, _ in workload.truth}
            return Counter(
                e.row["recovery_strategy"]
                for wave in workload.waves
                for e in wave
                if e.kind == "error" and e.row["id"] not in recovered
            )

        assert (
            unrecovered_strategies(intended)["fallback"] > unrecovered_strategies(plain)["fallback"]
        )

    def test_synthetic_states_nothing(self) -> None:
        with pytest.raises(ValueError, match="state"):
            WORKLOADS["synthetic"].make(None, 0.5)


@pytest.mark.parametrize("name", ["pipelines", "branches"])
class TestHeldOut:
    """Both held-out generators: deterministic, truth and statements consistent."""

    def test_same_config_same_workload(self, name: str) -> None:
        first, second = small(name), small(name)
        assert first.truth == second.truth
        assert [[e.row["id"] for e in w] for w in first.waves] == [
            [e.row["id"] for e in w] for w in second.waves
        ]
        assert small(name, seed=5).truth != first.truth

    def test_truth_pairs_are_errors_before_successes_of_one_workflow(self, name: str) -> None:
        workload = small(name)
        rows = rows_by_id(workload)
        assert len(rows) == workload.errors + workload.successes + workload.steps
        for error_id, success_id in workload.truth:
            error, success = rows[error_id], rows[success_id]
            assert (error.kind, success.kind) == ("error", "success")
            assert error.row["correlation_id"] == success.row["correlation_id"]
        recovered = {e for e, _ in workload.truth}
        assert workload.unrecovered_errors == workload.errors - len(recovered) > 20

    def test_statements_are_true_and_only_where_stated(self, name: str) -> None:
        assert small(name).stated == set()
        workload = small(name, stated=0.5)
        rows = rows_by_id(workload)
        assert workload.stated
        assert workload.stated < workload.truth
        named = {
            (error, e.row["id"])
            for e in rows.values()
            if e.kind == "success"
            for error in e.row.get("recovers_error_ids") or ()
        }
        assert named == workload.stated

    def test_duplicate_and_late_deliveries(self, name: str) -> None:
        workload = small(name)
        delivered = Counter(e.row["id"] for wave in workload.waves for e in wave)
        assert sum(delivered.values()) == workload.deliveries
        assert sum(1 for n in delivered.values() if n > 1) > 10
        rows = rows_by_id(workload)
        late = [(e, s) for e, s in workload.truth if rows[e].wave > rows[s].wave]
        assert late


class TestConventions:
    """What distinguishes each held-out fleet, as documented."""

    def test_pipelines(self) -> None:
        workload = small("pipelines")
        rows = rows_by_id(workload).values()
        errors = [e.row for e in rows if e.kind == "error"]
        assert not any(e["recovery_attempted"] for e in errors)
        # an operation recurs as new work: many successes of llm-main.complete per workflow
        complete = Counter(
            e.row["correlation_id"]
            for e in rows
            if e.kind == "success" and e.row["operation_name"] == "complete"
        )
        assert max(complete.values()) >= 8
        # fallback to another agent with the same operation
        by_id = rows_by_id(workload)
        assert any(
            by_id[e].row["agent_name"] == "llm-main" and by_id[s].row["agent_name"] == "llm-backup"
            for e, s in workload.truth
        )
        # agents that give up name the strategy they intended
        recovered = {e for e, _ in workload.truth}
        assert any(
            e["recovery_strategy"] == "fallback" and e["id"] not in recovered for e in errors
        )

    def test_branches(self) -> None:
        workload = small("branches")
        rows = rows_by_id(workload).values()
        successes = [e.row for e in rows if e.kind == "success"]
        assert not any(s["success_type"] == "recovery_success" for s in successes)
        steps = [e.row for e in rows if e.kind == "step"]
        assert any(s["parent_step_id"] is not None for s in steps)

        # parallel branches: one agent runs the same operation in overlapping steps
        def overlapping(row: dict[str, Any], other: dict[str, Any]) -> bool:
            return bool(
                row["started_at"] < other["completed_at"]
                and other["started_at"] < row["completed_at"]
            )

        by_workflow: dict[Any, list[dict[str, Any]]] = {}
        for step in steps:
            if (step["agent_name"], step["operation_name"]) == ("worker", "extract"):
                by_workflow.setdefault(step["correlation_id"], []).append(step)
        assert any(
            overlapping(a, b) and a["step_number"] != b["step_number"]
            for group in by_workflow.values()
            for a in group
            for b in group
            if a is not b
        )
