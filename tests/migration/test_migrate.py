"""The migration runner and ``debug-sink migrate``: ordering, locking, checksums, rollbacks,
and one-line errors. Runs against the real PostgreSQL of the session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from debug_sink.db.migrate import (
    head_version,
    load_migrations,
    migrate_down,
    migrate_up,
    migration_status,
    migrations_dir,
)
from debug_sink.dev.embedded import free_port
from debug_sink.errors import DatabaseUnavailable, MigrationError
from tests import support as s
from tests.conftest import ENV_PG, PASSWORD_ROLE, with_database
from tests.support import run_cli

FINGERPRINT_SQL = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = (SELECT oid FROM ns) AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'v', 'p')
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
       || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind = 'v'
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
  FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
UNION ALL
SELECT 'comment ' || coalesce(c.relname, '') || ' ' || d.objsubid || ' ' || d.description
  FROM pg_description d LEFT JOIN pg_class c ON c.oid = d.objoid
 WHERE d.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = (SELECT oid FROM ns)
                    UNION ALL SELECT oid FROM pg_proc WHERE pronamespace = (SELECT oid FROM ns))
ORDER BY 1
"""

DEBUG_OBJECTS_SQL = """
SELECT c.relname AS name, c.relkind::text AS kind FROM pg_class c
 WHERE c.relnamespace = $1::regnamespace AND c.relname LIKE 'debug\\_%'
UNION ALL
SELECT p.proname, 'function' FROM pg_proc p
 WHERE p.pronamespace = $1::regnamespace AND p.proname LIKE 'debug\\_%'
UNION ALL
SELECT p.proname, 'function' FROM pg_proc p
 WHERE p.pronamespace = $1::regnamespace
   AND p.proname IN ('capture_state_snapshot', 'get_workflow_debug_summary')
"""


async def fingerprint(dsn: str, schema: str = "public") -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [row[0] for row in await conn.fetch(FINGERPRINT_SQL, schema)]
    finally:
        await conn.close()


class TestMigrationFiles:
    """The shipped migration files form a complete, gap-free up/rollback sequence."""

    def test_every_migration_has_a_rollback_and_versions_are_contiguous(self) -> None:
        migrations = load_migrations()
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert len(migrations) >= 6
        assert migrations[4].name == "debug_state_management"
        for migration in migrations:
            assert migration.down_sql.strip(), migration.label

    def test_a_file_recording_another_version_is_refused(self, tmp_path: Path) -> None:
        """A renumbered migration that still writes its old ledger row would leave the ledger
        wrong after a rollback (and overwrite another migration's row on the way up)."""
        for path in migrations_dir().glob("00[12]_*.sql"):
            (tmp_path / path.name).write_text(path.read_text())
        assert [m.version for m in load_migrations(tmp_path)] == [1, 2]
        rollback = tmp_path / "002_rollback_hook_events.sql"
        rollback.write_text(rollback.read_text().replace("version = 2;", "version = 1;"))
        with pytest.raises(MigrationError, match="records version 1 in schema_migrations"):
            load_migrations(tmp_path)

    def test_files_carry_no_transaction_control_or_cascade(self) -> None:
        """The runner owns transactions; rollbacks must never CASCADE into users' objects."""
        for path in sorted(migrations_dir().glob("*.sql")):
            code = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
            words = code.upper().split()
            assert "BEGIN;" not in words, path.name
            assert "COMMIT;" not in words, path.name
            if "_rollback_" in path.name:
                assert "CASCADE" not in code.upper(), path.name


