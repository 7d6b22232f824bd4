"""The PostgreSQL boundary: connecting, and the one translation of driver errors.

Owns:

- :func:`connect`, :func:`connection` and :func:`create_pool` -- every connection debug-sink
  opens comes from here, with its ``search_path``, ``application_name``, TLS and timeouts;
- :func:`translating` -- the one place where asyncpg and OS errors become the error tree of
  :mod:`debug_sink.errors` (``raise ... from exc``), by class (SQLSTATE-mapped), never by
  message text;
- the classification helpers :func:`is_transient` and :func:`is_data_error` for callers that
  decide on a driver error before translating it (the sink's writer bisects data errors).

Guarantees: messages name ``host:port/database`` only, never credentials. Not guaranteed: that
a translated :class:`~debug_sink.errors.TransientError` clears -- callers decide how long to
wait.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from debug_sink.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailable,
    DebugSinkError,
    MigrationError,
    PermanentError,
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
#: Transient SQLSTATEs of a server that answered, but did not do the work (their messages
#: do not say "cannot reach", which sends an operator looking for a network fault that is
#: not there): serialization failure, deadlock, a lock not granted within lock_timeout
#: (another session holds it: an operator's LOCK TABLE, a long migration) ...
_CONFLICT_STATES = ("40001", "40P01", "55P03")
#: ... and a session the server ended for idle_in_transaction_session_timeout or
#: transaction_timeout (a fresh one may succeed), besides class 57's.
_TIMEOUT_ENDED_STATES = ("25P03", "25P04")
_SESSION_ENDED_STATES = ("57P01", "57P02", "57P03", "57P05", *_TIMEOUT_ENDED_STATES)
#: A write refused by a read-only server: a standby, or a primary demoted in a failover while
#: the DSN's address moves to the new one. Waited out like an outage; the message says so.
READ_ONLY_STATE: Final = "25006"
#: Specific transient SQLSTATEs outside the transient classes.
_TRANSIENT_STATES = (*_CONFLICT_STATES, READ_ONLY_STATE, *_TIMEOUT_ENDED_STATES)


#: libpq ``key=value`` pairs: a value is a bare word or single-quoted with ``\\`` escapes.
_CONNINFO_PAIR: Final = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")
#: ``key=value`` keys that become the URL's parts; the others become query parameters.
_URL_PARTS: Final = frozenset({"host", "port", "dbname", "user", "password"})


def parse_conninfo(dsn: str) -> dict[str, str]:
    """The pairs of a libpq key=value DSN (``host=db user=sink password='a b'``).

    Raises ValueError naming the problem, never a value (a value may be the password)."""
    pairs: dict[str, str] = {}
    pos = 0
    text = dsn.strip()
    while pos < len(text):
        match = _CONNINFO_PAIR.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"not a key=value DSN: cannot read it at character {pos}")
        key, value = match[1].lower(), match[2]
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs[key] = value
        pos = match.end()
    if not pairs:
        raise ValueError("the DSN is empty")
    return pairs


#: Appended to the refusal of a URL DSN whose parts are not where they should be.
_ENCODE_HINT: Final = (
    " (a ?, #, / or @ in the password must be percent-encoded: %3F, %23, %2F, %40)"
)


def normalise_dsn(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URL, the form asyncpg reads; a libpq key=value DSN
    is converted. Raises ValueError (with no part of the DSN in its message) when the DSN
    can never work: unknown scheme, a port that is not a number, unreadable pairs."""
    text = dsn.strip()
    if "://" not in text:
        pairs = parse_conninfo(text)
        user = quote(pairs.pop("user", ""), safe="")
        password = pairs.pop("password", None)
        auth = user + (":" + quote(password, safe="") if password is not None else "")
        host = pairs.pop("host", "")
        port = pairs.pop("port", "")
        query = {k: v for k, v in pairs.items() if k not in _URL_PARTS and k != "dbname"}
        if host.startswith("/") or "," in host:
            query["host"] = host  # a socket directory, or several hosts
            host = ""
        netloc = (auth + "@" if auth else "") + host + (":" + port if port else "")
        text = f"postgresql://{netloc}/{quote(pairs.get('dbname', ''), safe='')}"
        if query:
            text += "?" + urlencode(query)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(
            f"the DSN's port is not a number between 0 and 65535{_ENCODE_HINT}"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("the DSN must start with postgresql:// (or be libpq key=value pairs)")
    # A password with a raw ?, # or / ends the host part early: the rest of it becomes the
    # query (asyncpg: "bad query field: '<rest of the password>'"), the fragment or the
    # database name. An '@' in the database name or the fragment is the sign of it (the
    # query may hold one: ?user=name@server).
    if "@" in parts.path or "@" in parts.fragment:
        raise ValueError(f"the DSN has an '@' after its host{_ENCODE_HINT}")
    try:
        parse_qs(parts.query, strict_parsing=True)
    except ValueError:
        raise ValueError(
            "the DSN's query (after '?') is not key=value pairs joined by '&'" + _ENCODE_HINT
        ) from None
    return text


def redact_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN (either form), for messages: never the credentials."""
    try:
        parts = urlsplit(normalise_dsn(dsn))
        host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
        port = parts.port or 5432
        database = parts.path.lstrip("/") or parts.username or "postgres"
    except ValueError:
        return "<unparseable DSN>"
    return f"{host}:{port}/{database}"


def is_transient(exc: BaseException) -> bool:
    """True for errors that should clear by themselves (connection loss, restart, overload).
    Not a DSN the driver refuses to use (``sslmode=bogus``), one whose startup parameters
    or plain-text connection a pooler refuses (:func:`_refused_parameter`,
    :func:`_tls_required`), nor a server certificate that TLS verification refuses (a CA
    that did not sign it, another host name): those never clear, though each reaches the
    client as a failed connection."""
    if (
        isinstance(exc, asyncpg.ClientConfigurationError | ssl.SSLCertVerificationError)
        or _refused_parameter(exc)
        or _tls_required(exc)
    ):
        return False
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES
    return False


def _refused_parameter(exc: BaseException) -> bool:
    """PgBouncer refusing the connection for a startup parameter it does not pass on (e.g.
    ``options`` in the DSN): SQLSTATE 08P01, which would otherwise read as a lost
    connection and be waited for forever."""
    return isinstance(exc, asyncpg.PostgresError) and "unsupported startup parameter" in str(exc)


def _tls_required(exc: BaseException) -> bool:
    """PgBouncer refusing a connection without TLS (``client_tls_sslmode = require``):
    SQLSTATE 08P01, "SSL required". (PostgreSQL itself says so through pg_hba.conf, as an
    authorization error.)"""
    return isinstance(exc, asyncpg.PostgresError) and str(exc).strip() == "SSL required"


def is_read_only(exc: BaseException) -> bool:
    """True for a write the server refused because it is read-only (SQLSTATE 25006)."""
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == READ_ONLY_STATE


def is_data_error(exc: BaseException) -> bool:
    """True for errors caused by the rows themselves: SQLSTATE classes 22 (data) and 23
    (integrity constraint). A batch failing with one of these can be bisected."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "").startswith(("22", "23"))
    return False


#: SQLSTATEs of an object that does not exist: the schema is not (fully) migrated.
_UNDEFINED_STATES = ("42P01", "42883", "42703")


def translate_error(
    exc: BaseException,
    dsn: str | None,
    *,
    permanent: type[PermanentError] = DatabaseError,
    doing: str | None = None,
) -> DebugSinkError:
    """Map a driver or OS error to the error tree, with a one-line message. ``permanent`` is
    the class of errors that are neither transient nor about credentials, privileges or
    missing objects; ``doing`` (e.g. ``"query timeline"``) prefixes the message."""
    where = redact_dsn(dsn) if dsn else "the server"
    at = f" at {where}" if dsn else ""
    message = _message(exc)
    if doing:
        message = f"{doing} failed: {message}"
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return ConfigurationError(f"PostgreSQL at {where} rejected the credentials: {message}")
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return ConfigurationError(f"the PostgreSQL DSN cannot work: {message}")
    if _refused_parameter(exc):
        return ConfigurationError(
            f"PostgreSQL{at} (a pooler: PgBouncer) refused the connection: {message}; remove "
            "that parameter from the DSN, or list it in the pooler's ignore_startup_parameters"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigurationError(
            f"PostgreSQL at {where}: TLS refused the server's certificate: {message}; check "
            "DEBUG_SINK_POSTGRES_SSL_CA (the CA that signed it) and the DSN's host name, or "
            "DEBUG_SINK_POSTGRES_SSL_MODE"
        )
    if _tls_required(exc):
        return ConfigurationError(
            f"PostgreSQL{at} (a pooler: PgBouncer) requires TLS: {message}; set "
            "DEBUG_SINK_POSTGRES_SSL_MODE=require (or verify-full with "
            "DEBUG_SINK_POSTGRES_SSL_CA)"
        )
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
    if is_read_only(exc):
        return DatabaseUnavailable(
            f"PostgreSQL{at} is read-only (a standby, or a failover in progress): {message}"
        )
    if is_transient(exc):
        return DatabaseUnavailable(_transient_message(exc, at, message))
    if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _UNDEFINED_STATES:
        return ConfigurationError(
            f"PostgreSQL{at}: {message}. Is the schema migrated? Run `debug-sink migrate up`"
        )
    return permanent(f"PostgreSQL error{' on ' + where if dsn else ''}: {message}")


def _message(exc: BaseException) -> str:
    """``exc``'s text on one line. A transaction's exit on a connection the server closed
    says only that ("cannot call Transaction.__aexit__(): the underlying connection is
    closed"): the server's reason is the error it interrupted, and is added."""
    message = str(exc).replace("\n", " ") or type(exc).__name__
    cause = exc.__context__
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(cause, DATABASE_ERRORS):
        reason = str(cause).replace("\n", " ")
        if reason and reason not in message:
            message = f"{message} ({reason})"
    return message


def _transient_message(exc: BaseException, at: str, message: str) -> str:
    state = exc.sqlstate if isinstance(exc, asyncpg.PostgresError) else None
    if state is None or state.startswith("08"):
        return f"cannot reach PostgreSQL{at}: {message}"
    if state == "57014":
        return (
            f"PostgreSQL{at} cancelled a statement (statement_timeout, or an operator's "
            f"pg_cancel_backend): {message}"
        )
    if state == "53300":
        return (
            f"PostgreSQL{at} refused a connection: {message} (a `debug-sink run` replica "
            "opens up to DEBUG_SINK_POSTGRES_POOL_SIZE + 2: its pool, the correlator and "
            "the retention purge)"
        )
    if state.startswith("53"):
        return f"PostgreSQL{at} is out of resources: {message}"
    if state in _CONFLICT_STATES:
        return f"PostgreSQL{at} gave up on a lock or a conflict: {message}"
    if state in _SESSION_ENDED_STATES:
        return f"PostgreSQL{at} ended the session: {message}"
    return f"PostgreSQL{at} could not do it now: {message}"


@contextlib.contextmanager
def translating(
    dsn: str | None,
    *,
    permanent: type[PermanentError] = DatabaseError,
    doing: str | None = None,
) -> Iterator[None]:
    """The boundary: a driver error raised inside becomes the error tree (see
    :func:`translate_error`); errors of the tree and everything else pass unchanged."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise translate_error(exc, dsn, permanent=permanent, doing=doing) from exc


def _server_settings(application_name: str) -> dict[str, str]:
    # Only what a pooler passes on: PgBouncer refuses a connection whose startup packet
    # names any other parameter ("unsupported startup parameter: search_path"), so the
    # schema is set by a statement once connected (_session).
    return {"application_name": application_name}


def _session(schema: str | None, statements: Sequence[str] = ()) -> str:
    """The statements that set a session up: ``search_path`` to ``schema`` (a string
    literal: one schema, whatever its name holds), then ``statements``."""
    parts = [] if schema is None else ["SET search_path TO '" + schema.replace("'", "''") + "'"]
    parts.extend(statements)
    return ";\n".join(parts)


#: What a pooled connection's release runs when the caller gives no ``reset``: asyncpg's
#: own reset (session locks, cursors, listeners, settings), after which the session's
#: set-up is run again in the same round trip -- ``RESET ALL`` undoes a ``SET``, so a
#: read-only session would have left the pool able to write after its first release.
_RESET: Final = "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL"


async def connect(
    dsn: str,
    *,
    schema: str | None = None,
    application_name: str = "debug-sink",
    ssl: Any = None,
    timeout: float = 10.0,
    command_timeout: float | None = None,
    permanent: type[PermanentError] = DatabaseError,
) -> asyncpg.Connection[Any]:
    """One connection whose ``search_path`` is ``schema`` (the server's default if None)."""
    with translating(dsn, permanent=permanent):
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            dsn,
            timeout=timeout,
            ssl=ssl,
            command_timeout=command_timeout,
            server_settings=_server_settings(application_name),
        )
        if schema is not None:
            try:
                await conn.execute(_session(schema))
            except BaseException:
                conn.terminate()
                raise
    return conn


#: What a session of work that is long by design runs once connected (see
#: :func:`lift_timeouts`); ``transaction_timeout`` exists from PostgreSQL 17 on.
_NO_TIMEOUTS: Final = "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0"
_NO_TRANSACTION_TIMEOUT: Final = "SET transaction_timeout = 0"


async def lift_timeouts(conn: Conn) -> None:
    """Turn off, for ``conn``'s session only, the timeouts a DBA may set per role or
    database (``ALTER ROLE ... SET statement_timeout``): ``statement_timeout``,
    ``idle_in_transaction_session_timeout`` and ``transaction_timeout``, as pg_dump does.

    For work that is long by design and bounds itself -- a migration, a correlator run (one
    transaction over every new event), a retention pass: under a timeout shorter than it
    needs, such work is cancelled the same way at every attempt, and retrying can never
    finish it. The sink's batches keep the DBA's timeouts (short by design, and a cancelled
    batch is retried). Lock waits stay bounded by each job's own ``lock_timeout``."""
    statements = _NO_TIMEOUTS
    version = conn.get_server_version()
    if version.major >= 17:
        statements += "; " + _NO_TRANSACTION_TIMEOUT
    await conn.execute(statements)


async def close_quietly(conn: asyncpg.Connection[Any]) -> None:
    """Close ``conn``; a connection that cannot close cleanly is terminated (gone either way)."""
    try:
        await conn.close(timeout=5)
    except Exception:
        conn.terminate()


@contextlib.asynccontextmanager
async def connection(
    dsn: str, *, permanent: type[PermanentError] = DatabaseError, **options: Any
) -> AsyncIterator[asyncpg.Connection[Any]]:
    """:func:`connect` (``options`` are its keyword arguments), with driver errors of the
    block translated, and closed after."""
    conn = await connect(dsn, permanent=permanent, **options)
    try:
        with translating(dsn, permanent=permanent):
            yield conn
    finally:
        await close_quietly(conn)


async def create_pool(
    dsn: str,
    *,
    schema: str | None = None,
    application_name: str = "debug-sink",
    ssl: Any = None,
    min_size: int = 1,
    max_size: int = 4,
    init: Callable[[asyncpg.Connection[Any]], Awaitable[None]] | None = None,
    reset: Callable[[asyncpg.Connection[Any]], Awaitable[None]] | None = None,
    session: Sequence[str] = (),
    command_timeout: float | None = None,
    timeout: float = 10.0,
) -> asyncpg.Pool:
    """A pool of :func:`connect`-alike connections, each set up by ``session`` (statements
    such as ``SET``, after ``search_path``) and then ``init``. ``reset`` replaces the
    session reset on release (an open transaction is rolled back either way); without it,
    a release resets the session as asyncpg does and runs ``session`` again, so what it
    sets holds for every use of the connection. ``timeout`` bounds each connection attempt,
    as in :func:`connect` (not asyncpg's pool default of 60 s)."""
    setup = _session(schema, session)

    async def set_up(conn: asyncpg.Connection[Any]) -> None:
        if setup:
            await conn.execute(setup)
        if init is not None:
            await init(conn)

    async def reset_session(conn: asyncpg.Connection[Any]) -> None:
        await conn.execute(f"{_RESET};\n{setup}" if setup else _RESET)

    with translating(dsn):
        pool: asyncpg.Pool | None = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=set_up,
            reset=reset if reset is not None else reset_session,
            ssl=ssl,
            timeout=timeout,
            command_timeout=command_timeout,
            server_settings=_server_settings(application_name),
        )
    assert pool is not None
    return pool
