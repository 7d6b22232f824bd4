"""Helpers shared by integration and acceptance tests: settings, producing, event builders,
reading topics back, running the CLI, and waiting for events instead of sleeping.

Waiting: a test never sleeps a fixed time and hopes something happened meanwhile. It waits
for the thing itself -- a row, a log line, a lock wait in ``pg_stat_activity``, a topic's
end -- with :func:`eventually` (or :func:`wait_until_blocked`); the timeout of such a wait
only bounds a failure, it never decides an outcome.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from debug_sink.dev.embedded import SUGGESTED_PG_USER, prepare_run_as
from debug_sink.settings import TOPIC_SUFFIXES, Settings
from debug_sink.sink import offsets
from debug_sink.sink.batch import Batch, Item, Origin
from debug_sink.sink.runner import Sink
from debug_sink.wire.events import DEFAULT_TOPICS, TABLES, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode

#: The table of each event kind, in the models' order (the one list; see events.TABLES).
EVENT_TABLES: tuple[str, ...] = tuple(TABLES.values())

#: DEBUG_SINK_TEST_THOROUGH=1: property and fault tests run more examples and more rounds than
#: the default suite can afford in its time budget (the README's "Testing" names it).
THOROUGH = os.environ.get("DEBUG_SINK_TEST_THOROUGH", "").lower() in ("1", "true", "yes")


def rounds(default: int, thorough: int) -> int:
    """How many examples or rounds a property or fault test runs."""
    return thorough if THOROUGH else default


T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

T = TypeVar("T")


#: Short names of the event kinds, for tables of test events.
SN, ER, SU, ST, TR, HK = (
    EventKind.SNAPSHOT,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.TRANSFORMATION,
    EventKind.HOOK,
)


#: Least privilege in tests: the sink connects as the writer role, read commands as the reader
#: (conftest creates both and runs ``migrate grant`` in the template database).
WRITER_ROLE = "dsink_writer"
READER_ROLE = "dsink_reader"


@pytest.fixture(name="tmp_path")
def tmp_path_outside_basetemp() -> Iterator[Path]:
    """``tmp_path`` outside pytest's base directory. As root, PostgreSQL runs as the suite's
    user, which must pass through every parent of the data directory; pytest resets its
    ``/tmp/pytest-of-<user>`` to 0700 whenever a pytest process (an xdist worker, another
    run on the machine) first asks for a temporary directory, so a dev started under it
    could find its way closed in the middle of a test."""
    root = Path(tempfile.mkdtemp(prefix="debug-sink-test-dev-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def suite_pg_user(*paths: Path) -> str | None:
    """As root (CI machines): the unprivileged user the embedded PostgreSQL runs as, made if
    missing and let through to ``paths`` -- the suite's own decision on a throwaway machine
    (``debug-sink dev`` never does this; it asks for --pg-user)."""
    if os.geteuid() != 0:
        return None
    return prepare_run_as(SUGGESTED_PG_USER, *paths)


def as_role(dsn: str, role: str) -> str:
    """``dsn`` with ``role`` as its user (no password: the embedded server trusts loopback)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def least_privilege_roles(dsn: str) -> None:
    """On a server of a test's own: the writer and reader login roles, granted on ``dsn``'s
    migrated database (the session's server has them from conftest)."""
    from debug_sink.db.grants import grant

    conn = await asyncpg.connect(dsn)
    try:
        for role in (WRITER_ROLE, READER_ROLE):
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    finally:
        await conn.close()
    await grant(dsn, writer=WRITER_ROLE, reader=READER_ROLE)


def as_writer(dsn: str) -> str:
    return as_role(dsn, WRITER_ROLE)


def as_reader(dsn: str) -> str:
    return as_role(dsn, READER_ROLE)


