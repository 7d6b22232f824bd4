"""The hook process's time bound: the timer never outlives the hook's work (an alarm at
interpreter shutdown would end the process with SIGALRM instead of exit 0)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.support import cli_env

SESSION = "2b7c4d1e-9f8a-4b6c-8d5e-1f2a3b4c5d6e"
PAYLOAD = json.dumps(
    {
        "session_id": SESSION,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_use_id": "toolu_bound_1",
    }
).encode()


@pytest.fixture
def hook_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dsh-bound-") as d:
        yield d
        subprocess.run(
            [sys.executable, "-m", "debug_sink.hooks", "--stop", "--dir", d],
            env=cli_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )


def _env(directory: str) -> dict[str, str]:
    return cli_env(
        DEBUG_SINK_HOOK_DIR=directory,
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        DEBUG_SINK_HOOK_IDLE_SECONDS="1",
    )


def test_the_timer_is_disarmed_before_the_interpreter_shuts_down(hook_dir: str) -> None:
    """Python restores SIGALRM's default action at shutdown: a timer still armed then ends
    the process with status -14. After the hook's work: no timer, the signal ignored."""
    code = (
        "import signal, sys; from debug_sink.hooks.command import run_hook;"
        "status = run_hook();"
        "print(signal.getitimer(signal.ITIMER_REAL)[0],"
        " signal.getsignal(signal.SIGALRM) is signal.SIG_IGN, file=sys.stderr);"
        "sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=PAYLOAD,
        capture_output=True,
        env=_env(hook_dir),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().split()[-2:] == ["0.0", "True"], done.stderr
