"""One hook invocation (debug_sink.hooks.handler) against a hook directory, no services:
the shipper is a fake Unix socket server, or absent (then starting one is recorded)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from debug_sink.hooks import control
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.fixes import write_cache
from debug_sink.hooks.handler import handle
from debug_sink.hooks.spool import Spool
from tests import hook_payloads as p

SESSION = "5d3f1c2a-8b7e-4f60-9a1d-2c3b4a5e6f70"
ROWS = [{"recovery_strategy": "retry after Read", "success_count": 3, "success_rate": 0.75}]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Shippers the handler would have started (none is)."""
    started: list[str] = []

    def spawn(directory: str, **_: Any) -> int | None:
        started.append(directory)
        return None

    monkeypatch.setattr(control, "spawn", spawn)
    return started


@pytest.fixture
def hook_dir() -> Iterator[str]:
    # A short path: Unix socket paths are limited to ~107 bytes.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dsh-") as d:
        yield d


def config(directory: str, **overrides: Any) -> HookConfig:
    return HookConfig(directory, **overrides)


def raw(hook: dict[str, Any]) -> bytes:
    return json.dumps(hook).encode()


def spooled(directory: str) -> list[dict[str, Any]]:
    spool = Spool(directory, 1 << 30)
    lines, _ = spool.read(0)
    return [json.loads(line) for line in lines]


class FakeShipper:
    """A Unix socket server answering like the shipper, after ``delay`` seconds."""

    def __init__(self, directory: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self._answer = answer
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(control.socket_path(directory))
        self._server.listen(8)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data)
                self.requests.append(request)
                time.sleep(self.delay)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(self._answer(request)).encode() + b"\n")

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def shipper(hook_dir: str) -> Iterator[FakeShipper]:
    fake = FakeShipper(hook_dir, lambda r: {"rows": ROWS} if r["op"] == "fixes" else {"ok": True})
    yield fake
    fake.close()


