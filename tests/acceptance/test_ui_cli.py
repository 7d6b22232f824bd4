"""``debug-sink ui`` as an operator runs it: it prints where it answers, serves the pages as
the reader role, stops on SIGTERM with exit 0, and refuses to listen beyond loopback without
credentials (one line, before connecting to anything)."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx

from debug_sink.dev.embedded import free_port
from tests import support as s


async def test_serves_and_stops_on_sigterm(db_dsn: str) -> None:
    port = free_port()
    env = s.cli_env(s.as_reader(db_dsn), DEBUG_SINK_UI_PORT=str(port))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "debug_sink", "ui",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"http://127.0.0.1:{port}/" in line, line
        assert "localhost only" in line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.get("/workflows")
            assert response.status_code == 200
            assert "No workflow" in response.text
            assert (await http.get("/healthz")).json() == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_refuses_any_address_without_credentials() -> None:
    env = s.cli_env("postgresql://nobody@127.0.0.1:9/none")  # never reached
    result = s.run_cli("ui", "--host", "0.0.0.0", env=env, timeout=30)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("debug-sink: error: the web view would listen on")
    assert "DEBUG_SINK_UI_TOKEN" in line
