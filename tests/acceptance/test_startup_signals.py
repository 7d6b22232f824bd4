"""SIGTERM and Ctrl-C while `debug-sink run` is still starting: waiting for a database or
broker that is down, or that accepts connections and never answers (a hung server, a
firewall that drops the replies). The sink exits at once, cleanly (exit 0, as a stop
during work does) -- not after the driver's connect timeout, by when an orchestrator's
grace period has run out and it is killed."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from debug_sink.dev.embedded import free_port
from tests import support as s
from tests.acceptance.test_sink_faults import SinkProcess

pytestmark = pytest.mark.timeout(120)

#: How long a stopped sink may take to exit while starting: nothing is in flight yet.
PROMPT_S = 5.0


@contextlib.contextmanager
def hung_server() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def sink_connected(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'debug-sink'"
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("down", ["postgres hung", "kafka hung", "postgres refused"])
async def test_a_stop_while_waiting_for_a_service_is_prompt_and_clean(
    db_dsn: str, kafka: Any, down: str, sig: signal.Signals
) -> None:
    with hung_server() as hung:
        overrides: dict[str, Any] = {
            "postgres hung": {"postgres_dsn": f"postgresql://sink:pw-9f2c@127.0.0.1:{hung}/x"},
            "kafka hung": {"kafka_bootstrap_servers": f"127.0.0.1:{hung}"},
            "postgres refused": {
                "postgres_dsn": f"postgresql://sink:pw-9f2c@127.0.0.1:{free_port()}/x"
            },
        }[down]
        settings = s.sink_settings(db_dsn, kafka, **overrides)
        sink = await SinkProcess.start(settings)
        try:
            # The attempt to connect is under way (the hung ones never end by themselves).
            started = "waiting_for_service" if down.endswith("refused") else "sink_starting"
            assert await sink.wait_for_log(started, timeout=60), sink.output[-3000:]
            if down == "kafka hung":
                await s.eventually(
                    lambda: sink_connected(db_dsn),
                    timeout=30,
                    what="the sink connected to PostgreSQL (it waits for Kafka next)",
                )
            asked = time.monotonic()
            sink.proc.send_signal(sig)
            code, err = await sink.finish(60)
            took = time.monotonic() - asked
        finally:
            await sink.kill()
    assert took < PROMPT_S, f"{took:.1f} s to stop:\n{err[-2000:]}"
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "sink_stopped" in err, err[-3000:]
    assert "pw-9f2c" not in err
    assert "Unclosed" not in err, err[-3000:]  # the half-started client is closed
