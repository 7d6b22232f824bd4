"""The Claude Code hook command against hostile and unlucky inputs, as found by a review from
outside against the README's "Claude Code: hooks instead of code": secrets under long keys
or split by a cut, lone surrogates, a full disk, huge structures, settings that are not JSON,
the hook directory's mode, a clock stepped back."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from debug_sink.hooks.finish import Finisher
from debug_sink.hooks.mapping import map_hook
from debug_sink.settings import Settings

SRC = str(Path(__file__).resolve().parents[3] / "src")


def _env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUG_SINK_")}
    env.update(
        PYTHONPATH=SRC,
        DEBUG_SINK_HOOK_DIR=str(directory),
        DEBUG_SINK_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",  # no broker: events stay spooled
        DEBUG_SINK_HOOK_IDLE_SECONDS="1",
        DEBUG_SINK_HOOK_CONTEXT="false",
    )
    return env


def _hook(raw: bytes, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "debug_sink.hooks", *args],
        input=raw,
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )


def _spooled(directory: Path) -> list[dict]:
    path = directory / "spool" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# Claude Code (Node) writes a lone surrogate as a JSON escape when a tool's output is cut in
# the middle of an emoji (UTF-16 truncation): valid JSON, parsed by Python into a str with a
# surrogate.
LONE_SURROGATE_FAILURE = (
    b'{"session_id":"rt-surrogate","transcript_path":"/t.jsonl","cwd":"/w",'
    b'"hook_event_name":"PostToolUseFailure","tool_name":"Bash","tool_use_id":"toolu_rt1",'
    b'"tool_input":{"command":"pytest"},'
    b'"error":"Exit code 1\\nFAILED test_emoji - assert \'\\ud83d'
    b"' == 'ok'\"}"
)


def test_a_lone_surrogate_in_a_tool_output_keeps_the_event(tmp_path: Path) -> None:
    """README "What gets recorded": every event becomes a hook_events row (and a failure an
    error event); "Nothing lost silently ... what the bound refuses is dropped and counted".
    A PostToolUseFailure whose error text holds a lone surrogate escape spools nothing and
    counts nothing."""
    directory = tmp_path / "hooks"
    env = _env(directory)
    try:
        run = _hook(LONE_SURROGATE_FAILURE, env)
        assert run.returncode == 0
        records = _spooled(directory)
        status = json.loads(_hook(b"", env, "--status", "--json").stdout or b"{}")
        kinds = [r["kind"] for r in records]
        detail = f"spooled kinds={kinds}; status={status}; stderr={run.stderr[-300:]!r}"
        assert "hook" in kinds, detail
        assert "error" in kinds, detail
    finally:
        _hook(b"", env, "--stop")


def test_hook_directory_is_readable_by_the_user_only(tmp_path: Path) -> None:
    """README "Privacy": "its directories are readable by the user only (0700, files
    0600)". The hook directory itself, created by the first hook, is 0755 (umask 022)."""
    directory = tmp_path / "hooks"
    env = _env(directory)
    old = os.umask(0o022)
    try:
        raw = json.dumps(
            {"session_id": "rt-perm", "hook_event_name": "Notification", "message": "hi"}
        ).encode()
        assert _hook(raw, env).returncode == 0
    finally:
        os.umask(old)
        _hook(b"", env, "--stop")
    mode = stat.S_IMODE(directory.stat().st_mode)
    assert mode == 0o700, oct(mode)


def test_a_secret_under_a_long_key_is_redacted_after_the_cut() -> None:
    """README "Privacy": "Redacted before it leaves the machine ... secret-named keys ... in
    tool inputs". A large tool input makes the hook cut keys (to 64 characters) *before* the
    shipper redacts, so a key whose secret-looking part lies past the cut is no longer
    recognised and its value is shipped (and stored) in clear."""
    secret = "hunter2-correct-horse-battery"
    key = "customer_billing_service_primary_database_connection_for_prod_password"
    assert len(key) > 64
    tool_input = {f"file_{i}": "x" * 300 for i in range(190)}  # > 48 KiB even at 256 chars
    tool_input[key] = secret
    hook = {
        "session_id": "rt-secret",
        "hook_event_name": "PreToolUse",
        "tool_name": "mcp__deploy__configure",
        "tool_use_id": "toolu_rt2",
        "tool_input": tool_input,
    }
    finisher = Finisher(Settings())
    shipped = [
        finisher.finish(kind, event).model_dump_json()
        for kind, event in map_hook(hook, {}, time.time()).records
    ]
    assert shipped
    assert not any(secret in text for text in shipped), "the secret leaves the machine"


