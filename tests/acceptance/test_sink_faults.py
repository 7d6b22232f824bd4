"""`debug-sink run` as an operator runs it, under faults: SIGKILL at random moments,
SIGTERM, a PostgreSQL outage, a second replica joining. After each, every valid event of a
mixed 20k-event workload is exactly one row.

Every fault is injected when the sink has said (in its log) that it reached the state the
fault is about -- writing, or retrying a batch against a stopped database -- never after a
fixed sleep; one deadline bounds each test's waits together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_up
from debug_sink.dev.embedded import EmbeddedPostgres
from tests import support as s
from tests.conftest import EMBEDDED_PG_SETTINGS
from tests.support import tmp_path_outside_basetemp  # noqa: F401 (this module's tmp_path)

pytestmark = pytest.mark.timeout(300)


class SinkProcess:
    """A `debug-sink run` subprocess whose JSON log (stderr) is read line by line as it comes:
    a test waits for what the sink reports, and the pipe never fills up and stalls it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._events: list[str] = []
        self._ended = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, settings: Any, *extra: str) -> SinkProcess:
        proc = await asyncio.create_subprocess_exec(
            *s.CLI,
            "run",
            *extra,
            env=s.sink_env(settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            async for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        self._events.append(str(json.loads(line).get("event")))
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self._ended = True
            async with self._changed:
                self._changed.notify_all()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def count(self, *events: str) -> int:
        """How many log lines so far are one of ``events``."""
        return sum(1 for event in self._events if event in events)

    async def wait_for_log(self, *events: str, count: int = 1, timeout: float) -> bool:
        """Wait until ``count`` log lines are one of ``events``: True; False if the process
        ended first (its stderr closed); a test failure after ``timeout`` seconds."""

        def seen() -> bool:
            return self.count(*events) >= count or self._ended

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(seen), max(0.0, timeout))
        except TimeoutError:
            pytest.fail(
                f"not within {timeout:.0f} s: {count} x {' or '.join(events)} in the sink's "
                f"log (seen {self.count(*events)}):\n{self.output[-3000:]}"
            )
        return self.count(*events) >= count

    async def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit; (exit code, the whole stderr)."""
        try:
            await asyncio.wait_for(self.proc.wait(), max(0.0, timeout))
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"the sink did not exit within {timeout:.0f} s:\n{self.output[-3000:]}")
        await self._reader
        assert self.proc.returncode is not None
        return self.proc.returncode, self.output

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await self._reader


def budget(seconds: float) -> Callable[[], float]:
    """``left()``: the seconds left of one budget that several waits share, so their sum is
    bounded, not each of them."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    return lambda: end - loop.time()


class TestCrashes:
    """Killing the sink never loses or doubles an event."""

    @pytest.mark.timeout(150 + 45 * s.rounds(3, 8))
    async def test_sigkill_at_random_moments_then_exact_contents(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """Runs (three; eight when thorough), each killed (SIGKILL) after a random number (1-3)
        of committed batches plus a random fraction of a second -- between a PostgreSQL commit
        and its Kafka commit, or mid-batch; then a run to the end: exactly the workload's
        rows."""
        await s.create_topics(kafka, partitions=2)
        runs = s.rounds(3, 8)
        # Work left for every run: one commits up to three 1,000-event batches and goes on
        # for up to 0.5 s (~6,000 events at most here), so 8,000 messages per run (16 per
        # workflow). With less, the last runs of eight found nothing to write and waited.
        workload = s.mixed_workload(kafka, 500 * runs, seed=11)
        assert len(workload.messages) >= 8_000 * runs
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=1000)
        rng = random.Random(5)
        kills = 0
        ended_by_itself: list[str] = []
        left = budget(40 * runs)
        for _ in range(runs):
            sink = await SinkProcess.start(settings)
            # Each run has written (its group join included) before it is killed.
            writing = await sink.wait_for_log(
                "batch_committed", count=rng.randint(1, 3), timeout=left()
            )
            if writing:
                # Why: a random point in the next batch's cycle, not synchronisation.
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            if sink.proc.returncode is None:
                kills += 1
            else:
                ended_by_itself.append(sink.output[-2000:])
            await sink.kill()
        assert kills >= runs - 1, ended_by_itself
        code, err = await (await SinkProcess.start(settings, "--exit-when-idle")).finish(120)
        assert code == 0, err[-3000:]
        await s.assert_workload_stored(db_dsn, workload)

    async def test_sigterm_mid_load_exits_zero_and_loses_nothing(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """SIGTERM once the sink has committed a batch: it finishes cleanly (exit 0,
        ``sink_stopped``), and the next run completes the workload exactly."""
        workload = s.mixed_workload(kafka, 400, seed=3)
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=500)
        sink = await SinkProcess.start(settings)
        assert await sink.wait_for_log("batch_committed", timeout=60), sink.output[-3000:]
        sink.proc.send_signal(signal.SIGTERM)
        code, err = await sink.finish(60)
        assert code == 0, err[-3000:]
        assert "sink_stopped" in err
        code, err = await (await SinkProcess.start(settings, "--exit-when-idle")).finish(120)
        assert code == 0, err[-3000:]
        await s.assert_workload_stored(db_dsn, workload)

    async def test_second_sink_joining_mid_load(self, db_dsn: str, kafka: Any) -> None:
        """A second replica joins the group while the first is writing: partitions move
        (one of them logs the revocation), both exit 0, every event is one row."""
        await s.create_topics(kafka, partitions=4)
        workload = s.mixed_workload(kafka, 600, seed=9)
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=300)
        first = await SinkProcess.start(settings, "--exit-when-idle")
        assert await first.wait_for_log("batch_committed", timeout=60), first.output[-3000:]
        second = await SinkProcess.start(settings, "--exit-when-idle")
        results = await asyncio.gather(first.finish(180), second.finish(180))
        for code, err in results:
            assert code == 0, err[-3000:]
        assert any("partitions_revoked" in err for _, err in results)
        await s.assert_workload_stored(db_dsn, workload)


