"""The read commands at their edges: --limit 0 or negative, ambiguous id prefixes."""

from __future__ import annotations

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
