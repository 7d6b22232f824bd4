"""A spool left damaged (a crash mid-write, garbage on disk): the hook still works and the
good records still ship."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests import support as s
from tests.conftest import KafkaNames
from tests.integration.hooks.hook_support import (
    cli,
    env_for,
    hook_once,
    spool_lines,
    status,
    topic_messages,
)

SESSION = "0d2c9a51-7e1b-4f6a-9c3d-2b1a0f9e8d7c"


@pytest.fixture
def hook_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="rt-spool-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _note(session: str, text: str) -> dict[str, str]:
    return {
        "session_id": session,
        "transcript_path": "/t.jsonl",
        "cwd": "/w",
        "hook_event_name": "Notification",
        "message": text,
    }


def _write_spool(directory: str, data: bytes) -> None:
    spool = os.path.join(directory, "spool")
    os.makedirs(spool, mode=0o700, exist_ok=True)
    with open(os.path.join(spool, "events.jsonl"), "ab") as f:
        f.write(data)


async def _shipped_messages(kafka: KafkaNames) -> list[str]:
    return [
        json.loads(value)["payload"].get("message")
        for topic, value in await topic_messages(kafka.bootstrap_servers, kafka.topic_prefix)
        if topic.endswith("hook_events")
    ]


async def test_a_deeply_nested_garbage_line_does_not_block_the_good_records(
    kafka: KafkaNames, hook_dir: str
) -> None:
    """One garbage line (deep JSON nesting, as random bytes can be) in the spool must be
    skipped and counted as ``corrupt`` like any other garbage line -- not crash every
    shipper that reads it, which leaves every later event waiting for ever."""
    await s.create_topics(kafka)
    env = env_for(hook_dir, kafka.bootstrap_servers, kafka.topic_prefix)
    _write_spool(hook_dir, b"[" * 100_000 + b"\n")
    try:
        run = hook_once(_note(SESSION, "after the garbage"), env)
        assert run.returncode == 0
        flushed = cli("hook", "--flush", "--timeout", "20", env=env)
        messages = await _shipped_messages(kafka)
        assert "after the garbage" in messages, (
            f"flush rc={flushed.returncode}\nstdout={flushed.stdout[-500:]}\n"
            f"stderr={flushed.stderr[-1500:]}\nspool lines={len(spool_lines(hook_dir))}"
        )
        assert status(env)["dropped"].get("corrupt") == 1
    finally:
        cli("hook", "--stop", env=env)


async def test_torn_record_and_garbage_lines_are_skipped_and_counted(
    kafka: KafkaNames, hook_dir: str
) -> None:
    """A record cut mid-line by a crash, NUL bytes (a file extended but never written), lines
    that are JSON but not records: the next hook's records start a new line; the good ones
    ship, the bad ones are counted as corrupt/invalid, nothing crashes."""
    await s.create_topics(kafka)
    env = env_for(hook_dir, kafka.bootstrap_servers, kafka.topic_prefix)
    try:
        assert hook_once(_note(SESSION, "first good"), env).returncode == 0
        good = spool_lines(hook_dir)[0]
        _write_spool(
            hook_dir,
            b"\x00" * 300
            + b"\n[]\nnull\n12345678901234567890\n"
            + b'{"kind":"hook","event":"not an object"}\n'
            + b'{"kind":"nope","event":{}}\n'
            + b"\xff\xfe garbage \xc3\x28\n"
            + good[: len(good) // 2],  # torn: no newline
        )
        assert hook_once(_note(SESSION, "second good"), env).returncode == 0
        flushed = cli("hook", "--flush", "--timeout", "20", env=env)
        assert flushed.returncode == 0, flushed.stdout + flushed.stderr
        messages = await _shipped_messages(kafka)
        assert "first good" in messages
        assert "second good" in messages
        dropped = status(env)["dropped"]
        assert dropped.get("corrupt", 0) + dropped.get("invalid", 0) >= 7, dropped
    finally:
        cli("hook", "--stop", env=env)
