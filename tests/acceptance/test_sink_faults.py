"""`debug-sink run` as an operator runs it, under faults: SIGKILL at random moments,
SIGTERM, a PostgreSQL outage, a second replica joining. After each, every valid event of a
mixed 20k-event workload is exactly one row."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_up
from debug_sink.dev.embedded import EmbeddedPostgres
from tests import support as s
from tests.conftest import EMBEDDED_PG_SETTINGS

pytestmark = pytest.mark.timeout(300)


async def start_sink(settings: Any, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "debug_sink.cli.app",
        "run",
        *extra,
        env=s.sink_env(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 120) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def rows_written(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT (SELECT count(*) FROM debug_workflow_steps) "
                "+ (SELECT count(*) FROM hook_events) + (SELECT count(*) FROM debug_error_events)"
            )
        )
    finally:
        await conn.close()


class TestCrashes:
    """Killing the sink never loses or doubles an event."""

    async def test_sigkill_at_random_moments_then_exact_contents(
        self, db_dsn: str, kafka: Any
    ) -> None:
        await s.create_topics(kafka, partitions=2)
        workload = s.mixed_workload(kafka, 1250, seed=11)  # 16 messages each = 20k
        assert len(workload.messages) >= 20_000
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=1000)
        rng = random.Random(5)
        kills = 0
        for _ in range(4):
            before = await rows_written(db_dsn)
            proc = await start_sink(settings)
            for _ in range(600):  # until this run is writing (its group join included)
                await asyncio.sleep(0.1)
                if await rows_written(db_dsn) > before or proc.returncode is not None:
                    break
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
        assert kills >= 3
        code, err = await finish(await start_sink(settings, "--exit-when-idle"), 180)
        assert code == 0, err[-3000:]
        await s.assert_workload_stored(db_dsn, workload)

    async def test_sigterm_mid_load_exits_zero_and_loses_nothing(
        self, db_dsn: str, kafka: Any
    ) -> None:
        workload = s.mixed_workload(kafka, 400, seed=3)
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=500)
        proc = await start_sink(settings)
        for _ in range(200):
            await asyncio.sleep(0.1)
            if await rows_written(db_dsn) > 0:
                break
        proc.send_signal(signal.SIGTERM)
        code, err = await finish(proc, 60)
        assert code == 0, err[-3000:]
        assert "sink_stopped" in err
        code, err = await finish(await start_sink(settings, "--exit-when-idle"))
        assert code == 0, err[-3000:]
        await s.assert_workload_stored(db_dsn, workload)

    async def test_second_sink_joining_mid_load(self, db_dsn: str, kafka: Any) -> None:
        await s.create_topics(kafka, partitions=4)
        workload = s.mixed_workload(kafka, 600, seed=9)
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=300)
        first = await start_sink(settings, "--exit-when-idle")
        for _ in range(200):
            await asyncio.sleep(0.1)
            if await rows_written(db_dsn) > 0:
                break
        second = await start_sink(settings, "--exit-when-idle")
        results = await asyncio.gather(finish(first, 180), finish(second, 180))
        for code, err in results:
            assert code == 0, err[-3000:]
        assert any("partitions_revoked" in err for _, err in results)
        await s.assert_workload_stored(db_dsn, workload)


class TestDatabaseOutage:
    """PostgreSQL stopped for 10 s mid-load: the sink waits, resumes, loses nothing."""

    async def test_postgres_restart_mid_load(self, tmp_path: Path, kafka: Any) -> None:
        server = EmbeddedPostgres(tmp_path / "pg", settings=EMBEDDED_PG_SETTINGS)
        server.start()
        try:
            await migrate_up(server.dsn)
            workload = s.mixed_workload(kafka, 600, seed=21)
            await s.produce(kafka, workload.messages)
            settings = s.sink_settings(server.dsn, kafka, batch_max_events=200)
            proc = await start_sink(settings, "--exit-when-idle")
            for _ in range(300):
                await asyncio.sleep(0.1)
                if await rows_written(server.dsn) > 0:
                    break
            server.stop()
            await asyncio.sleep(10)
            if proc.returncode is not None:
                _, err = await finish(proc)
                pytest.fail(f"the sink must wait for PostgreSQL, not exit: {err[-3000:]}")
            server.start()
            code, err = await finish(proc, 180)
            assert code == 0, err[-3000:]
            assert "batch_retry" in err or "waiting_for_service" in err
            await s.assert_workload_stored(server.dsn, workload)
        finally:
            with contextlib.suppress(Exception):
                server.stop()


def _rss_limit_mb() -> int:
    return int(os.environ.get("DEBUG_SINK_TEST_RSS_LIMIT_MB", "300"))