def sink_settings(db_dsn: str, kafka: Any, **overrides: Any) -> Settings:
    """Settings of a sink on ``db_dsn`` as the writer role (owner DSN in, writer DSN used)."""
    values: dict[str, Any] = {
        "postgres_dsn": as_writer(db_dsn),
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "topic_prefix": kafka.topic_prefix,
        "topic_pattern": kafka.topic_pattern,
        "group_id": kafka.group_id,
        "dead_letter_topic": kafka.dead_letter_topic,
        "metrics_port": 0,
        "batch_max_age_ms": 100,
        "kafka_session_timeout_ms": 6000,
    }
    values.update(overrides)
    return Settings(**values)


def sink_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a `debug-sink` subprocess use ``settings``."""
    env = cli_env()
    for name in (
        "postgres_dsn",
        "kafka_bootstrap_servers",
        "topic_prefix",
        "topic_pattern",
        "group_id",
        "dead_letter_topic",
        "metrics_port",
        "batch_max_age_ms",
        "batch_max_events",
        "park_grace_seconds",
        "max_inflight_bytes",
        "kafka_session_timeout_ms",
    ):
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"DEBUG_SINK_{name.upper()}"] = str(value)
    env["DEBUG_SINK_LOG_FORMAT"] = "json"
    return env


def topic(kafka: Any, kind: EventKind) -> str:
    return str(kafka.topic_prefix + TOPIC_SUFFIXES[kind])


async def create_topics(
    kafka: Any, partitions: int = 1, kinds: Iterable[EventKind] = tuple(EventKind)
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic(kafka, k), partitions, 1) for k in kinds])
    finally:
        await admin.close()


async def start_producer(
    bootstrap_servers: str, *, max_batch_size: int = 256 * 1024
) -> AIOKafkaProducer:
    """A started producer with large batches (unless told otherwise) and no idempotence
    (Tansu has none)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5,
        max_batch_size=max_batch_size,
        enable_idempotence=False,
    )
    await producer.start()
    return producer


async def produce(
    kafka: Any,
    messages: Iterable[tuple[str, Any]],
    *,
    key_of: Any = None,
    first_timestamp_ms: int | None = None,
) -> int:
    """Produce ``(topic, value)`` pairs; dict values are JSON-encoded; key = correlation_id.
    ``first_timestamp_ms``: record timestamps from there, 1 ms apart in sending order (else
    the producer's clock, on which many records share a millisecond)."""
    producer = await start_producer(kafka.bootstrap_servers)
    count = 0
    try:
        futures = []
        for topic_name, value in messages:
            if isinstance(value, Mapping):
                key = str(value.get("correlation_id", "")).encode() or None
                data = orjson.dumps(value)
            else:
                key, data = None, value
            stamp = None if first_timestamp_ms is None else first_timestamp_ms + count
            futures.append(await producer.send(topic_name, data, key=key, timestamp_ms=stamp))
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def run_sink(settings: Settings, timeout: float = 90.0, **kwargs: Any) -> Sink:
    """Run a sink until it is idle (everything written), failing after ``timeout``."""
    sink = Sink(settings, exit_when_idle=True, idle_grace=kwargs.pop("idle_grace", 20.0), **kwargs)
    await asyncio.wait_for(sink.run(), timeout)
    return sink


async def stored_offsets(dsn: str, group_id: str) -> dict[tuple[str, int], int]:
    """Every offset ``group_id`` stored in ``dsn``'s database, as the sink reads them back."""
    conn = await asyncpg.connect(dsn)
    try:
        return await offsets.of_group(conn, group_id)
    finally:
        await conn.close()


async def fetch_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        counts = {}
        for table in (*EVENT_TABLES, "sink_dead_letters", "sink_parked_events"):
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return counts
    finally:
        await conn.close()


def uid() -> str:
    return str(uuid.uuid4())


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


#: The record timestamp of the batches :func:`batch_of` builds.
RECORD_TIMESTAMP_MS = int(T0.timestamp() * 1000)
_DEFAULT_TOPIC = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}


