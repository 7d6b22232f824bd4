"""One manager used from many threads at once: step numbers and stated recoveries stay exact.

These are races: a run can only fail by luck, never pass by it, so each test makes the race
likely (a switch interval of a microsecond, many calls, several rounds), and the registry
test hammers :class:`Workflows` directly, where the window is widest. (Before the registry
had a lock, the registry test found hundreds to thousands of duplicated numbers a round;
the manager-level ones failed in about one round of three.)
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.sdk.workflows import Step, Workflows
from debug_sink.settings import Settings
from debug_sink.wire.events import EventKind

SETTINGS = Settings.model_construct()


@contextmanager
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond (instead of every 5 ms): races show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(worker: Callable[[], None], threads: int) -> list[BaseException]:
    """Run ``worker`` in ``threads`` threads at once; what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads, timeout=60)

    def run() -> None:
        try:
            start.wait()
            worker()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    return errors


def manager(**kwargs: Any) -> DebugStateManager:
    return DebugStateManager(
        emitter=MemoryEmitter(SETTINGS, EmitterConfig(max_queue_events=1_000_000)), **kwargs
    )


def run_agent(
    debug: DebugStateManager, worker: Callable[[], None], threads: int
) -> list[BaseException]:
    """On an event loop of its own (the emitter's), run ``worker`` in ``threads`` threads,
    then flush and close; what the threads raised."""

    async def agent() -> list[BaseException]:
        await debug.start()
        errors = await asyncio.to_thread(run_threads, worker, threads)
        assert await debug.flush(30)
        await debug.close()
        return errors

    with fast_switching():
        return asyncio.run(agent())


def sent(debug: DebugStateManager, kind: EventKind) -> list[dict[str, Any]]:
    return debug.emitter.events(kind)  # type: ignore[attr-defined]


class TestRegistryAcrossThreads:
    def test_claims_and_recoveries_are_atomic(self) -> None:
        """Threads claim step numbers of one workflow, claim them again as a retry does
        (an explicit, older number), fail and recover them: every number is claimed once,
        and each recovery takes exactly its own error."""
        for _round in range(4):
            self._round(threads=8, calls=6_000)

    def _round(self, *, threads: int, calls: int) -> None:
        workflows = Workflows(10)
        corr = uuid.uuid4()
        claimed: list[int] = []
        wrong: list[list[uuid.UUID]] = []

        def worker() -> None:
            mine: list[int] = []
            for _ in range(calls):
                number = workflows.claim_step_number(corr, None)
                mine.append(number)
                assert workflows.claim_step_number(corr, number) == number  # the retry
                step = Step(
                    id=uuid.uuid4(),
                    correlation_id=corr,
                    step_number=number,
                    attempt=1,
                    agent_name="worker",
                    operation_name="tool",
                    step_type="execution",
                    started_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
                error = uuid.uuid4()
                workflows.failed(step, error)
                recovered = workflows.recovered(step)
                if recovered != [error]:
                    wrong.append(recovered)
            claimed.extend(mine)

        with fast_switching():
            errors = run_threads(worker, threads)
        assert not errors, errors
        duplicated = {n: c for n, c in collections.Counter(claimed).items() if c > 1}
        assert not duplicated, f"{len(duplicated)} step numbers claimed twice"
        assert sorted(claimed) == list(range(1, threads * calls + 1))
        assert not wrong, f"{len(wrong)} recoveries took another step's errors"


class TestStepNumbersAcrossThreads:
    def test_sync_traced_steps_from_many_threads_are_numbered_once_each(self) -> None:
        """README: 'One manager may serve ... sync traced functions in worker threads'; step
        numbers per workflow are 1, 2, ... Eight threads run a traced function of one
        workflow 1200 times each: 9600 steps must get 9600 distinct numbers."""
        for _round in range(2):  # a race: several rounds, so that it shows more often
            self._round(threads=8, calls=1200)

    def _round(self, *, threads: int, calls: int) -> None:
        debug = manager()
        corr = uuid.uuid4()

        @debug.traced(agent_name="worker", operation_name="tool")
        def tool(i: int) -> int:
            return i

        def worker() -> None:
            with debug.workflow(corr):
                for i in range(calls):
                    tool(i)

        errors = run_agent(debug, worker, threads)
        assert not errors, errors
        started = [s for s in sent(debug, EventKind.STEP) if s["status"] == "started"]
        assert len(started) == threads * calls
        numbers = collections.Counter(s["step_number"] for s in started)
        duplicated = {n: c for n, c in numbers.items() if c > 1}
        assert not duplicated, f"{len(duplicated)} step numbers given twice, e.g. " + str(
            sorted(duplicated.items())[:5]
        )
        assert sorted(numbers) == list(range(1, threads * calls + 1))

    def test_many_workflows_from_many_threads_never_raise_into_the_agent(self) -> None:
        """max_workflows bounds memory by forgetting the least recently used workflow. With
        threads capturing into many workflows, no capture may raise (e.g. a KeyError from
        the registry) into agent code."""
        threads, calls = 8, 600
        debug = manager(max_workflows=4)

        @debug.traced(agent_name="worker", operation_name="tool")
        def tool(correlation_id: uuid.UUID) -> None:
            return None

        def worker() -> None:
            for _ in range(calls):
                tool(uuid.uuid4())

        errors = run_agent(debug, worker, threads)
        assert not errors, [repr(e) for e in errors[:3]]
        assert debug.stats.dropped == 0, debug.stats


class TestRetriesAcrossThreads:
    def test_each_retry_states_exactly_its_own_failed_attempt(self) -> None:
        """Threads run a traced function with retries=1 whose first try fails: each
        recovery_success must name exactly the error of its own failed first try."""
        threads, calls = 8, 600
        debug = manager()
        corr = uuid.uuid4()
        local = threading.local()

        @debug.traced(agent_name="worker", operation_name="flaky", retries=1)
        def flaky() -> None:
            local.tries = getattr(local, "tries", 0) + 1
            if local.tries % 2 == 1:
                raise TimeoutError("first try fails")

        def worker() -> None:
            with debug.workflow(corr):
                for _ in range(calls):
                    flaky()

        errors = run_agent(debug, worker, threads)
        assert not errors, errors
        errs = sent(debug, EventKind.ERROR)
        successes = sent(debug, EventKind.SUCCESS)
        assert len(errs) == threads * calls
        assert len(successes) == threads * calls
        # every failed first try is recovered by exactly one success, which states it alone
        stated = [tuple(x.get("recovers_error_ids") or ()) for x in successes]
        by_count = collections.Counter(len(t) for t in stated)
        assert by_count == {1: threads * calls}, f"errors stated per success: {dict(by_count)}"
        assert sorted(e for t in stated for e in t) == sorted(e["id"] for e in errs)
        failed_numbers = collections.Counter(
            x["step_number"] for x in sent(debug, EventKind.STEP) if x["status"] == "failed"
        )
        assert max(failed_numbers.values()) == 1, "a step number given to two first tries"
