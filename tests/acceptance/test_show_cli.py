"""``show``, ``patterns`` and ``errors`` run as an operator runs them: as a subprocess.

The commands are registered on the CLI by ``debug_sink.cli.show.register_commands``; these tests
run them through the ``debug-sink`` command (``python -m debug_sink``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import support as s
from tests.sdk_support import correlate, record_review, settings_for, write_direct

SNAPSHOTS = Path(__file__).parent / "snapshots"
CORRELATION_ID = uuid.UUID("5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21")


def run(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command against ``dsn`` as the read-only role, without FORCE_COLOR (output
    compared to snapshots)."""
    return s.run_cli(*args, env=s.cli_env(s.as_reader(dsn)), timeout=60)


def matches_snapshot(name: str, text: str) -> None:
    """Compare with snapshots/<name>; UPDATE_SNAPSHOTS=1 rewrites it instead."""
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
async def recorded(db_dsn: str) -> dict[str, Any]:
    """The review workflow of tests.sdk_support, stored and correlated."""
    settings = settings_for(db_dsn)
    messages, ids = await record_review(settings, CORRELATION_ID)
    await write_direct(settings, messages)
    await correlate(db_dsn)
    return ids


class TestShow:
    async def test_plain_text_snapshot(self, db_dsn: str, recorded: dict[str, Any]) -> None:
        """The timeline as text: steps with status and duration, the error with severity,
        its recovery and its state diff, LLM calls, the skewed agent in causal order."""
        result = run(db_dsn, "show", str(CORRELATION_ID), "--width", "100", "--no-color")
        assert result.returncode == 0, result.stderr
        matches_snapshot("show_review.txt", result.stdout)

    async def test_json(self, db_dsn: str, recorded: dict[str, Any]) -> None:
        """--json gives the summary and the ordered timeline, each error with its diff."""
        result = run(db_dsn, "show", str(CORRELATION_ID), "--json")
        assert result.returncode == 0, result.stderr
        document = orjson.loads(result.stdout)
        assert document["correlation_id"] == str(CORRELATION_ID)
        assert document["summary"]["error_count"] == 1
        kinds = [e["kind"] for e in document["timeline"]]
        assert kinds[:3] == ["snapshot", "transformation", "step"]
        (error,) = [e for e in document["timeline"] if e["kind"] == "error"]
        assert error["id"] == str(recorded["error"])
        assert error["data"]["recoveries"][0]["recovery_strategy"] == "retry"
        assert error["state_diff"]["diff"]["added"] == [
            {"op": "added", "path": "api_token", "after": "[REDACTED]"},
            {"op": "added", "path": "last_error", "after": "timeout"},
        ]

    async def test_unknown_and_malformed_ids(self, db_dsn: str) -> None:
        """An unknown workflow or a malformed id: a clear message and exit code 1."""
        unknown = uuid.uuid4()
        result = run(db_dsn, "show", str(unknown))
        assert result.returncode == 1
        assert result.stdout == ""
        assert f"no debug events for workflow {unknown}" in result.stderr
        result = run(db_dsn, "show", "not-a-uuid")
        assert result.returncode == 1
        assert "is not a correlation id" in result.stderr

    def test_no_database(self) -> None:
        """Without a reachable database: one line on stderr, the 'unavailable' exit code."""
        result = run("postgresql://nobody@127.0.0.1:1/none", "show", str(uuid.uuid4()))
        assert result.returncode == 3
        assert "Traceback" not in result.stderr
        assert "cannot reach PostgreSQL" in result.stderr


class TestPatternsAndErrors:
    async def test_patterns(self, db_dsn: str, recorded: dict[str, Any]) -> None:
        result = run(db_dsn, "patterns", "--width", "100", "--no-color")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "no recovery patterns with at least 3 successes\n"
        result = run(db_dsn, "patterns", "--min-success-count", "1", "--width", "100")
        assert result.returncode == 0, result.stderr
        assert "TimeoutError" in result.stdout
        assert "retry" in result.stdout
        result = run(db_dsn, "patterns", "--min-success-count", "1", "--json")
        (row,) = orjson.loads(result.stdout)
        assert (row["error_type"], row["recovery_strategy"], row["success_count"]) == (
            "TimeoutError",
            "retry",
            1,
        )

    async def test_errors_since(self, db_dsn: str, recorded: dict[str, Any]) -> None:
        result = run(
            db_dsn, "errors", "--since", "2026-11-01T00:00:00Z", "--width", "140", "--no-color"
        )
        assert result.returncode == 0, result.stderr
        matches_snapshot("errors_review.txt", result.stdout)
        result = run(db_dsn, "errors", "--since", "2026-11-01T00:00:00Z", "--json")
        document = orjson.loads(result.stdout)
        assert [g["error_type"] for g in document["groups"]] == ["TimeoutError"]
        result = run(db_dsn, "errors", "--since", "2h", "--no-color")
        assert result.returncode == 0
        assert result.stdout.startswith("no errors since ")

    def test_bad_since(self) -> None:
        result = run("postgresql://x@127.0.0.1:1/x", "errors", "--since", "yesterday")
        assert result.returncode == 2
        assert "neither a duration" in result.stderr