def batch_of(events: Iterable[tuple[EventKind, dict[str, Any]]], offsets: Iterator[int]) -> Batch:
    """Wire-format ``events`` decoded as the consumer would (default topics and validation),
    in one batch for :class:`~debug_sink.sink.writer.BatchWriter`: partition 0 of each topic,
    at the next offsets of ``offsets``. Every event must be valid."""
    config = ValidationConfig()
    batch = Batch()
    for kind, body in events:
        topic, offset, value = _DEFAULT_TOPIC[kind], next(offsets), orjson.dumps(body)
        result = decode(topic, value, timestamp_ms=RECORD_TIMESTAMP_MS, config=config)
        assert isinstance(result, Accepted), result
        origin = Origin(topic, 0, offset)
        batch.items.append(Item(origin, None, value, (), RECORD_TIMESTAMP_MS, result))
        batch.next_offsets[(topic, 0)] = offset + 1
    return batch


async def store_completed_steps(dsn: str, correlation_id: uuid.UUID, n: int) -> None:
    """``n`` completed steps of one workflow, one millisecond apart from :data:`T0`, written
    in one INSERT (a fleet's long-running workflow, faster than through the sink)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO debug_workflow_steps (correlation_id, step_number, step_type, "
            "agent_name, operation_name, status, started_at, completed_at) "
            "SELECT $1::uuid, g, 'execution', 'agent', 'op' || g, 'completed', "
            "$2::timestamptz + g * interval '1 ms', $2::timestamptz + g * interval '1 ms' "
            "FROM generate_series(1, $3::integer) AS g",
            correlation_id,
            T0,
            n,
        )
    finally:
        await conn.close()


# -- event builders (wire format: one JSON object per message) ----------------------------


def snapshot(corr: str, state: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": uid(),
        "schema_version": 1,
        "correlation_id": corr,
        "snapshot_type": "checkpoint",
        "agent_name": "planner",
        "agent_state": state,
        "captured_at": ts(0),
        **fields,
    }


def error(corr: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uid(),
        "schema_version": 1,
        "correlation_id": corr,
        "error_type": "TimeoutError",
        "error_category": "external",
        "error_severity": "high",
        "error_message": "upstream timed out",
        "agent_name": "planner",
        "operation_name": "fetch",
        "occurred_at": ts(1),
        **fields,
    }


def success(corr: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uid(),
        "schema_version": 1,
        "correlation_id": corr,
        "success_type": "recovery_success",
        "operation_name": "fetch",
        "agent_name": "planner",
        "retry_count": 1,
        "occurred_at": ts(2),
        **fields,
    }


def step(corr: str, number: int, status: str, **fields: Any) -> dict[str, Any]:
    body = {
        "id": fields.pop("id", uid()),
        "schema_version": 1,
        "correlation_id": corr,
        "step_number": number,
        "step_type": "execution",
        "agent_name": "planner",
        "operation_name": "fetch",
        "status": status,
        **fields,
    }
    return body


def transformation(corr: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uid(),
        "schema_version": 1,
        "correlation_id": corr,
        "source_agent": "router",
        "target_agent": "planner",
        "created_at": ts(0.5),
        **fields,
    }


def hook(corr: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uid(),
        "schema_version": 1,
        "correlation_id": corr,
        "source": "PostToolUse",
        "resource_id": "web_search",
        "payload": {"quality_metrics": {"quality_score": 0.9}, "success_classification": "success"},
        "created_at": ts(1.5),
        **fields,
    }


def python() -> str:
    return sys.executable


# -- waiting for events --------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value; fail naming
    ``what`` (and ``details()``, e.g. a process's output) if ``timeout`` seconds pass first.
    The timeout bounds a failure only: it never turns a slow success into a pass or a fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"not within {timeout:g} s: {what}{extra}")
        await asyncio.sleep(interval)


async def wait_until_blocked(
    observer: asyncpg.Connection,
    pid: int,
    *,
    by: int,
    task: asyncio.Future[Any] | None = None,
    timeout: float = 30.0,
) -> None:
    """Return once backend ``pid`` waits for a lock (``wait_event_type = 'Lock'`` in
    ``pg_stat_activity``) that backend ``by`` holds (``pg_blocking_pids``). Fails if ``task``
    -- the statement expected to wait -- completes first: then it never waited.

    ``observer`` must not be inside a transaction: ``pg_stat_activity`` is a snapshot taken
    once per transaction."""

    async def blocked() -> bool:
        if task is not None and task.done():
            pytest.fail(f"backend {pid} finished without waiting for backend {by}'s lock")
        return bool(
            await observer.fetchval(
                "SELECT wait_event_type = 'Lock' AND $2::int = ANY(pg_blocking_pids(pid)) "
                "FROM pg_stat_activity WHERE pid = $1",
                pid,
                by,
            )
        )

    await eventually(
        blocked, timeout=timeout, what=f"backend {pid} waiting for a lock of backend {by}"
    )


# -- module scenarios ------------------------------------------------------------------------


@dataclass
class ScenarioRun(Generic[T]):
    """The outcome of a module's scenario: one expensive run (produce, run sinks, read back)
    that many tests then inspect.

    If the run fails, exactly one test reports the real error: the module's
    ``test_scenario_runs`` (or, when that one is not selected, the first test that asks for
    the scenario); every other test is skipped with a reason that names it. Use
    :meth:`capture` in the module-scoped fixture, :meth:`result` in the function-scoped one.
    """

    value: T | None = None
    error: BaseException | None = None
    reported_by: str | None = None

    @classmethod
    async def capture(cls, scenario: Awaitable[T]) -> ScenarioRun[T]:
        try:
            return cls(value=await scenario)
        except (Exception, pytest.fail.Exception) as exc:
            # pytest.fail.Exception: a wait that failed inside the scenario (see eventually)
            return cls(error=exc)

    def result(self, nodeid: str) -> T:
        """The scenario's result; or the scenario's error, raised for the first test that
        asks; or a skip that points at that test."""
        if self.error is None:
            assert self.value is not None
            return self.value
        if self.reported_by is None:
            self.reported_by = nodeid
            self._fail()
        pytest.skip(f"the module's scenario failed: the error is reported by {self.reported_by}")

    def raise_if_failed(self, nodeid: str) -> None:
        """For ``test_scenario_runs``: fail with the scenario's own error and traceback."""
        if self.error is not None:
            self.reported_by = nodeid
            self._fail()

    def _fail(self) -> NoReturn:
        assert self.error is not None
        text = "".join(traceback.format_exception(self.error))
        pytest.fail(f"the module's scenario failed:\n{text}", pytrace=False)


