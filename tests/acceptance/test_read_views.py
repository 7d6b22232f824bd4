"""Every read command as an operator sees it: at 80, 120 and 200 columns, piped, with and
without colour, and ``workflows`` / ``show PREFIX`` to find a workflow.

The data: two recorded code-review workflows (``tests.sdk_support.record_review``: a
TimeoutError recovered by a retry), correlated, and one dead letter.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio

from tests import support as s
from tests.sdk_support import correlate, record_review, settings_for, write_direct

FIRST = uuid.UUID("5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21")
#: Shares FIRST's first eight digits: "5f0c2a8e" is ambiguous, "5f0c2a8e-3" is not.
SECOND = uuid.UUID("5f0c2a8e-0000-4000-8000-000000000002")
SINCE = "2026-11-01T00:00:00Z"
ORIGIN = "debug.error_events[3]@123456789"
ESCAPE = "\x1b["


def run(dsn: str, *args: str, **env: str) -> str:
    """The command's standard output as the read-only role; it must succeed."""
    result = s.run_cli(*args, env=s.cli_env(s.as_reader(dsn), **env), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest_asyncio.fixture(scope="module")
async def stored(module_db: str) -> str:
    """Two workflows, correlated, and a dead letter; the DSN (one database for the module:
    the tests only read)."""
    db_dsn = module_db
    settings = settings_for(db_dsn)
    for corr, tag in ((FIRST, "first"), (SECOND, "second")):
        messages, _ = await record_review(settings, corr, tag=tag)
        await write_direct(settings, messages)
    await correlate(db_dsn)
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            'INSERT INTO sink_dead_letters (topic, partition, "offset", value, error_class, '
            "reason, group_id) VALUES ('debug.error_events', 3, 123456789, $1, 'schema', $2, "
            "'debug-sink')",
            b'{"error_severity": "urgent"}',
            "error_severity: Input should be 'low', 'medium', 'high' or 'critical'",
        )
    finally:
        await conn.close()
    return db_dsn


#: Each read command, and what must appear whole in its text: ids, types, counts, origins.
VIEWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "show": (("show", str(FIRST)), (str(FIRST), "TimeoutError", "errors 1", "step 1.2")),
    "workflows": (
        ("workflows", "--since", SINCE),
        (str(FIRST), str(SECOND), "recovered", "2 workflows"),
    ),
    "errors": (
        ("errors", "--since", SINCE),
        ("TimeoutError", "2/2", str(SECOND), "2 errors"),
    ),
    "patterns": (
        ("patterns", "--min-success-count", "1"),
        ("TimeoutError", "retry"),
    ),
    "known-fixes": (
        ("known-fixes", "TimeoutError"),
        ("retry", "100.0%", str(FIRST), str(SECOND)),
    ),
    "dead-letters": (("dead-letters", "list"), (ORIGIN, "schema", "'critical'")),
}


class TestWidths:
    """Each read command fits 80, 120 and 200 columns and never cuts what tells rows apart."""

    @pytest.mark.parametrize("width", [80, 120, 200])
    @pytest.mark.parametrize("view", sorted(VIEWS))
    async def test_whole_values_at_width(self, stored: str, view: str, width: int) -> None:
        args, whole = VIEWS[view]
        text = run(stored, *args, "--width", str(width), "--no-color")
        for line in text.splitlines():
            assert len(line) <= width, (view, width, line)
        for value in whole:
            assert value in text, (view, width, value, text)

    async def test_errors_counts_are_columns_at_120(self, stored: str) -> None:
        """The case of the issue: at 120 columns ``errors`` is a table whose type, count and
        recovered columns hold the whole values."""
        text = run(stored, "errors", "--since", SINCE, "--width", "120", "--no-color")
        assert re.search(r"^TimeoutError\s+2\s+2\s+high\s+2/2\s+reviewer\s", text, re.M), text

    async def test_piped_output_is_80_columns_or_columns(self, stored: str) -> None:
        """Without --width and without a terminal: $COLUMNS, else 80; no colour."""
        narrow = run(stored, "workflows", "--since", SINCE)
        assert max(len(line) for line in narrow.splitlines()) <= 80
        assert ESCAPE not in narrow
        wide = run(stored, "workflows", "--since", SINCE, COLUMNS="200")
        assert max(len(line) for line in wide.splitlines()) > 80
        assert re.search(rf"^{FIRST}\s+recovered\s", wide, re.M), wide

    @pytest.mark.parametrize("view", sorted(VIEWS))
    async def test_json_everywhere(self, stored: str, view: str) -> None:
        args, _ = VIEWS[view]
        document = orjson.loads(run(stored, *args, "--json"))
        assert document