class TestUpDown:
    """up -> down -> up round-trips the catalog exactly; records are real."""

    async def test_round_trip_to_4_gives_identical_catalog(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn)
        before = await fingerprint(empty_db_dsn)
        assert any("debug_state_snapshots" in line for line in before)

        rolled = await migrate_down(empty_db_dsn, to=4)
        assert [m.version for m in rolled] == list(range(head_version(), 4, -1))
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            leftovers = await conn.fetch(DEBUG_OBJECTS_SQL, "public")
            assert [dict(r) for r in leftovers] == []
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
            assert [r["version"] for r in versions] == [1, 2, 3, 4]
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'agent_transformation_events' "
                "AND column_name IN ('state_snapshot_id', 'error_event_id', 'success_event_id')"
            )
            assert columns == []
        finally:
            await conn.close()

        await migrate_up(empty_db_dsn)
        assert await fingerprint(empty_db_dsn) == before

    async def test_records_have_real_duration_and_checksum(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            rows = await conn.fetch(
                "SELECT version, execution_time_ms, checksum "
                "FROM schema_migrations ORDER BY version"
            )
        finally:
            await conn.close()
        by_version = {m.version: m for m in load_migrations()}
        assert [r["version"] for r in rows] == sorted(by_version)
        for row in rows:
            assert row["execution_time_ms"] >= 1
            assert row["checksum"] == by_version[row["version"]].checksum

    async def test_to_stops_at_version_and_rerun_is_a_no_op(self, empty_db_dsn: str) -> None:
        applied = await migrate_up(empty_db_dsn, to=3)
        assert [m.version for m in applied] == [1, 2, 3]
        assert [s.state for s in await migration_status(empty_db_dsn)][:4] == [
            "applied",
            "applied",
            "applied",
            "pending",
        ]
        await migrate_up(empty_db_dsn)
        assert await migrate_up(empty_db_dsn) == []

    async def test_objects_land_in_the_configured_schema(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn, schema="observability")
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            in_public = await conn.fetch(DEBUG_OBJECTS_SQL, "public")
            in_schema = {r["name"] for r in await conn.fetch(DEBUG_OBJECTS_SQL, "observability")}
            # The functions work whatever the caller's search_path is.
            await conn.execute("SET search_path TO pg_catalog")
            snapshot_id = await conn.fetchval(
                "SELECT observability.capture_state_snapshot('checkpoint', gen_random_uuid(), "
                "'agent', '{\"a\": 1}'::jsonb)"
            )
        finally:
            await conn.close()
        assert in_public == []
        assert {
            "debug_state_snapshots",
            "debug_workflow_context",
            "capture_state_snapshot",
            "get_workflow_debug_summary",
        } <= in_schema
        assert snapshot_id is not None
        await migrate_down(empty_db_dsn, schema="observability", to=0)
        assert await fingerprint(empty_db_dsn, "observability") == []


class TestSafety:
    """Changed files, unknown targets and blocked rollbacks are refused, leaving all in place."""

    async def test_changed_applied_migration_is_refused(
        self, empty_db_dsn: str, tmp_path: Path
    ) -> None:
        directory = tmp_path / "migrations"
        shutil.copytree(migrations_dir(), directory)
        await migrate_up(empty_db_dsn, directory=directory, to=3)
        path = next(p for p in directory.glob("002_*.sql") if "_rollback_" not in p.name)
        path.write_text(path.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(MigrationError, match=r"migration 002_\w+ was applied with checksum"):
            await migrate_up(empty_db_dsn, directory=directory)
        with pytest.raises(MigrationError, match="applied migrations must not change"):
            await migrate_down(empty_db_dsn, directory=directory, to=0)
        statuses = await migration_status(empty_db_dsn, directory=directory)
        assert statuses[1].state == "changed"
        assert [s.state for s in statuses[3:]] == ["pending"] * (len(statuses) - 3)

    async def test_unknown_target_is_refused(self, empty_db_dsn: str) -> None:
        with pytest.raises(MigrationError, match="unknown target version 999"):
            await migrate_up(empty_db_dsn, to=999)
        with pytest.raises(MigrationError, match="unknown target version -1"):
            await migrate_down(empty_db_dsn, to=-1)

    async def test_users_view_blocks_rollback_and_leaves_everything(self, db_dsn: str) -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(
                "CREATE VIEW my_critical_errors AS SELECT id, error_type "
                "FROM debug_error_events WHERE error_severity = 'critical'"
            )
            before = await fingerprint(db_dsn)
            with pytest.raises(MigrationError, match="rollback blocked") as caught:
                await migrate_down(db_dsn, to=4)
            assert "\n" not in str(caught.value)
            assert "my_critical_errors" in str(caught.value)
            assert await fingerprint(db_dsn) == before
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
            assert max(versions) == head_version()
        finally:
            await conn.close()

    async def test_concurrent_ups_apply_each_migration_once(self, empty_db_dsn: str) -> None:
        """Two `debug-sink migrate up` processes at once: each file is applied by exactly one."""
        env = s.cli_env(empty_db_dsn)
        procs = [
            await asyncio.create_subprocess_exec(
                *s.CLI,
                "migrate",
                "up",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [await proc.communicate() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        applied_lines = [
            line
            for out, _ in outputs
            for line in out.decode().splitlines()
            if line.startswith("applied ")
        ]
        labels = sorted(line.split()[1] for line in applied_lines)
        assert labels == sorted(m.label for m in load_migrations())


class TestCliErrors:
    """Every operator mistake ends in one clear line on stderr and a non-zero exit code."""

    @staticmethod
    def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]

    def test_unreachable_server(self) -> None:
        port = free_port()
        result = run_cli(
            "migrate", "up", "--dsn", f"postgresql://postgres:s3cret@127.0.0.1:{port}/x"
        )
        self.assert_one_line_error(result, "cannot reach PostgreSQL", f"127.0.0.1:{port}/x")
        assert "s3cret" not in result.stderr
        assert result.returncode == 3

    async def test_a_read_only_server(self, empty_db_dsn: str) -> None:
        """A standby, or a primary being failed over: one line saying the server is
        read-only and to run it again against the primary; exit 3 (transient)."""
        database = empty_db_dsn.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
        admin = await asyncpg.connect(empty_db_dsn)
        try:
            await admin.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'
            )
        finally:
            await admin.close()
        result = run_cli("migrate", "up", "--dsn", empty_db_dsn)
        self.assert_one_line_error(result, "is read-only", "against the primary")
        assert result.returncode == 3

    async def test_bad_credentials(self, pg_dsn: str) -> None:
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
            await admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-one'")
        finally:
            await admin.close()
        good = with_database(pg_dsn, "postgres").replace(
            "postgres@", f"{PASSWORD_ROLE}:right-one@", 1
        )
        try:
            probe = await asyncpg.connect(good.replace("right-one", "wrong-one"))
        except asyncpg.InvalidPasswordError:
            pass
        else:
            await probe.close()
            # The embedded server and the container check it (see conftest's hba_lines);
            # only an external server may trust loopback connections.
            if not os.environ.get(ENV_PG):
                pytest.fail(f"the test server accepted a wrong password for {PASSWORD_ROLE}")
            pytest.skip(f"the server at {ENV_PG} does not check passwords on loopback")
        result = run_cli("migrate", "status", "--dsn", good.replace("right-one", "wrong-one"))
        self.assert_one_line_error(result, "rejected the credentials")
        assert "wrong-one" not in result.stderr

    async def test_missing_privilege(self, empty_db_dsn: str) -> None:
        admin = await asyncpg.connect(empty_db_dsn)
        try:
            await admin.execute("DROP ROLE IF EXISTS dsink_no_create")
            await admin.execute("CREATE ROLE dsink_no_create LOGIN")
            await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await admin.close()
        dsn = empty_db_dsn.replace("postgres@", "dsink_no_create@", 1)
        result = run_cli("migrate", "up", "--dsn", dsn, "--schema", "elsewhere")
        self.assert_one_line_error(result, "missing privilege")

    def test_unknown_target(self, db_dsn: str) -> None:
        result = run_cli("migrate", "down", "--to", "42", "--dsn", db_dsn)
        self.assert_one_line_error(result, "unknown target version 42")

    async def test_blocked_rollback(self, db_dsn: str) -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute("CREATE VIEW users_view AS SELECT * FROM debug_error_events")
        finally:
            await conn.close()
        result = run_cli("migrate", "down", "--to", "4", "--dsn", db_dsn)
        self.assert_one_line_error(result, "rollback blocked", "users_view")

    async def test_changed_migration_exits_non_zero(self, db_dsn: str) -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute("UPDATE schema_migrations SET checksum = 'f00d' WHERE version = 3")
        finally:
            await conn.close()
        result = run_cli("migrate", "up", "--dsn", db_dsn)
        self.assert_one_line_error(result, "was applied with checksum f00d")
        status = run_cli("migrate", "status", "--dsn", db_dsn)
        assert status.returncode == 1
        assert "changed" in status.stdout

    async def test_up_and_down_say_the_version_the_schema_is_at(self, empty_db_dsn: str) -> None:
        """Not the version asked for: ``up --to 3`` leaves a schema at 5 at 5, ``down --to
        10`` one at 5 at 5."""
        await migrate_up(empty_db_dsn, to=5)
        for args in (("up", "--to", "3"), ("down", "--to", "10")):
            result = s.run_cli("migrate", *args, "--dsn", empty_db_dsn)
            assert result.returncode == 0, result.stderr
            assert "is at version 5 (nothing to" in result.stdout, result.stdout
        down = s.run_cli("migrate", "down", "--to", "2", "--dsn", empty_db_dsn)
        assert down.stdout.splitlines()[-1] == "schema 'public' is at version 2"

    def test_status_lists_every_migration(self, db_dsn: str) -> None:
        result = run_cli("migrate", "status", "--dsn", db_dsn)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == head_version()
        assert all(" applied " in line for line in lines)


class TestTlsSettings:
    """``migrate`` connects as every other command does: with the DEBUG_SINK_POSTGRES_SSL_*
    settings, never silently in plain text when the operator asked for TLS."""

    @pytest.mark.parametrize("action", [("up",), ("down", "--to", "5"), ("status",), ("grant",)])
    def test_required_tls_is_not_dropped(self, db_dsn: str, action: tuple[str, ...]) -> None:
        # The test server speaks no TLS: a client that honours `require` cannot connect.
        env = s.cli_env(db_dsn, DEBUG_SINK_POSTGRES_SSL_MODE="require")
        args = (*action, "--writer", "postgres") if action == ("grant",) else action
        result = run_cli("migrate", *args, env=env)
        TestCliErrors.assert_one_line_error(result, "SSL")
        assert result.returncode == 3
        assert run_cli("migrate", "status", "--dsn", db_dsn).returncode == 0

    def test_a_ca_that_does_not_exist(self, db_dsn: str, tmp_path: Path) -> None:
        env = s.cli_env(db_dsn, DEBUG_SINK_POSTGRES_SSL_CA=str(tmp_path / "nope.pem"))
        result = run_cli("migrate", "up", env=env)
        TestCliErrors.assert_one_line_error(result, "DEBUG_SINK_POSTGRES_SSL_CA", "nope.pem")
        assert result.returncode == 1


async def test_a_migration_whose_connection_is_killed_is_not_applied_and_reruns(
    empty_db_dsn: str,
) -> None:
    """The connection of a migration in progress is terminated (a failover, an operator's
    pg_terminate_backend): one transient error saying nothing was applied -- not the
    driver's InterfaceError -- and the next `migrate up` completes the schema."""
    await migrate_up(empty_db_dsn, to=5)
    blocker, admin = await asyncpg.connect(empty_db_dsn), await asyncpg.connect(empty_db_dsn)
    try:
        # Migration 006 alters debug_state_snapshots: it waits for this lock.
        await blocker.execute("BEGIN; LOCK TABLE debug_state_snapshots IN ACCESS EXCLUSIVE MODE")
        running = asyncio.create_task(migrate_up(empty_db_dsn))
        await s.eventually(
            lambda: admin.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'debug-sink-migrate' AND wait_event_type = 'Lock'"
            ),
            timeout=30,
            what="the migration waiting for the lock",
        )
        with pytest.raises(DatabaseUnavailable, match="006_retention_and_write_cost"):
            await asyncio.wait_for(running, 30)
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
        await admin.close()
    statuses = await migration_status(empty_db_dsn)
    assert max(x.version for x in statuses if x.state == "applied") == 5
    await migrate_up(empty_db_dsn)
    assert {x.state for x in await migration_status(empty_db_dsn)} == {"applied"}
