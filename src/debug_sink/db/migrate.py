"""Schema migrations: plain SQL files applied in order, each in one transaction.

Owns finding the migration files, applying them up to a version, rolling them back down to a
version, and reporting status. The files live in the repository's top-level ``migrations/``
(shipped inside the wheel as ``debug_sink/_migrations``): ``NNN_name.sql`` and its rollback
``NNN_rollback_name.sql``.

Guarantees:

- every object lands in the configured schema: each file runs after
  ``SET LOCAL search_path TO <schema>``;
- one transaction per migration; a failing migration leaves nothing of itself behind and stops
  the run;
- a session-level advisory lock per schema serialises concurrent runs, so two ``up`` processes
  apply each migration exactly once (the second finds nothing to do);
- each applied migration is recorded in ``schema_migrations`` with the measured
  ``execution_time_ms`` and the SHA-256 of its file; if an applied file has changed since, every
  command refuses with :class:`~debug_sink.errors.MigrationError`.

Driver errors are translated here, at this module's boundary, into the error tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from debug_sink.db.pg import (
    DATABASE_ERRORS,
    Conn,
    close_quietly,
    connect,
    connection,
    is_read_only,
    is_transient,
    lift_timeouts,
    redact_dsn,
    translate_error,
)
from debug_sink.errors import DatabaseUnavailable, DebugSinkError, MigrationError

_FILE = re.compile(r"^(?P<version>\d{3})_(?P<rollback>rollback_)?(?P<name>[a-z0-9_]+)\.sql$")
#: Arbitrary constant first half of the advisory-lock key: "debug-sink migrate".
_LOCK_CLASS = 0x0DEB5001
#: The version a migration file writes to or deletes from the ledger, wherever it names one.
_LEDGER_VERSION = re.compile(
    r"INSERT\s+INTO\s+schema_migrations\b[^;]*?\bVALUES\s*\(\s*(\d+)"
    r"|DELETE\s+FROM\s+schema_migrations\s+WHERE\s+version\s*=\s*(\d+)",
    re.IGNORECASE,
)

#: Only the schema's owner (who migrates) writes the ledger. Run when migration 001 creates
#: it: the writer role's default privileges (``migrate grant``) would otherwise give it
#: INSERT, UPDATE and DELETE on a ledger re-created after ``migrate down --to 0``.
_PROTECT_LEDGER = """
DO $$
DECLARE
  ledger regclass := format('%I.schema_migrations', {schema})::regclass;
  grantee text;
BEGIN
  FOR grantee IN
    SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
      FROM pg_class AS c
     CROSS JOIN LATERAL aclexplode(c.relacl) AS a
      LEFT JOIN pg_roles AS r ON r.oid = a.grantee
     WHERE c.oid = ledger AND a.grantee <> c.relowner
       AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  LOOP
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %s', ledger, grantee);
  END LOOP;
END $$
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    version: int
    name: str
    state: str  # applied | pending | changed | unknown (applied, but no file for it)
    applied_at: datetime | None
    execution_time_ms: int | None


