"""``debug-sink correlate``, ``known-fixes`` and ``purge`` run as an operator would: a
subprocess configured through DEBUG_SINK_* variables."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from debug_sink.dev.embedded import free_port
from tests import support as s


def run(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command against ``dsn``, logging JSON and only warnings (stdout is the answer):
    ``known-fixes`` and ``correlate --report`` as the read-only role, the jobs as the sink's
    writer role."""
    reads = args[0] == "known-fixes" or "--report" in args
    role = s.as_reader(dsn) if reads else s.as_writer(dsn)
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


async def seed_stated(conn: asyncpg.Connection) -> None:
    """Two errors whose recoveries the agents stated: a retry that inference finds too, and
    a hand-over to another agent that inference cannot see."""
    now = await conn.fetchval("SELECT clock_timestamp()")
    for agent in ("planner", "writer"):
        corr, error = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO debug_error_events (id, correlation_id, error_type, error_category, "
            "error_severity, error_message, agent_name, operation_name, occurred_at) "
            "VALUES ($1, $2, 'TimeoutError', 'external', 'high', 'm', 'planner', 'fetch', $3)",
            error,
            corr,
            now - timedelta(minutes=5),
        )
        await conn.execute(
            "INSERT INTO debug_success_events (correlation_id, success_type, operation_name, "
            "agent_name, retry_count, recovers_error_ids, occurred_at) "
            "VALUES ($1, $2, $3, $4, $5, ARRAY[$6::uuid], $7)",
            corr,
            "recovery_success" if agent == "planner" else "task_completion",
            "fetch" if agent == "planner" else "draft",
            agent,
            1 if agent == "planner" else 0,
            error,
            now - timedelta(minutes=4),
        )


class TestCommands:
    """Each command does its job and prints a readable or a JSON answer."""

    async def test_correlate_report(self, db_dsn: str, conn: asyncpg.Connection) -> None:
        """How far inference agrees with the links agents stated, read-only, over a window."""
        empty = run(db_dsn, "correlate", "--report")
        assert empty.returncode == 0, empty.stderr
        assert empty.stdout.strip() == "no stated links to compare inference with (all errors)"
        await seed_stated(conn)
        assert run(db_dsn, "correlate", "--once").returncode == 0

        report = run(db_dsn, "correlate", "--report")
        assert report.returncode == 0, report.stderr
        lines = report.stdout.splitlines()
        assert lines[0] == "inference against the links agents stated (all errors):"
        assert lines[1].split() == ["agreed", "wrong", "missed", "precision", "recall"]
        assert lines[2].split() == ["all", "1", "0", "1", "1.000", "0.500"]
        assert lines[3].split() == ["planner", "1", "0", "1", "1.000", "0.500"]
        as_json = json.loads(run(db_dsn, "correlate", "--report", "--json").stdout)
        assert as_json["total"] == {
            "agent_name": None,
            "agreed": 1,
            "wrong": 0,
            "missed": 1,
            "precision": 1.0,
            "recall": 0.5,
        }
        assert [a["agent_name"] for a in as_json["agents"]] == ["planner"]
        recent = json.loads(run(db_dsn, "correlate", "--report", "--since", "1m", "--json").stdout)
        assert recent["total"]["agreed"] + recent["total"]["missed"] == 0
        assert recent["since"] is not None

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
        assert any("stated" in line for line in lines[:4]), table.stdout
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

    async def test_an_age_before_year_one_keeps_everything(
        self, db_dsn: str, conn: asyncpg.Connection
    ) -> None:
        """999999d is a valid age that reaches before the first date: nothing is that old, so
        nothing goes -- no traceback, in the command or in the setting the service reads."""
        await seed(conn)
        for args, env in (
            (("purge", "--older-than", "999999d", "--dry-run"), {}),
            (("purge", "--older-than", "999999d", "--json"), {}),
            (("purge", "--json"), {"DEBUG_SINK_RETENTION_DAYS": "1000000"}),
        ):
            proc = s.run_cli(
                *args, env=s.cli_env(s.as_writer(db_dsn), DEBUG_SINK_LOG_LEVEL="warning", **env)
            )
            assert proc.returncode == 0, (args, proc.stderr)
            assert "Traceback" not in proc.stderr
        assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 4

    async def test_a_correlator_interval_must_be_seconds_above_zero(self, db_dsn: str) -> None:
        """nan would loop without waiting (hundreds of runs a second), inf never run; a
        negative value is not 'disabled'."""
        for value in ("nan", "inf", "-5", "0", "soon"):
            proc = s.run_cli(
                "correlate", f"--interval={value}", env=s.cli_env(s.as_writer(db_dsn)), timeout=20
            )
            assert proc.returncode == 2, (value, proc.stderr)
            assert "argument --interval: " in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
        setting = s.run_cli(
            "correlate", env=s.cli_env(s.as_writer(db_dsn), DEBUG_SINK_CORRELATOR_INTERVAL="nan")
        )
        assert setting.returncode == 1
        assert "DEBUG_SINK_CORRELATOR_INTERVAL" in setting.stderr, setting.stderr


async def test_the_correlator_loop_waits_out_a_database_that_is_down(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    """``debug-sink correlate`` (the loop, as a sidecar runs it) started while PostgreSQL is
    unreachable keeps trying, as the service's own correlator does, makes its links once
    the database answers, and stops cleanly on SIGTERM -- it used to exit 3 at once."""
    await seed(conn)
    writer = urlsplit(s.as_writer(db_dsn))
    port = free_port()  # nothing listens here yet: connections are refused
    host = writer.hostname or "127.0.0.1"
    behind = urlunsplit(
        writer._replace(netloc=writer.netloc.replace(f":{writer.port}", f":{port}"))
    )
    proc = await asyncio.create_subprocess_exec(
        *s.CLI,
        "correlate",
        "--interval=0.3",
        env=s.cli_env(behind, DEBUG_SINK_LOG_FORMAT="json", DEBUG_SINK_LOG_LEVEL="warning"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def forward(reader: asyncio.StreamReader, writer_: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, writer.port)

        async def pipe(a: asyncio.StreamReader, b: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await a.read(65536):
                    b.write(data)
                    await b.drain()
            b.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer_))

    try:
        await asyncio.sleep(2.0)
        assert proc.returncode is None, "the loop ended while the database was down"
        server = await asyncio.start_server(forward, "127.0.0.1", port)
        try:
            await s.eventually(
                lambda: _links(conn),
                timeout=30,
                what="the correlator made its links once the database answered",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            server.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"job_retry" in err, err.decode()[-2000:]
    assert b"Traceback" not in err


async def _links(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) >= 3 FROM debug_error_success_correlation"))
