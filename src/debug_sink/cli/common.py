"""What the command modules share: connection flags and the settings they give, logging,
JSON output, exit codes, flags that take a length of time.

Owns :func:`add_connection_flags` and :func:`settings_from` (one table maps each flag to the
setting it overrides), :func:`configure` (the commands' logging), :func:`read` (a query on
the database), :func:`print_json`, :func:`duration` and the exit codes.

Guarantees: imports no other ``debug_sink.cli`` module -- they all import this one -- and
nothing heavier than the settings, since ``debug-sink`` loads every command module to build
its parser. Not guaranteed: anything about a particular command; each lives in its module.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar
from uuid import UUID

import orjson

from debug_sink.durations import parse_duration
from debug_sink.errors import ConfigurationError, DebugSinkError
from debug_sink.logs import configure_logging
from debug_sink.read.text import escape_controls, escape_json_controls
from debug_sink.settings import ENV_PREFIX, Settings, load_settings
from debug_sink.signals import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from debug_sink.read.queries import DebugQueries

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "Output",
    "Subparsers",
    "add_bootstrap_flag",
    "add_connection_flags",
    "add_output_flags",
    "configure",
    "duration",
    "output_of",
    "print_json",
    "read",
    "settings_from",
    "use_color",
]

T = TypeVar("T")

#: What ``register(subparsers)`` of a command module receives. A string: argparse's class is
#: generic for type checkers only.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Exit codes: 0 done; an error's own (:attr:`~debug_sink.errors.DebugSinkError.exit_code`),
#: 1 for a permanent one, 3 for a transient one; 2 a usage error (argparse); 130 interrupted.
EXIT_ERROR: Final = DebugSinkError.exit_code

#: Connection flag (its argparse ``dest``) -> the setting it overrides.
_FLAG_SETTINGS: Final = {
    "dsn": "postgres_dsn",
    "schema": "db_schema",
    "bootstrap_servers": "kafka_bootstrap_servers",
    "group_id": "group_id",
}


# -- connection flags and settings --------------------------------------------------------


def add_connection_flags(parser: argparse.ArgumentParser, *, kafka: bool = False) -> None:
    """``--dsn`` and ``--schema``; with ``kafka``, ``--bootstrap-servers`` and ``--group-id``
    (the sink's consumer group) between them."""
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${ENV_PREFIX}POSTGRES_DSN)")
    if kafka:
        add_bootstrap_flag(parser)
        parser.add_argument("--group-id", help=f"consumer group (default: ${ENV_PREFIX}GROUP_ID)")
    parser.add_argument(
        "--schema", help=f"database schema (default: ${ENV_PREFIX}DB_SCHEMA or public)"
    )


def add_json_flag(parser: argparse.ArgumentParser, what: str = "output") -> None:
    """``--json``: machine-readable ``what`` on stdout instead of the text for people."""
    parser.add_argument("--json", action="store_true", help=f"machine-readable {what}")


def add_bootstrap_flag(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` alone, for a command that talks to Kafka only."""
    parser.add_argument(
        "--bootstrap-servers",
        help=f"Kafka bootstrap servers (default: ${ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS)",
    )


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings: the environment, overridden by the connection flags the command has, then
    by ``overrides``. As in :func:`~debug_sink.settings.load_settings`, ``None`` means "not
    given": ``group_id=None`` ignores a ``--group-id`` flag and keeps the environment's."""
    given = {
        setting: getattr(args, flag)
        for flag, setting in _FLAG_SETTINGS.items()
        if hasattr(args, flag)
    }
    return load_settings(**{**given, **overrides})


def configure(settings: Settings, *, level: str | None = None) -> None:
    """Logging to standard error as the settings say; ``level`` instead of theirs."""
    configure_logging(level or settings.log_level, settings.log_format)


def read(settings: Settings, query: Callable[[DebugQueries], Awaitable[T]]) -> T:
    """``query(queries)`` with a :class:`~debug_sink.read.queries.DebugQueries` on the
    settings' database, closed after; the read commands' one event loop."""
    from debug_sink.read.queries import DebugQueries

    async def main() -> T:
        async with await DebugQueries.from_settings(settings) as queries:
            return await query(queries)

    return asyncio.run(main())


# -- lengths of time ----------------------------------------------------------------------


#: The largest count a flag takes: PostgreSQL's ``integer``, what the queries' limits are.
MAX_COUNT: Final = 2**31 - 1


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_COUNT` (a usage error
    otherwise, not a query argument PostgreSQL refuses)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT}, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (a usage error otherwise:
    ``nan`` would make a loop that never waits, ``inf`` one that never runs)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def duration(text: str, *, invalid: str) -> timedelta:
    """``text`` in the one duration grammar (:func:`~debug_sink.durations.parse_duration`).

    Otherwise a :class:`~debug_sink.errors.ConfigurationError` saying ``invalid`` (formatted
    with ``text``): each flag keeps the wording its users' scripts have seen since it came.
    """
    try:
        return parse_duration(text)
    except ConfigurationError:
        raise ConfigurationError(invalid.format(text=text)) from None


