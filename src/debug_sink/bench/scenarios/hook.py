"""``hook``: the wall time of ``debug-sink hook``, the command Claude Code runs per hook event.

Every invocation is a new process, started as Claude Code starts it -- the ``debug-sink``
script installed next to this interpreter (``python -m debug_sink`` where there is none) with
``hook`` as its argument and the event's JSON on standard input -- and timed from the spawn
to its exit: interpreter start-up, imports, the spool, waking the background shipper and,
for a failed tool, the known-fixes lookup, all included (with the modules' bytecode cached,
as ``pip install`` leaves it). Invocations run one after another, as one Claude Code session
sends them: a prompt, then tool calls (a ``PreToolUse`` and a ``PostToolUse`` with a few KB
of response each), one in ten failing, a ``Stop`` and a new prompt every ten calls.

Twice: with the bench's broker and PostgreSQL up (the issue's bound: p99 <= 150 ms), and with
the broker down (a closed port), where the hook must be no slower -- it never talks to the
broker, its shipper does. Every invocation counts, the first too: it starts the shipper, a
Python process loading the Kafka and PostgreSQL drivers, whose start-up takes CPU from the
hooks that follow it on a small machine.

The floor, measured alongside: the same interpreter started with nothing to do
(``python -c pass``) -- on a loaded machine it tells the machine's share of the figures from
the command's.

Owns the ``hook`` section of the results: the three summaries (ms), how many invocations exited
non-zero or printed to stderr, and after the broker-up run, ``--flush``'s exit status and the
spool's counters (nothing may be dropped). Not guaranteed: figures for a loaded machine --
the load average is recorded with the section.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from debug_sink.bench.stats import summarize

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["hook", "session_inputs"]

#: Invocations with the broker up (``--quick``: fewer); half as many with it down.
_CALLS: Final = 400
_QUICK_CALLS: Final = 80
_TIMEOUT_S: Final = 30.0


async def hook(h: Harness, _backlogs: Backlogs) -> None:
    names = h.names("hook")
    await h.create_topics(names["topic_prefix"])
    dsn = await h.database("bench_hook")
    n = _QUICK_CALLS if h.cfg.quick else _CALLS
    task = h.progress.add_task("hook: debug-sink hook processes", total=n + n // 2 + n // 4)
    command = _command()
    up_dir = tempfile.mkdtemp(prefix="dsb-hook-up-")
    down_dir = tempfile.mkdtemp(prefix="dsb-hook-down-")
    bytecode = tempfile.mkdtemp(prefix="dsb-hook-pyc-")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DEBUG_SINK_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    # As installed: pip compiles the modules' bytecode; a checkout without it (or a shell
    # with PYTHONDONTWRITEBYTECODE) would compile every module in every process. The first
    # process writes it here, the checkout is left alone.
    base.update(
        DEBUG_SINK_TOPIC_PREFIX=names["topic_prefix"],
        DEBUG_SINK_POSTGRES_DSN=dsn,
        PYTHONPYCACHEPREFIX=bytecode,
    )
    up = {
        **base,
        "DEBUG_SINK_HOOK_DIR": up_dir,
        "DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS": h.bootstrap,
    }
    down = {
        **base,
        "DEBUG_SINK_HOOK_DIR": down_dir,
        "DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
    }
    rng = random.Random(h.cfg.seed)
    try:
        up_runs = []
        for payload in itertools.islice(session_inputs(rng), n):
            up_runs.append(await asyncio.to_thread(_run, command, payload, up))
            h.progress.advance(task)
        flush = await asyncio.to_thread(_admin, command, ["--flush", "--timeout", "60"], up)
        shown = await asyncio.to_thread(_admin, command, ["--status", "--json"], up)
        status = json.loads(shown.stdout)
        down_runs = []
        for payload in itertools.islice(session_inputs(rng), n // 2):
            down_runs.append(await asyncio.to_thread(_run, command, payload, down))
            h.progress.advance(task)
        bare = []
        for _ in range(n // 4):
            bare.append(await asyncio.to_thread(_run, [sys.executable, "-c", "pass"], {}, base))
            h.progress.advance(task)
    finally:
        for env in (up, down):
            await asyncio.to_thread(_admin, command, ["--stop"], env)
        for directory in (up_dir, down_dir, bytecode):
            shutil.rmtree(directory, ignore_errors=True)
    runs = up_runs + down_runs
    h.results["hook"] = {
        "command": "debug-sink hook" if len(command) == 2 else "python -m debug_sink hook",
        "broker_up_ms": summarize([ms for ms, _, _ in up_runs]),
        "broker_down_ms": summarize([ms for ms, _, _ in down_runs]),
        "interpreter_ms": summarize([ms for ms, _, _ in bare]),
        "nonzero_exits": sum(1 for _, code, _ in runs if code != 0),
        "stderr_lines": sum(err for _, _, err in up_runs),
        "flush_exit": flush.returncode,
        "spool_dropped": status.get("dropped", {}),
        "spool_pending_after_flush": status.get("pending_events"),
    }


def session_inputs(rng: random.Random) -> Iterator[dict[str, Any]]:
    """The hook inputs of one Claude Code session, without end: a prompt, then tool calls (a
    ``PreToolUse`` and its ``PostToolUse`` -- or, one call in ten, ``PostToolUseFailure``), a
    ``Stop`` and a new prompt every ten calls."""
    session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    common = {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-app/{session}.jsonl",
        "cwd": "/home/dev/app",
        "permission_mode": "default",
    }
    lines = "".join(f"{i:6d}\tdef handler_{i}(event):  # line {i}\n" for i in range(1, 400))
    edit = {"file_path": "/home/dev/app/src/m.py", "old_string": "a", "new_string": "b"}
    call = 0
    while True:
        if call % 10 == 0:
            if call:
                yield {**common, "hook_event_name": "Stop", "stop_hook_active": False}
            yield {**common, "hook_event_name": "UserPromptSubmit", "prompt": "Fix the tests."}
        call += 1
        use = f"toolu_{call:05d}"
        tool, tool_input = rng.choice(
            (
                ("Read", {"file_path": f"/home/dev/app/src/m{call % 40}.py"}),
                ("Bash", {"command": "pytest -q tests/", "description": "Run the tests"}),
                ("Edit", edit),
                ("Grep", {"pattern": "handler_", "path": "src/"}),
            )
        )
        tool_fields = {"tool_name": tool, "tool_input": tool_input, "tool_use_id": use}
        yield {**common, "hook_event_name": "PreToolUse", **tool_fields}
        if call % 10 == 5:
            yield {
                **common,
                "hook_event_name": "PostToolUseFailure",
                **tool_fields,
                "error": "Exit code 1\n" + lines[: rng.randrange(200, 2000)],
                "is_interrupt": False,
            }
        else:
            cut = rng.randrange(1000, len(lines))
            yield {
                **common,
                "hook_event_name": "PostToolUse",
                **tool_fields,
                "tool_response": {"type": "text", "file": {"content": lines[:cut]}},
            }


def _command() -> list[str]:
    script = Path(sys.executable).with_name("debug-sink")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "hook"]
    return [sys.executable, "-m", "debug_sink", "hook"]


def _run(
    command: list[str], payload: dict[str, Any], env: dict[str, str]
) -> tuple[float, int, int]:
    """One process, ``payload`` on its stdin: (wall ms, exit status, lines on its stderr)."""
    data = json.dumps(payload).encode()
    started = time.perf_counter()
    result = subprocess.run(
        command, input=data, capture_output=True, env=env, timeout=_TIMEOUT_S, check=False
    )
    ms = (time.perf_counter() - started) * 1000
    return ms, result.returncode, len(result.stderr.splitlines())


def _admin(
    command: list[str], args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _closed_port() -> int:
    """A loopback port nothing listens on: a broker that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
