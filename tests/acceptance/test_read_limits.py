"""The read commands at their edges: --limit 0 or negative, ambiguous id prefixes."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import asyncpg
import orjson
import pytest

from debug_sink.sink.tables import init_connection
from debug_sink.sink.writer import BatchWriter
from tests import support as s
from tests.support import ER, ST
from tests.ui_support import store_dead_letter


async def _write(dsn: str, events: list) -> None:
    pool = await asyncpg.create_pool(s.as_writer(dsn), min_size=1, max_size=2, init=init_connection)
    try:
        await BatchWriter(pool, group_id="redteam", park_grace=600).write(
            s.batch_of(events, itertools.count())
        )
    finally:
        await pool.close()


async def _two_workflows(dsn: str) -> list[str]:
    """Two workflows active now, each with a step and an error."""
    now = s.ts(0)
    ids = []
    events = []
    for _ in range(2):
        corr = s.uid()
        ids.append(corr)
        events.append((ST, s.step(corr, 1, "completed", started_at=now, completed_at=now)))
        events.append((ER, s.error(corr)))
    await _write(dsn, events)
    return ids


def _cli(dsn: str, *args: str):
    return s.run_cli(*args, env=s.cli_env(s.as_reader(dsn)), timeout=120)


async def test_workflows_limit_zero_json(db_dsn: str) -> None:
    """`workflows --limit 0 --json` with workflows stored: valid JSON or a usage error, not a
    traceback."""
    await _two_workflows(db_dsn)
    result = _cli(db_dsn, "workflows", "--since", "2000-01-01", "--limit", "0", "--json")
    assert "Traceback" not in result.stderr, result.stderr[-800:]
    if result.returncode == 0:
        orjson.loads(result.stdout)
    else:
        assert result.returncode == 2, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("workflows", "--limit", "-5"),
        ("errors", "--limit", "-5"),
        ("known-fixes", "TimeoutError", "--limit", "-5"),
        ("dead-letters", "list", "--limit", "-5"),
    ],
)
async def test_negative_limit_is_a_usage_error(db_dsn: str, args: tuple[str, ...]) -> None:
    """A negative --limit: a usage error (exit 2, a message), not a PostgreSQL traceback."""
    await _two_workflows(db_dsn)
    await store_dead_letter(db_dsn, value=b"x", reason="r")
    result = _cli(db_dsn, *args)
    assert "Traceback" not in result.stderr, result.stderr[-800:]
    assert result.returncode in (0, 2), (result.returncode, result.stderr[-800:])


async def test_show_ambiguous_prefix_names_both(db_dsn: str) -> None:
    """Control: a prefix two workflows share is refused with exit 1 (README: "a prefix only
    one workflow has")."""
    a = uuid.UUID("abcdef01-0000-4000-8000-000000000001")
    b = uuid.UUID("abcdef01-0000-4000-8000-000000000002")
    now = s.ts(0)
    await _write(
        db_dsn,
        [(ST, s.step(str(c), 1, "completed", started_at=now, completed_at=now)) for c in (a, b)],
    )
    result = _cli(db_dsn, "show", "abcdef01")
    assert result.returncode == 1
    assert "ambiguous" in result.stderr
    assert str(a) in result.stderr
    assert str(b) in result.stderr
    result = _cli(db_dsn, "show", "abcdef01-0000-4000-8000-00000000000")
    assert result.returncode == 1


async def test_workflows_limit_zero_text_does_not_claim_none(db_dsn: str) -> None:
    """`workflows --limit 0` with two workflows stored must not print "no workflows active"
    (a usage error would do)."""
    await _two_workflows(db_dsn)
    result = _cli(db_dsn, "workflows", "--since", "2000-01-01", "--limit", "0")
    assert "no workflows active" not in result.stdout, (result.returncode, result.stdout)


async def _rows_read(conn: asyncpg.Connection, table: str) -> int:
    """Rows of ``table`` read so far by every session that ended (sequential scans plus
    index entries read)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    value = await conn.fetchval(
        "SELECT coalesce(t.seq_tup_read, 0) + coalesce((SELECT sum(i.idx_tup_read) "
        "FROM pg_stat_user_indexes AS i WHERE i.relid = t.relid), 0) "
        "FROM pg_stat_user_tables AS t WHERE t.relname = $1",
        table,
    )
    return int(value)


async def _settled_rows_read(conn: asyncpg.Connection, table: str, before: int) -> int:
    """:func:`_rows_read` once a session that just ended has reported (it does so as it
    exits, which may come a moment after its client saw the answer)."""
    seen = await _rows_read(conn, table)
    for _ in range(50):
        await asyncio.sleep(0.1)
        now = await _rows_read(conn, table)
        if now == seen and now != before:
            return now
        seen = now
    return seen


async def test_workflows_with_a_filter_nothing_passes_reads_a_bounded_part(db_dsn: str) -> None:
    """20,000 workflows active in the window, each with an error: ``workflows --status ok``
    (which none is) looked at every workflow of the window, summarising each (14 s at
    300,000 workflows). Now it reads a bounded part of the activity stream and says how far
    back it looked."""
    workflows = 20_000
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, occurred_at) "
            "SELECT md5(g::text)::uuid, 'TimeoutError', 'external', 'high', 'x', 'agent', "
            "now() - g * interval '100 ms' FROM generate_series(1, $1::integer) AS g",
            workflows,
        )
        await conn.execute("ANALYZE debug_error_events")
        before = await _rows_read(conn, "debug_error_events")
        result = _cli(db_dsn, "workflows", "--status", "ok", "--limit", "5", "--json")
        assert result.returncode == 0, result.stderr[-800:]
        read = await _settled_rows_read(conn, "debug_error_events", before) - before
    finally:
        await conn.close()
    assert read < workflows, read
    document = orjson.loads(result.stdout)
    assert document["workflows"] == []
    assert document["scanned_to"] is not None
    assert document["next_before"] is not None
    text = _cli(db_dsn, "workflows", "--status", "ok", "--limit", "5").stdout
    assert "looked back to" in text, text
