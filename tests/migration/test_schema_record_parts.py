"""Migration 014: parked events and dead letters are unique per (topic, partition, offset,
part), so several events of one record can wait or be rejected side by side; its rollback
refuses to drop any of them."""

from __future__ import annotations

import asyncpg
import pytest

from debug_sink.db.migrate import migrate_down, migrate_up
from debug_sink.errors import MigrationError

PARK = """
INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for, expires_at,
                                topic, partition, "offset", part)
VALUES ('step', gen_random_uuid(), gen_random_uuid(), '{}', ARRAY[gen_random_uuid()],
        clock_timestamp() + interval '1h', 'otlp', 0, 7, $1)
ON CONFLICT (topic, partition, "offset", part) DO NOTHING
"""
LETTER = """
INSERT INTO sink_dead_letters (topic, partition, "offset", error_class, reason, group_id, part)
VALUES ('otlp', 0, 7, 'otlp_span', 'r', 'g', $1)
ON CONFLICT (topic, partition, "offset", part) DO NOTHING
"""


class TestRecordParts:
    """Parts of one record are distinct rows; the same part twice is one."""

    async def test_parts_side_by_side_and_rollback_guard(self, empty_db_dsn: str) -> None:
        await migrate_up(empty_db_dsn)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            for part in (0, 1, 2, 1):
                await conn.execute(PARK, part)
                await conn.execute(LETTER, part)
            assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 3
            assert await conn.fetchval("SELECT count(*) FROM sink_dead_letters") == 3
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(PARK, -1)
        finally:
            await conn.close()

        with pytest.raises(MigrationError, match="later parts of multi-event records"):
            await migrate_down(empty_db_dsn, to=13)

        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await conn.execute("DELETE FROM sink_parked_events WHERE part > 0")
            await conn.execute("DELETE FROM sink_dead_letters WHERE part > 0")
        finally:
            await conn.close()
        await migrate_down(empty_db_dsn, to=13)
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            columns = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE column_name = 'part' "
                "AND table_name IN ('sink_parked_events', 'sink_dead_letters')"
            )
            assert columns == 0
            assert await conn.fetchval("SELECT count(*) FROM sink_parked_events") == 1
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    'INSERT INTO sink_dead_letters (topic, partition, "offset", error_class, '
                    "reason, group_id) VALUES ('otlp', 0, 7, 'x', 'r', 'g')"
                )
        finally:
            await conn.close()
