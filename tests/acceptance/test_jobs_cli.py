"""``debug-sink correlate``, ``known-fixes`` and ``purge`` run as an operator would: a
subprocess configured through DEBUG_SINK_* variables."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import timedelta

import asyncpg

from tests import support as s


def run(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command against ``dsn``, logging JSON and only warnings (stdout is the answer):
    ``known-fixes`` as the read-only role, the jobs as the sink's writer role."""
    role = s.as_reader(dsn) if args[0] == "known-fixes" else s.as_writer(dsn)
    env = s.cli_env(role, DEBUG_SINK_LOG_FORMAT="json", DEBUG_SINK_LOG_LEVEL="warning")
    return s.run_cli(*args, env=env)


async def seed(conn: asyncpg.Connection) -> None:
    """Three workflows: two TimeoutErrors recovered by a retry, one never recovered, and an
    old workflow past any retention."""
    now = await conn.fetchval("SELECT clock_timestamp()")
    for i, age in enumerate((timedelta(0), timedelta(0), timedelta(0), timedelta(days=100))):
        corr = uuid.uuid4()
        at = now - age - timedelta(minutes=5)
        await conn.execute(
            "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, operation_name, recovery_attempted, "
            "recovery_strategy, occurred_at) VALUES ($1, 'TimeoutError', 'external', 'high', "
            "'m', 'planner', 'fetch', true, 'retry', $2)",
            corr,
            at,
        )
        if i != 2:
            await conn.execute(
                "INSERT INTO debug_success_events (correlation_id, success_type, "
                "operation_name, agent_name, retry_count, occurred_at) "
                "VALUES ($1, 'recovery_success', 'fetch', 'planner', 1, $2)",
                corr,
                at + timedelta(seconds=2),
            )


class TestCommands:
    """Each command does its job and prints a readable or a JSON answer."""

    async def test_correlate_known_fixes_and_purge(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        await seed(conn)

        once = run(db_dsn, "correlate", "--once", "--json")
        assert once.returncode == 0, once.stderr
        result = json.loads(once.stdout)
        assert (result["ran"], result["new_errors"], result["links_made"]) == (True, 4, 3)

        table = run(db_dsn, "known-fixes", "TimeoutError")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0] == "known fixes for TimeoutError"
        row = next(line for line in lines if line.startswith("retry"))
        assert row.split()[:3] == ["retry", "3", "75.0%"]
        fixes = json.loads(
            run(db_dsn, "known-fixes", "TimeoutError", "--agent", "planner", "--json").stdout
        )
        assert [(f["recovery_strategy"], f["success_count"], f["success_rate"]) for f in fixes] == [
            ("retry", 3, 0.75)
        ]
        assert len(fixes[0]["example_correlation_ids"]) == 3
        none = run(db_dsn, "known-fixes", "KeyError")
        assert none.stdout.strip() == "no recoveries recorded for KeyError"

        dry = run(db_dsn, "purge", "--older-than", "90d", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would delete rows older than" in dry.stdout
        assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 4
        purge = json.loads(run(db_dsn, "purge", "--older-than", "90d", "--json").stdout)
        assert purge["deleted"]["debug_error_events"] == 1
        assert purge["deleted"]["debug_error_success_correlation"] == 1
        fixes = json.loads(run(db_dsn, "known-fixes", "TimeoutError", "--json").stdout)
        assert (fixes[0]["success_count"], fixes[0]["success_rate"]) == (2, 0.6667)

    async def test_bad_age_is_a_one_line_error(self, db_dsn: str) -> None:
        bad = run(db_dsn, "purge", "--older-than", "ninety")
        assert bad.returncode == 1
        assert bad.stderr.strip().splitlines() == [
            "debug-sink: error: invalid age 'ninety': use a number with d (days), h, m or w, "
            "e.g. 90d"
        ]