def scenario_fixtures(
    run: Callable[[str, str], Awaitable[T]], what: str
) -> tuple[Any, Any, Callable[..., None]]:
    """The three module-level names of a scenario module: the module-scoped
    ``scenario_run`` fixture (runs ``run(module_db, kafka_bootstrap)`` once), the
    ``scenario`` fixture (its result, or a skip pointing at the failed test) and
    ``test_scenario_runs`` (fails with the scenario's own error). ``what`` describes the
    scenario in that test's docstring. Use:
    ``scenario_run, scenario, test_scenario_runs = s.scenario_fixtures(_run_scenario, "...")``.
    """

    @pytest_asyncio.fixture(scope="module")
    async def scenario_run(module_db: str, kafka_bootstrap: str) -> ScenarioRun[T]:
        """The module's scenario, run once for all its tests."""
        return await ScenarioRun.capture(run(module_db, kafka_bootstrap))

    @pytest.fixture
    def scenario(scenario_run: ScenarioRun[T], request: pytest.FixtureRequest) -> T:
        """The scenario's result; skips the test (pointing at the failed one) if it failed."""
        return scenario_run.result(request.node.nodeid)

    def test_scenario_runs(scenario_run: ScenarioRun[T], request: pytest.FixtureRequest) -> None:
        scenario_run.raise_if_failed(request.node.nodeid)

    test_scenario_runs.__doc__ = (
        f"The scenario ({what}) completes. If it does not, this test fails with its error "
        "and the others are skipped."
    )
    return scenario_run, scenario, test_scenario_runs


# -- reading topics back --------------------------------------------------------------------


