"""The example workflows of the known-fixes aggregate, kept true when links go.

``known_fix_stats.example_correlation_ids`` holds up to five workflows in which an error of
the row's kind (error type, agent, operation) was recovered by the row's strategy. Links made
add their workflow in the same statement as the counts. Links removed, moved to another
kind or purged take theirs away here, and the row is filled up again from the workflows of
the newest links of its kind that remain.

Guarantees: after :func:`refresh_examples`, every example of the given rows has a link of
its row, and a row has min(5, its recoveries) examples when that many workflows with such
links are among the newest 10,000 errors of its kind. Not guaranteed: the same examples a
recomputation (``correlate --rebuild-known-fixes``) would choose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import orjson

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn

__all__ = ["StatsKey", "keys_of", "refresh_examples"]

#: A known_fix_stats row's key: error type, agent, operation ('' for none), strategy.
StatsKey: TypeAlias = tuple[str, str, str, str]


def keys_of(column: str | None) -> list[StatsKey]:
    """The keys in a statement's ``jsonb_agg(jsonb_build_array(...))`` column (NULL: none)."""
    if column is None:
        return []
    return [(str(t), str(a), str(o), str(s)) for t, a, o, s in orjson.loads(column)]


async def refresh_examples(conn: Conn, keys: Iterable[StatsKey]) -> None:
    """Drop the examples of ``keys``' rows that have no link of the row left, then fill the
    rows up again (one statement each, in the caller's transaction)."""
    unique = sorted(set(keys))
    if not unique:
        return
    columns = [list(column) for column in zip(*unique, strict=True)]
    q = sqlfiles.load("correlator.sql")
    await conn.execute(q["prune_examples"], *columns)
    await conn.execute(q["fill_examples"], *columns)
