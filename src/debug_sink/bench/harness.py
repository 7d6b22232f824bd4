"""The services, databases and topics of one bench run.

Owns :class:`Harness`: the embedded PostgreSQL (settings:
:data:`~debug_sink.bench.config.PG_SETTINGS`) and Tansu broker a run starts in its temporary
directory, the databases it creates on that server, the topics, consumer groups and producer
it uses, ``psql``, and the results dict the scenarios fill. :func:`connection` is the bench's
own way into a database: plain asyncpg to its own server, none of the sink's connection
set-up.

Guarantees: a database is created fresh (dropped first if it exists); topic, group and
dead-letter names are distinct per label; :meth:`Harness.stop_services` is safe whatever
:meth:`Harness.start_services` reached. Not guaranteed: that a failed section dropped its
databases -- they go with the run's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import asyncpg

from debug_sink.bench.config import PG_SETTINGS, BenchConfig
from debug_sink.bench.internals import TABLES, EventKind, migrate_up
from debug_sink.dev.embedded import (
    SUGGESTED_PG_USER,
    EmbeddedKafka,
    EmbeddedPostgres,
    prepare_run_as,
)
from debug_sink.settings import TOPIC_SUFFIXES

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from rich.progress import Progress

__all__ = ["COPY_ORDER", "Harness", "connection"]

#: The event kinds in foreign-key order: parents' tables before their children's.
COPY_ORDER: Final = (
    EventKind.SNAPSHOT,
    EventKind.TRANSFORMATION,
    EventKind.ERROR,
    EventKind.SUCCESS,
    EventKind.STEP,
    EventKind.HOOK,
)

#: ``debug_sink/sql``: the literal seed schema lives with the package's other SQL.
_SQL_DIR: Final = Path(__file__).parents[1] / "sql"

#: Server settings recorded with the results, to read the figures against.
_REPORTED_SETTINGS: Final = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "track_commit_timestamp",
    "jit",
)


@contextlib.asynccontextmanager
async def connection(dsn: str, **options: Any) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to ``dsn`` for the duration of the block."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, **options)
    try:
        yield conn
    finally:
        await conn.close()


def _with_database(dsn: str, database: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{database}"


class Harness:
    """One benchmark run: its services, the databases and topics it creates, its results.

    ``results`` is the run's output (what the JSON holds); scenarios add their sections to it
    and their remarks to ``results["notes"]`` (:attr:`notes`).
    """

    def __init__(self, config: BenchConfig, root: Path, progress: Progress) -> None:
        self.cfg = config
        self.root = root
        self.progress = progress
        self.tag = random.Random(config.seed).getrandbits(32)
        self.results: dict[str, Any] = {"notes": []}
        self._pg: EmbeddedPostgres | None = None
        self._kafka: EmbeddedKafka | None = None

    @property
    def notes(self) -> list[str]:
        notes: list[str] = self.results["notes"]
        return notes

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A progress line without a count, shown as done when the block succeeds."""
        task = self.progress.add_task(description, total=None)
        yield
        self.progress.update(task, total=1, completed=1)

    # -- services

    def start_services(self) -> None:
        # As root (throwaway benchmark machines) PostgreSQL runs as an unprivileged user
        # made for it: PostgreSQL refuses root.
        run_as = prepare_run_as(SUGGESTED_PG_USER, self.root) if os.geteuid() == 0 else None
        self._pg = EmbeddedPostgres(self.root / "pg", settings=dict(PG_SETTINGS), run_as=run_as)
        self._pg.start()
        self._kafka = EmbeddedKafka(log_path=self.root / "tansu.log")
        self._kafka.start()

    def stop_services(self) -> None:
        for service in (self._kafka, self._pg):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()

    @property
    def postgres(self) -> EmbeddedPostgres:
        if self._pg is None:
            raise RuntimeError("the bench's PostgreSQL is not started")
        return self._pg

    @property
    def kafka(self) -> EmbeddedKafka:
        if self._kafka is None:
            raise RuntimeError("the bench's broker is not started")
        return self._kafka

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap_servers)

    async def warm_wal(self, segments: int) -> int:
        """Bring the server's WAL to a steady state; returns the WAL files ready.

        A new server has one WAL segment and zero-fills a new 16 MB file each time one is
        full (about every 11,000 events here): a write in ~84 then took 3x the median, which
        a server that has run for a while does not see -- at each checkpoint it renames old
        segments for reuse. Switching ``segments`` times and checkpointing leaves that many
        recycled segments ahead (each switch needs a WAL record since the last one: a
        logical message, no table).
        """
        async with connection(self.postgres.dsn) as conn:
            for _ in range(segments):
                await conn.execute("SELECT pg_logical_emit_message(false, 'debug-sink-bench', '')")
                await conn.execute("SELECT pg_switch_wal()")
            if segments:
                await conn.execute("CHECKPOINT")
            return int(await conn.fetchval("SELECT count(*) FROM pg_ls_waldir()"))

    async def postgres_info(self) -> dict[str, Any]:
        """The server's version and the settings that shape the figures."""
        async with connection(self.postgres.dsn) as conn:
            version = await conn.fetchval("SHOW server_version")
            settings = {n: await conn.fetchval(f"SHOW {n}") for n in _REPORTED_SETTINGS}
        return {"version": version, "settings": settings}

    # -- databases

    async def database(
        self, name: str, *, schema: str = "shipped", template: str | None = None
    ) -> str:
        """A fresh database: ``shipped`` (every migration), ``seed`` (001-004 plus the
        literal seed schema) or ``empty`` -- or a copy of the database ``template`` (file by
        file: the copy has the template's physical layout, as if it had been filled
        itself)."""
        async with connection(self.postgres.dsn, command_timeout=None) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if template is not None:
                await admin.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
                )
            else:
                await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = _with_database(self.postgres.dsn, name)
        if template is not None:
            return dsn
        if schema == "shipped":
            await migrate_up(dsn)
        elif schema == "seed":
            await migrate_up(dsn, to=4)
            async with connection(dsn) as conn:
                await conn.execute((_SQL_DIR / "bench_seed_schema.sql").read_text("utf-8"))
        return dsn

    async def drop_foreign_keys(self, dsn: str) -> int:
        """Drop every foreign key of the event tables in ``dsn`` (for a rival that cannot
        order parents before children); returns how many."""
        async with connection(dsn) as conn:
            rows = await conn.fetch(
                "SELECT conrelid::regclass::text AS t, conname FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid::regclass::text = ANY ($1::text[])",
                [TABLES[kind] for kind in COPY_ORDER],
            )
            for r in rows:
                await conn.execute(f'ALTER TABLE {r["t"]} DROP CONSTRAINT "{r["conname"]}"')
        return len(rows)

    async def drop_database(self, name: str) -> None:
        async with connection(self.postgres.dsn) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def table_counts(self, dsn: str) -> dict[str, int]:
        """Rows per event table, and in the sink's parking and dead-letter tables."""
        async with connection(dsn) as conn:
            counts = {}
            for kind in COPY_ORDER:
                counts[TABLES[kind]] = int(
                    await conn.fetchval(f"SELECT count(*) FROM {TABLES[kind]}")
                )
            for table in ("sink_parked_events", "sink_dead_letters"):
                counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            return counts

    async def psql(self, dsn: str, *commands: str) -> None:
        """Run ``commands`` in one ``psql`` session (``\\copy`` needs the client)."""
        args = [str(self.postgres.bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        args += ["-d", dsn]
        for command in commands:
            args += ["-c", command]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {err.decode(errors='replace')}")

    # -- topics

    def names(self, label: str) -> dict[str, str]:
        """Topic prefix, pattern, group and dead-letter topic unique to ``label``."""
        prefix = f"bench{self.tag:08x}{label}.debug."
        return {
            "topic_prefix": prefix,
            "topic_pattern": "^" + prefix.replace(".", r"\."),
            "group_id": f"bench-{self.tag:08x}-{label}",
            "dead_letter_topic": f"bench{self.tag:08x}{label}.dead-letters",
        }

    async def create_topics(self, prefix: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(prefix + s, self.cfg.partitions, 1) for s in TOPIC_SUFFIXES.values()]
            )
        finally:
            await admin.close()

    def producer(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            max_batch_size=256 * 1024,
            enable_idempotence=False,
        )
