"""Canonical JSON and the state hash: one implementation for sink and SDK.

Owns the pure functions whose output must be identical wherever they run, because the sink
recomputes what the agent SDK computed and PostgreSQL deduplicates on the result:

- :func:`canonical_json` -- the bytes a JSON value hashes and is stored as: keys sorted (by
  code point, at every depth), no whitespace, UTF-8 (non-ASCII is not escaped), orjson's
  shortest round-tripping float format -- written without an exponent, as PostgreSQL's jsonb
  prints the number (``1.5e-07`` is ``0.00000015``, ``1e+16`` is ``10000000000000000``);
- :func:`state_hash` -- SHA-256 hex of :func:`canonical_json`;

- :func:`parse_json` -- JSON text to Python values, keeping every number PostgreSQL's jsonb
  keeps: orjson, except that an integer beyond 64 bits or a number beyond a double's range
  (``1e400``) becomes an ``orjson.Fragment`` of the number as jsonb prints it, written back
  by orjson unchanged (where orjson alone would give a float, or refuse the message);

and :func:`format_path`, how a place in a JSON value is named in messages. Redaction (run
before hashing) is :mod:`debug_sink.wire.redact`.

Guaranteed: the same JSON value gives the same bytes and hash whatever its key order, and
``canonical_json(orjson.loads(canonical_json(x))) == canonical_json(x)``, and the bytes are
those of the SQL function ``debug_canonical_json`` (migration 005) on the jsonb the bytes are
stored as, so a state the sink stored and the same state captured in SQL
(``capture_state_snapshot``) hash alike. Not guaranteed: agreement with other
canonicalisation schemes (RFC 8785 formats numbers differently) or with PostgreSQL's
``jsonb::text`` (which adds spaces and orders keys by length first).

Values must be what orjson serialises: ``str`` keys, integers within 64 bits, no NaN or
infinity (orjson writes them as ``null``); numbers beyond those are ``orjson.Fragment`` values, as
:func:`parse_json` gives them. Not guaranteed by :func:`parse_json`: a non-zero number too
small for a double (``1e-400``) reads as ``0.0``, as in orjson (spotting one costs a scan of
every message); a number with more digits than a double holds reads as the nearest double.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import orjson

__all__ = [
    "NumberOutOfRange",
    "canonical_json",
    "format_path",
    "nested_deeper_than",
    "parse_json",
    "state_hash",
]


#: The exponent of a number as orjson writes it (always signed: ``1.5e-7``, ``1e+16``),
#: up to the end of the value. A literal first character keeps the search at ~0.6 us per KB
#: (``\de[-+]?\d`` took ~4); a uuid's ``1e-2ab`` is no match.
_EXPONENT: Final = re.compile(rb"e[-+][0-9]+(?:[,\]}]|\Z)")


def _has_exponent(data: bytes) -> bool:
    """Whether ``data`` (orjson's output) holds a number written with an exponent. Such
    text inside a string also counts, which only costs a walk that changes nothing."""
    for found in _EXPONENT.finditer(data):
        at = found.start()
        if at and 48 <= data[at - 1] <= 57:
            return True
    return False


#: Bytes -> ``1`` for an ASCII digit, else a space: a run of 19 digits is then a substring.
_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
#: The shortest integer literal beyond 64 bits has 19 digits (-9223372036854775809); a float
#: literal with 19 digits or more may hold such an integer's digits too (1.8e19 written out).
_LONG_NUMBER = b"1" * 19
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
#: jsonb's numeric takes at most this many digits before the decimal point and after it.
_NUMERIC_INTEGER_DIGITS = 131072
_NUMERIC_SCALE = 16383


class NumberOutOfRange(ValueError):
    """A JSON number that PostgreSQL's jsonb cannot store either (more than 131072 digits
    before the decimal point or 16383 after it)."""


def parse_json(data: bytes | str) -> Any:
    """``data`` parsed as orjson parses it, but with every number kept as jsonb keeps it
    (see the module doc). Raises ``orjson.JSONDecodeError`` for invalid JSON, as
    ``orjson.loads`` does, and :class:`NumberOutOfRange` for a number jsonb cannot store."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson has no error class for it: a number beyond a double's range is this message.
        if "number is infinity" not in exc.msg:
            raise
        return _parse_exactly(data)
    raw = data if isinstance(data, bytes) else data.encode()
    # Rare, and a translate and a substring search cost ~0.7 us a message (a regex ~6).
    if _LONG_NUMBER in raw.translate(_DIGITS):
        return _parse_exactly(data)
    return value


def _parse_exactly(data: bytes | str) -> Any:
    """The slow path of :func:`parse_json`: the standard library's parser, whose number
    hooks see each literal's text; orjson's refusals are kept (NaN, lone surrogates)."""
    try:
        value = json.loads(
            data, parse_int=_exact_int, parse_float=_exact_float, parse_constant=_no_constant
        )
    except RecursionError:
        raise orjson.JSONDecodeError("recursion limit reached while parsing", "", 0) from None
    except json.JSONDecodeError as exc:
        raise orjson.JSONDecodeError(exc.msg, exc.doc, exc.pos) from None
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # a lone surrogate, or nested past orjson's limit
        raise orjson.JSONDecodeError(str(exc), "", 0) from None
    return value


def _exact_int(text: str) -> Any:
    digits = len(text) - text.startswith("-")
    if digits < 19 or (digits < 21 and _INT64_MIN <= int(text) <= _UINT64_MAX):
        return int(text)
    if digits > _NUMERIC_INTEGER_DIGITS:
        raise NumberOutOfRange(f"an integer of {digits} digits")
    # A JSON integer literal is already how jsonb prints it (no leading zeros, no "+").
    return orjson.Fragment(text)


def _exact_float(text: str) -> Any:
    number = float(text)
    if number not in (_INF, -_INF):
        return number
    exact = Decimal(text)
    exponent = int(exact.as_tuple().exponent)  # a finite literal: never "n" or "F"
    if exact.adjusted() >= _NUMERIC_INTEGER_DIGITS or -exponent > _NUMERIC_SCALE:
        raise NumberOutOfRange(f"a number of magnitude 1e{exact.adjusted()}")
    return _as_numeric(exact)


def _as_numeric(exact: Decimal) -> orjson.Fragment:
    """The number as jsonb's numeric prints it, written by orjson unchanged: the literal's
    digits and scale, no exponent (1.5e-07 -> 0.00000015, 1e+16 -> 10000000000000000);
    Decimal's fixed-point format is that text."""
    return orjson.Fragment(format(exact, "f"))


def _no_constant(text: str) -> Any:
    raise json.JSONDecodeError(f"{text} is not JSON", text, 0)


_INF = float("inf")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``: sorted keys, compact, UTF-8. Numbers are
    written as PostgreSQL's jsonb prints them, so that the stored value reads back to the
    same bytes: ``-0.0`` as ``0.0`` (jsonb has no negative zero), a float orjson would write
    with an exponent in positional notation (jsonb's numeric has none).

    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for values orjson cannot serialise.
    """
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    # Rare (also -0.05, or such text in a string): walk only then.
    if b"-0.0" in data or _has_exponent(data):
        data = orjson.dumps(_as_jsonb_prints(value), option=orjson.OPT_SORT_KEYS)
    return data


def _as_jsonb_prints(value: Any) -> Any:
    if type(value) is float:
        if value == 0.0:
            return 0.0
        shortest = repr(value)  # the digits orjson writes (both shortest round-trip)
        if "e" in shortest:
            return _as_numeric(Decimal(shortest))
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
