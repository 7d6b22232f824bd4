"""Terminal escapes in stored data must not reach the operator's terminal via the CLI.

README "Reading what happened" / cli.common.printable: "text from agents must not move the
cursor or recolour an operator's terminal". Data goes in through the SDK and the sink's own
decode -> BatchWriter path (write_direct), so everything here is what a producer can send.
"""

from __future__ import annotations

import uuid

import orjson

from debug_sink.sdk.emitter import MemoryEmitter
from tests import support as s
from tests.sdk_support import correlate, memory_manager, settings_for, write_direct

#: OSC 8 hyperlink to another site, then clear-screen and a red "all good".
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J\x1b[H\x1b[32mALL GOOD\x1b[0m"
#: C1 CSI (U+009B) -- an 8-bit escape introducer, also one of the characters printable()
#: promises to escape.
C1 = "\x9b2J"


async def _store_error_with_state(dsn: str, good: dict, bad: dict) -> uuid.UUID:
    corr = uuid.uuid4()
    manager = memory_manager()
    await manager.capture_snapshot(corr, "agent", good, "checkpoint")
    step = await manager.start_step(corr, "agent", "op", agent_state=good)
    error = await manager.capture_error_state(
        corr, "agent", "boom", bad, "high", error_type="ToolError", operation_name="op"
    )
    await manager.complete_step(step, "failed", error_event_id=error)
    await manager.close()
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    await write_direct(settings_for(dsn), emitter.messages)
    await correlate(dsn)
    return corr


def _show(dsn: str, corr: uuid.UUID) -> str:
    result = s.run_cli(
        "show", str(corr), "--width", "200", "--no-color", env=s.cli_env(s.as_reader(dsn))
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_show_state_diff_value_passes_terminal_escapes(db_dsn: str) -> None:
    """A string value in the error's state (shown in the state-diff lines under the error)
    must not carry ESC to the terminal."""
    corr = await _store_error_with_state(db_dsn, {"note": "fine"}, {"note": OSC8 + CLEAR})
    out = _show(db_dsn, corr)
    assert "state vs snapshot" in out  # the diff is shown
    assert "\x1b" not in out, repr([line for line in out.splitlines() if "\x1b" in line])


async def test_show_state_diff_key_passes_c1_escape(db_dsn: str) -> None:
    """A key of the error's state (shown as the diff line's path) with a C1 control."""
    corr = await _store_error_with_state(db_dsn, {"note": "fine"}, {"note": "fine", C1: 1})
    out = _show(db_dsn, corr)
    assert "state vs snapshot" in out
    assert "\x9b" not in out, repr([line for line in out.splitlines() if "\x9b" in line])


async def test_show_json_is_valid_with_hostile_state(db_dsn: str) -> None:
    """--json stays valid JSON with control characters in the state (holds, control)."""
    corr = await _store_error_with_state(db_dsn, {"note": "fine"}, {"note": OSC8 + C1})
    result = s.run_cli("show", str(corr), "--json", env=s.cli_env(s.as_reader(db_dsn)))
    assert result.returncode == 0, result.stderr
    orjson.loads(result.stdout)


async def test_rows_at_infinity_and_numbers_beyond_a_double_are_shown(db_dsn: str) -> None:
    """Rows stored before the wire format refused the years 0001 and 9999 may hold
    +-infinity (the driver wrote the extreme datetimes as such); jsonb keeps numbers beyond
    a double exactly (1e400 is 401 digits). The read commands show them, no traceback."""
    import asyncpg

    corr = await _store_error_with_state(db_dsn, {"a": 1}, {"a": 2})
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE debug_error_events SET occurred_at = 'infinity', "
            'metadata = \'{"big": 1e400, "id": 18446744073709551616}\' '
            "WHERE correlation_id = $1",
            corr,
        )
        await conn.execute(
            "UPDATE debug_workflow_steps SET started_at = '-infinity' WHERE correlation_id = $1",
            corr,
        )
    finally:
        await conn.close()
    for args in (
        ("show", str(corr)),
        ("show", str(corr), "--json"),
        ("workflows", "--since", "100000d"),
    ):
        result = s.run_cli(*args, env=s.cli_env(s.as_reader(db_dsn)))
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        assert "nan" not in result.stdout, result.stdout
    shown = s.run_cli("show", str(corr), "--json", env=s.cli_env(s.as_reader(db_dsn)))
    assert '"big"' in shown.stdout
    assert '"id": 1.8446744073709552e+19' in shown.stdout
