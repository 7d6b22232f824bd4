"""Many hooks of one session at once (parallel tool calls) while the broker is down, then the
broker back: every hook exits 0 within its bound, no event is lost (or, if it must be, it is
counted), none is doubled, the spool stays whole, and everything spooled reaches the broker.

One scenario for the module: 50 hook processes, as Claude Code starts them for a burst of
parallel tool calls with the README's settings block, on one CPU (a 1-vCPU container, or a
2-core machine whose other core runs the agent's build: on this 2-core machine at load ~4,
unpinned, the same burst lost 1-19 of 50 events, uncounted; at load ~1 it passed). A hook the
burst keeps from its work past its bound gives up and counts its input (``time_limit``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio

from debug_sink.hooks.command import HARD_LIMIT_S
from tests import support as s
from tests.conftest import kafka_names
from tests.integration.hooks.hook_support import (
    Run,
    cli,
    env_for,
    hooks_at_once,
    spool_lines,
    status,
    tool_payload,
    topic_messages,
)
from tests.integration.hooks.relay import Relay

SESSION = "3e9f1a2b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"
N = 50


@dataclass
class Outcome:
    runs: list[Run] = field(default_factory=list)
    spooled: list[dict[str, Any]] = field(default_factory=list)
    spool_garbage: int = 0
    status_down: dict[str, Any] = field(default_factory=dict)
    flush: Any = None
    hook_messages: list[dict[str, Any]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module")
async def outcome(kafka_bootstrap: str) -> Any:
    kafka = kafka_names(kafka_bootstrap)
    await s.create_topics(kafka)
    directory = tempfile.mkdtemp(prefix="rt-conc-")
    relay = Relay(kafka_bootstrap)  # closed: the broker is down
    env = env_for(directory, relay.address, kafka.topic_prefix)
    result = Outcome()
    try:
        payloads = [tool_payload(SESSION, n) for n in range(N)]
        result.runs = hooks_at_once(payloads, env, cpus={0})
        for line in spool_lines(directory):
            try:
                result.spooled.append(json.loads(line))
            except ValueError:
                result.spool_garbage += 1
        result.status_down = status(env)
        relay.open()  # the broker is back
        result.flush = cli("hook", "--flush", "--timeout", "60", env=env)
        for topic, value in await topic_messages(kafka_bootstrap, kafka.topic_prefix):
            if topic.endswith("hook_events"):
                result.hook_messages.append(json.loads(value))
        yield result
    finally:
        cli("hook", "--stop", env=env)
        relay.close()
        shutil.rmtree(directory, ignore_errors=True)


def _use_id(event: dict[str, Any]) -> str:
    return str(event["payload"].get("tool_use_id"))


def test_every_hook_exits_zero(outcome: Outcome) -> None:
    """README: "Exit 0, whatever happens." A non-zero status is shown to the user by Claude
    Code as a hook error."""
    codes = Counter(run.returncode for run in outcome.runs)
    assert set(codes) == {0}, f"exit statuses: {dict(codes)}"


def test_every_hook_ends_within_its_hard_bound(outcome: Outcome) -> None:
    """Each hook's timer fires 2 s after its process was created; a process that 50 others
    keep off the one CPU then still needs a turn to end (0.1-1 s here, with the machine's
    other load). Bounded generously, well inside Claude Code's 5 s: how the bound is
    counted is tested deterministically (SIGSTOP) in tests/unit/hooks/test_time_bound.py.
    Before the bound counted the start-up, this burst took 2.5-4.6 s."""
    slowest = max(run.seconds for run in outcome.runs)
    assert slowest <= HARD_LIMIT_S + 2.0, f"slowest hook took {slowest:.2f} s"


def test_no_event_is_lost_silently(outcome: Outcome) -> None:
    """README: "Nothing lost silently ... what the bound refuses is dropped and counted".
    Every one of the N PreToolUse inputs is either in the spool or counted as dropped."""
    spooled = {_use_id(r["event"]) for r in outcome.spooled if r.get("kind") == "hook"}
    # state_busy counts a hook that went on without its session's state (its events are
    # spooled all the same): not a loss.
    dropped = sum(
        n for reason, n in outcome.status_down["dropped"].items() if reason != "state_busy"
    )
    gave_up = [r for r in outcome.runs if b"gave up" in r.stderr]
    missing = sorted({f"toolu_rt_{n:04d}" for n in range(N)} - spooled)
    assert len(spooled) + dropped >= N, (
        f"{N} hooks ran; {len(spooled)} events spooled, {dropped} counted as dropped "
        f"({outcome.status_down['dropped']}); {len(gave_up)} hooks printed 'gave up after "
        f"{HARD_LIMIT_S} s'; missing: {missing}"
    )


def test_the_spool_is_whole_and_has_no_duplicate(outcome: Outcome) -> None:
    assert outcome.spool_garbage == 0
    ids = Counter(r["event"]["id"] for r in outcome.spooled)
    assert not [i for i, n in ids.items() if n > 1]


def test_everything_spooled_reaches_the_broker_once_in_spool_order(outcome: Outcome) -> None:
    assert outcome.flush.returncode == 0, outcome.flush.stdout + outcome.flush.stderr
    spooled = [r["event"]["id"] for r in outcome.spooled if r.get("kind") == "hook"]
    sent = [m["id"] for m in outcome.hook_messages]
    assert sorted(set(sent)) == sorted(spooled)
    dupes = {i: n for i, n in Counter(sent).items() if n > 1}
    assert not dupes, f"sent more than once: {dupes}"
    assert sent == spooled, "the broker's order is not the spool's"


async def test_waves_of_hooks_while_the_shipper_ships_and_compacts(kafka_bootstrap: str) -> None:
    """Broker up: 4 waves of 12 concurrent hooks of one session while the running shipper
    ships and empties the spool between them. Every event reaches the broker, none twice,
    and the spool ends empty (compacted)."""
    kafka = kafka_names(kafka_bootstrap)
    await s.create_topics(kafka)
    directory = tempfile.mkdtemp(prefix="rt-waves-")
    env = env_for(directory, kafka_bootstrap, kafka.topic_prefix)
    session = "4f0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
    try:
        runs: list[Run] = []
        for wave in range(4):
            runs += hooks_at_once([tool_payload(session, wave * 100 + n) for n in range(12)], env)
        flush = cli("hook", "--flush", "--timeout", "60", env=env)
        assert flush.returncode == 0, flush.stdout + flush.stderr
        left = spool_lines(directory)
        messages = [
            json.loads(v)
            for t, v in await topic_messages(kafka_bootstrap, kafka.topic_prefix)
            if t.endswith("hook_events")
        ]
    finally:
        cli("hook", "--stop", env=env)
        shutil.rmtree(directory, ignore_errors=True)
    assert {r.returncode for r in runs} == {0}
    expected = {f"toolu_rt_{w * 100 + n:04d}" for w in range(4) for n in range(12)}
    sent = Counter(_use_id(m) for m in messages)
    assert set(sent) == expected, sorted(expected - set(sent))
    assert not {k: v for k, v in sent.items() if v > 1}
    assert left == []


def test_a_hook_held_up_past_its_bound_does_not_lose_its_event_silently() -> None:
    """The same loss, made deterministic: one hook process is descheduled (here: stopped
    with SIGSTOP, as an overloaded or swapping machine does to it) for longer than the 2 s
    bound, right after it got its input. The timer's handler ends it with os._exit(0):
    expected, its event is either spooled or counted as dropped (README: "Nothing lost
    silently")."""
    import os
    import signal
    import subprocess
    import time

    from tests import support as s

    directory = tempfile.mkdtemp(prefix="rt-stop-")
    env = env_for(directory, "127.0.0.1:1", "debug.")
    try:
        proc = subprocess.Popen(
            [*s.CLI, "hook"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None
        assert proc.stderr is not None
        assert proc.stdout is not None
        time.sleep(0.3)  # started, waiting for its input
        proc.stdin.write(json.dumps(tool_payload(SESSION, 999)).encode())
        proc.stdin.close()
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(HARD_LIMIT_S + 0.2)
        os.kill(proc.pid, signal.SIGCONT)
        proc.wait(timeout=30)
        err = proc.stderr.read()
        proc.stderr.close()
        proc.stdout.close()
        spooled = [json.loads(line) for line in spool_lines(directory)]
        dropped = status(env)["dropped"]
    finally:
        cli("hook", "--stop", env=env)
        shutil.rmtree(directory, ignore_errors=True)
    assert proc.returncode == 0
    assert spooled or sum(dropped.values()) >= 1, (
        f"nothing spooled, nothing counted (dropped: {dropped}); stderr: {err!r}"
    )
