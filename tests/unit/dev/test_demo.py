"""The demo fleet's time adds up: events are dated by the durations they report, a workflow
spans what its steps took, and its history ends at the moment it is emitted."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from debug_sink.dev.demo import Attempt, DemoFleet, plan_workflow
from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings


def times(event: dict[str, Any]) -> datetime:
    for key in ("occurred_at", "captured_at", "created_at", "completed_at", "started_at"):
        if event.get(key):
            return datetime.fromisoformat(event[key])
    raise AssertionError(event)


async def emitted(seed: int) -> tuple[list[tuple[str, dict[str, Any]]], datetime, datetime]:
    """(kind, event) of one planned workflow, and the moments before and after emitting it."""
    from debug_sink.dev import demo

    settings = Settings.model_construct()
    emitter = MemoryEmitter(settings, EmitterConfig(max_queue_events=100_000))
    manager = DebugStateManager(
        settings, emitter=emitter, clock=demo._now, monotonic=demo._monotonic
    )
    fleet = DemoFleet(settings, seed=seed, manager=manager)
    before = datetime.now(UTC)
    await fleet.workflow(pace=0.0)
    after = datetime.now(UTC)
    await manager.close()
    events = [(m.kind.value, orjson.loads(m.value)) for m in emitter.messages]
    return events, before, after


class TestPlan:
    """A plan is deterministic for a seed and its duration is the sum of its parts."""

    def test_deterministic(self) -> None:
        assert plan_workflow(random.Random(3)) == plan_workflow(random.Random(3))

    def test_timeouts_take_their_30_seconds(self) -> None:
        rng = random.Random(0)
        attempts = [
            p
            for _ in range(200)
            for p in plan_workflow(rng).parts
            if isinstance(p, Attempt) and p.failure is not None
        ]
        timeouts = [a for a in attempts if a.failure and a.failure.error_type == "TimeoutError"]
        assert timeouts
        assert all(a.work_ms >= 30_000 for a in timeouts)


class TestEmittedTimes:
    """What the agents report and when they report it agree."""

    async def test_durations_add_up(self) -> None:
        for seed in range(5):
            events, before, after = await emitted(seed)
            stamps = [times(e) for _, e in events]
            first, last = min(stamps), max(stamps)
            # the history ends now, never in the future
            assert before - timedelta(seconds=1) <= last <= after
            steps = {}
            for kind, e in events:
                if kind == "step" and e["status"] != "started":
                    steps[e["id"]] = e
            # a workflow spans at least what its steps took
            assert (last - first).total_seconds() * 1000 >= sum(
                s["duration_ms"] for s in steps.values()
            )
            for step in steps.values():
                started = datetime.fromisoformat(step["started_at"])
                completed = datetime.fromisoformat(step["completed_at"])
                assert abs((completed - started).total_seconds() * 1000 - step["duration_ms"]) <= 1
            llm = [e for kind, e in events if kind == "hook"]
            assert all(e["payload"]["quality_metrics"]["latency_ms"] > 0 for e in llm)

    async def test_a_retry_comes_after_its_backoff(self) -> None:
        """Each error is followed by the next attempt's start only after the wait it chose,
        and a success reports the time its attempt took since the step started."""
        for seed in range(20):
            events, _, _ = await emitted(seed)
            errors = [e for kind, e in events if kind == "error"]
            successes = [e for kind, e in events if kind == "success"]
            if not errors:
                continue
            for error in errors:
                later = [times(s) for s in successes if times(s) > times(error)]
                if later:
                    assert (min(later) - times(error)).total_seconds() > 0.05
            return
        raise AssertionError("no seed with errors")
