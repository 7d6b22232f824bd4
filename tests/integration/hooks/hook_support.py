"""Shared helpers of the hook tests that run ``debug-sink hook`` as Claude Code does (a process
per event), and read the spool and the topics back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from debug_sink.settings import TOPIC_SUFFIXES
from tests import support as s


@dataclass
class Run:
    payload: dict[str, Any]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


def env_for(directory: str, bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    env = s.cli_env(
        DEBUG_SINK_HOOK_DIR=directory,
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DEBUG_SINK_TOPIC_PREFIX=prefix,
        DEBUG_SINK_HOOK_IDLE_SECONDS="60",
        **extra,
    )
    return env


def hook_once(payload: dict[str, Any] | bytes, env: dict[str, str], timeout: float = 30) -> Run:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    started = time.perf_counter()
    done = subprocess.run(
        [*s.CLI, "hook"], input=data, capture_output=True, env=env, timeout=timeout, check=False
    )
    return Run(
        payload if isinstance(payload, dict) else {},
        done.returncode,
        done.stdout,
        done.stderr,
        time.perf_counter() - started,
    )


def hooks_at_once(
    payloads: list[dict[str, Any]], env: dict[str, str], *, cpus: set[int] | None = None
) -> list[Run]:
    """One ``debug-sink hook`` process per payload, all started before any gets its input
    (as Claude Code runs the hooks of parallel tool calls); ``cpus``: the CPUs they may run
    on (a machine with that many cores free)."""
    procs = []

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    for payload in payloads:
        proc = subprocess.Popen(
            [*s.CLI, "hook"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=pin if cpus is not None else None,
        )
        procs.append((proc, time.perf_counter(), payload))
    for proc, _, payload in procs:
        assert proc.stdin is not None
        # A hook whose bound ran out before its input came (its start-up starved of CPU)
        # has ended already: it counts the input as dropped (time_limit).
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(json.dumps(payload).encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    runs = []
    for proc, started, payload in procs:
        proc.wait(timeout=60)
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        runs.append(Run(payload, proc.returncode, out, err, time.perf_counter() - started))
    return runs


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return s.run_cli(*args, env=env, timeout=timeout)


def spool_lines(directory: str) -> list[bytes]:
    path = os.path.join(directory, "spool", "events.jsonl")
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def status(env: dict[str, str]) -> dict[str, Any]:
    done = cli("hook", "--status", "--json", env=env)
    return json.loads(done.stdout)


async def topic_messages(bootstrap: str, prefix: str) -> list[tuple[str, bytes]]:
    topics = [prefix + suffix for suffix in TOPIC_SUFFIXES.values()]
    found = []
    for tp, records in sorted((await s.read_partitions(bootstrap, topics)).items()):
        for record in records:
            found.append((tp.topic, record.value))
    return found


def tool_payload(session: str, n: int, event: str = "PreToolUse", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/x/{session}.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
        "hook_event_name": event,
        "tool_name": "Bash",
        "tool_input": {"command": f"echo step {n}"},
        "tool_use_id": f"toolu_rt_{n:04d}",
        **extra,
    }
