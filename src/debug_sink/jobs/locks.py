"""Advisory locks of the periodic jobs: one runner at a time across every replica.

Owns the lock keys -- ``(LOCK_CLASS, hashtext('<schema>:<name>'))`` -- and the statements that
take and release them. Session locks (:func:`try_lock`, :func:`lock`, :func:`unlock`) guard a
whole run; :func:`lock_in_transaction` guards one short transaction.

Guarantees: two holders of one name in one schema never run at once. Not guaranteed:
fairness, or that a lock survives its connection (a lost connection releases it: the work of
that connection is rolled back anyway).
"""

from __future__ import annotations

from typing import Final

from debug_sink.db.pg import Conn

#: First half of every advisory-lock key of the periodic jobs ("debug-sink jobs").
LOCK_CLASS: Final = 0x0DEB5002
#: Lock names; the key is (LOCK_CLASS, hashtext("<schema>:<name>")).
CORRELATOR_LOCK: Final = "correlator"
STATS_LOCK: Final = "known_fix_stats"
RETENTION_LOCK: Final = "retention"


def lock_name(schema: str, name: str) -> str:
    return f"{schema}:{name}"


async def try_lock(conn: Conn, schema: str, name: str) -> bool:
    """Take the session lock ``name`` if free; False when another session holds it."""
    got = await conn.fetchval(
        "SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, lock_name(schema, name)
    )
    return bool(got)


async def lock(conn: Conn, schema: str, name: str) -> None:
    """Wait for the session lock ``name`` (bounded by the session's ``lock_timeout``)."""
    await conn.execute(
        "SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, lock_name(schema, name)
    )


async def lock_in_transaction(conn: Conn, schema: str, name: str) -> None:
    """Wait for the lock ``name`` until the end of the current transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, lock_name(schema, name)
    )


async def unlock(conn: Conn, schema: str, name: str) -> None:
    """Release the session lock ``name``; nothing to do on a lost connection (the server
    released it with the session)."""
    if not conn.is_closed():
        await conn.execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, lock_name(schema, name)
        )
