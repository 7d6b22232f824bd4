"""Least privilege: what the sink's role and the read side's role may do, granted once.

Owns :func:`grant` -- run by the schema's owner (the role that runs ``debug-sink migrate``)
after the migrations, it gives a *writer* role (``debug-sink run``, with its correlator and
retention) SELECT/INSERT/UPDATE/DELETE on the rows and nothing else, and a *reader* role (every
read command) SELECT and the read functions. Statements in ``sql/grants.sql``.

Guarantees: idempotent (granting twice changes nothing); covers objects of later migrations
by default privileges of the owner. Not guaranteed: that the roles can log in -- operators
create login roles (or members of the granted roles) their own way.
"""

from __future__ import annotations

import re
from typing import Any, Final

from debug_sink.db import sqlfiles
from debug_sink.db.pg import connection
from debug_sink.errors import ConfigurationError, MigrationError

__all__ = ["grant"]

_ROLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def grant(
    dsn: str,
    *,
    schema: str = "public",
    writer: str | None = None,
    reader: str | None = None,
    create_roles: bool = False,
    ssl: Any = None,
) -> list[str]:
    """Grant the writer's and the reader's privileges on ``schema``; the statements run."""
    for role in (r for r in (writer, reader) if r is not None):
        if not _ROLE.fullmatch(role):
            raise ConfigurationError(f"not a role name: {role!r}")
    queries = sqlfiles.load("grants.sql")
    done: list[str] = []
    async with connection(
        dsn,
        schema=schema,
        application_name="debug-sink-migrate",
        ssl=ssl,
        permanent=MigrationError,
    ) as conn:
        database = await conn.fetchval("SELECT current_database()")
        wanted = [(r, n) for r, n in ((writer, "writer"), (reader, "reader")) if r is not None]
        for role, name in wanted:
            names = {
                "schema": _ident(schema),
                "role": _ident(role),
                "role_literal": _literal(role),
                "database": _ident(database),
            }
            if create_roles:
                done.append(queries["create_role"].format(**names))
                await conn.execute(done[-1])
            elif not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                raise ConfigurationError(
                    f"role {role!r} does not exist: create it (CREATE ROLE {role} LOGIN ...) "
                    "or pass --create-roles"
                )
            statements = queries[name].format(**names)
            async with conn.transaction():
                await conn.execute(statements)
            done.append(statements)
    return done
