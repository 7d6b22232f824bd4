"""A hook directory whose socket path is longer than a Unix socket allows (~107 bytes; the
code gives up beyond 100): the shipper runs without its socket. The administration commands
must still work: ``--stop`` stops it, ``--status`` says it runs, ``--flush`` ships."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator

import pytest

from debug_sink.hooks import control
from tests import support as s
from tests.conftest import KafkaNames
from tests.integration.hooks.hook_support import cli, env_for, hook_once, topic_messages


@pytest.fixture
def long_dir() -> Iterator[str]:
    base = tempfile.mkdtemp(prefix="rt-long-")
    directory = os.path.join(base, "projects", "a" * 60, ".claude", "debug-sink-hooks")
    assert len(control.socket_path(directory).encode()) > 100
    yield directory
    pid = control.read_status(directory).get("pid")
    if isinstance(pid, int) and control.running(directory):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)  # the shipper this test started
    shutil.rmtree(base, ignore_errors=True)


def _note(text: str) -> dict[str, str]:
    return {
        "session_id": "8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b",
        "transcript_path": "/t.jsonl",
        "cwd": "/w",
        "hook_event_name": "Notification",
        "message": text,
    }


def test_stop_and_status_work_without_the_socket(long_dir: str) -> None:
    env = env_for(long_dir, "127.0.0.1:1", "debug.")
    assert hook_once(_note("m"), env).returncode == 0
    status = cli("hook", "--status", env=env)
    running = control.running(long_dir)
    stop = cli("hook", "--stop", env=env, timeout=60)
    stopped = not control.running(long_dir)
    assert running
    problems = []
    if "shipper: running" not in status.stdout:
        problems.append(f"--status says: {status.stdout.splitlines()[3:4]}")
    if stop.returncode != 0 or not stopped:
        problems.append(
            f"--stop: exit {stop.returncode}, {stop.stderr.strip()!r}, "
            f"shipper still running: {not stopped}"
        )
    assert not problems, problems


async def test_flush_works_without_the_socket(kafka: KafkaNames, long_dir: str) -> None:
    await s.create_topics(kafka)
    env = env_for(long_dir, kafka.bootstrap_servers, kafka.topic_prefix)
    assert hook_once(_note("long-dir event"), env).returncode == 0
    flush = cli("hook", "--flush", "--timeout", "10", env=env, timeout=60)
    shipped = [
        v
        for t, v in await topic_messages(kafka.bootstrap_servers, kafka.topic_prefix)
        if t.endswith("hook_events")
    ]
    assert shipped, "the event never reached the broker"
    assert flush.returncode == 0, (flush.returncode, flush.stdout, flush.stderr)
