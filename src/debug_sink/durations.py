"""The one grammar for a length of time on the command line: ``30s``, ``15m``, ``2h``, ``7d``,
``2w``, or a bare whole number of days (``90``).

Owns :func:`parse_duration` (text -> ``timedelta``) and :func:`ago` (a duration before now).
Whitespace around the parts and upper-case units are accepted; fractions, signs and other
units are not. Every failure -- including an amount too large for a ``timedelta`` or for a
date -- is a :class:`~debug_sink.errors.ConfigurationError` with one clear line, never a
traceback.

Also owns the one grammar for a point in time, :func:`parse_time`: ISO 8601, ``Z`` or an
offset accepted, a time without one taken as UTC; and how a length of time is shown to
people, :func:`show_ms` (the CLI and the web view alike).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Final

from debug_sink.errors import ConfigurationError

__all__ = ["ago", "parse_duration", "parse_time", "show_ms"]

_DURATION: Final = re.compile(r"^\s*(?P<amount>\d{1,12})\s*(?P<unit>[smhdw]?)\s*$", re.IGNORECASE)
_UNITS: Final = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "": "days",
    "w": "weeks",
}
_EXAMPLE: Final = "use a whole number with s, m, h, d (the default) or w, e.g. 30m, 12h, 90d"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``text`` as a timedelta; ``what`` names the value in the error message."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigurationError(f"invalid {what} {text!r}: {_EXAMPLE}")
    unit = _UNITS[match["unit"].lower()]
    try:
        return timedelta(**{unit: int(match["amount"])})
    except OverflowError:
        raise ConfigurationError(f"invalid {what} {text!r}: too long ago to be a date") from None


def ago(text: str, *, what: str = "duration", now: datetime | None = None) -> datetime:
    """The moment ``text`` (a duration) before ``now`` (default: the current time, UTC)."""
    delta = parse_duration(text, what=what)
    try:
        return (now or datetime.now(UTC)) - delta
    except OverflowError:
        raise ConfigurationError(f"invalid {what} {text!r}: too long ago to be a date") from None


def parse_time(text: str) -> datetime:
    """``text`` as an aware datetime: ISO 8601 (``2026-01-01T00:00:00Z``, ``...+01:00``, a
    date alone); a time without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"{text!r} is not an ISO 8601 time such as 2026-01-01T00:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def show_ms(ms: object) -> str:
    """``832 ms``, ``4.0 s``, ``1 min 16 s``, ``2 h 5 min``; empty for nothing, a value that
    is no number, or one that is not finite (a row stored at +-infinity)."""
    if ms is None or isinstance(ms, bool):
        return ""
    try:
        value = float(ms)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value):
        return ""
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    if value < 3_600_000:
        minutes, seconds = divmod(value / 1000, 60)
        return f"{minutes:.0f} min {seconds:.0f} s"
    hours, rest = divmod(value / 1000, 3600)
    return f"{hours:.0f} h {rest / 60:.0f} min"
