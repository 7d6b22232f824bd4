"""Known fixes for a failing tool, as the context Claude Code adds for the model.

Owns the known-fixes side of the hook command: the cache of answers
(``<dir>/fixes/<key>.json``, written by the shipper, read by every hook process),
:func:`render` (the ranked, short text) and :func:`hook_output` (the exact JSON Claude Code
accepts from a ``PostToolUseFailure`` hook: ``{"hookSpecificOutput": {"hookEventName":
"PostToolUseFailure", "additionalContext": "..."}}``).

An answer is the rows of ``known_fixes(error_type, NULL, tool)`` (the strategies that
recovered that error type of that tool before, ranked, with their success rates), or
``null`` when the database could not say (none configured, unreachable): then there is no
context, and the answer is kept only :data:`UNKNOWN_TTL_S` so that the next failure asks
again. Pure but for the cache file's read and write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from debug_sink.hooks.files import ensure_dir, read_json, replace
from debug_sink.hooks.ids import sha1_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = [
    "MAX_CONTEXT_CHARS",
    "MAX_STRATEGIES",
    "UNKNOWN_TTL_S",
    "cache_path",
    "hook_output",
    "read_cache",
    "render",
    "write_cache",
]

#: Strategies listed in the context, best first.
MAX_STRATEGIES: Final = 3
#: The context never exceeds this many characters.
MAX_CONTEXT_CHARS: Final = 800
#: How long "the database could not say" is remembered.
UNKNOWN_TTL_S: Final = 10.0
#: A cached answer older than this is not used even when no fresh one can be had.
STALE_LIMIT_S: Final = 24 * 3600.0


def cache_path(directory: str, error_type: str, tool: str) -> str:
    key = sha1_hex(f"{error_type}\x1f{tool}".encode("utf-8", "surrogatepass"))
    return os.path.join(directory, "fixes", f"{key[:32]}.json")


def write_cache(
    directory: str, error_type: str, tool: str, rows: Sequence[Mapping[str, Any]] | None, at: float
) -> None:
    """Store an answer (``rows`` of known_fixes, or ``None``: the database could not say)."""
    path = cache_path(directory, error_type, tool)
    ensure_dir(os.path.dirname(path))
    body = {
        "error_type": error_type,
        "tool": tool,
        "at": at,
        "rows": [_row(r) for r in rows] if rows is not None else None,
    }
    replace(path, json.dumps(body, ensure_ascii=False).encode())


def read_cache(
    directory: str, error_type: str, tool: str, now: float, ttl: float
) -> tuple[list[dict[str, Any]] | None, bool] | None:
    """``(rows, fresh)`` from the cache, or ``None`` when nothing usable is cached. ``rows``
    ``None`` means the database could not say; ``fresh``: younger than ``ttl`` (or, for
    "could not say", than :data:`UNKNOWN_TTL_S`)."""
    body = read_json(cache_path(directory, error_type, tool))
    if not isinstance(body, dict) or body.get("error_type") != error_type:
        return None
    at = body.get("at")
    rows = body.get("rows")
    if not isinstance(at, int | float) or not (rows is None or isinstance(rows, list)):
        return None
    age = now - at
    if rows is None:
        return (None, True) if 0 <= age < UNKNOWN_TTL_S else None
    if age > STALE_LIMIT_S:
        return None
    return rows, 0 <= age < ttl


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns the context uses, as plain JSON."""

    def number(key: str) -> float | None:
        value = row.get(key)
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    return {
        "recovery_strategy": str(row.get("recovery_strategy") or "unknown"),
        "success_count": int(row.get("success_count") or 0),
        "success_rate": number("success_rate"),
        "avg_recovery_ms": number("avg_recovery_ms"),
        "stated_count": int(row.get("stated_count") or 0),
    }


def render(error_type: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The context for the model: what recovered ``error_type`` before, best first, with
    success rates; ``None`` when nothing ever recovered it."""
    useful = [r for r in rows if int(r.get("success_count") or 0) > 0][:MAX_STRATEGIES]
    if not useful:
        return None
    occurred = _occurred(useful)
    recovered = sum(int(r["success_count"]) for r in useful)
    head = f"debug-sink known fixes for `{_one_line(error_type)}`"
    if occurred:
        head += f" (seen {_times(occurred)} before, recovered {_times(min(recovered, occurred))})"
    lines = [head + ":"]
    for n, r in enumerate(useful, 1):
        count = int(r["success_count"])
        line = f"{n}. {_one_line(r['recovery_strategy'])}: {count}"
        if occurred:
            line += f"/{occurred} ({100 * count / occurred:.0f}%)"
        ms = r.get("avg_recovery_ms")
        if isinstance(ms, int | float) and ms > 0:
            line += f", typically within {_duration(ms)}"
        lines.append(line)
    text = "\n".join(lines)
    return text if len(text) <= MAX_CONTEXT_CHARS else text[: MAX_CONTEXT_CHARS - 1] + "…"


def _one_line(text: Any) -> str:
    """Stored text (agents wrote it) as one short line: line breaks and other control
    characters would let it forge lines of this context, ranks and rates included."""
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(flat.split())


def _occurred(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """How many errors of the type occurred: success_count / success_rate (one denominator
    per known_fixes() call)."""
    for r in rows:
        rate = r.get("success_rate")
        if isinstance(rate, int | float) and rate > 0:
            return max(round(int(r["success_count"]) / rate), int(r["success_count"]))
    return None


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _duration(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.0f} s"
    return f"{ms / 60_000:.0f} min"


def hook_output(event_name: str, context: str) -> dict[str, Any]:
    """What a hook prints to add ``context`` for the model (Claude Code's JSON output)."""
    return {"hookSpecificOutput": {"hookEventName": event_name, "additionalContext": context}}
