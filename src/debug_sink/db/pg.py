"""The PostgreSQL boundary: DSN handling and the translation of driver errors.

asyncpg errors are classified here, by class (SQLSTATE-mapped), never by message text, into
the error tree of :mod:`debug_sink.errors`. Messages name ``host:port/database`` only, never
credentials.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from debug_sink.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DebugSinkError,
    MigrationError,
)

#: A connection, whether taken from a pool or opened directly.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

#: Client-side failures of a connection (refused, reset, timed out, or left in a broken
#: protocol state by a server that went away mid-operation): a fresh connection may succeed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

#: Everything the driver raises for a failed database call (to classify with is_transient).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)

#: SQLSTATE classes that mean "the server is going away or not there yet": retry.
_TRANSIENT_CLASSES = ("08", "53", "57", "58")
#: Specific transient SQLSTATEs outside those classes: serialization failure, deadlock.
_TRANSIENT_STATES = ("40001", "40P01")


def redact_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN, for messages: never the user's password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        database = parts.path.lstrip("/") or parts.username or "postgres"
    except ValueError:
        return "<unparseable DSN>"
    return f"{host}:{port}/{database}"


def is_transient(exc: BaseException) -> bool:
    """True for errors that should clear by themselves (connection loss, restart, overload)."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES
    return False


def is_data_error(exc: BaseException) -> bool:
    """True for errors caused by the rows themselves: SQLSTATE classes 22 (data) and 23
    (integrity constraint). A batch failing with one of these can be bisected."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "").startswith(("22", "23"))
    return False


def translate_error(exc: BaseException, dsn: str) -> DebugSinkError:
    """Map a driver or OS error to the error tree, with a one-line message."""
    where = redact_dsn(dsn)
    message = str(exc).replace("\n", " ") or type(exc).__name__
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return ConfigurationError(f"PostgreSQL at {where} rejected the credentials: {message}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigurationError(f"PostgreSQL at {where}: {message}")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return ConfigurationError(f"missing privilege on {where}: {message}")
    if isinstance(exc, asyncpg.DependentObjectsStillExistError):
        detail = f" ({exc.detail})".replace("\n", "; ") if getattr(exc, "detail", None) else ""
        return MigrationError(
            f"rollback blocked: {message}{detail}. Drop or change the dependent "
            "objects first; nothing was rolled back."
        )
    if is_transient(exc):
        return DatabaseUnavailable(f"cannot reach PostgreSQL at {where}: {message}")
    return MigrationError(f"PostgreSQL error on {where}: {message}")