def test_a_secret_under_a_long_key_is_redacted_when_small() -> None:
    """Control: the same key and value in a small input are redacted."""
    secret = "hunter2-correct-horse-battery"
    key = "customer_billing_service_primary_database_connection_for_prod_password"
    hook = {
        "session_id": "rt-secret2",
        "hook_event_name": "PreToolUse",
        "tool_name": "mcp__deploy__configure",
        "tool_use_id": "toolu_rt3",
        "tool_input": {key: secret},
    }
    finisher = Finisher(Settings())
    shipped = [
        finisher.finish(kind, event).model_dump_json()
        for kind, event in map_hook(hook, {}, time.time()).records
    ]
    assert not any(secret in text for text in shipped)


def _tool_call(tool_use_id: str, content: str) -> bytes:
    return json.dumps(
        {
            "session_id": "rt-full",
            "transcript_path": "/t.jsonl",
            "cwd": "/w",
            "hook_event_name": "PostToolUse",
            "tool_name": "Read",
            "tool_use_id": tool_use_id,
            "tool_input": {"file_path": "/w/a.py"},
            "tool_response": {"content": content},
        }
    ).encode()


def test_a_short_write_to_a_full_spool_is_counted_and_spares_the_next_event(
    tmp_path: Path,
) -> None:
    """README "Nothing lost silently": "what the bound refuses is dropped and counted", and
    the spool module: "Whole records ... a line that is not a record (a write cut by a
    crash) is skipped and counted". When the disk fills during the append (here: a file size
    limit, which makes write() return short exactly as ENOSPC does), Spool.append ignores the
    short count: the cut record is reported as spooled, nothing is counted, and the next
    hook's intact record is glued onto the cut line -- so it is lost too."""
    import resource

    directory = tmp_path / "hooks"
    env = _env(directory)

    def limited() -> None:  # the "disk" has room for 2000 bytes of spool
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    try:
        first = subprocess.run(
            [sys.executable, "-m", "debug_sink.hooks"],
            input=_tool_call("toolu_cut", "z" * 40_000),
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
            preexec_fn=limited,
        )
        assert first.returncode == 0
        _hook(b"", env, "--stop")
        second = _hook(_tool_call("toolu_after", "ok"), env)  # room again
        assert second.returncode == 0
        # The broker is down: whatever is whole must still wait in the spool afterwards.
        _hook(b"", env, "--flush", "--timeout", "3")
        status = json.loads(_hook(b"", env, "--status", "--json").stdout or b"{}")
    finally:
        _hook(b"", env, "--stop")
    lines = (directory / "spool" / "events.jsonl").read_bytes().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line)["event"]["payload"]["tool_use_id"])
        except ValueError:
            parsed.append("<corrupt>")
    # The event written after the disk had room again must be a whole record, waiting...
    assert "toolu_after" in parsed, (parsed, status)
    # ...and the cut one must at least be counted as dropped.
    assert status.get("dropped"), (parsed, status)


def test_structured_tool_response_under_the_parse_limit_is_recorded(tmp_path: Path) -> None:
    """README "Privacy": "A hook's payload is kept within 48 KiB ... a long list or object its
    first 200 entries ... An input over 4 MiB is not parsed at all: its row keeps the session,
    event, tool and tool-use id"; "Nothing lost silently". A 3.5 MiB structured tool response
    (a nested table of numbers, e.g. an MCP query result) is under the parse limit, but
    cutting it (truncate.bounded: up to five full passes over the structure) takes longer than
    the hook's 2 s hard limit: the process gives up, nothing is spooled and nothing counted."""
    directory = tmp_path / "hooks"
    env = _env(directory)
    table = [[[0] * 45 for _ in range(200)] for _ in range(200)]
    raw = json.dumps(
        {
            "session_id": "rt-slow",
            "hook_event_name": "PostToolUse",
            "tool_name": "mcp__warehouse__query",
            "tool_use_id": "toolu_slow",
            "tool_input": {"sql": "select * from cube"},
            "tool_response": table,
        },
        separators=(",", ":"),
    ).encode()
    assert len(raw) < 4 * 1024 * 1024
    try:
        run = _hook(raw, env)
        assert run.returncode == 0
        status = json.loads(_hook(b"", env, "--status", "--json").stdout or b"{}")
    finally:
        _hook(b"", env, "--stop")
    records = _spooled(directory)
    assert records or status.get("dropped"), (run.stderr[-200:], status)


