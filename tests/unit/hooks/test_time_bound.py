"""The hook process's time bound: counted from the process's creation, an input given up at
the bound is counted as dropped, and the timer never outlives the hook's work (an alarm at
interpreter shutdown would end the process with SIGALRM instead of exit 0).

Contention is made with SIGSTOP (deterministic), not with load; the time margins are wide
(a loaded 2-core machine), each far from what the old behaviour took."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from debug_sink.hooks import command
from debug_sink.hooks.command import HARD_LIMIT_S
from debug_sink.hooks.spool import Spool
from tests.hook_support import stop_shipper
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
#: Room for a loaded machine to run the process once its bound is reached.
SLACK_S = 0.9


@pytest.fixture
def hook_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dsh-bound-") as d:
        yield d
        stop_shipper(d)


def _env(directory: str) -> dict[str, str]:
    return cli_env(
        DEBUG_SINK_HOOK_DIR=directory,
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        DEBUG_SINK_HOOK_IDLE_SECONDS="1",
    )


def _start(directory: str) -> tuple[subprocess.Popen[bytes], float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "debug_sink.hooks"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(directory),
    )
    return proc, started


def _end(proc: subprocess.Popen[bytes], started: float) -> tuple[float, bytes, bytes]:
    """Wait for the hook (its stdin left open: the input never comes); seconds from its
    start, stdout, stderr."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        proc.wait(timeout=30)
        seconds = time.monotonic() - started
        return seconds, proc.stdout.read(), proc.stderr.read()
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def test_the_process_age_is_read_from_the_system() -> None:
    code = "from debug_sink.hooks.command import _process_age; print(_process_age())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
    )
    if done.stdout.strip() == "None":
        pytest.skip("no /proc/self/stat and CLOCK_BOOTTIME here")
    assert 0 <= float(done.stdout) < 5


def test_an_input_that_never_comes_is_given_up_at_the_bound_and_counted(
    hook_dir: str,
) -> None:
    proc, started = _start(hook_dir)
    seconds, out, err = _end(proc, started)
    assert proc.returncode == 0
    assert out == b""
    assert HARD_LIMIT_S - 0.1 <= seconds <= HARD_LIMIT_S + SLACK_S, seconds
    assert b"gave up after 2 s" in err
    assert Spool(hook_dir, 1).counters() == {"time_limit": 1}


@pytest.mark.parametrize("stopped_s", [1.5, HARD_LIMIT_S + 0.3])
def test_the_bound_counts_from_the_process_creation(hook_dir: str, stopped_s: float) -> None:
    """The process is held (SIGSTOP) during its Python start-up: 1.5 s (the timer gets what
    is left of the 2 s), or past the whole bound (it gives up as soon as it runs). Timed from
    the start-up's end, as before, it would end at stopped_s + 2 s or later."""
    proc, started = _start(hook_dir)
    os.kill(proc.pid, signal.SIGSTOP)  # Popen returned after the exec: Python is starting
    time.sleep(stopped_s)
    os.kill(proc.pid, signal.SIGCONT)
    seconds, out, err = _end(proc, started)
    assert proc.returncode == 0
    assert out == b""
    assert seconds <= max(HARD_LIMIT_S, stopped_s) + SLACK_S, seconds
    assert seconds < stopped_s + HARD_LIMIT_S
    assert b"gave up" in err
    assert Spool(hook_dir, 1).counters() == {"time_limit": 1}


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


def test_an_unforeseen_failure_before_the_spool_is_counted(hook_dir: str) -> None:
    """An exception before the input's events are spooled (here: the spool's file is a
    directory) is counted as dropped (``hook_failed``), not only logged."""
    os.makedirs(os.path.join(hook_dir, "spool", "events.jsonl"), mode=0o700)
    done = subprocess.run(
        [sys.executable, "-m", "debug_sink.hooks"],
        input=PAYLOAD,
        capture_output=True,
        env=_env(hook_dir),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == b""
    assert b"debug-sink hook: failed" in done.stderr
    assert Spool(hook_dir, 1).counters() == {"hook_failed": 1}


def test_a_timer_that_fires_before_the_counts_log_is_open_still_counts(tmp_path: Path) -> None:
    """The handler opens the counts log itself when the run has not got to it yet (only
    system calls: it may interrupt anything)."""
    bound = command._bound
    bound.directory, bound.settled, bound.counts_fd = str(tmp_path), False, -1
    try:
        assert command._count_lost(command._TIME_LIMIT)
        assert not command._count_lost(command._TIME_LIMIT)  # once per input
    finally:
        command._close_counts()
        bound.directory, bound.settled = None, False
    assert Spool(str(tmp_path), 1).counters() == {"time_limit": 1}
