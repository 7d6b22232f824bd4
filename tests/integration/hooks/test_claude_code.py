"""Claude Code's hooks end to end: recorded hook inputs through the real ``debug-sink hook``
command (a process per event, the JSON on stdin, as Claude Code runs it) into the broker, the
sink, PostgreSQL, the correlator and ``debug-sink show``; known fixes back to the agent; and
the broker down, then back.

One scenario for the module (the sink's group join and the correlator are paid once):

1. a session whose broker is down starts (its hooks point at a closed port);
2. the recorded session of :mod:`tests.hook_payloads` -- every documented hook event, a
   subagent, an interrupt, a 300,000-character Read response, a secret in a command's
   output -- and a tool response too large to parse (5 MB), with the broker up;
3. the down session goes on until its shipper has found the broker unreachable;
4. the spools flushed (the down one once its port forwards to the broker again), the topics
   read back, the sink run until idle, the correlator run, ``show`` printed;
5. three failures once the history exists: one of a type recovered before, one of a type
   never seen, and the first again with the context switched off.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from debug_sink.hooks import control
from debug_sink.hooks.command import HARD_LIMIT_S
from debug_sink.hooks.handler import MAX_PARSED_BYTES
from debug_sink.hooks.ids import subagent_workflow
from debug_sink.hooks.truncate import MAX_PAYLOAD_BYTES
from debug_sink.settings import TOPIC_SUFFIXES
from tests import hook_payloads as p
from tests import support as s
from tests.conftest import kafka_names
from tests.integration.hooks.relay import Relay

SESSION = "6a1f0c3e-2b4d-4e8f-9a7c-1d2e3f405162"
SUBAGENT = subagent_workflow(SESSION, p.SUBAGENT_ID)
#: The session whose broker is down while it runs.
DOWN_SESSION = "7b2e1d4f-3c5e-4f90-8b6d-2e3f40516273"
#: A session whose tool response is too large to parse.
BIG_SESSION = "9d405f61-5e70-4b12-8d8f-405162738495"
#: The session that fails once the history exists.
LATER_SESSION = "8c3f2e50-4d6f-4a01-9c7e-3f4051627384"
#: The secret in the recorded Bash failure's output.
SECRET = "sk_live_51HcJzKLmNoPqRsTuVwXyZ0123456789abcdEFGH"
BIG_BYTES = 5_000_000
#: Hook events whose tool_name is the row's resource_id.
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest"}
#: What the broker-down session's shipper says on the hook's stderr, once.
BROKER_NOTICE = b"does not acknowledge events; they wait in the spool"


@dataclass
class HookRun:
    """One ``debug-sink hook`` process: what it printed and how long it took, start to end."""

    event: str
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


@dataclass
class Scenario:
    dsn: str
    runs: list[HookRun] = field(default_factory=list)
    big: HookRun | None = None
    down_runs: list[HookRun] = field(default_factory=list)
    #: How many of down_runs ran before the shipper found the broker unreachable.
    down_before_notice: int = 0
    down_status: dict[str, Any] = field(default_factory=dict)
    flush_up: Any = None
    flush_down: Any = None
    flush_again: Any = None
    after_status: dict[str, Any] = field(default_factory=dict)
    #: Every message on the topics, decoded, with its topic.
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw_messages: list[bytes] = field(default_factory=list)
    correlate: Any = None
    show: Any = None
    show_json: dict[str, Any] = field(default_factory=dict)
    known: HookRun | None = None
    unknown: HookRun | None = None
    switched_off: HookRun | None = None


def down_session() -> list[dict[str, Any]]:
    """A short session: a start, a prompt, a failing test run recovered by the next one, the
    end."""
    inputs = p.session(DOWN_SESSION)
    head = [i for i in inputs if i["hook_event_name"] in ("SessionStart", "UserPromptSubmit")]
    bash = [i for i in inputs if i.get("tool_use_id") in ("toolu_05", "toolu_06")]
    end = [i for i in inputs if i["hook_event_name"] == "SessionEnd"]
    return head[:2] + bash + end


def big_session() -> list[dict[str, Any]]:
    """A Bash call whose output is over what the hook parses; the fields in Claude Code's
    order (tool_use_id after the response)."""
    common = {
        "session_id": BIG_SESSION,
        "transcript_path": f"/home/dev/.claude/projects/x/{BIG_SESSION}.jsonl",
        "cwd": "/home/dev/shop",
        "permission_mode": "default",
    }
    command = {"command": "cat build.log"}
    return [
        {
            **common,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": command,
            "tool_use_id": "toolu_big",
        },
        {
            **common,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_input": command,
            "tool_response": {"stdout": "x" * BIG_BYTES, "stderr": "", "interrupted": False},
            "tool_use_id": "toolu_big",
        },
    ]


async def hook(payload: dict[str, Any], env: dict[str, str]) -> HookRun:
    """``debug-sink hook`` with ``payload`` on stdin, as Claude Code runs it; timed from the
    process's start to its end."""
    data = json.dumps(payload).encode()

    def run() -> HookRun:
        started = time.perf_counter()
        result = subprocess.run(
            [*s.CLI, "hook"], input=data, capture_output=True, env=env, timeout=60, check=False
        )
        seconds = time.perf_counter() - started
        event = str(payload.get("hook_event_name"))
        return HookRun(event, result.returncode, result.stdout, result.stderr, seconds)

    return await asyncio.to_thread(run)


