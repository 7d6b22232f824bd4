"""A full disk under the hook directory: a real (tiny) tmpfs that runs out of space, not a
file-size limit. Skipped where tmpfs cannot be mounted (not root)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from debug_sink.hooks import control
from debug_sink.hooks.spool import Spool
from tests import support as s
from tests.conftest import KafkaNames
from tests.integration.hooks.hook_support import (
    cli,
    env_for,
    hook_once,
    spool_lines,
    topic_messages,
)

SESSION = "6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f"


@pytest.fixture
def small_disk() -> Iterator[str]:
    mount = tempfile.mkdtemp(prefix="rt-full-")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mount],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        os.rmdir(mount)
        pytest.skip(f"cannot mount a tmpfs: {done.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)
        with contextlib.suppress(OSError):
            os.rmdir(mount)


def fill(mount: str) -> None:
    """Take every free byte (whole pages, then the tail)."""
    fd = os.open(os.path.join(mount, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 64, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) < size:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)


def free(mount: str) -> None:
    os.unlink(os.path.join(mount, "filler"))


def _note(text: str, size: int = 0) -> dict[str, str]:
    return {
        "session_id": SESSION,
        "transcript_path": "/t.jsonl",
        "cwd": "/w",
        "hook_event_name": "Notification",
        "message": text + "x" * size,
    }


async def test_shipper_on_a_full_disk_does_not_crash_or_resend_for_ever(
    kafka: KafkaNames, small_disk: str
) -> None:
    """Events spooled; then the disk fills. The shipper sends them, but cannot write the
    spool position (``shipped``) afterwards. Expected: it keeps running (or says so) and
    ``--flush`` reports exit 0/3 -- not a traceback -- and every event is sent once
    per flush attempt, not once per shipper start."""
    await s.create_topics(kafka)
    directory = os.path.join(small_disk, "hooks")
    env = env_for(directory, kafka.bootstrap_servers, kafka.topic_prefix)
    env["DEBUG_SINK_HOOK_IDLE_SECONDS"] = "1"
    try:
        broken = env | {"DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
        for n in range(3):
            assert hook_once(_note(f"m{n}"), broken).returncode == 0
        cli("hook", "--stop", env=broken)
        assert len(spool_lines(directory)) == 3
        fill(small_disk)
        flushes = [cli("hook", "--flush", "--timeout", "15", env=env) for _ in range(3)]
        messages = [
            json.loads(v)["payload"]["message"]
            for t, v in await topic_messages(kafka.bootstrap_servers, kafka.topic_prefix)
            if t.endswith("hook_events")
        ]
        report = [(f.returncode, f.stderr.strip().splitlines()[-1:]) for f in flushes]
        report.append(f"{len(messages)} messages on the broker: {sorted(messages)}")
        assert all(f.returncode in (0, 3) for f in flushes), report
        assert "Traceback" not in "".join(f.stderr for f in flushes), report
        assert sorted(messages) == ["m0", "m1", "m2"], report  # once each, not per flush
    finally:
        with contextlib.suppress(OSError):
            free(small_disk)
        cli("hook", "--stop", env=env)


async def test_a_background_shipper_on_a_full_disk_ships_once_and_lives_on(
    kafka: KafkaNames, small_disk: str
) -> None:
    """The shipper a hook starts logs to hook.log on the same full disk and cannot write its
    spool position: it ships what waits, once, empties the spool (which needs no room), and
    runs until idle -- not a crash that the next hook's shipper repeats, re-sending."""
    await s.create_topics(kafka)
    directory = os.path.join(small_disk, "hooks")
    env = env_for(directory, kafka.bootstrap_servers, kafka.topic_prefix)
    env["DEBUG_SINK_HOOK_IDLE_SECONDS"] = "2"
    try:
        broken = env | {"DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
        for n in range(3):
            assert hook_once(_note(f"b{n}"), broken).returncode == 0
        cli("hook", "--stop", env=broken)
        fill(small_disk)
        for n in range(3):  # each wakes the shipper (or starts one)
            assert hook_once(_note(f"full{n}"), env).returncode == 0
            time.sleep(0.5)
        deadline = time.monotonic() + 20
        while control.running(directory) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not control.running(directory), "the shipper did not end when idle"
        messages = [
            json.loads(v)["payload"]["message"]
            for t, v in await topic_messages(kafka.bootstrap_servers, kafka.topic_prefix)
            if t.endswith("hook_events")
        ]
        left = spool_lines(directory)
        dropped = Spool(directory, 1).counters()
    finally:
        with contextlib.suppress(OSError):
            free(small_disk)
        cli("hook", "--stop", env=env)
    report = f"sent: {sorted(messages)}; left in the spool: {len(left)}; counted: {dropped}"
    assert len(messages) == len(set(messages)), report  # nothing sent twice
    assert {"b0", "b1", "b2"} <= set(messages), report
    assert left == [], report  # shipped and emptied
    # A hook's record fits in the spool file's last page, or is counted as not written.
    full = [m for m in messages if m.startswith("full")]
    assert len(full) + dropped.get("spool_write_failed", 0) == 3, report


def test_hook_on_a_full_disk_exits_zero_fast_and_recovers(small_disk: str) -> None:
    directory = os.path.join(small_disk, "hooks")
    env = env_for(directory, "127.0.0.1:1", "debug.")
    try:
        assert hook_once(_note("before"), env).returncode == 0
        fill(small_disk)
        runs = [hook_once(_note(f"full{n}", 20_000), env) for n in range(3)]
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        assert max(r.seconds for r in runs) < 2.0
        assert all(r.stdout == b"" for r in runs)
        free(small_disk)
        assert hook_once(_note("after"), env).returncode == 0
        good = []
        for line in spool_lines(directory):
            try:
                good.append(json.loads(line)["event"]["payload"]["message"][:6])
            except ValueError:
                good.append("<corrupt>")
        assert good[0] == "before", good
        assert good[-1] == "after", good
        assert "<corrupt>" not in good, good
    finally:
        cli("hook", "--stop", env=env)


def test_hook_on_a_read_only_file_system_exits_zero_fast_and_says_so(small_disk: str) -> None:
    """The hook directory's file system turns read-only (here: a read-only bind mount of a
    directory a hook has used): every hook still exits 0 quickly with a clean stdout, and
    the problem is said on stderr."""
    writable = os.path.join(small_disk, "rw")
    read_only = os.path.join(small_disk, "ro")
    os.makedirs(read_only)
    env = env_for(writable, "127.0.0.1:1", "debug.")
    assert hook_once(_note("before"), env).returncode == 0
    cli("hook", "--stop", env=env)
    subprocess.run(["mount", "--bind", writable, read_only], check=True)
    ro_env = env_for(read_only, "127.0.0.1:1", "debug.")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", read_only], check=True)
        failure = {
            **_note("x"),
            "hook_event_name": "PostToolUseFailure",
            "tool_name": "Bash",
            "tool_input": {"command": "make"},
            "tool_use_id": "toolu_ro",
            "error": "Exit code 2",
        }
        runs = [hook_once(_note(f"ro{n}"), ro_env) for n in range(3)]
        runs.append(hook_once(failure, ro_env))
    finally:
        cli("hook", "--stop", env=ro_env)
        subprocess.run(["umount", "-l", read_only], check=False)
    assert all(r.returncode == 0 for r in runs), [(r.returncode, r.stderr) for r in runs]
    assert all(r.stdout == b"" for r in runs)
    assert max(r.seconds for r in runs) < 2.0, [round(r.seconds, 2) for r in runs]
    assert b"debug-sink hook" in runs[0].stderr, runs[0].stderr