async def read_partitions(
    bootstrap_servers: str, topics: Iterable[str], *, timeout: float = 30.0
) -> dict[TopicPartition, list[Any]]:
    """Every record of every partition of ``topics``, from the beginning to the end, without a
    consumer group. The end is the high watermark of the fetch responses (Tansu answers
    ListOffsets with the last batch's base offset + 1), so no quiet period is guessed: what
    was written before the call is all there. A topic that does not exist has no partitions.
    """
    names = list(topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata of every topic
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        records: dict[TopicPartition, list[Any]] = {tp: [] for tp in tps}
        if not tps:
            return records
        consumer.assign(tps)
        for tp in tps:
            # Offset 0, not ListOffsets(earliest): Tansu at times answers it with an offset
            # past the first records (sink/positions.py); nothing is deleted in tests.
            consumer.seek(tp, 0)

        async def at_end() -> bool:
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is None or await consumer.position(tp) < highwater:
                    return False
            return True

        async def read() -> bool:
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                records[tp].extend(batch)
            return await at_end()

        await eventually(read, timeout=timeout, interval=0, what=f"the end of {names}")
        return records
    finally:
        await consumer.stop()


async def read_topic(bootstrap_servers: str, topic: str, *, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (see :func:`read_partitions`), partition by partition."""
    by_partition = await read_partitions(bootstrap_servers, [topic], timeout=timeout)
    return [record for tp in sorted(by_partition) for record in by_partition[tp]]


# -- the command line, as an operator runs it ----------------------------------------------

#: The ``debug-sink`` command, run by this interpreter (the package's ``__main__``; running
#: ``-m debug_sink.cli.app`` instead makes runpy warn on stderr, a second line of output).
CLI: tuple[str, ...] = (sys.executable, "-m", "debug_sink")


def cli_env(dsn: str | None = None, **variables: str) -> dict[str, str]:
    """This process's environment without any DEBUG_SINK_* variable, FORCE_COLOR, NO_COLOR
    or COLUMNS (the test decides every setting and the output's look), plus
    ``DEBUG_SINK_POSTGRES_DSN=dsn`` and ``variables``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DEBUG_SINK_") and k not in ("FORCE_COLOR", "NO_COLOR", "COLUMNS")
    }
    if dsn is not None:
        env["DEBUG_SINK_POSTGRES_DSN"] = dsn
    env.update(variables)
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``debug-sink ARGS`` as a subprocess, output captured as text; ``env`` defaults to
    :func:`cli_env` (nothing of the test's own DEBUG_SINK_* settings leaks in)."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else cli_env(),
        timeout=timeout,
        check=False,
    )


# -- a mixed, cross-referencing workload with a known expected result ----------------------


@dataclass
class Workload:
    """Messages to produce and the ids each table must hold afterwards."""

    messages: list[tuple[str, dict[str, Any]]]
    expected: dict[str, set[str]]


def mixed_workload(
    kafka: Any, workflows: int, *, seed: int = 7, state_bytes: int = 600
) -> Workload:
    """``workflows`` workflows, ~20 events each, every topic, references across topics,
    a duplicate snapshot per workflow (deduplicated) and a re-sent error (idempotent)."""
    rng = random.Random(seed)
    messages: list[tuple[str, dict[str, Any]]] = []
    expected: dict[str, set[str]] = {t: set() for t in EVENT_TABLES}
    pad = "x" * max(0, state_bytes - 120)
    for w in range(workflows):
        corr = str(uuid.UUID(int=rng.getrandbits(128), version=4))

        def new_id() -> str:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))

        snaps = []
        for k in range(3):
            body = snapshot(
                corr,
                {"workflow": w, "checkpoint": k, "pad": pad, "api_key": "sk-secret"},
                id=new_id(),
                captured_at=ts(k),
            )
            snaps.append(body)
            messages.append((topic(kafka, EventKind.SNAPSHOT), body))
            expected["debug_state_snapshots"].add(body["id"])
        dup = snapshot(corr, snaps[0]["agent_state"], id=new_id(), captured_at=ts(5))
        messages.append((topic(kafka, EventKind.SNAPSHOT), dup))
        tr = transformation(corr, id=new_id(), state_snapshot_id=snaps[0]["id"])
        messages.append((topic(kafka, EventKind.TRANSFORMATION), tr))
        expected["agent_transformation_events"].add(tr["id"])
        err = error(
            corr, id=new_id(), state_snapshot_id=dup["id"], error_stack_trace="Traceback...\n" * 20
        )
        messages += [(topic(kafka, EventKind.ERROR), err), (topic(kafka, EventKind.ERROR), err)]
        expected["debug_error_events"].add(err["id"])
        ok = success(corr, id=new_id(), state_snapshot_id=snaps[2]["id"], quality_score=0.75)
        messages.append((topic(kafka, EventKind.SUCCESS), ok))
        expected["debug_success_events"].add(ok["id"])
        for n in range(1, 4):
            sid = new_id()
            start = step(corr, n, "started", id=sid, started_at=ts(n))
            end = step(
                corr,
                n,
                "failed" if n == 2 else "completed",
                id=sid,
                completed_at=ts(n + 0.5),
                error_event_id=err["id"] if n == 2 else None,
            )
            end = {k: v for k, v in end.items() if v is not None}
            pair = [start, end] if rng.random() < 0.7 else [end, start]
            messages += [(topic(kafka, EventKind.STEP), m) for m in pair]
            expected["debug_workflow_steps"].add(sid)
        for _ in range(2):
            hk = hook(corr, id=new_id())
            messages.append((topic(kafka, EventKind.HOOK), hk))
            expected["hook_events"].add(hk["id"])
    return Workload(messages, expected)