class TestHandle:
    """Events spooled, state kept, the shipper woken or started, nothing on stdout."""

    def test_every_input_of_a_session_is_spooled(self, hook_dir: str, spawned: list[str]) -> None:
        inputs = p.session(SESSION)
        for hook in inputs:
            handle(raw(hook), config(hook_dir, context=False))
        kinds = [r["kind"] for r in spooled(hook_dir)]
        assert kinds.count("hook") == len(inputs)
        assert {"error", "success", "step", "snapshot", "transformation"} <= set(kinds)
        assert spawned  # no shipper answered: one is started

    def test_a_running_shipper_is_woken(
        self, hook_dir: str, spawned: list[str], shipper: FakeShipper
    ) -> None:
        handle(raw(p.session(SESSION)[0]), config(hook_dir))
        assert shipper.requests == [{"op": "wake"}]
        assert spawned == []

    def test_running_the_same_input_again_adds_nothing(
        self, hook_dir: str, spawned: list[str]
    ) -> None:
        prompt = p.session(SESSION)[1]
        handle(raw(prompt), config(hook_dir))
        before = spooled(hook_dir)
        handle(raw(prompt), config(hook_dir))
        assert spooled(hook_dir) == before

    def test_unreadable_input_is_counted_and_said_once(
        self, hook_dir: str, spawned: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert handle(b"not json", config(hook_dir)) is None
        assert handle(b"[1, 2]", config(hook_dir)) is None
        assert Spool(hook_dir, 1).counters() == {"unreadable_input": 2}
        err = capsys.readouterr()
        assert err.out == ""
        assert err.err.count("could not be read") == 1

    def test_an_input_too_large_to_parse_is_salvaged(
        self, hook_dir: str, spawned: list[str]
    ) -> None:
        hook = p.success(SESSION, "t1", tool_response={"stdout": "x" * 5_000_000})
        handle(raw(hook), config(hook_dir))
        (record,) = spooled(hook_dir)
        assert record["event"]["source"] == "PostToolUse"
        assert record["event"]["resource_id"] == "Edit"
        assert record["event"]["payload"]["debug_sink"]["input_bytes"] > 5_000_000
        # tool_use_id comes after the response: read from the input's end.
        assert record["event"]["metadata"]["tool_use_id"] == "t1"

    def test_a_full_spool_drops_counts_and_says_so_once(
        self, hook_dir: str, spawned: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        small = config(hook_dir, spool_max_bytes=2000)
        for n in range(10):
            handle(raw(p.success(SESSION, f"t{n}")), small)
        assert Spool(hook_dir, 1).counters()["spool_full"] > 0
        assert capsys.readouterr().err.count("the spool is full") == 1

    def test_bad_settings_are_said_once(
        self, hook_dir: str, spawned: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        env = {"DEBUG_SINK_HOOK_DIR": hook_dir, "DEBUG_SINK_HOOK_CONTEXT": "maybe"}
        for _ in range(3):
            handle(raw(p.session(SESSION)[0]), HookConfig.from_environ(env))
        err = capsys.readouterr()
        assert err.err.count("DEBUG_SINK_HOOK_CONTEXT='maybe' is not a boolean") == 1
        assert "hook_setting_ignored" in Path(hook_dir, "hook.log").read_text()


class TestKnownFixesContext:
    """A failure with history gets the known fixes; bounded; can be switched off."""

    def test_from_the_cache(self, hook_dir: str, spawned: list[str]) -> None:
        write_cache(hook_dir, "Edit: old_string not found", "Edit", ROWS, time.time())
        output = handle(raw(p.failure(SESSION, "t1")), config(hook_dir))
        assert output is not None
        assert set(output) == {"hookSpecificOutput"}
        specific = output["hookSpecificOutput"]
        assert specific["hookEventName"] == "PostToolUseFailure"
        assert "1. retry after Read: 3/4 (75%)" in specific["additionalContext"]

    def test_from_the_shipper_within_the_budget(
        self, hook_dir: str, spawned: list[str], shipper: FakeShipper
    ) -> None:
        output = handle(raw(p.failure(SESSION, "t1")), config(hook_dir, context_budget_ms=500))
        assert output is not None
        assert shipper.requests == [
            {"op": "fixes", "error_type": "Edit: old_string not found", "tool": "Edit"}
        ]

    def test_a_slow_answer_is_no_context_and_no_delay(
        self, hook_dir: str, spawned: list[str], shipper: FakeShipper
    ) -> None:
        shipper.delay = 1.0
        started = time.monotonic()
        output = handle(raw(p.failure(SESSION, "t1")), config(hook_dir, context_budget_ms=50))
        assert output is None
        assert time.monotonic() - started < 0.9  # it did not wait for the answer

    def test_no_shipper_no_database_no_context(self, hook_dir: str, spawned: list[str]) -> None:
        assert handle(raw(p.failure(SESSION, "t1")), config(hook_dir)) is None
        assert spawned == [hook_dir]

    def test_an_unknown_failure_type_gets_none(self, hook_dir: str, spawned: list[str]) -> None:
        write_cache(hook_dir, "Glob: error", "Glob", [], time.time())
        hook = p.failure(SESSION, "t1", tool="Glob", error="odd")
        assert handle(raw(hook), config(hook_dir)) is None

    def test_switched_off(self, hook_dir: str, spawned: list[str], shipper: FakeShipper) -> None:
        write_cache(hook_dir, "Edit: old_string not found", "Edit", ROWS, time.time())
        assert handle(raw(p.failure(SESSION, "t1")), config(hook_dir, context=False)) is None
        assert shipper.requests == [{"op": "wake"}]

    def test_a_stale_answer_is_better_than_none(self, hook_dir: str, spawned: list[str]) -> None:
        write_cache(hook_dir, "Edit: old_string not found", "Edit", ROWS, time.time() - 3600)
        assert handle(raw(p.failure(SESSION, "t1")), config(hook_dir)) is not None


def test_the_hook_directory_is_private(hook_dir: str, spawned: list[str]) -> None:
    """Spooled tool inputs wait unredacted: only the user may read them."""
    handle(raw(p.session(SESSION)[1]), config(os.path.join(hook_dir, "h")))
    for sub in ("spool", "sessions"):
        assert os.stat(os.path.join(hook_dir, "h", sub)).st_mode & 0o077 == 0
