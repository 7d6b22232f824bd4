"""Least privilege (`debug-sink migrate grant`): the sink's role writes rows and nothing
else, the read side's role only reads; both are what the rest of the suite runs as."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from debug_sink.db.grants import grant
from debug_sink.db.migrate import migrate_down, migrate_up
from debug_sink.errors import ConfigurationError
from tests import support as s


async def _as(dsn: str, role: str) -> asyncpg.Connection:
    return await asyncpg.connect(s.as_role(dsn, role))


class TestWriter:
    """The writer (``run``) may read and write rows; no DDL, no TRUNCATE, no migrations."""

    async def test_writes_rows(self, db_dsn: str) -> None:
        conn = await _as(db_dsn, s.WRITER_ROLE)
        try:
            corr = uuid.uuid4()
            await conn.execute(
                "INSERT INTO debug_error_events (correlation_id, error_type, error_category, "
                "error_severity, error_message, agent_name) "
                "VALUES ($1, 'E', 'agent', 'low', 'm', 'a')",
                corr,
            )
            await conn.execute(
                "UPDATE debug_error_events SET recovery_attempted = true WHERE correlation_id = $1",
                corr,
            )
            await conn.execute("DELETE FROM debug_error_events WHERE correlation_id = $1", corr)
            await conn.execute("CREATE TEMP TABLE scratch (x int)")
        finally:
            await conn.close()

    @pytest.mark.parametrize(
        "statement",
        [
            "CREATE TABLE intruder (x int)",
            "DROP TABLE debug_error_events",
            "ALTER TABLE debug_error_events ADD COLUMN x int",
            "TRUNCATE debug_error_events",
            "DELETE FROM schema_migrations",
            "UPDATE schema_migrations SET checksum = 'x'",
        ],
    )
    async def test_no_ddl_and_no_migration_table(self, db_dsn: str, statement: str) -> None:
        conn = await _as(db_dsn, s.WRITER_ROLE)
        try:
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(statement)
            assert caught.value.sqlstate == "42501", caught.value
        finally:
            await conn.close()

    async def test_a_ledger_made_again_is_still_not_the_writers(self, empty_db_dsn: str) -> None:
        """After ``migrate down --to 0`` and ``up`` (grant is run once), the re-created
        schema_migrations would get the writer's default privileges: they are taken away."""
        await migrate_up(empty_db_dsn)
        await s.least_privilege_roles(empty_db_dsn)
        await migrate_down(empty_db_dsn, to=0)
        await migrate_up(empty_db_dsn)
        conn = await _as(empty_db_dsn, s.WRITER_ROLE)
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
            for statement in (
                "DELETE FROM schema_migrations",
                "UPDATE schema_migrations SET checksum = 'x'",
                "INSERT INTO schema_migrations (version, description) VALUES (99, 'x')",
                "TRUNCATE schema_migrations",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
            await conn.execute("INSERT INTO sink_offsets VALUES ('g', 't', 0, 1)")
        finally:
            await conn.close()


class TestReader:
    """The reader may SELECT and call the read functions; any write is refused."""

    async def test_reads(self, db_dsn: str) -> None:
        conn = await _as(db_dsn, s.READER_ROLE)
        try:
            assert await conn.fetchval("SELECT count(*) FROM debug_error_events") == 0
            assert await conn.fetch("SELECT * FROM known_fixes('TimeoutError')") == []
            await conn.fetch("SELECT * FROM debug_error_recovery_patterns")
        finally:
            await conn.close()

    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO sink_offsets (group_id, topic, partition, next_offset) "
            "VALUES ('g', 't', 0, 1)",
            "DELETE FROM debug_error_events",
            "UPDATE correlator_state SET seen = NULL",
            "CREATE TABLE intruder (x int)",
        ],
    )
    async def test_cannot_write(self, db_dsn: str, statement: str) -> None:
        conn = await _as(db_dsn, s.READER_ROLE)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        finally:
            await conn.close()


class TestGrantCommand:
    """The command is idempotent, refuses unknown roles, and can create group roles."""

    async def test_idempotent(self, db_dsn: str) -> None:
        for _ in range(2):
            await grant(db_dsn, writer=s.WRITER_ROLE, reader=s.READER_ROLE)

    async def test_unknown_role_is_a_configuration_error(self, db_dsn: str) -> None:
        with pytest.raises(ConfigurationError, match="does not exist"):
            await grant(db_dsn, writer=f"nobody_{uuid.uuid4().hex[:8]}")

    async def test_create_roles(self, db_dsn: str) -> None:
        role = f"dsink_group_{uuid.uuid4().hex[:8]}"
        await grant(db_dsn, reader=role, create_roles=True)
        conn = await asyncpg.connect(db_dsn)
        try:
            login = await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
            assert login is False
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'debug_error_events', 'SELECT')", role
            )
            assert not await conn.fetchval(
                "SELECT has_table_privilege($1, 'debug_error_events', 'INSERT')", role
            )
            await conn.execute(f'DROP OWNED BY "{role}"')
            await conn.execute(f'DROP ROLE "{role}"')
        finally:
            await conn.close()

    def test_cli(self, db_dsn: str) -> None:
        result = s.run_cli(
            "migrate",
            "grant",
            "--writer",
            s.WRITER_ROLE,
            "--reader",
            s.READER_ROLE,
            env=s.cli_env(db_dsn),
        )
        assert result.returncode == 0, result.stderr
        assert f"role '{s.WRITER_ROLE}' may now write rows" in result.stdout
        bad = s.run_cli("migrate", "grant", "--writer", "no one", env=s.cli_env(db_dsn))
        assert bad.returncode == 1
        assert bad.stderr.count("\n") == 1
        assert "not a role name" in bad.stderr
