"""Reading the dead-letter table: ``debug-sink dead-letters list``.

Owns the operator's view of rejected messages. Each row keeps the raw message bytes, so a
fixed producer's events can be re-sent; this module only lists and summarises them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from debug_sink.db.pg import translate_error

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` -> timedelta; anything else is a ValueError."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 1h, 7d)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    received_at: datetime
    topic: str
    partition: int
    offset: int
    error_class: str
    reason: str
    value_preview: str
    value_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_class": self.error_class,
            "reason": self.reason,
            "value_preview": self.value_preview,
            "value_bytes": self.value_bytes,
        }


async def list_dead_letters(
    dsn: str,
    *,
    schema: str = "public",
    since: timedelta | None = None,
    topic: str | None = None,
    error_class: str | None = None,
    limit: int = 50,
) -> list[DeadLetterRow]:
    """Newest first."""
    try:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise translate_error(exc, dsn) from exc
    try:
        rows = await conn.fetch(
            'SELECT id, received_at, topic, partition, "offset", error_class, reason, '
            "substring(value FROM 1 FOR 120) AS preview, octet_length(value) AS size "
            "FROM sink_dead_letters "
            "WHERE ($1::timestamptz IS NULL OR received_at >= $1) "
            "AND ($2::text IS NULL OR topic = $2) AND ($3::text IS NULL OR error_class = $3) "
            "ORDER BY id DESC LIMIT $4",
            datetime.now(UTC) - since if since else None,
            topic,
            error_class,
            limit,
        )
    except asyncpg.PostgresError as exc:
        raise translate_error(exc, dsn) from exc
    finally:
        await conn.close()
    return [
        DeadLetterRow(
            r["id"],
            r["received_at"],
            r["topic"],
            r["partition"],
            r["offset"],
            r["error_class"],
            r["reason"],
            (r["preview"] or b"").decode("utf-8", "replace"),
            r["size"] or 0,
        )
        for r in rows
    ]
