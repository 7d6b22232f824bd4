"""`debug-sink dev` as a first-time user runs it: one command brings up PostgreSQL, the broker
and the sink; `--demo` rows appear within seconds; Ctrl-C (SIGINT) stops everything and
leaves no process behind, also mid-start; a second start finds the data of the first; a taken
port or a data directory of another PostgreSQL version is refused with one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import psutil
import pytest

from debug_sink.dev.embedded import free_port
from debug_sink.settings import Settings
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.support import tmp_path_outside_basetemp  # noqa: F401 (this module's tmp_path)

pytestmark = pytest.mark.timeout(120)

DEMO_WORKFLOWS = 12
#: The topics of a dev session (the default prefix).
DEV_TOPICS = [
    s.topic(SimpleNamespace(topic_prefix=Settings.model_fields["topic_prefix"].default), kind)
    for kind in EventKind
]


class ExitedEarly(AssertionError):
    """`debug-sink dev` ended before it printed what a test waited for."""

    def __init__(self, code: int, output: str, err: str) -> None:
        super().__init__(f"exited early ({code}):\n{output}\nstderr:\n{err}")
        self.err = err


async def start_dev_up(data_dir: Path, *extra: str) -> DevProcess:
    """:func:`start_dev` on free ports until it is up: another test may take a port between
    its choice and dev's start (xdist workers share the machine), which dev refuses at once
    ("already in use")."""
    for attempt in range(3):
        dev = await start_dev(data_dir, *extra)
        try:
            await dev.wait_for_output("debug-sink dev is up")
        except ExitedEarly as early:
            if "already in use" not in early.err or attempt == 2:
                raise
            continue
        return dev
    raise AssertionError("unreachable")


class DevProcess:
    """A running `debug-sink dev` whose stdout is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: dict[str, int]) -> None:
        self.proc = proc
        self.ports = ports
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['pg']}/postgres"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    async def wait_for_output(self, text: str, timeout: float = 60) -> None:
        async def printed() -> bool:
            if self.proc.returncode is not None:
                raise ExitedEarly(self.proc.returncode, self.output, await self._stderr())
            return text in self.output

        await s.eventually(printed, timeout=timeout, what=repr(text), details=lambda: self.output)

    async def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the process to exit (its return code: Python 3.11's ``proc.wait()`` also
        waits for every holder of its pipes to close them), then for its output."""

        async def exited() -> bool:
            return self.proc.returncode is not None

        def state() -> str:
            with contextlib.suppress(psutil.Error):
                children = [(p.pid, p.name(), p.status()) for p in self.descendants()]
                return f"children {children}; stdout so far:\n{self.output}"
            return f"stdout so far:\n{self.output}"

        await s.eventually(exited, timeout=timeout, what="dev to exit", details=state)
        assert self.proc.stderr is not None
        try:
            await asyncio.wait_for(self._reader, 10)
            err = await asyncio.wait_for(self.proc.stderr.read(), 10)
        except TimeoutError:
            raise AssertionError(
                f"dev exited ({self.proc.returncode}) but something still holds its output "
                f"open:\n{self.output}"
            ) from None
        return self.proc.returncode, err.decode(errors="replace")

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.proc.stderr.read(), 5)).decode(errors="replace")
        return "<stderr still open>"

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


def as_root_flags(data_dir: Path) -> list[str]:
    """As root: ``--pg-user`` with the suite's unprivileged user, let through to the data dir."""
    user = s.suite_pg_user(data_dir.parent)
    return [] if user is None else ["--pg-user", user]