class TestDatabaseOutage:
    """PostgreSQL stopped while a batch is in flight: the sink retries (it neither exits nor
    drops the batch), resumes once the server is back, and loses nothing."""

    #: Failed attempts of the batch in flight before PostgreSQL comes back: with the sink's
    #: backoff (0.2 s doubling, jittered) that is an outage of a few seconds.
    RETRIES = 5

    async def test_postgres_restart_mid_load(self, tmp_path: Path, kafka: Any) -> None:
        """PostgreSQL stops once the sink is writing; the rest of the workload arrives
        meanwhile. The sink retries its batch (RETRIES times seen, still running), and
        after the restart exits 0 with exactly the workload's rows."""
        server = EmbeddedPostgres(
            tmp_path / "pg", settings=EMBEDDED_PG_SETTINGS, run_as=s.suite_pg_user(tmp_path)
        )
        server.start()
        try:
            await migrate_up(server.dsn)
            await s.least_privilege_roles(server.dsn)  # the sink runs as the writer
            workload = s.mixed_workload(kafka, 600, seed=21)
            half = len(workload.messages) // 2
            await s.produce(kafka, workload.messages[:half])
            settings = s.sink_settings(server.dsn, kafka, batch_max_events=200)
            sink = await SinkProcess.start(settings, "--exit-when-idle")
            assert await sink.wait_for_log("batch_committed", timeout=60), sink.output[-3000:]
            await asyncio.to_thread(server.stop)
            # The second half arrives while the database is down, so a batch is in flight
            # during the outage however fast the first half was written.
            await s.produce(kafka, workload.messages[half:])
            waiting = await sink.wait_for_log("batch_retry", count=self.RETRIES, timeout=120)
            if not waiting or sink.proc.returncode is not None:
                _, err = await sink.finish(10)
                pytest.fail(f"the sink must wait for PostgreSQL, not exit: {err[-3000:]}")
            await asyncio.to_thread(server.start)
            code, err = await sink.finish(180)
            assert code == 0, err[-3000:]
            await s.assert_workload_stored(server.dsn, workload)
        finally:
            with contextlib.suppress(Exception):
                server.stop()

    async def test_read_only_while_failing_over(self, db_dsn: str, kafka: Any) -> None:
        """The database turns read-only under the sink (a primary demoted in a failover, or
        the DSN's address on a standby for a while: writes fail with SQLSTATE 25006). The
        sink waits it out like an outage -- it neither exits nor drops the batch -- and
        once writes are accepted again every event is one row."""
        workload = s.mixed_workload(kafka, 400, seed=23)
        half = len(workload.messages) // 2
        await s.produce(kafka, workload.messages[:half])
        settings = s.sink_settings(db_dsn, kafka, batch_max_events=200)
        sink = await SinkProcess.start(settings, "--exit-when-idle")
        assert await sink.wait_for_log("batch_committed", timeout=60), sink.output[-3000:]
        database = db_dsn.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
        admin = await asyncpg.connect(db_dsn)
        try:
            await admin.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
            # The sink's connections pick the setting up when they are made again.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await s.produce(kafka, workload.messages[half:])
            waiting = await sink.wait_for_log("batch_retry", count=3, timeout=60)
            if not waiting or sink.proc.returncode is not None:
                _, err = await sink.finish(10)
                pytest.fail(f"the sink must wait for a writable database, not exit: {err[-3000:]}")
            assert "read-only" in sink.output
            await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        finally:
            await admin.close()
        code, err = await sink.finish(180)
        assert code == 0, err[-3000:]
        await s.assert_workload_stored(db_dsn, workload)