def migrations_dir() -> Path:
    """The shipped migrations: inside the wheel, or the checkout's top-level folder."""
    packaged = resources.files("debug_sink") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "migrations"
    if checkout.is_dir():
        return checkout
    raise MigrationError("no migrations found: the package is installed without its migrations")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration with its rollback, in version order; gaps and orphans are errors."""
    directory = directory or migrations_dir()
    ups: dict[int, tuple[str, str]] = {}
    downs: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"unexpected file in {directory}: {path.name}")
        version = int(match["version"])
        target = downs if match["rollback"] else ups
        if version in target:
            raise MigrationError(f"two migration files for version {version} in {directory}")
        text = path.read_text()
        _check_ledger_version(path.name, version, text)
        if match["rollback"]:
            downs[version] = text
        else:
            ups[version] = (match["name"], text)
    if set(ups) != set(downs):
        missing = sorted(set(ups) ^ set(downs))
        raise MigrationError(f"migrations without an up/rollback pair: {missing}")
    if sorted(ups) != list(range(1, len(ups) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {sorted(ups)}")
    return [Migration(v, ups[v][0], ups[v][1], downs[v]) for v in sorted(ups)]


def _check_ledger_version(name: str, version: int, text: str) -> None:
    """A file that names a ledger version must name its own (a renumbered file is caught here)."""
    for match in _LEDGER_VERSION.finditer(text):
        named = int(match[1] or match[2])
        if named != version:
            raise MigrationError(
                f"{name} records version {named} in schema_migrations, not its own {version}"
            )


@contextlib.asynccontextmanager
async def _locked_connection(
    dsn: str, schema: str, *, create_schema: bool, ssl: Any = None
) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(
        dsn, application_name="debug-sink-migrate", ssl=ssl, permanent=MigrationError
    )
    try:
        await conn.execute("SET lock_timeout = 0; SET client_min_messages = warning")
        # A migration cancelled by a DBA's statement timeout fails the same way every time.
        await lift_timeouts(conn)
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCK_CLASS, schema)
        if create_schema:
            exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            if not exists:
                await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield conn
    except DATABASE_ERRORS as exc:
        raise translate_error(exc, dsn, permanent=MigrationError) from exc
    finally:
        await close_quietly(conn)


def _not_done(exc: BaseException, what: str, dsn: str) -> DebugSinkError:
    """The error of a migration (or rollback) whose transaction failed, ``what`` saying
    what was and was not done: transient (exit 3, run it again) when the connection was
    lost or the server is going away, else a :class:`MigrationError`."""
    cause = exc.__context__
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(cause, DATABASE_ERRORS):
        exc = cause  # the transaction's exit on a dead connection: say why it died
    message = str(exc).replace("\n", " ") or type(exc).__name__
    if is_read_only(exc):
        return DatabaseUnavailable(
            f"{what}: PostgreSQL at {redact_dsn(dsn)} is read-only (a standby, or a failover "
            f"in progress: {message}); run the command again against the primary"
        )
    if is_transient(exc) and isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if not state.startswith("08"):  # the server answered (a lock timeout, a shutdown)
            return DatabaseUnavailable(
                f"{what}: {translate_error(exc, dsn)}; run the command again"
            )
    if is_transient(exc):
        return DatabaseUnavailable(
            f"{what}: the connection to PostgreSQL at {redact_dsn(dsn)} was lost ({message}); "
            "run the command again"
        )
    return MigrationError(f"{what}: {message}")


async def _applied(conn: Conn, schema: str) -> dict[int, asyncpg.Record]:
    table = await conn.fetchval(
        "SELECT to_regclass(format('%I.schema_migrations', $1::text))", schema
    )
    if table is None:
        return {}
    rows = await conn.fetch(
        f"SELECT version, description, checksum, applied_at, execution_time_ms "
        f'FROM "{schema}".schema_migrations'
    )
    return {row["version"]: row for row in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            continue
        if row["checksum"] is not None and row["checksum"] != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was applied with checksum {row['checksum'][:12]} "
                f"but its file now has {migration.checksum[:12]}: applied migrations must not "
                "change; add a new migration instead"
            )


async def _run_file(conn: asyncpg.Connection, schema: str, sql: str) -> float:
    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
    started = time.perf_counter()
    await conn.execute(sql)
    return (time.perf_counter() - started) * 1000


Progress = Callable[[str, Migration, float], None]


async def migrate_up(
    dsn: str,
    *,
    schema: str = "public",
    to: int | None = None,
    on_progress: Progress | None = None,
    directory: Path | None = None,
    ssl: Any = None,
) -> list[Migration]:
    """Apply pending migrations up to ``to`` (default: all). Returns those applied. ``ssl``:
    asyncpg's (:meth:`~debug_sink.settings.Settings.postgres_ssl`)."""
    migrations = load_migrations(directory)
    head = migrations[-1].version
    if to is not None and not 0 <= to <= head:
        raise MigrationError(f"unknown target version {to}: migrations go from 1 to {head}")
    target = head if to is None else to
    done: list[Migration] = []
    async with _locked_connection(dsn, schema, create_schema=True, ssl=ssl) as conn:
        applied = await _applied(conn, schema)
        _check_unchanged(migrations, applied)
        for migration in migrations:
            if migration.version > target or migration.version in applied:
                continue
            try:
                async with conn.transaction():
                    elapsed = await _run_file(conn, schema, migration.up_sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations '
                        "(version, description, execution_time_ms, checksum) "
                        "VALUES ($1, $2, $3, $4) ON CONFLICT (version) DO UPDATE "
                        "SET execution_time_ms = EXCLUDED.execution_time_ms, "
                        "checksum = EXCLUDED.checksum",
                        migration.version,
                        migration.name.replace("_", " "),
                        max(1, round(elapsed)),
                        migration.checksum,
                    )
                    if migration.version == 1:
                        literal = "'" + schema.replace("'", "''") + "'"
                        await conn.execute(_PROTECT_LEDGER.format(schema=literal))
            except DATABASE_ERRORS as exc:
                raise _not_done(
                    exc, f"migration {migration.label} failed and was not applied", dsn
                ) from exc
            done.append(migration)
            if on_progress:
                on_progress("applied", migration, elapsed)
    return done


