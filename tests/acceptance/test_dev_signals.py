"""`debug-sink dev` stopped by a signal at the awkward moments (README "Dev mode": Ctrl-C stops
everything in order, also during start-up): during the first initdb, while a server is being
forked, and before the sink has joined its group. The interrupt is never lost, nothing is left
half-made, and no event is dropped without a word."""

from __future__ import annotations

import contextlib
import signal
import uuid
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import psutil
import pytest

from debug_sink.dev.embedded import EmbeddedPostgres, free_port
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.acceptance.test_dev import DEV_TOPICS, assert_all_gone, running, start_dev
from tests.support import tmp_path_outside_basetemp  # noqa: F401 (this module's tmp_path)

pytestmark = pytest.mark.timeout(120)


class TestInterruptedFirstStart:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    async def test_a_signal_during_the_first_initdb_and_the_next_start_works(
        self, tmp_path: Path, sig: signal.Signals
    ) -> None:
        """The signal (to dev only, as `kill` or `timeout` send it) stops initdb half-way; no
        half-made cluster is left for the next start to trip on (it would fail with
        'database "postgres" does not exist')."""
        data_dir = tmp_path / "dev"
        async with running(await start_dev(data_dir, "--no-ui")) as dev:

            async def initdb_half_way() -> bool:
                """initdb has written PG_VERSION and is bootstrapping the catalog (in a server
                of its own): the moment a stop used to leave a cluster without databases."""
                with contextlib.suppress(psutil.Error):
                    return any("--boot" in p.cmdline() for p in dev.descendants())
                return False

            await s.eventually(initdb_half_way, timeout=60, interval=0.005, what="initdb")
            dev.proc.send_signal(sig)
            code, err = await dev.finish()
        assert code == 130, err
        assert "interrupted" in dev.output

        async with running(await start_dev(data_dir, "--no-ui")) as again:
            # The schema step connects to the database initdb makes last: enough.
            await again.wait_for_output("migrated (", timeout=60)
            again.proc.send_signal(signal.SIGINT)
            code, err = await again.finish()
        assert code == 130, err


#: ``debug-sink`` with a SIGINT to itself timed to its first fork that runs Python's at-fork
#: callbacks (a server or initdb started with a ``preexec_fn``): the user's Ctrl-C arriving
#: exactly then, which a natural Ctrl-C hits about once in five tries at the Kafka step.
CTRL_C_AT_FORK = """
import os, signal, sys
fired = []
def before_fork():
    if not fired:
        fired.append(1)
        signal.raise_signal(signal.SIGINT)
os.register_at_fork(before=before_fork)
from debug_sink.cli import main
sys.argv = ["debug-sink", *sys.argv[1:]]
sys.exit(main())
"""


class TestCtrlCWhileForking:
    async def test_a_ctrl_c_arriving_while_a_server_is_forked_is_not_lost(
        self, tmp_path: Path
    ) -> None:
        """It stops the start-up (exit 130, 'interrupted') and what was started; it used to
        be dropped with the handler's exception ("Exception ignored in ...") and dev came up
        as if nothing had happened."""
        dev = await start_dev(tmp_path / "dev", "--no-ui", python=("-c", CTRL_C_AT_FORK))
        async with running(dev):
            children: list[psutil.Process] = []

            async def exited() -> bool:
                nonlocal children
                with contextlib.suppress(psutil.Error):
                    children = dev.descendants()
                return dev.proc.returncode is not None or "dev is up" in dev.output

            await s.eventually(exited, timeout=60, interval=0.05, what="dev to stop or come up")
            up = "debug-sink dev is up" in dev.output
            if dev.proc.returncode is None:
                dev.proc.send_signal(signal.SIGTERM)
            code, err = await dev.finish()
        assert not up, f"the Ctrl-C was lost: dev came up\n{err[-1500:]}"
        assert code == 130, err
        assert "interrupted" in dev.output
        assert "Exception ignored" not in err, err
        assert_all_gone(children)


class TestCtrlCBeforeTheSinkIsReady:
    async def test_events_sent_before_the_sink_joined_are_drained_at_ctrl_c(
        self, tmp_path: Path
    ) -> None:
        """README: Ctrl-C stops in order -- the sink drains and commits. Events sent as soon
        as dev is up, and a Ctrl-C while the sink is still joining its group: the sink is
        waited for and writes them (the topics are in memory: skipped, they were lost
        without a word)."""
        data_dir = tmp_path / "dev"
        workflow = str(uuid.uuid4())
        events = [s.error(workflow, error_message=f"attempt {n}") for n in range(5)]
        topic = DEV_TOPICS[list(EventKind).index(EventKind.ERROR)]
        async with running(await start_dev(data_dir, "--no-ui")) as dev:
            await dev.wait_for_output("debug-sink dev is up")
            kafka = SimpleNamespace(bootstrap_servers=dev.bootstrap_servers)
            await s.produce(kafka, [(topic, event) for event in events])
            metrics = f"http://127.0.0.1:{dev.ports['metrics']}/healthz"
            async with httpx.AsyncClient() as http:
                health = (await http.get(metrics)).json()
            dev.proc.send_signal(signal.SIGINT)
            code, err = await dev.finish()
        assert code == 0, err
        if health["ready"]:
            pytest.skip("the sink had joined before the Ctrl-C: nothing under test")
        rows = await rows_after_stop(
            data_dir / "postgres",
            "SELECT count(*) FROM debug_error_events WHERE correlation_id = $1",
            uuid.UUID(workflow),
        )
        assert rows == len(events), dev.output
        assert "stopping: sink (joining its group to drain the topics)" in dev.output
        assert "unread" not in dev.output, dev.output


async def rows_after_stop(pg_data: Path, sql: str, *args: object) -> int:
    """Start the stopped session's PostgreSQL on its own for one count."""
    pg = EmbeddedPostgres(pg_data, free_port(), run_as=s.suite_pg_user(pg_data.parent))
    pg.start()
    try:
        conn = await asyncpg.connect(pg.dsn)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()
    finally:
        pg.stop()