async def start_dev(
    data_dir: Path,
    *extra: str,
    ports: dict[str, int] | None = None,
    root_flags: bool = True,
    python: tuple[str, ...] = ("-m", "debug_sink"),
    env: dict[str, str] | None = None,
) -> DevProcess:
    """`debug-sink dev` on free ports (``python``: how the interpreter runs the CLI), with no
    ``DEBUG_SINK_`` variable but those of ``env``."""
    ports = ports or {"pg": free_port(), "kafka": free_port(), "metrics": free_port()}
    ports.setdefault("ui", free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUG_SINK_")} | (env or {})
    if root_flags:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        extra = (*as_root_flags(data_dir), *extra)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        "dev",
        "--data-dir",
        str(data_dir),
        "--pg-port",
        str(ports["pg"]),
        "--kafka-port",
        str(ports["kafka"]),
        "--metrics-port",
        str(ports["metrics"]),
        "--ui-port",
        str(ports["ui"]),
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return DevProcess(proc, ports)


@contextlib.asynccontextmanager
async def running(dev: DevProcess) -> AsyncIterator[DevProcess]:
    """Kill the session if the test fails before it stopped it."""
    try:
        yield dev
    finally:
        if dev.proc.returncode is None:
            dev.proc.kill()
            await dev.proc.wait()


async def counts(dsn: str) -> tuple[int, int]:
    """(rows in the event tables, parked events)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = 0
        for table in s.EVENT_TABLES:
            rows += await conn.fetchval(f"SELECT count(*) FROM {table}")
        return rows, await conn.fetchval("SELECT count(*) FROM sink_parked_events")
    finally:
        await conn.close()


async def demo_delivered(dev: DevProcess) -> bool:
    """Every demo workflow has landed its last event (the final ``deliver`` success)."""
    conn = await asyncpg.connect(dev.dsn)
    try:
        delivered = await conn.fetchval(
            "SELECT count(*) FROM debug_success_events WHERE operation_name = 'deliver'"
        )
    finally:
        await conn.close()
    return bool(delivered == DEMO_WORKFLOWS)


async def written_to_the_end(dev: DevProcess) -> tuple[int, int] | None:
    """(rows, parked) once the sink has stored the end offset of every partition of the
    topics (every record read back from the broker) and nothing waits parked; else None."""
    ends = await s.read_partitions(dev.bootstrap_servers, DEV_TOPICS)
    conn = await asyncpg.connect(dev.dsn)
    try:
        stored = {
            (r["topic"], r["partition"]): r["next_offset"]
            for r in await conn.fetch("SELECT topic, partition, next_offset FROM sink_offsets")
        }
    finally:
        await conn.close()
    if any(stored.get((tp.topic, tp.partition), 0) < len(ends[tp]) for tp in ends):
        return None
    now = await counts(dev.dsn)
    return now if now[1] == 0 else None


def assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == [], f"left behind: {[(p.pid, p.name()) for p in alive]}"


class TestDevSession:
    """The happy path: demo rows, a clean Ctrl-C, and data that outlives the session."""

    async def test_demo_rows_appear_sigint_cleans_up_and_restart_reuses_data(
        self, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "dev"
        demo = ("--demo", "--demo-workflows", str(DEMO_WORKFLOWS))
        async with running(await start_dev_up(data_dir, *demo)) as dev:
            assert dev.dsn in dev.output
            assert "psql" in dev.output
            assert f"127.0.0.1:{dev.ports['metrics']}/metrics" in dev.output

            async def some_rows() -> bool:
                rows, _ = await counts(dev.dsn)
                return rows > 0

            await s.eventually(some_rows, timeout=20, interval=0.25, what="demo rows after up")
            # The workflows are produced at once; wait until all of them are rows.
            await s.eventually(
                lambda: demo_delivered(dev), timeout=60, interval=0.25, what="every workflow"
            )
            # The web view serves them, reading as its read-only role.
            web = f"http://127.0.0.1:{dev.ports['ui']}/"
            assert web in dev.output
            async with httpx.AsyncClient(base_url=web) as http:
                listing = await http.get("/workflows")
            assert listing.status_code == 200
            assert listing.text.count('<tr data-status="') == min(DEMO_WORKFLOWS, 25)
            last = await s.eventually(
                lambda: written_to_the_end(dev), timeout=30, interval=0.25, what="caught up"
            )
            children = dev.descendants()
            names: set[str] = set()
            for child in children:
                # A short-lived child (a PostgreSQL backend) may end between the listing
                # and the look at its name.
                with contextlib.suppress(psutil.NoSuchProcess):
                    names.add(child.name())
            assert "postgres" in names, names
            assert any(n.startswith("tansu") for n in names), names
            dev.proc.send_signal(signal.SIGINT)
            code, err = await dev.finish()
        assert code == 0, err[-3000:] + dev.output[-3000:]
        assert "status: " in dev.output, "a plain status line when stdout is not a TTY"
        assert dev.output.index("stopping: sink") < dev.output.index("stopping: PostgreSQL")
        assert_all_gone(children)

        async with running(await start_dev(data_dir, ports=dev.ports)) as again:
            await again.wait_for_output("debug-sink dev is up")
            assert "up to date" in again.output, "the schema is kept: nothing to migrate"
            assert await counts(again.dsn) == last
            children = again.descendants()
            again.proc.send_signal(signal.SIGINT)
            code, err = await again.finish()
        assert code == 0, err[-3000:]
        assert_all_gone(children)

    @pytest.mark.parametrize(
        ("sig", "expected"),
        [(signal.SIGINT, 130), (signal.SIGTERM, 130), (signal.SIGKILL, -signal.SIGKILL)],
    )
    async def test_a_signal_during_start_up_leaves_nothing_behind(
        self, tmp_path: Path, sig: signal.Signals, expected: int
    ) -> None:
        """Ctrl-C or SIGTERM stop what was started; SIGKILL takes the children along too."""
        async with running(await start_dev(tmp_path / "dev")) as dev:
            children: list[psutil.Process] = []

            async def postgres_started() -> bool:
                nonlocal children
                with contextlib.suppress(psutil.NoSuchProcess):
                    children = dev.descendants()
                    return any(p.name() == "postgres" for p in children)
                return False

            await s.eventually(
                postgres_started,
                timeout=60,
                interval=0.02,
                what="PostgreSQL started by the session",
                details=lambda: dev.output,
            )
            dev.proc.send_signal(sig)
            code, err = await dev.finish()
        assert code == expected, err
        assert "debug-sink dev is up" not in dev.output
        if sig != signal.SIGKILL:
            assert "interrupted" in dev.output
        assert_all_gone(children)


class TestDemoHint:
    async def test_the_demo_hint_names_a_workflow_that_show_finds(self, tmp_path: Path) -> None:
        """The hint "demo: try  debug-sink show ID" appears once that workflow is stored: it
        was printed 5 s after the workflow was sent, while the sink was often still joining
        its group, and the newcomer's first paste found no such workflow."""
        # The sink joins in about half the session timeout on Tansu: here later than 5 s.
        slow_join = {"DEBUG_SINK_KAFKA_SESSION_TIMEOUT_MS": "14000"}
        demo = ("--demo", "--demo-workflows", "4", "--no-ui")
        async with running(await start_dev(tmp_path / "dev", *demo, env=slow_join)) as dev:
            hint = "demo: try  debug-sink show "
            await dev.wait_for_output(hint, timeout=60)
            workflow = dev.output.split(hint, 1)[1].split()[0]
            conn = await asyncpg.connect(dev.dsn)
            try:
                stored = await conn.fetchval(
                    "SELECT count(*) FROM debug_state_snapshots WHERE correlation_id = $1",
                    uuid.UUID(workflow),
                )
            finally:
                await conn.close()
            shown = await asyncio.to_thread(s.run_cli, "show", workflow, env=s.cli_env(dev.dsn))
            dev.proc.send_signal(signal.SIGINT)
            code, err = await dev.finish()
        assert stored, "the hint came before its workflow was stored"
        assert shown.returncode == 0, shown.stderr
        assert workflow in shown.stdout
        assert code == 0, err


class TestRefusals:
    @pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
    async def test_root_without_pg_user_is_refused_and_nothing_changes(
        self, tmp_path: Path
    ) -> None:
        """As root, dev neither creates a user nor opens directories: it says what to do."""
        data_dir = tmp_path / "closed" / "dev"
        data_dir.parent.mkdir(mode=0o700)
        dev = await start_dev(data_dir, root_flags=False)
        code, err = await dev.finish()
        assert code == 1
        assert "running as root: PostgreSQL will not run as root" in err
        assert "--pg-user" in err
        assert not data_dir.exists()
        user = s.suite_pg_user(tmp_path)  # up to tmp_path: only "closed" stays closed
        assert user is not None
        dev = await start_dev(data_dir, "--pg-user", user, root_flags=False)
        code, err = await dev.finish()
        assert code == 1
        assert f"cannot reach the data directory ({data_dir})" in err
        assert f"chmod o+x {data_dir.parent}" in err
        assert data_dir.parent.stat().st_mode & 0o777 == 0o700, "left as it was"
        dev = await start_dev(data_dir, "--pg-user", "no-such-user-here", root_flags=False)
        code, err = await dev.finish()
        assert code == 1
        assert "no user 'no-such-user-here'" in err
        dev = await start_dev(data_dir, "--pg-user", "root", root_flags=False)
        code, err = await dev.finish()
        assert code == 1
        assert len(err.strip().splitlines()) == 1, err
        assert "--pg-user root: user 'root' is root (uid 0)" in err
        assert "PostgreSQL runs as user root" not in dev.output
        assert not data_dir.exists()

    """Nothing starts when a port is taken or the data directory is of another version."""

    async def test_a_taken_port_is_refused_with_one_line(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            ports = {"pg": free_port(), "kafka": port, "metrics": free_port()}
            dev = await start_dev(tmp_path / "dev", ports=ports)
            code, err = await dev.finish()
        assert code == 1
        assert err.strip() == (
            f"debug-sink: error: port {port} (Kafka) already in use: stop what listens there "
            "or choose another with --pg-port / --kafka-port / --metrics-port / --ui-port"
        )
        assert not (tmp_path / "dev").exists(), "refused before anything was created"

    async def test_a_data_dir_of_another_postgres_version_is_refused(self, tmp_path: Path) -> None:
        pg_data = tmp_path / "dev" / "postgres"
        pg_data.mkdir(parents=True)
        (pg_data / "PG_VERSION").write_text("16\n")
        dev = await start_dev(tmp_path / "dev")
        code, err = await dev.finish()
        assert code == 1
        assert len(err.strip().splitlines()) == 1, err
        assert "belongs to PostgreSQL 16" in err
        assert "PostgreSQL 18" in err
        assert "debug-sink dev is up" not in dev.output


class TestPgUser:
    """As root, PostgreSQL runs as the user --pg-user names."""

    @pytest.mark.skipif(os.geteuid() != 0, reason="--pg-user matters only as root")
    async def test_pg_user_whose_primary_group_has_another_name(self, tmp_path: Path) -> None:
        """`nobody` (in `nogroup` on Debian) runs PostgreSQL: its group is found by id, not
        by the user's name; the data directory is its own and its group's."""
        entry = pwd.getpwnam("nobody")
        if grp.getgrgid(entry.pw_gid).gr_name == "nobody":
            pytest.skip("here nobody's group is also called nobody")
        s.suite_pg_user(tmp_path)  # let every user through to tmp_path (o+x), as the suite does
        data_dir = tmp_path / "dev"
        async with running(
            await start_dev(data_dir, "--pg-user", "nobody", root_flags=False)
        ) as dev:
            await dev.wait_for_output("ready on 127.0.0.1", timeout=60)
            dev.proc.send_signal(signal.SIGINT)  # PostgreSQL is what is under test: enough
            code, err = await dev.finish()
        assert code == 130, err
        assert "Traceback" not in err, err
        st = (data_dir / "postgres").stat()
        assert (st.st_uid, st.st_gid) == (entry.pw_uid, entry.pw_gid)
