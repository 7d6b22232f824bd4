"""Many asyncio tasks on one manager, end to end (broker, sink, PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from debug_sink.sdk.manager import DebugStateManager
from tests import support as s

pytestmark = pytest.mark.timeout(120)


class TestTasks:
    async def test_steps_from_many_tasks_land_once_numbered_once(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """40 tasks share one workflow: step() blocks, a step started in one task and
        completed in another, retried steps via traced(retries=1). Every step is one row,
        numbers are distinct, every retry's success states its error, nothing is dropped."""
        await s.create_topics(kafka, partitions=2)
        settings = s.sink_settings(db_dsn, kafka)
        corr = uuid.uuid4()
        handed: asyncio.Queue[Any] = asyncio.Queue()
        async with DebugStateManager(settings) as debug:
            tries: dict[int, int] = {}

            @debug.traced(agent_name="a", operation_name="flaky", retries=1)
            async def flaky(correlation_id: uuid.UUID, n: int) -> None:
                tries[n] = tries.get(n, 0) + 1
                await asyncio.sleep(0)
                if tries[n] == 1:
                    raise TimeoutError(f"try {n}")

            async def task(n: int) -> None:
                async with debug.step(corr, "block", agent_name="a") as step:
                    step.state = {"n": n}
                    await asyncio.sleep(0)
                opened = await debug.start_step(corr, "a", "handed")
                await handed.put(opened)
                await flaky(corr, n)

            async def closer() -> None:
                for _ in range(40):
                    await debug.complete_step(await handed.get(), "completed")

            await asyncio.gather(closer(), *(task(n) for n in range(40)))
            assert await debug.flush(30)
            stats = debug.stats
        assert stats.dropped == 0, stats
        await s.run_sink(settings, idle_grace=3.0)
        conn = await asyncpg.connect(db_dsn)
        try:
            steps = await conn.fetch(
                "SELECT step_number, attempt, status, operation_name FROM debug_workflow_steps "
                "WHERE correlation_id = $1",
                corr,
            )
            successes = await conn.fetch(
                "SELECT recovers_error_ids FROM debug_success_events "
                "WHERE correlation_id = $1 AND success_type = 'recovery_success'",
                corr,
            )
            n_errors = await conn.fetchval(
                "SELECT count(*) FROM debug_error_events WHERE correlation_id = $1", corr
            )
        finally:
            await conn.close()
        assert len(steps) == 40 * 4
        firsts = [r["step_number"] for r in steps if r["attempt"] == 1]
        assert sorted(firsts) == list(range(1, 40 * 3 + 1))
        assert {r["status"] for r in steps if r["operation_name"] != "flaky"} == {"completed"}
        assert n_errors == 40
        assert len(successes) == 40
        assert all(len(r["recovers_error_ids"]) == 1 for r in successes)