async def migrate_down(
    dsn: str,
    *,
    schema: str = "public",
    to: int,
    on_progress: Progress | None = None,
    directory: Path | None = None,
    ssl: Any = None,
) -> list[Migration]:
    """Roll back applied migrations above ``to``, newest first. Returns those rolled back."""
    migrations = load_migrations(directory)
    head = migrations[-1].version
    if not 0 <= to <= head:
        raise MigrationError(f"unknown target version {to}: migrations go from 0 to {head}")
    done: list[Migration] = []
    async with _locked_connection(dsn, schema, create_schema=False, ssl=ssl) as conn:
        applied = await _applied(conn, schema)
        _check_unchanged(migrations, applied)
        unknown = sorted(v for v in applied if v > head)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this version of debug-sink does not "
                "know; roll back with the version that applied them"
            )
        timings: list[float] = []
        pending = [m for m in reversed(migrations) if m.version > to and m.version in applied]
        # All requested rollbacks in ONE transaction: a rollback blocked halfway (a user's view
        # on one of our tables) must leave the schema exactly as it was, not half rolled back.
        try:
            async with conn.transaction():
                for migration in pending:
                    timings.append(await _run_file(conn, schema, migration.down_sql))
                    # The ledger row goes with the rollback, whatever the file does (the
                    # rollback of 001 drops the ledger itself).
                    if migration.version > 1:
                        await conn.execute(
                            f'DELETE FROM "{schema}".schema_migrations WHERE version = $1',
                            migration.version,
                        )
                    done.append(migration)
        except asyncpg.DependentObjectsStillExistError as exc:
            raise translate_error(exc, dsn, permanent=MigrationError) from exc
        except DATABASE_ERRORS as exc:
            failed = pending[len(done)].label if len(done) < len(pending) else "?"
            raise _not_done(
                exc, f"rollback of {failed} failed; nothing was rolled back", dsn
            ) from exc
        if on_progress:
            for migration, elapsed in zip(done, timings, strict=True):
                on_progress("rolled back", migration, elapsed)
    return done


async def migration_status(
    dsn: str, *, schema: str = "public", directory: Path | None = None, ssl: Any = None
) -> list[MigrationStatus]:
    """Each known or applied migration with its state; ``changed`` marks an edited file."""
    migrations = load_migrations(directory)
    async with connection(
        dsn, application_name="debug-sink-migrate", ssl=ssl, permanent=MigrationError
    ) as conn:
        applied = await _applied(conn, schema)
    result: list[MigrationStatus] = []
    known = {m.version for m in migrations}
    for migration in migrations:
        row = applied.get(migration.version)
        if row is None:
            state = "pending"
        elif row["checksum"] is not None and row["checksum"] != migration.checksum:
            state = "changed"
        else:
            state = "applied"
        result.append(
            MigrationStatus(
                migration.version,
                migration.name,
                state,
                row["applied_at"] if row else None,
                row["execution_time_ms"] if row else None,
            )
        )
    for version in sorted(set(applied) - known):
        row = applied[version]
        result.append(
            MigrationStatus(
                version,
                str(row["description"]),
                "unknown",
                row["applied_at"],
                row["execution_time_ms"],
            )
        )
    return result


def head_version(directory: Path | None = None) -> int:
    return load_migrations(directory)[-1].version


async def require_schema(conn: Conn, schema: str) -> None:
    """Refuse to run against a schema that lacks this version's migrations (e.g. a new sink
    rolled out before ``migrate up``: it would fail on its first batch instead)."""
    applied = max(await _applied(conn, schema), default=0)
    needed = head_version()
    if applied < needed:
        raise MigrationError(
            f"the database schema {schema!r} is at migration {applied}; this version of "
            f"debug-sink needs migration {needed}: run `debug-sink migrate up` first"
        )


def status_rows(statuses: list[MigrationStatus]) -> list[dict[str, Any]]:
    return [
        {
            "version": s.version,
            "name": s.name,
            "state": s.state,
            "applied_at": s.applied_at.isoformat() if s.applied_at else None,
            "execution_time_ms": s.execution_time_ms,
        }
        for s in statuses
    ]
