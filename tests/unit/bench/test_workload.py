"""The generated workload: proportions, sizes, validity, determinism (pure, no services)."""

from __future__ import annotations

import uuid
from collections import Counter

import orjson
import pytest

from debug_sink.bench import workload
from debug_sink.wire.canonical import canonical_json
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}


class TestWorkload:
    """The generated mix: proportions, sizes, validity, determinism."""

    def test_mix_proportions_per_workflow(self) -> None:
        """Every workflow is 16 events: 4 snapshots, 6 step events, 3 hooks, 1 error,
        1 success and 1 transformation, whatever the number of workflows."""
        messages = list(workload.iter_workload(25, tag=3))
        assert len(messages) == 25 * workload.EVENTS_PER_WORKFLOW
        assert workload.workload_mix(messages) == {
            "error": 1 / 16,
            "hook": 3 / 16,
            "snapshot": 4 / 16,
            "step": 6 / 16,
            "success": 1 / 16,
            "transformation": 1 / 16,
        }

    def test_state_sizes_are_about_1_kb_and_8_kb(self) -> None:
        """Three snapshots per workflow carry ~1 KB states, one carries ~8 KB (canonical)."""
        sizes = sorted(
            len(canonical_json(orjson.loads(m.value)["agent_state"]))
            for m in workload.iter_workload(1, tag=3)
            if m.kind is EventKind.SNAPSHOT
        )
        assert [900 <= s <= 1200 for s in sizes[:3]] == [True] * 3
        assert 7500 <= sizes[3] <= 9500

    def test_error_carries_a_stack_trace(self) -> None:
        """The error event has a multi-frame stack trace."""
        (error,) = [m for m in workload.iter_workload(1, tag=3) if m.kind is EventKind.ERROR]
        trace = orjson.loads(error.value)["error_stack_trace"]
        assert trace.startswith("Traceback")
        assert trace.count("File ") >= 10

    def test_every_message_passes_the_sinks_validation(self) -> None:
        """Stamped with a send time, each message is accepted by the sink's decoder, with
        the event's own timestamps set to that time."""
        config = ValidationConfig()
        stamp = "2026-03-01T12:00:00.250000+00:00"
        for message in workload.iter_workload(2, tag=3):
            result = decode(
                TOPIC_OF[message.kind], message.stamped(stamp), timestamp_ms=0, config=config
            )
            assert isinstance(result, Accepted), result
            assert result.kind is message.kind
            assert workload.STAMP.encode() not in message.stamped(stamp)

    def test_deterministic_and_unique_ids(self) -> None:
        """The same tag and workflow numbers give the same bytes; ids never repeat across
        workflows, and another tag gives other ids."""
        first = list(workload.iter_workload(20, tag=7))
        assert first == list(workload.iter_workload(20, tag=7))
        ids = [orjson.loads(m.value)["id"] for m in first]
        step_ids = Counter(orjson.loads(m.value)["id"] for m in first if m.kind is EventKind.STEP)
        # Step lifecycle events share their step's id (started, then ended): 2 each.
        assert set(step_ids.values()) == {2}
        assert len(set(ids)) == len(ids) - len(step_ids)
        for value in ids:
            assert uuid.UUID(value).version == 4
        other = {orjson.loads(m.value)["id"] for m in workload.iter_workload(20, tag=8)}
        assert other.isdisjoint(ids)

    def test_continuing_numbering_gives_new_workflows(self) -> None:
        """``first`` continues the numbering: the two ranges share no workflow."""
        a = {m.key for m in workload.iter_workload(5, tag=1)}
        b = {m.key for m in workload.iter_workload(5, tag=1, first=5)}
        assert len(a) == len(b) == 5
        assert a.isdisjoint(b)

    def test_parents_precede_children(self) -> None:
        """In produce order, every referenced id was produced before the reference."""
        seen: set[str] = set()
        for message in workload.iter_workload(3, tag=1):
            body = orjson.loads(message.value)
            for name in workload._REFERENCE_FIELDS.intersection(body):
                assert body[name] in seen, (message.kind, name)
            seen.add(body["id"])

    def test_without_references(self) -> None:
        """``references=False`` removes every reference field (nothing can be parked)."""
        for message in workload.iter_workload(2, tag=1, references=False):
            assert not workload._REFERENCE_FIELDS.intersection(orjson.loads(message.value))

    @pytest.mark.parametrize(("events", "workflows"), [(1, 1), (16, 1), (24_000, 1500), (100, 6)])
    def test_whole_workflows(self, events: int, workflows: int) -> None:
        """A requested event count is rounded to whole workflows (at least one)."""
        assert workload.workflows_for(events) == workflows
