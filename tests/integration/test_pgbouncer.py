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

OPENSSL = shutil.which("openssl")

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


def _configure(root: Path, dsn: str, port: int, *, tls: bool = False) -> list[str]:
    """PgBouncer's files under ``root`` (session pooling, trust, in front of ``dsn``'s
    server; with ``tls``, clients must use TLS, with the certificate :func:`_certificates`
    made); the command that starts it."""
    assert PGBOUNCER is not None
    server = urlsplit(dsn)
    root.chmod(0o755)
    users = root / "users.txt"
    names = {server.username or "postgres", s.WRITER_ROLE, s.READER_ROLE}
    users.write_text("".join(f'"{name}" ""\n' for name in sorted(names)))
    ini = root / "pgbouncer.ini"
    owned = [root, users, ini]
    client_tls = ""
    if tls:
        key, cert = _certificates(root)
        owned += [key, cert]
        client_tls = (
            f"client_tls_sslmode = require\nclient_tls_key_file = {key}\n"
            f"client_tls_cert_file = {cert}\n"
        )
    ini.write_text(
        "[databases]\n"
        f"* = host={server.hostname} port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\npool_mode = session\n"
        f"logfile = {root / 'pgbouncer.log'}\n{client_tls}"
    )
    args = [PGBOUNCER]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        args += ["-u", SUGGESTED_PG_USER]
        for path in owned:
            shutil.chown(path, SUGGESTED_PG_USER)
    return [*args, str(ini)]


def _certificates(root: Path) -> tuple[Path, Path]:
    """Under ``root``: ``ca.crt`` (the CA that signs the server's certificate),
    ``other-ca.crt`` (a CA that does not), and the server's key and certificate (for
    127.0.0.1), which are returned."""
    assert OPENSSL is not None

    def openssl(*args: str) -> None:
        subprocess.run([OPENSSL, *args], cwd=root, check=True, capture_output=True)

    new_key = ["-newkey", "rsa:2048", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *new_key, "-days", "2", "-subj", f"/CN={ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.crt")  # fmt: skip
    openssl("req", *new_key, "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (root / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    signed = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
    openssl("x509", "-req", "-in", "server.csr", *signed,
            "-extfile", "san.cnf", "-out", "server.crt")  # fmt: skip
    (root / "server.key").chmod(0o600)
    return root / "server.key", root / "server.crt"


@pytest_asyncio.fixture
async def bouncer(db_dsn: str) -> AsyncIterator[int]:
    """PgBouncer (session pooling) in front of ``db_dsn``'s server; its port."""
    async for port in _bouncer(db_dsn, tls=None):
        yield port


@pytest_asyncio.fixture
async def tls_bouncer(db_dsn: str) -> AsyncIterator[tuple[int, Path]]:
    """PgBouncer that requires TLS of its clients; its port and the directory of the CA
    files (``ca.crt`` signed its certificate, ``other-ca.crt`` did not)."""
    if OPENSSL is None:
        pytest.skip("needs the openssl command to make certificates")
    root = Path(tempfile.mkdtemp(prefix="debug-sink-test-pgbouncer-"))
    async for port in _bouncer(db_dsn, tls=root):
        yield port, root


async def _bouncer(db_dsn: str, *, tls: Path | None) -> AsyncIterator[int]:
    port = _free_port()
    root = tls or Path(tempfile.mkdtemp(prefix="debug-sink-test-pgbouncer-"))
    try:
        command = _configure(root, db_dsn, port, tls=tls is not None)
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


async def test_tls_the_sink_cannot_use_is_one_line_not_an_endless_wait(
    db_dsn: str, kafka: Any, tls_bouncer: tuple[int, Path]
) -> None:
    """A server (here PgBouncer) that requires TLS: with the CA that signed its certificate
    the sink works; a certificate TLS refuses (another CA), or no TLS at all, never clears,
    and is one line at once -- the sink used to wait for them as for a server that is
    down."""
    port, certs = tls_bouncer
    writer = _through(s.as_writer(db_dsn), port)
    refusals = [
        ({"postgres_ssl_mode": "verify-full", "postgres_ssl_ca": certs / "other-ca.crt"},
         "TLS refused the server's certificate"),
        ({"postgres_ssl_mode": "verify-ca", "postgres_ssl_ca": certs / "other-ca.crt"},
         "TLS refused the server's certificate"),
        ({"postgres_ssl_mode": "disable"}, "requires TLS"),
    ]  # fmt: skip
    for tls, refusal in refusals:
        settings = s.sink_settings(db_dsn, kafka, postgres_dsn=writer, **tls)
        with pytest.raises(ConfigurationError, match=refusal):
            await s.run_sink(settings, timeout=30)

    workload = s.mixed_workload(kafka, 5, seed=9)
    await s.produce(kafka, workload.messages)
    settings = s.sink_settings(
        db_dsn,
        kafka,
        postgres_dsn=writer,
        postgres_ssl_mode="verify-full",
        postgres_ssl_ca=certs / "ca.crt",
    )
    await s.run_sink(settings, timeout=90, idle_grace=1.0)
    await s.assert_workload_stored(db_dsn, workload)
