"""Canonical JSON and the state hash: one implementation for sink and SDK.

Owns the pure functions whose output must be identical wherever they run, because the sink
recomputes what the agent SDK computed and PostgreSQL deduplicates on the result:

- :func:`canonical_json` -- the bytes a JSON value hashes and is stored as: keys sorted (by
  code point, at every depth), no whitespace, UTF-8 (non-ASCII is not escaped), orjson's
  shortest round-tripping float format -- written without an exponent, as PostgreSQL's jsonb
  prints the number (``1.5e-07`` is ``0.00000015``, ``1e+16`` is ``10000000000000000``);
- :func:`state_hash` -- SHA-256 hex of :func:`canonical_json`;

and :func:`format_path`, how a place in a JSON value is named in messages. Redaction (run
before hashing) is :mod:`debug_sink.wire.redact`.

Guaranteed: the same JSON value gives the same bytes and hash whatever its key order, and
``canonical_json(orjson.loads(canonical_json(x))) == canonical_json(x)``, and the bytes are
those of the SQL function ``debug_canonical_json`` (migration 005) on the jsonb the bytes are
stored as, so a state the sink stored and the same state captured in SQL
(``capture_state_snapshot``) hash alike. Not guaranteed: agreement with other
canonicalisation schemes (RFC 8785 formats numbers differently) or with PostgreSQL's
``jsonb::text`` (which adds spaces and orders keys by length first).

Values must be what orjson serialises: ``str`` keys, integers within 64 bits (orjson itself
parses larger JSON integers as floats), no NaN or infinity (orjson writes them as ``null``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["canonical_json", "format_path", "nested_deeper_than", "state_hash"]


#: A number orjson wrote with an exponent (``1.5e-7``, ``1e+16``); also matches such text
#: inside a string, which only costs a walk that changes nothing.
_EXPONENT = re.compile(rb"\de[-+]?\d")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``: sorted keys, compact, UTF-8. Numbers are
    written as PostgreSQL's jsonb prints them, so that the stored value reads back to the
    same bytes: ``-0.0`` as ``0.0`` (jsonb has no negative zero), a float orjson would write
    with an exponent in positional notation (jsonb's numeric has none).

    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for values orjson cannot serialise.
    """
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    # Rare (also -0.05, or such text in a string): walk only then.
    if b"-0.0" in data or _EXPONENT.search(data):
        data = orjson.dumps(_as_jsonb_prints(value), option=orjson.OPT_SORT_KEYS)
    return data


def _as_jsonb_prints(value: Any) -> Any:
    if type(value) is float:
        if value == 0.0:
            return 0.0
        shortest = repr(value)  # the digits orjson writes (both shortest round-trip)
        if "e" in shortest:
            # jsonb keeps the number's digits and scale: 1.5e-07 -> 0.00000015 (scale 8),
            # 1e+16 -> 10000000000000000; Decimal's fixed-point format is the same text.
            return orjson.Fragment(format(Decimal(shortest), "f"))
        return value
    if isinstance(value, dict):
        return {k: _as_jsonb_prints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_jsonb_prints(v) for v in value]
    return value


def state_hash(value: Any) -> str:
    """SHA-256 hex digest (64 lower-case characters) of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def format_path(path: Sequence[str | int], *, root: str = "$", shorten: bool = False) -> str:
    """A JSON path for people: ``("context", "files", 2, "x-api")`` ->
    ``context.files[2]["x-api"]``; the empty path is ``root``. ``shorten`` cuts long keys
    (60 characters) and the whole path (300), for messages about untrusted input."""
    if not path:
        return root
    parts: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif segment.isidentifier():
            parts.append(f".{segment}" if parts else segment)
        else:
            shown = segment[:57] + "..." if shorten and len(segment) > 60 else segment
            parts.append(f"[{orjson.dumps(shown).decode()}]")
    text = "".join(parts)
    return text[:297] + "..." if shorten and len(text) > 300 else text


def nested_deeper_than(value: Any, limit: int, text: bytes | str) -> bool:
    """Whether parsed JSON ``value`` (parsed from ``text``) nests containers more than
    ``limit`` levels deep. Counting brackets in the text settles most cases; else one
    iterative pass (a recursive one would fail on what it is asked about)."""
    if isinstance(text, bytes):
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = text.count("[") + text.count("{")
    if brackets <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > limit:
            return True
        stack.extend(
            (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
        )
    return False