def test_a_list_setting_that_is_not_json_is_said_on_stderr(tmp_path: Path) -> None:
    """README "Never in Claude Code's way": "A broken setting, disk or broker is said once on
    stderr ... and in hook.log". DEBUG_SINK_REDACT_VALUE_PATTERNS given as a bare regex
    instead of a JSON list makes every shipper crash with a pydantic_settings.SettingsError
    traceback (load_settings only converts ValidationError): no hook ever says anything on
    stderr, --status shows no problem, and events wait in the spool for good."""
    directory = tmp_path / "hooks"
    env = _env(directory)
    env["DEBUG_SINK_REDACT_VALUE_PATTERNS"] = "mycorp_[A-Za-z0-9]{32}"
    stderr = b""
    try:
        for i in range(3):
            raw = json.dumps(
                {
                    "session_id": "rt-settings",
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Bash",
                    "tool_use_id": f"toolu_s{i}",
                    "tool_input": {"command": "ls"},
                }
            ).encode()
            run = _hook(raw, env)
            assert run.returncode == 0
            stderr += run.stderr
            time.sleep(1.5)  # let the shipper start (and fail)
        status = json.loads(_hook(b"", env, "--status", "--json").stdout or b"{}")
    finally:
        _hook(b"", env, "--stop")
    assert b"DEBUG_SINK_REDACT_VALUE_PATTERNS" in stderr, (stderr, status)


def test_flush_with_a_list_setting_that_is_not_json_exits_3_not_a_traceback(
    tmp_path: Path,
) -> None:
    """README: "`debug-sink hook --flush` (exit 3 if events are left)". With the same broken
    setting and events waiting, --flush dies with a traceback (exit 1)."""
    directory = tmp_path / "hooks"
    env = _env(directory)
    raw = json.dumps(
        {"session_id": "rt-flush", "hook_event_name": "Notification", "message": "x"}
    ).encode()
    try:
        assert _hook(raw, env).returncode == 0
        _hook(b"", env, "--stop")
        env["DEBUG_SINK_REDACT_VALUE_PATTERNS"] = "mycorp_[A-Za-z0-9]{32}"
        flush = _hook(b"", env, "--flush", "--timeout", "2")
    finally:
        _hook(b"", env, "--stop")
    assert b"Traceback" not in flush.stderr, flush.stderr[-400:]
    assert flush.returncode == 3, (flush.returncode, flush.stderr[-300:])


def test_a_token_cut_by_the_hook_keeps_no_part() -> None:
    """README "Privacy": secret-format values in tool responses are redacted before they
    leave the machine. A tool output over 4096 characters is cut first (truncate.cut_text)
    and redacted after (the shipper): a GitHub token the cut splits is no longer in a known
    format, and its first 19 characters are shipped and stored."""
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    stdout = "x" * (4096 - 4 - 19 - 1) + "\n" + token + "\n" + "y" * 2000
    hook = {
        "session_id": "rt-token",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_use_id": "toolu_rt4",
        "tool_input": {"command": "env"},
        "tool_response": {"stdout": stdout, "stderr": ""},
    }
    finisher = Finisher(Settings())
    shipped = [
        finisher.finish(kind, event).model_dump_json()
        for kind, event in map_hook(hook, {}, time.time()).records
    ]
    assert not any(token[:16] in text for text in shipped), "part of the token is shipped"


def test_subagent_stop_after_the_clock_stepped_back_completes_the_step() -> None:
    """README "What gets recorded": SubagentStart, SubagentStop -> "a subagent step" (started,
    then completed). When the wall clock steps back between the two hooks (an NTP step, a VM
    resumed), mapping.py computes a negative duration_ms for the subagent step (the turn's
    Stop clamps with max(0, ...), this one does not): the shipper's Finisher refuses the
    completed step ('invalid'), so the subagent step stays 'started' for ever."""
    finisher = Finisher(Settings())
    state: dict = {}
    t0 = time.time()
    base = {"session_id": "rt-skew", "transcript_path": "/t.jsonl", "cwd": "/w"}
    map_hook(
        {**base, "hook_event_name": "SubagentStart", "agent_id": "ag1", "agent_type": "Explore"},
        state,
        t0,
    )
    stop = map_hook(
        {**base, "hook_event_name": "SubagentStop", "agent_id": "ag1", "agent_type": "Explore"},
        state,
        t0 - 5.0,  # the clock went back 5 s
    )
    steps = [event for kind, event in stop.records if kind == "step"]
    assert steps
    for event in steps:
        finisher.finish("step", event)  # raises Unfinished: "StepEvent refuses duration_ms"
