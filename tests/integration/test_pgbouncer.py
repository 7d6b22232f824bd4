"""The sink and the read side through PgBouncer in session pooling, as many production
databases are reached.

PgBouncer refuses a connection whose startup packet names a parameter it does not know:
the sink sent ``search_path`` there, and waited forever on "unsupported startup parameter:
search_path" (which it took for an unreachable server). Transaction pooling is not
supported (README): the sink keeps session state (a temporary staging table, prepared
statements).

Needs the ``pgbouncer`` binary (Debian: ``apt-get install pgbouncer``); skipped without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from debug_sink.dev.embedded import SUGGESTED_PG_USER
from debug_sink.errors import ConfigurationError
from debug_sink.read.queries import DebugQueries
from debug_sink.ui.server import create_view_pool
from tests import support as s

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="needs PgBouncer (Debian: apt-get install pgbouncer)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = f"{parts.username}@127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _configure(root: Path, dsn: str, port: int) -> list[str]:
    """PgBouncer's files under ``root`` (session pooling, trust, in front of ``dsn``'s
    server); the command that starts it."""
    assert PGBOUNCER is not None
    server = urlsplit(dsn)
    root.chmod(0o755)
    users = root / "users.txt"
    names = {server.username or "postgres", s.WRITER_ROLE, s.READER_ROLE}
    users.write_text("".join(f'"{name}" ""\n' for name in sorted(names)))
    ini = root / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={server.hostname} port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\npool_mode = session\n"
        f"logfile = {root / 'pgbouncer.log'}\n"
    )
    args = [PGBOUNCER]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        args += ["-u", SUGGESTED_PG_USER]
        for path in (root, users, ini):
            shutil.chown(path, SUGGESTED_PG_USER)
    return [*args, str(ini)]


@pytest_asyncio.fixture
async def bouncer(db_dsn: str) -> AsyncIterator[int]:
    """PgBouncer (session pooling) in front of ``db_dsn``'s server; its port."""
    port = _free_port()
    root = Path(tempfile.mkdtemp(prefix="debug-sink-test-pgbouncer-"))
    try:
        command = _configure(root, db_dsn, port)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:

            async def listening() -> bool:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return proc.poll() is not None  # ended: the assert below says so
                writer.close()
                return True

            await s.eventually(listening, timeout=15, what="PgBouncer listening")
            assert proc.poll() is None, "PgBouncer ended at its start"
            yield port
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_the_sink_and_the_read_side_through_pgbouncer(
    db_dsn: str, kafka: Any, bouncer: int
) -> None:
    workload = s.mixed_workload(kafka, 30, seed=5)
    await s.produce(kafka, workload.messages)
    writer = _through(s.as_writer(db_dsn), bouncer)
    settings = s.sink_settings(db_dsn, kafka, postgres_dsn=writer)
    await s.run_sink(settings, timeout=90, idle_grace=1.0)
    await s.assert_workload_stored(db_dsn, workload)

    reader = _through(s.as_reader(db_dsn), bouncer)
    queries = await DebugQueries.connect(reader, read_only=True)
    try:
        assert await queries.workflow_page(limit=5)
    finally:
        await queries.close()
    pool = await create_view_pool(reader, max_size=1)
    try:
        for _ in range(2):  # and after a release's reset
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW search_path") == "public"
                assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
    finally:
        await pool.close()


async def test_a_parameter_the_pooler_refuses_is_a_configuration_error(
    db_dsn: str, kafka: Any, bouncer: int
) -> None:
    """PgBouncer refuses a startup parameter it does not pass on (here ``options`` in the
    DSN): the sink says so and stops, rather than wait for a server it took for down."""
    writer = _through(s.as_writer(db_dsn), bouncer) + "?options=-c%20work_mem%3D8MB"
    settings = s.sink_settings(db_dsn, kafka, postgres_dsn=writer)
    with pytest.raises(ConfigurationError, match="ignore_startup_parameters"):
        await s.run_sink(settings, timeout=30)