class TestColour:
    """Colour when forced, and never with NO_COLOR or --no-color."""

    @pytest.mark.parametrize("view", sorted(VIEWS))
    async def test_no_color_removes_escape_codes(self, stored: str, view: str) -> None:
        args, _ = VIEWS[view]
        coloured = run(stored, *args, FORCE_COLOR="1")
        assert ESCAPE in coloured
        assert ESCAPE not in run(stored, *args, FORCE_COLOR="1", NO_COLOR="1")

    async def test_no_color_flag(self, stored: str) -> None:
        text = run(stored, "workflows", "--since", SINCE, "--no-color", FORCE_COLOR="1")
        assert ESCAPE not in text

    def test_empty_no_color_is_unset(self) -> None:
        """no-color.org: an empty NO_COLOR does not count."""
        from debug_sink.cli.common import use_color

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FORCE_COLOR", "1")
            patch.setenv("NO_COLOR", "")
            assert use_color()
            patch.setenv("NO_COLOR", "1")
            assert not use_color()


class TestFindingWorkflows:
    """``workflows`` lists and filters them; ``show`` takes a unique prefix."""

    async def test_filters(self, stored: str) -> None:
        def ids(*args: str) -> list[str]:
            document = orjson.loads(run(stored, "workflows", "--since", SINCE, "--json", *args))
            return [w["correlation_id"] for w in document["workflows"]]

        both = sorted([str(FIRST), str(SECOND)], reverse=True)
        assert ids() == both  # same last activity: the id breaks the tie, descending
        assert ids("--status", "recovered") == both
        assert ids("--status", "failed") == []
        assert ids("--agent", "linter") == both
        assert ids("--agent", "nobody") == []
        assert ids("--error-type", "TimeoutError") == both
        assert ids("--error-type", "ValueError") == []
        assert run(stored, "workflows").startswith("no workflows active since ")

    async def test_a_row(self, stored: str) -> None:
        document = orjson.loads(run(stored, "workflows", "--since", SINCE, "--json"))
        row: dict[str, Any] = next(
            w for w in document["workflows"] if w["correlation_id"] == str(FIRST)
        )
        assert row["status"] == "recovered"
        assert row["agents"] == ["linter", "reviewer", "router"]
        assert (row["error_count"], row["unrecovered_error_count"], row["success_count"]) == (
            1,
            0,
            3,
        )
        assert row["duration_ms"] == pytest.approx(34_450)
        assert row["last_event_at"].startswith("2026-11-01T12:00:34.45")

    async def test_pages(self, stored: str) -> None:
        """--limit 1 gives one row and a cursor; --before CURSOR the next row, then no more."""
        first = orjson.loads(run(stored, "workflows", "--since", SINCE, "--limit", "1", "--json"))
        assert [w["correlation_id"] for w in first["workflows"]] == [str(FIRST)]
        cursor = first["next_before"]
        text = run(stored, "workflows", "--since", SINCE, "--limit", "1", "--no-color")
        assert "older: --before" in text
        assert cursor in text.split()
        second = orjson.loads(
            run(stored, "workflows", "--since", SINCE, "--limit", "1", "--before", cursor, "--json")
        )
        assert [w["correlation_id"] for w in second["workflows"]] == [str(SECOND)]
        assert second["next_before"] is None

    async def test_status_of_failed_and_running_workflows(self, db_dsn: str) -> None:
        """A workflow whose last step failed is failed; one with an open step, recently
        active, is running; one without errors is ok."""
        settings = settings_for(db_dsn)
        messages, _ = await record_review(settings, FIRST, tag="first")
        await write_direct(settings, messages)
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(
                "UPDATE debug_workflow_steps SET status = 'failed' WHERE operation_name = 'lint'"
            )
        finally:
            await conn.close()

        def status() -> str:
            document = orjson.loads(run(db_dsn, "workflows", "--since", SINCE, "--json"))
            (row,) = document["workflows"]
            return str(row["status"])

        assert status() == "failed"
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(
                "UPDATE debug_workflow_steps SET status = 'started', completed_at = NULL, "
                "started_at = clock_timestamp() WHERE operation_name = 'lint'"
            )
            assert status() == "running"
            await conn.execute(
                "UPDATE debug_workflow_steps SET status = 'completed', "
                "completed_at = started_at WHERE operation_name = 'lint'"
            )
            assert status() == "unrecovered", "the correlator has not run"
            await conn.execute("DELETE FROM debug_error_events")
            assert status() == "ok"
        finally:
            await conn.close()

    async def test_show_takes_a_unique_prefix(self, stored: str) -> None:
        assert run(stored, "show", "5f0c2a8e-3", "--no-color").startswith(f"workflow {FIRST}\n")
        assert run(stored, "show", "5F0C2A8E0000", "--no-color").startswith(f"workflow {SECOND}\n")
        ambiguous = s.run_cli("show", "5f0c2a8e", env=s.cli_env(s.as_reader(stored)), timeout=60)
        assert ambiguous.returncode == 1
        assert "ambiguous" in ambiguous.stderr
        assert str(FIRST) in ambiguous.stderr
        assert str(SECOND) in ambiguous.stderr
        for text, message in (("abc0", "no workflow id starts with"), ("xyz", "not a corr")):
            result = s.run_cli("show", text, env=s.cli_env(s.as_reader(stored)), timeout=60)
            assert result.returncode == 1
            assert message in result.stderr


def test_version() -> None:
    from debug_sink.version import package_version

    result = s.run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"debug-sink {package_version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", package_version())
