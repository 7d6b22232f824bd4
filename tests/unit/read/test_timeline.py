"""Timeline order (debug_sink.read.timeline): causal first, then time, then kind and id."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from debug_sink.read.timeline import TimelineEntry, last_good_snapshots, order_timeline

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def entry(kind: Any, n: int, seconds: float, **fields: Any) -> TimelineEntry:
    return TimelineEntry(kind=kind, id=uid(n), at=at(seconds), **fields)


def kinds(entries: list[TimelineEntry]) -> list[tuple[str, int]]:
    return [(e.kind, e.id.int) for e in entries]


class TestOrderTimeline:
    """order_timeline is a topological order of the causal relation, ties by (at, kind, id)."""

    def test_time_order_without_causal_links(self) -> None:
        """Unrelated entries are in time order."""
        entries = [entry("llm_call", 1, 3), entry("llm_call", 2, 1), entry("llm_call", 3, 2)]
        assert kinds(order_timeline(entries)) == [("llm_call", 2), ("llm_call", 3), ("llm_call", 1)]

    def test_ties_broken_by_kind_then_id(self) -> None:
        """At the same instant: step, transformation, snapshot, llm call, error, success;
        then by id."""
        entries = [
            entry("success", 1, 0),
            entry("error", 2, 0),
            entry("snapshot", 4, 0),
            entry("snapshot", 3, 0),
            entry("step", 5, 0, step_number=1),
            entry("transformation", 6, 0),
            entry("llm_call", 7, 0),
        ]
        assert kinds(order_timeline(entries)) == [
            ("step", 5),
            ("transformation", 6),
            ("snapshot", 3),
            ("snapshot", 4),
            ("llm_call", 7),
            ("error", 2),
            ("success", 1),
        ]

    def test_stable_under_input_permutations(self) -> None:
        """The order depends on the entries, never on the order they are given in."""
        entries = [
            entry("step", 1, 0, step_number=1),
            entry("snapshot", 2, 0, step_number=1),
            entry("error", 3, 0, step_number=1, follows=(uid(2),)),
            entry("step", 4, 0, step_number=2),
            entry("llm_call", 5, 0),
            entry("success", 6, 0, step_number=2, follows=(uid(3),)),
        ]
        expected = kinds(order_timeline(entries))
        for permutation in itertools.islice(itertools.permutations(entries), 200):
            assert kinds(order_timeline(list(permutation))) == expected

    def test_skewed_clock_keeps_steps_in_sequence(self) -> None:
        """Agent B's clock is 10 s behind: its step 2 still comes after step 1, and its
        error inside step 2 after step 2 started, though their timestamps are earlier."""
        entries = [
            entry("step", 1, 10.0, step_number=1, agent_name="a"),
            entry("snapshot", 2, 10.5, step_number=1, agent_name="a"),
            entry("step", 3, 1.0, step_number=2, agent_name="b"),  # skewed
            entry("snapshot", 4, 1.4, step_number=2, agent_name="b"),  # skewed
            entry("error", 5, 1.5, step_number=2, agent_name="b", follows=(uid(4),)),
            entry("step", 6, 12.0, step_number=3, agent_name="a"),
            entry("success", 7, 12.5, step_number=3, agent_name="a", follows=(uid(5),)),
        ]
        assert kinds(order_timeline(entries)) == [
            ("step", 1),
            ("snapshot", 2),
            ("step", 3),
            ("snapshot", 4),
            ("error", 5),
            ("step", 6),
            ("success", 7),
        ]

    def test_references_beat_clocks(self) -> None:
        """A success that recovered an error follows it even when its clock says earlier;
        an error follows the snapshot it carries."""
        entries = [
            entry("error", 1, 5.0, follows=(uid(3),)),
            entry("success", 2, 4.0, follows=(uid(1),)),
            entry("snapshot", 3, 5.5),
        ]
        assert kinds(order_timeline(entries)) == [("snapshot", 3), ("error", 1), ("success", 2)]

    def test_entries_of_a_step_stay_before_the_next_step(self) -> None:
        """An event of step 1 whose clock runs ahead still comes before step 2."""
        entries = [
            entry("step", 1, 0, step_number=1),
            entry("step", 2, 1, step_number=2),
            entry("llm_call", 3, 5, step_number=1),
        ]
        assert kinds(order_timeline(entries)) == [("step", 1), ("llm_call", 3), ("step", 2)]

    def test_retries_follow_the_first_attempt(self) -> None:
        """Attempts of one step number are a chain: (2, 1) before (2, 2) before step 3."""
        entries = [
            entry("step", 1, 9, step_number=2, attempt=2),
            entry("step", 2, 5, step_number=2, attempt=1),
            entry("step", 3, 1, step_number=3),
            entry("step", 4, 7, step_number=1),
        ]
        assert kinds(order_timeline(entries)) == [
            ("step", 4),
            ("step", 2),
            ("step", 1),
            ("step", 3),
        ]

    def test_cycle_does_not_fail(self) -> None:
        """Inconsistent references (a cycle) still give every entry once, deterministically."""
        entries = [
            entry("error", 1, 1, follows=(uid(2),)),
            entry("snapshot", 2, 2, follows=(uid(1),)),
            entry("llm_call", 3, 0),
        ]
        result = order_timeline(entries)
        assert sorted(e.id.int for e in result) == [1, 2, 3]
        assert kinds(result) == kinds(order_timeline(list(reversed(entries))))

    def test_unknown_references_are_ignored(self) -> None:
        """A reference to an entry not in the list (e.g. another workflow's) is no edge."""
        entries = [entry("error", 1, 2, follows=(uid(99),)), entry("llm_call", 2, 1)]
        assert kinds(order_timeline(entries)) == [("llm_call", 2), ("error", 1)]

    def test_random_skew_respects_every_edge(self) -> None:
        """With random timestamps, every 'follows' edge and the step chain still hold."""
        rng = random.Random(7)
        entries = []
        n = 0
        for step in range(1, 8):
            n += 1
            step_id = n
            entries.append(entry("step", n, rng.uniform(0, 100), step_number=step))
            n += 1
            snap = n
            entries.append(entry("snapshot", n, rng.uniform(0, 100), step_number=step))
            n += 1
            entries.append(
                entry(
                    "error",
                    n,
                    rng.uniform(0, 100),
                    step_number=step,
                    follows=(uid(snap), uid(step_id)),
                )
            )
        order = [e.id.int for e in order_timeline(entries)]
        position = {value: index for index, value in enumerate(order)}
        for e in entries:
            for ref in e.follows:
                assert position[ref.int] < position[e.id.int]
        steps = [e for e in entries if e.kind == "step"]
        step_positions = [
            position[e.id.int] for e in sorted(steps, key=lambda e: e.step_number or 0)
        ]
        assert step_positions == sorted(step_positions)


class TestLargeWorkflows:
    """Agents' data decides the sizes: thousands of steps of one number must not make the
    order quadratic (it took 20 s for 2 x 2,000 before the group markers; the timeout is a
    guard against that, with a wide margin, not a speed target)."""

    @pytest.mark.timeout(30)
    def test_thousands_of_same_numbered_steps(self) -> None:
        entries = [
            entry("step", n, 1000 - n if n % 2 else n, step_number=1 + n % 2, attempt=1)
            for n in range(6000)
        ]
        entries += [entry("snapshot", 10_000 + n, n, step_number=2) for n in range(500)]
        ordered = order_timeline(entries)
        assert len(ordered) == len(entries)
        numbers = [e.step_number for e in ordered if e.kind == "step"]
        assert numbers == sorted(numbers)  # every step 1 before every step 2
        # A state numbered 2 comes after the steps numbered 2 (the last group here).
        last_step = max(i for i, e in enumerate(ordered) if e.kind == "step")
        assert min(i for i, e in enumerate(ordered) if e.kind == "snapshot") > last_step


class TestLastGoodSnapshots:
    """Each error is diffed against the last non-error snapshot before it."""

    def test_prefers_the_same_agent(self) -> None:
        ordered = [
            entry("snapshot", 1, 0, agent_name="a", data={"snapshot_type": "checkpoint"}),
            entry("snapshot", 2, 1, agent_name="b", data={"snapshot_type": "checkpoint"}),
            entry("snapshot", 3, 2, agent_name="a", data={"snapshot_type": "error"}),
            entry("error", 4, 2, agent_name="a"),
            entry("error", 5, 3, agent_name="c"),
        ]
        assert last_good_snapshots(ordered) == {uid(4): uid(1), uid(5): uid(2)}

    def test_none_before_the_first_good_snapshot(self) -> None:
        ordered = [
            entry("error", 1, 0, agent_name="a"),
            entry("snapshot", 2, 1, agent_name="a", data={"snapshot_type": "success"}),
        ]
        assert last_good_snapshots(ordered) == {uid(1): None}
