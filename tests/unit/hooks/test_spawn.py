"""Starting the shipper: the hook that starts it takes the directory's lock first and hands
it over, so a burst of parallel hooks starts one shipper, not one per hook that found none
yet (each a Python start-up competing with the hooks for the CPU)."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator

import pytest

from debug_sink.hooks import admin, control


@pytest.fixture
def hook_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dsh-spawn-") as d:
        yield d


def _reap(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # the shipper this test started
    os.waitpid(pid, 0)


def test_the_lock_is_held_from_the_spawn_on(hook_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("DEBUG_SINK_HOOK_IDLE_SECONDS", "1")
    pid = control.spawn(hook_dir)
    assert pid is not None
    try:
        # Before the shipper's Python has even started: the lock is its already.
        assert control.running(hook_dir)
        assert control.spawn(hook_dir) is None
        assert admin.take_lock(hook_dir) is None
    finally:
        _reap(pid)
    assert not control.running(hook_dir)


def test_only_the_directory_s_lock_is_taken_as_inherited(hook_dir: str) -> None:
    other = os.open(os.path.join(hook_dir, "other"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert admin._inherited_lock(hook_dir, other) is None
        assert admin._inherited_lock(hook_dir, 987) is None  # not open
        assert admin._inherited_lock(hook_dir, None) is None
        held = admin.take_lock(hook_dir)
        assert held is not None
        try:
            assert admin._inherited_lock(hook_dir, held) == held
            assert not os.get_inheritable(held)
        finally:
            os.close(held)
    finally:
        os.close(other)
