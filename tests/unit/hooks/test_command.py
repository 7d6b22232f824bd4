"""The hook command as Claude Code runs it: a process, stdin in, stdout out, exit 0 always,
and a start-up that loads none of the heavy machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from debug_sink.hooks.fixes import write_cache
from tests import hook_payloads as p
from tests.hook_support import hook, stop_shipper
from tests.support import cli_env

SESSION = "5d3f1c2a-8b7e-4f60-9a1d-2c3b4a5e6f70"
#: A known fix whose strategy is not ASCII (a tool's or a user's words).
UNICODE_ROWS = [
    {"recovery_strategy": "retry → after Read ✓", "success_count": 3, "success_rate": 0.75}
]

#: Modules the hook path must not import: each costs tens to hundreds of milliseconds.
HEAVY = (
    "pydantic",
    "pydantic_settings",
    "aiokafka",
    "asyncpg",
    "asyncio",
    "structlog",
    "orjson",
    "typing",
    "argparse",
    "subprocess",
    "uuid",
    "socket",
    "datetime",
    "hashlib",
    "debug_sink.settings",
    "debug_sink.cli",
    "debug_sink.sdk",
    "debug_sink.wire",
)


@pytest.fixture
def hook_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dsh-") as d:
        yield d


class TestCommand:
    """Exit status 0 and nothing or the answer on stdout, whatever the input or setup."""

    def test_imports_nothing_heavy(self) -> None:
        code = (
            "import sys, debug_sink.hooks.command, debug_sink.hooks.handler;"
            "print('\\n'.join(sorted(sys.modules)))"
        )
        loaded = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
        ).stdout.split()
        assert [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY] == []
        assert not any(m.startswith(("debug_sink.settings", "debug_sink.sdk")) for m in loaded)

    @pytest.mark.parametrize(
        "stdin",
        [
            b"",
            b"not json",
            b"[]",
            b'{"hook_event_name": 3}',
            json.dumps(p.session(SESSION)[1]).encode(),
        ],
    )
    def test_exit_zero_and_a_clean_stdout(self, hook_dir: str, stdin: bytes) -> None:
        try:
            result = hook(hook_dir, stdin)
        finally:
            stop_shipper(hook_dir)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b""

    def test_an_unusable_directory_still_exits_zero(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        result = hook(str(blocker / "hooks"), json.dumps(p.session(SESSION)[1]).encode())
        assert result.returncode == 0
        assert result.stdout == b""
        assert b"debug-sink hook: failed" in result.stderr

    @pytest.mark.parametrize("encoding", ["latin-1", "euc_jp", "ascii"])
    def test_the_answer_is_utf8_json_whatever_the_locale(
        self, hook_dir: str, encoding: str
    ) -> None:
        """Claude Code reads a hook's stdout as UTF-8 JSON. A developer's locale may be
        ISO-8859-1 or EUC-JP (``PYTHONIOENCODING`` stands in for it: Python takes the
        standard streams' encoding from the locale): the known fixes must still arrive,
        whole, and not as an encoding error counted as the hook's failure."""
        write_cache(hook_dir, "Edit: old_string not found", "Edit", UNICODE_ROWS, time.time())
        try:
            result = hook(
                hook_dir,
                json.dumps(p.failure(SESSION, "t1")).encode(),
                PYTHONIOENCODING=f"{encoding}:strict",
            )
        finally:
            stop_shipper(hook_dir)
        assert result.returncode == 0
        assert result.stderr == b""
        answer = json.loads(result.stdout.decode("utf-8"))
        context = answer["hookSpecificOutput"]["additionalContext"]
        assert "1. retry → after Read ✓: 3/4 (75%)" in context

    def test_the_settings_block(self, hook_dir: str) -> None:
        result = hook(hook_dir, b"", "--settings")
        assert result.returncode == 0
        block = json.loads(result.stdout)
        assert set(block["hooks"]) == set(p.DOCUMENTED_EVENTS)
        for entries in block["hooks"].values():
            assert entries == [
                {
                    "matcher": "*",
                    "hooks": [{"type": "command", "command": "debug-sink hook", "timeout": 5}],
                }
            ]

    def test_status_of_an_empty_directory(self, hook_dir: str) -> None:
        result = hook(hook_dir, b"", "--status", "--json", "--dir", hook_dir)
        assert result.returncode == 0
        status = json.loads(result.stdout)
        assert status["pending_events"] == 0
        assert status["shipper"] == {"running": False}
        assert not os.path.exists(os.path.join(hook_dir, "spool", "events.jsonl"))


class TestAsDebugSinkHook:
    """``debug-sink hook`` is the same command, as fast: the package's main hands it over
    before the full command line is built."""

    def test_the_hook_path_loads_no_command_module(self, hook_dir: str) -> None:
        code = (
            "import sys, debug_sink.cli as cli; status = cli.main(['hook']);"
            "print('\\n'.join(sorted(sys.modules))); sys.exit(status)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=b"",
            capture_output=True,
            text=False,
            env=cli_env(DEBUG_SINK_HOOK_DIR=hook_dir),
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        loaded = result.stdout.decode().split()
        assert "debug_sink.hooks.command" in loaded
        heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY]
        assert heavy == ["debug_sink.cli"]  # the package itself, not its command modules
        assert not any(m.startswith(("debug_sink.cli.", "debug_sink.bench")) for m in loaded)

    def test_the_same_flags(self, hook_dir: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "debug_sink", "hook", "--status", "--json", "--dir", hook_dir],
            capture_output=True,
            env=cli_env(),
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["directory"] == hook_dir

    def test_a_usage_error_does_not_block_claude_code(self, hook_dir: str) -> None:
        """Exit status 2 would make Claude Code block the tool call: a typo in settings.json
        exits 1 (a non-blocking error, shown in verbose mode)."""
        result = subprocess.run(
            [sys.executable, "-m", "debug_sink", "hook", "--no-such-flag"],
            input=json.dumps(p.session(SESSION)[2]).encode(),
            capture_output=True,
            env=cli_env(DEBUG_SINK_HOOK_DIR=hook_dir),
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert b"unrecognized arguments: --no-such-flag" in result.stderr
        assert result.stdout == b""