def moment_ago(delta: timedelta, invalid: str) -> datetime:
    """Now minus ``delta``; a ConfigurationError saying ``invalid`` when that is before the
    first representable date (``--since 999999999d``)."""
    try:
        return datetime.now(UTC) - delta
    except OverflowError:
        raise ConfigurationError(invalid) from None


# -- output -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """How a read command prints for people: ``width`` columns, with colour or not."""

    width: int
    color: bool


def _columns(text: str) -> int:
    value = int(text)
    if value < 20:
        raise argparse.ArgumentTypeError(f"{value} columns is too narrow (at least 20)")
    return value


def add_output_flags(parser: argparse.ArgumentParser, what: str = "output") -> None:
    """What every read command takes: ``--json``, ``--width`` and ``--no-color``."""
    add_json_flag(parser, what)
    parser.add_argument(
        "--width",
        type=_columns,
        metavar="COLUMNS",
        help="output width (default: the terminal's; $COLUMNS or 80 when not a terminal)",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        help="never use colour (so does a non-empty NO_COLOR environment variable)",
    )


def use_color(no_color: bool = False) -> bool:
    """Colour on standard output: not with ``--no-color`` or a non-empty ``NO_COLOR``
    (no-color.org); with a non-empty ``FORCE_COLOR``; else only on a terminal."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return sys.stdout.isatty()


def terminal_width() -> int:
    """The terminal's width as rich detects it (``COLUMNS``, else the terminal, else 80)."""
    from rich.console import Console

    return Console(file=sys.stdout).width


def output_of(args: argparse.Namespace) -> Output:
    """The :class:`Output` of a command with :func:`add_output_flags`."""
    return Output(width=args.width or terminal_width(), color=use_color(args.no_color))


def print_json(value: Any, *, sort_keys: bool = False) -> None:
    """``value`` as indented JSON and a newline on standard output, UTF-8 whatever the locale,
    with control, bidirectional and invisible characters as ``\\uNNNN`` escapes
    (:func:`~debug_sink.read.text.escape_json_controls`).

    Beyond what orjson knows: ``Decimal`` as a number, any ``UUID`` (asyncpg's own type too)
    as its string, ``timedelta`` as seconds.
    """
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    sys.stdout.flush()
    text = orjson.dumps(value, default=_jsonable, option=option).decode()
    # Agents' text: an 8-bit CSI or a bidi override must reach the terminal as an escape.
    sys.stdout.buffer.write(escape_json_controls(text).encode() + b"\n")
    sys.stdout.buffer.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def printable(value: Any) -> Any:
    """``value`` with every string's control characters, bidirectional overrides and
    invisible characters shown escaped (:func:`~debug_sink.read.text.escape_controls`;
    dicts, lists, tuples and dataclasses walked). Untrusted text goes through this before
    it is printed; the consoles print with markup off, so ``[/x]`` in an agent name is just
    text."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, Mapping):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: printable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if isinstance(getattr(value, f.name), str | Mapping | list | tuple)
        }
        return dataclasses.replace(value, **changes)
    return value