async def table_ids(dsn: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: {str(r[0]) for r in await conn.fetch(f"SELECT id FROM {table}")}
            for table in EVENT_TABLES
        }
    finally:
        await conn.close()


async def assert_workload_stored(dsn: str, workload: Workload) -> None:
    """Exactly the expected rows, nothing parked, no dead letters, steps merged."""
    conn = await asyncpg.connect(dsn)
    try:
        parked = [
            dict(r)
            for r in await conn.fetch(
                "SELECT kind, event_id, waiting_for, parked_at, expires_at, "
                "(SELECT count(*) FROM sink_snapshot_aliases a "
                "WHERE a.alias_id = ANY(waiting_for)) AS aliased FROM sink_parked_events"
            )
        ]
    finally:
        await conn.close()
    assert parked == [], parked
    stored = await table_ids(dsn)
    diff = {
        t: {"missing": len(workload.expected[t] - ids), "extra": len(ids - workload.expected[t])}
        for t, ids in stored.items()
        if ids != workload.expected[t]
    }
    assert diff == {}, diff
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 0
        assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 0
        open_steps = await conn.fetchval(
            "SELECT count(*) FROM debug_workflow_steps WHERE status = 'started' "
            "OR completed_at IS NULL"
        )
        assert open_steps == 0
        leaked = await conn.fetchval(
            "SELECT count(*) FROM debug_state_snapshots "
            "WHERE agent_state->>'api_key' <> '[REDACTED]'"
        )
        assert leaked == 0
        # every error points at the kept snapshot, never at a dropped duplicate
        dangling = await conn.fetchval(
            "SELECT count(*) FROM debug_error_events e LEFT JOIN debug_state_snapshots s "
            "ON s.id = e.state_snapshot_id WHERE s.id IS NULL"
        )
        assert dangling == 0
    finally:
        await conn.close()


async def parked_waits(conn: asyncpg.Connection) -> set[tuple[uuid.UUID, int]]:
    """The (awaited id, parked id) pairs of sink_parked_waits, checked to be exactly those of
    sink_parked_events.waiting_for (migration 009 keeps them equal)."""
    from_arrays = {
        (r[0], r[1])
        for r in await conn.fetch(
            "SELECT DISTINCT w, p.id FROM sink_parked_events p, unnest(p.waiting_for) AS w"
        )
    }
    table = {
        (r[0], r[1]) for r in await conn.fetch("SELECT parent_id, parked_id FROM sink_parked_waits")
    }
    assert table == from_arrays
    return table