async def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(s.run_cli, *args, env=env)


def hook_env(
    directory: str, bootstrap: str, kafka: Any, dsn: str, bytecode: str, **extra: str
) -> dict[str, str]:
    """The environment of Claude Code's hook processes: where the broker is, the topics, the
    database the known fixes come from (read-only), the hook directory; and a bytecode cache
    (as an installed debug-sink has: ~30 processes need not compile the modules each)."""
    env = s.cli_env(
        s.as_reader(dsn),
        PYTHONPYCACHEPREFIX=bytecode,
        DEBUG_SINK_HOOK_DIR=directory,
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DEBUG_SINK_TOPIC_PREFIX=kafka.topic_prefix,
        # Stopped at the end; long enough to outlive the sink run and the correlator.
        DEBUG_SINK_HOOK_IDLE_SECONDS="120",
        **extra,
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


async def _run_scenario(dsn: str, bootstrap: str) -> Scenario:
    kafka = kafka_names(bootstrap)
    await s.create_topics(kafka)
    result = Scenario(dsn)
    up_dir = tempfile.mkdtemp(prefix="dsh-up-")
    down_dir = tempfile.mkdtemp(prefix="dsh-down-")
    bytecode = tempfile.mkdtemp(prefix="dsh-pyc-")
    relay = Relay(bootstrap)  # closed: nothing listens on its port yet
    # The history is seconds old when the later failures ask for it: a known-fixes answer
    # is reused for 1 s here (300 s by default), and the lookup may take up to 1 s on this
    # loaded machine (what the budget bounds is the subject of the unit tests and the bench).
    up = hook_env(
        up_dir,
        bootstrap,
        kafka,
        dsn,
        bytecode,
        DEBUG_SINK_HOOK_CONTEXT_TTL_SECONDS="1",
        DEBUG_SINK_HOOK_CONTEXT_BUDGET_MS="1000",
    )
    down = hook_env(down_dir, relay.address, kafka, dsn, bytecode)
    down_inputs = down_session()
    try:
        for payload in down_inputs[:3]:
            result.down_runs.append(await hook(payload, down))
        for payload in p.session(SESSION):
            result.runs.append(await hook(payload, up))
        pre, post = big_session()
        await hook(pre, up)
        result.big = await hook(post, up)

        async def unreachable() -> bool:
            return control.read_status(down_dir).get("state") == "broker_unreachable"

        await s.eventually(unreachable, timeout=30, what="the down shipper giving up on a try")
        result.down_before_notice = len(result.down_runs)
        for payload in down_inputs[3:]:
            result.down_runs.append(await hook(payload, down))
        status = await cli("hook", "--status", "--json", env=down)
        result.down_status = json.loads(status.stdout)

        result.flush_up = await cli("hook", "--flush", "--timeout", "60", env=up)
        relay.open()  # the broker is back
        result.flush_down = await cli("hook", "--flush", "--timeout", "60", env=down)
        result.flush_again = await cli("hook", "--flush", "--timeout", "10", env=down)
        status = await cli("hook", "--status", "--json", env=down)
        result.after_status = json.loads(status.stdout)

        topics = [kafka.topic_prefix + suffix for suffix in TOPIC_SUFFIXES.values()]
        for tp, records in (await s.read_partitions(bootstrap, topics)).items():
            for record in records:
                result.raw_messages.append(record.value)
                result.messages.append((tp.topic, json.loads(record.value)))

        await s.run_sink(s.sink_settings(dsn, kafka), idle_grace=1.0)
        result.correlate = await cli("correlate", "--once", env=s.cli_env(s.as_writer(dsn)))
        reader = s.cli_env(s.as_reader(dsn))
        result.show = await cli("show", SESSION, "--width", "160", "--no-color", env=reader)
        shown = await cli("show", SESSION, "--json", env=reader)
        result.show_json = json.loads(shown.stdout) if shown.returncode == 0 else {}

        result.known = await hook(p.failure(LATER_SESSION, "toolu_k1", tool="Edit"), up)
        result.unknown = await hook(
            p.failure(
                LATER_SESSION,
                "toolu_k2",
                tool="WebFetch",
                error="Request failed with status code 418",
            ),
            up,
        )
        result.switched_off = await hook(
            p.failure(LATER_SESSION, "toolu_k3", tool="Edit"),
            up | {"DEBUG_SINK_HOOK_CONTEXT": "false"},
        )
        return result
    finally:
        for env in (up, down):
            await cli("hook", "--stop", env=env)
        relay.close()
        for directory in (up_dir, down_dir, bytecode):
            shutil.rmtree(directory, ignore_errors=True)


scenario_run, scenario, test_scenario_runs = s.scenario_fixtures(
    _run_scenario, "recorded Claude Code sessions through `debug-sink hook`, sink, correlator"
)


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def workflow_of(payload: dict[str, Any]) -> str:
    """Where the issue puts an input: the session's workflow, or its subagent's (the events
    from inside a subagent; SubagentStart/Stop are the session's view of it)."""
    inside = payload.get("agent_id") and payload["hook_event_name"] not in (
        "SubagentStart",
        "SubagentStop",
    )
    return SUBAGENT if inside else SESSION


class TestTheCommand:
    """Every hook process exits 0, prints nothing but an answer, and returns within its
    hard bound -- broker up, broker down, input too large to parse."""

    def test_every_run_exits_zero_with_a_clean_stdout(self, scenario: Scenario) -> None:
        runs = [*scenario.runs, *scenario.down_runs]
        assert scenario.big is not None
        runs.append(scenario.big)
        assert {r.event for r in scenario.runs} == p.DOCUMENTED_EVENTS
        assert [(r.event, r.returncode, r.stdout) for r in runs if r.returncode or r.stdout] == []
        assert max(r.seconds for r in runs) < HARD_LIMIT_S, sorted(r.seconds for r in runs)

    def test_nothing_on_stderr_while_all_is_well(self, scenario: Scenario) -> None:
        assert [(r.event, r.stderr) for r in scenario.runs if r.stderr] == []

    def test_the_time_taken_is_reported(
        self, scenario: Scenario, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Not a benchmark (``debug-sink bench`` is): the times of this run, for the log."""
        times = sorted(r.seconds * 1000 for r in scenario.runs)
        assert len(times) == len(p.session(SESSION))
        with capsys.disabled():
            print(
                f"\n  debug-sink hook, {len(times)} processes: median {times[len(times) // 2]:.0f}"
                f" ms, max {times[-1]:.0f} ms"
            )


class TestRows:
    """What the recorded session became in PostgreSQL."""

    async def test_one_hook_events_row_per_input(self, scenario: Scenario) -> None:
        rows = await fetch(
            scenario.dsn,
            "SELECT source, resource_id, correlation_id::text AS workflow FROM hook_events "
            "WHERE metadata->>'claude_session_id' = $1",
            SESSION,
        )
        expected = Counter(
            (
                i["hook_event_name"],
                i.get("tool_name") if i["hook_event_name"] in TOOL_EVENTS else None,
                workflow_of(i),
            )
            for i in p.session(SESSION)
        )
        assert Counter((r["source"], r["resource_id"], r["workflow"]) for r in rows) == expected

    async def test_a_large_tool_response_is_cut_with_a_marker(self, scenario: Scenario) -> None:
        (row,) = await fetch(
            scenario.dsn,
            "SELECT payload, octet_length(payload::text) AS size FROM hook_events "
            "WHERE correlation_id = $1::uuid AND source = 'PostToolUse' "
            "AND metadata->>'tool_use_id' = 'toolu_01'",
            SESSION,
        )
        payload = json.loads(row["payload"])
        content = payload["tool_response"]["file"]["content"]
        assert content.endswith(f"[cut by debug-sink: {p.LARGE_RESPONSE_CHARS} characters in all]")
        assert content.startswith("     1\tline 1 of models.py")
        assert row["size"] <= MAX_PAYLOAD_BYTES + 4096
        assert payload["tool_input"] == {"file_path": "/home/dev/shop/src/models.py"}

    async def test_an_input_too_large_to_parse_is_still_a_row(self, scenario: Scenario) -> None:
        (row,) = await fetch(
            scenario.dsn,
            "SELECT resource_id, payload, metadata FROM hook_events "
            "WHERE correlation_id = $1::uuid AND source = 'PostToolUse'",
            BIG_SESSION,
        )
        assert row["resource_id"] == "Bash"
        marker = json.loads(row["payload"])["debug_sink"]
        assert marker["input_bytes"] > BIG_BYTES
        assert f"over {MAX_PARSED_BYTES}" in marker["unreadable_input"]
        assert json.loads(row["metadata"])["tool_use_id"] == "toolu_big"

    async def test_no_secret_left_the_machine_or_was_stored(self, scenario: Scenario) -> None:
        assert not [m for m in scenario.raw_messages if SECRET.encode() in m]
        leaks = {}
        for table in s.EVENT_TABLES:
            rows = await fetch(
                scenario.dsn, f"SELECT count(*) FROM {table} t WHERE t::text LIKE $1", f"%{SECRET}%"
            )
            leaks[table] = rows[0][0]
        assert set(leaks.values()) == {0}, leaks
        (row,) = await fetch(
            scenario.dsn,
            "SELECT error_message FROM debug_error_events WHERE error_type = 'Bash: exit 1' "
            "AND correlation_id = $1::uuid",
            SESSION,
        )
        assert "export STRIPE_KEY=[REDACTED]" in row["error_message"]

    async def test_errors_by_the_documented_classifier(self, scenario: Scenario) -> None:
        rows = await fetch(
            scenario.dsn,
            "SELECT error_type, operation_name, correlation_id::text AS workflow, "
            "error_category, is_recoverable FROM debug_error_events "
            "WHERE correlation_id = ANY($1::uuid[])",
            [SESSION, SUBAGENT],
        )
        assert {tuple(r) for r in rows} == {
            ("Edit: old_string not found", "Edit", SESSION, "agent", True),
            ("Bash: exit 1", "Bash", SESSION, "external", True),
            ("Grep: not found", "Grep", SUBAGENT, "agent", True),
            ("Bash: interrupted", "Bash", SESSION, "user", False),
        }

    async def test_the_next_success_states_what_it_recovered(self, scenario: Scenario) -> None:
        rows = await fetch(
            scenario.dsn,
            "SELECT s.operation_name, s.success_factors->>'recovery_strategy' AS strategy, "
            "e.error_type FROM debug_success_events s "
            "JOIN debug_error_events e ON e.id = ANY(s.recovers_error_ids) "
            "WHERE s.correlation_id = ANY($1::uuid[]) AND s.success_type = 'recovery_success'",
            [SESSION, SUBAGENT],
        )
        assert {tuple(r) for r in rows} == {
            ("Edit", "retry after Read", "Edit: old_string not found"),
            ("Bash", "retry with changed input", "Bash: exit 1"),
            ("Grep", "retry with changed input", "Grep: not found"),
        }
        assert len(rows) == 3  # one success each, naming one error each

    async def test_the_correlator_links_them_as_stated(self, scenario: Scenario) -> None:
        assert scenario.correlate.returncode == 0, scenario.correlate.stderr
        rows = await fetch(
            scenario.dsn,
            "SELECT e.error_type, c.link_source, c.recovery_strategy, e.recovery_successful "
            "FROM debug_error_events e "
            "LEFT JOIN debug_error_success_correlation c ON c.error_event_id = e.id "
            "WHERE e.correlation_id = ANY($1::uuid[])",
            [SESSION, SUBAGENT],
        )
        assert {tuple(r) for r in rows} == {
            ("Edit: old_string not found", "stated", "retry after Read", True),
            ("Bash: exit 1", "stated", "retry with changed input", True),
            ("Grep: not found", "stated", "retry with changed input", True),
            ("Bash: interrupted", None, None, None),  # resolved by the user, not recovered
        }

    async def test_turns_and_the_subagent_are_steps(self, scenario: Scenario) -> None:
        rows = await fetch(
            scenario.dsn,
            "SELECT step_number, step_type, operation_name, status, step_description "
            "FROM debug_workflow_steps WHERE correlation_id = $1::uuid ORDER BY step_number",
            SESSION,
        )
        assert [tuple(r)[:4] for r in rows] == [
            (1, "turn", "prompt", "completed"),
            (2, "subagent", "Explore", "completed"),
            (3, "turn", "prompt", "completed"),
        ]
        descriptions = [r["step_description"] for r in rows]
        assert descriptions[0] == "turn 1: Fix the cart total: it sums items, not prices."
        assert SUBAGENT in descriptions[1]
        handovers = await fetch(
            scenario.dsn,
            "SELECT correlation_id::text, source_agent, target_agent FROM "
            "agent_transformation_events WHERE correlation_id = ANY($1::uuid[])",
            [SESSION, SUBAGENT],
        )
        assert {tuple(r) for r in handovers} == {
            (SESSION, "claude-code", "Explore"),
            (SUBAGENT, "claude-code", "Explore"),
        }

    async def test_session_start_and_end_are_checkpoints(self, scenario: Scenario) -> None:
        rows = await fetch(
            scenario.dsn,
            "SELECT agent_state FROM debug_state_snapshots WHERE correlation_id = $1::uuid "
            "ORDER BY captured_at",
            SESSION,
        )
        start, end = (json.loads(r["agent_state"]) for r in rows)
        assert (start["hook_event_name"], start["source"]) == ("SessionStart", "startup")
        assert {k: end[k] for k in ("reason", "turns", "tool_failures", "recovered")} == {
            "reason": "prompt_input_exit",
            "turns": 2,
            "tool_failures": 4,
            "recovered": 3,
        }
        assert end["unrecovered_by_tool"] == {}


class TestShow:
    """``debug-sink show <session>`` tells the session's story."""

    def test_the_story(self, scenario: Scenario) -> None:
        assert scenario.show.returncode == 0, scenario.show.stderr
        text = scenario.show.stdout
        assert f"workflow {SESSION}" in text
        assert "steps 3 (0 failed), errors 3 (0 unrecovered), recoveries 2" in text
        assert "llm calls 4, handovers 1" in text
        in_order = [
            "checkpoint",
            "turn 1: Fix the cart total: it sums items, not prices.",
            "Edit: old_string not found",
            "recovered by retry after Read -> recovery_success Edit",
            "Bash: exit 1",
            "export STRIPE_KEY=[REDACTED]",
            "recovered by retry with changed input -> recovery_success Bash",
            "claude-code -> Explore (delegation)",
            "Bash: interrupted",
            "resolved",
            "turn 2: Thanks. Now summarise what changed.",
        ]
        missing = [phrase for phrase in in_order if phrase not in text]
        assert missing == [], text
        positions = [text.find(phrase) for phrase in in_order]
        assert positions == sorted(positions), text
        assert f"subagent Explore (workflow {SUBAGENT})" in text
        assert "state:" not in text  # hook errors carry no state to compare

    def test_json(self, scenario: Scenario) -> None:
        summary = scenario.show_json["summary"]
        assert (summary["error_count"], summary["unrecovered_error_count"]) == (3, 0)
        kinds = Counter(e["kind"] for e in scenario.show_json["timeline"])
        assert kinds == {
            "step": 3,
            "snapshot": 2,
            "error": 3,
            "success": 2,
            "llm_call": 4,
            "transformation": 1,
        }


class TestKnownFixesContext:
    """A failure whose type was recovered before is told how, in the JSON Claude Code reads;
    a type never seen, or the context switched off, gets nothing."""

    def test_a_failure_type_with_history_gets_the_context(self, scenario: Scenario) -> None:
        run = scenario.known
        assert run is not None
        assert run.returncode == 0, run
        assert run.stdout.endswith(b"\n")
        assert run.stdout.count(b"\n") == 1  # one line of JSON
        answer = json.loads(run.stdout)
        assert list(answer) == ["hookSpecificOutput"]
        specific = answer["hookSpecificOutput"]
        assert list(specific) == ["hookEventName", "additionalContext"]
        assert specific["hookEventName"] == "PostToolUseFailure"  # the input's event
        assert specific["additionalContext"].startswith(
            "debug-sink known fixes for `Edit: old_string not found` "
            "(seen once before, recovered once):\n1. retry after Read: 1/1 (100%)"
        )

    def test_an_unknown_failure_type_gets_none(self, scenario: Scenario) -> None:
        run = scenario.unknown
        assert run is not None
        assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")

    def test_switched_off(self, scenario: Scenario) -> None:
        run = scenario.switched_off
        assert run is not None
        assert (run.returncode, run.stdout, run.stderr) == (0, b"", b"")


def of_session(scenario: Scenario, session: str) -> list[tuple[str, dict[str, Any]]]:
    return [(t, m) for t, m in scenario.messages if m.get("session_id") == session]


class TestBrokerDownThenBack:
    """With the broker down the hook still exits 0 at once and spools; the problem is said
    once on stderr; once the broker is back the spool is shipped, each event once."""

    def test_the_hook_is_not_slowed(self, scenario: Scenario) -> None:
        runs = scenario.down_runs
        assert len(runs) == len(down_session())
        assert [(r.returncode, r.stdout) for r in runs] == [(0, b"")] * len(runs)
        assert max(r.seconds for r in runs) < HARD_LIMIT_S

    def test_the_problem_is_said_once(self, scenario: Scenario) -> None:
        before = scenario.down_runs[: scenario.down_before_notice]
        after = scenario.down_runs[scenario.down_before_notice :]
        assert [r.stderr for r in before] == [b""] * len(before)
        assert BROKER_NOTICE in after[0].stderr
        assert b"this is said once" in after[0].stderr
        assert [r.stderr for r in after[1:]] == [b""] * (len(after) - 1)

    def test_events_wait_in_the_spool(self, scenario: Scenario) -> None:
        status = scenario.down_status
        assert status["pending_events"] == len(of_session(scenario, DOWN_SESSION))
        assert status["dropped"] == {}
        assert status["shipper"]["broker_down_since"] is not None
        assert status["last_status"]["state"] == "broker_unreachable"

    def test_shipped_once_when_the_broker_is_back(self, scenario: Scenario) -> None:
        pending = scenario.down_status["pending_events"]
        flushed = scenario.flush_down
        assert flushed.returncode == 0, flushed.stderr
        # The shipper may send them before the flush asks (the broker is back for both).
        assert f"({pending} since the shipper started), dropped 0, 0 waiting" in flushed.stdout
        again = scenario.flush_again
        assert again.returncode == 0
        assert again.stdout.startswith(f"shipped 0 events ({pending} since the shipper started)")
        after = scenario.after_status
        assert (after["pending_events"], after["dropped"]) == (0, {})
        assert after["last_status"]["state"] == "running"

    def test_no_event_is_sent_twice(self, scenario: Scenario) -> None:
        """Every message on the topics is distinct (a step's start and end are two)."""
        doubles = [m for m, n in Counter(scenario.raw_messages).items() if n > 1]
        assert doubles == []
        assert len(of_session(scenario, DOWN_SESSION)) > 0

    async def test_its_rows_and_stated_link(self, scenario: Scenario) -> None:
        hooks = await fetch(
            scenario.dsn,
            "SELECT count(*) FROM hook_events WHERE correlation_id = $1::uuid",
            DOWN_SESSION,
        )
        assert hooks[0][0] == len(down_session())
        links = await fetch(
            scenario.dsn,
            "SELECT e.error_type, c.link_source FROM debug_error_events e "
            "JOIN debug_error_success_correlation c ON c.error_event_id = e.id "
            "WHERE e.correlation_id = $1::uuid",
            DOWN_SESSION,
        )
        assert [tuple(r) for r in links] == [("Bash: exit 1", "stated")]
