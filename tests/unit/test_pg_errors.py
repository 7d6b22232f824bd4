"""What the db boundary makes of the errors a production server's settings cause: the class
(wait it out, or stop) and a message that names the real cause."""

from __future__ import annotations

import ssl

import asyncpg
import pytest

from debug_sink.db.pg import is_transient, translate_error
from debug_sink.errors import ConfigurationError, DatabaseUnavailable

DSN = "postgresql://sink:secret@db:5432/debug"
exc = asyncpg.exceptions


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            exc.QueryCanceledError("canceling statement due to statement timeout"),
            "cancelled a statement (statement_timeout",
        ),
        (
            exc.TooManyConnectionsError('too many connections for role "sink"'),
            "DEBUG_SINK_POSTGRES_POOL_SIZE + 2",
        ),
        (
            exc.LockNotAvailableError("canceling statement due to lock timeout"),
            "gave up on a lock or a conflict: canceling statement due to lock timeout",
        ),
        (
            exc.AdminShutdownError("terminating connection due to administrator command"),
            "ended the session",
        ),
    ],
)
def test_a_server_that_answered_is_not_called_unreachable(error: BaseException, says: str) -> None:
    """A statement timeout, a connection limit, a lock timeout: transient, but the server
    answered -- "cannot reach PostgreSQL" sent operators looking for a network fault."""
    translated = translate_error(error, DSN)
    assert isinstance(translated, DatabaseUnavailable)
    assert says in str(translated)
    assert "cannot reach" not in str(translated)
    assert "secret" not in str(translated)


@pytest.mark.parametrize(
    "error",
    [
        exc.IdleInTransactionSessionTimeoutError(
            "terminating connection due to idle-in-transaction timeout"
        ),
        exc.TransactionTimeoutError("terminating connection due to transaction timeout"),
    ],
)
def test_a_session_the_server_ended_for_a_timeout_is_transient(error: BaseException) -> None:
    """SQLSTATE class 25, but the server ended the session as it does on a shutdown: a
    fresh connection may succeed (it was a permanent DatabaseError)."""
    assert is_transient(error)
    assert "ended the session" in str(translate_error(error, DSN))


def test_the_reason_a_transaction_lost_its_connection_is_said() -> None:
    """A transaction's exit on a closed connection says only that; the server's reason was
    the error it interrupted (``pg_terminate_backend``)."""
    try:
        try:
            raise exc.AdminShutdownError("terminating connection due to administrator command")
        except exc.AdminShutdownError:
            raise asyncpg.InterfaceError(
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            ) from None
    except asyncpg.InterfaceError as error:
        # ``from None`` hides the context from tracebacks, as asyncpg's re-raise does not;
        # the context is still there, and is what the boundary reads.
        translated = translate_error(error, DSN)
    assert isinstance(translated, DatabaseUnavailable)
    assert "terminating connection due to administrator command" in str(translated)


def test_a_certificate_tls_refuses_is_a_configuration_error() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert not is_transient(error)
    translated = translate_error(error, DSN)
    assert isinstance(translated, ConfigurationError)
    assert "DEBUG_SINK_POSTGRES_SSL_CA" in str(translated)
