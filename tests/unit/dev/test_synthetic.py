"""The synthetic workload generator and the precision / recall arithmetic (no database)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import Counter

import pytest

from debug_sink.dev.synthetic import Score, SyntheticConfig, generate, score


class TestGenerate:
    """The generator produces what the correlator must cope with, reproducibly."""

    def test_same_config_same_workload(self) -> None:
        first = generate(SyntheticConfig(workflows=20))
        second = generate(SyntheticConfig(workflows=20))
        assert first.truth == second.truth
        assert [[e.row["id"] for e in w] for w in first.waves] == [
            [e.row["id"] for e in w] for w in second.waves
        ]
        assert generate(SyntheticConfig(workflows=20, seed=8)).truth != first.truth

    def test_truth_pairs_are_errors_before_successes_of_one_workflow(self) -> None:
        workload = generate(SyntheticConfig(workflows=100))
        rows = {e.row["id"]: e for wave in workload.waves for e in wave}
        assert len(rows) == workload.errors + workload.successes + workload.steps
        for error_id, success_id in workload.truth:
            error, success = rows[error_id], rows[success_id]
            assert (error.kind, success.kind) == ("error", "success")
            assert error.row["correlation_id"] == success.row["correlation_id"]
            assert error.row["occurred_at"] < success.row["occurred_at"]

    def test_the_hard_cases_are_all_there(self) -> None:
        workload = generate(SyntheticConfig(workflows=200))
        rows = {e.row["id"]: e for wave in workload.waves for e in wave}
        per_success = Counter(success for _, success in workload.truth)
        recovered = {error for error, _ in workload.truth}
        assert max(per_success.values()) >= 3  # one success recovers several errors
        assert workload.unrecovered_errors == workload.errors - len(recovered) > 50
        assert workload.successes - len(per_success) > 500  # unrelated successes
        late = [(e, s) for e, s in workload.truth if rows[e].wave > rows[s].wave]
        assert len(late) > 10  # errors landing after the success that recovered them
        cross_agent = [
            (e, s)
            for e, s in workload.truth
            if rows[e].row["agent_name"] != rows[s].row["agent_name"]
        ]
        assert len(cross_agent) > 10
        out_of_order = sum(
            1
            for wave in workload.waves
            for a, b in itertools.pairwise(wave)
            if a.arrival > b.arrival
        )
        assert out_of_order > 100
        workflows = {e.row["correlation_id"] for e in rows.values()}
        agents_per_workflow = Counter(
            len({e.row["agent_name"] for e in rows.values() if e.row["correlation_id"] == w})
            for w in workflows
        )
        assert sum(n for agents, n in agents_per_workflow.items() if agents >= 3) > 50

    def test_no_late_delivery_when_asked(self) -> None:
        workload = generate(SyntheticConfig(workflows=50, late_fraction=0.0, waves=1))
        assert len(workload.waves) == 1
        assert dataclasses.asdict(SyntheticConfig())["late_fraction"] == 0.1


class TestScore:
    """Pair-level precision and recall."""

    def test_counts(self) -> None:
        a, b, c, d = (uuid.uuid4() for _ in range(4))
        result = score([(a, b), (c, d)], [(a, b), (a, d)])
        assert result == Score(true_positives=1, false_positives=1, false_negatives=1)
        assert (result.precision, result.recall, result.f1) == (0.5, 0.5, 0.5)

    @pytest.mark.parametrize(
        ("predicted", "truth", "expected"),
        [
            ([], [], (1.0, 1.0)),
            ([], ["x"], (1.0, 0.0)),
        ],
    )
    def test_edges(
        self, predicted: list[str], truth: list[str], expected: tuple[float, float]
    ) -> None:
        pairs = {"x": (uuid.UUID(int=1), uuid.UUID(int=2))}
        result = score([pairs[p] for p in predicted], [pairs[t] for t in truth])
        assert (result.precision, result.recall) == expected
