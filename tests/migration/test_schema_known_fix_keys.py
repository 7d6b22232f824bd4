"""Migration 018: the known-fixes aggregate keyed by the error type and the MD5 of the agent
and operation names; rows kept across it, and the rollback to 017."""

from __future__ import annotations

import asyncpg
import pytest

from debug_sink.db.migrate import MigrationError, migrate_down, migrate_up
from tests.migration.test_migrate import fingerprint

#: The last migration before 018.
BEFORE = 17
#: 255 characters of 4 UTF-8 bytes each, none repeated: too long for the old primary keys.
WIDE = "".join(chr(0x20000 + 97 * i) for i in range(255))


class TestMigration018:
    async def test_rows_stay_and_down_restores_017(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn, to=BEFORE)
        before = await fingerprint(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await conn.execute(
                "INSERT INTO known_fix_occurrences VALUES ('TimeoutError', 'planner', '', 4, now())"
            )

            await migrate_up(empty_db_dsn)

            assert await conn.fetchval("SELECT occurred FROM known_fix_occurrences") == 4
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO known_fix_occurrences VALUES "
                    "('TimeoutError', 'planner', '', 1, now())"
                )
            await migrate_down(empty_db_dsn, to=BEFORE)

            assert await fingerprint(empty_db_dsn) == before
            assert await conn.fetchval("SELECT occurred FROM known_fix_occurrences") == 4
        finally:
            await conn.close()

    async def test_a_kind_017_cannot_hold_blocks_the_rollback(self, db_dsn: str) -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute(
                "INSERT INTO known_fix_occurrences VALUES ($1, $1, $1, 1, now())", WIDE
            )
            with pytest.raises(MigrationError, match="index row size"):
                await migrate_down(db_dsn, to=BEFORE)
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 18
            assert await conn.fetchval("SELECT count(*) FROM known_fix_occurrences") == 1
        finally:
            await conn.close()
