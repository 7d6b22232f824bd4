"""Canonical JSON, the state hash and secret redaction: one implementation for sink and SDK.

Owns the three pure functions whose output must be identical wherever they run, because the
sink recomputes what the agent SDK computed and PostgreSQL deduplicates on the result:

- :func:`canonical_json` -- the bytes a JSON value hashes and is stored as: keys sorted (by
  code point, at every depth), no whitespace, UTF-8 (non-ASCII is not escaped), orjson's
  shortest round-tripping float format.
- :func:`state_hash` -- SHA-256 hex of :func:`canonical_json`.
- :class:`Redactor` -- replaces the value of every key that looks like a secret with
  ``"[REDACTED]"``, at any depth, inside lists too.

Guaranteed: the same JSON value gives the same bytes and hash whatever its key order, and
``canonical_json(orjson.loads(canonical_json(x))) == canonical_json(x)``. Not guaranteed:
agreement with other canonicalisation schemes (RFC 8785 formats numbers differently) or with
PostgreSQL's ``jsonb::text`` (which adds spaces and orders keys by length first).

Values must be what orjson serialises: ``str`` keys, integers within 64 bits (orjson itself
parses larger JSON integers as floats), no NaN or infinity (orjson writes them as ``null``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

import orjson

from debug_sink.errors import ConfigurationError

__all__ = [
    "DEFAULT_REDACT_PATTERNS",
    "REDACTED",
    "Redactor",
    "canonical_json",
    "format_path",
    "normalise_key",
    "state_hash",
]

#: The value that replaces a redacted one.
REDACTED: Final = "[REDACTED]"

#: Default redaction patterns. Each is a regex searched (case-insensitively) in the
#: *normalised* key: lower-cased, with ``-``, ``_``, ``.`` and spaces removed, so
#: ``X-API-Key``, ``api_key`` and ``apiKey`` are all ``xapikey``/``apikey``. ``token`` is
#: anchored at the end so that ``access_token`` and ``refreshToken`` are secrets while LLM
#: metrics (``max_tokens``, ``prompt_tokens``, ``token_count``, ``tokens_used``) are not.
DEFAULT_REDACT_PATTERNS: Final[tuple[str, ...]] = (
    r"passw(or)?d",  # password, db_password, passwd
    r"passphrase",
    r"secret",  # secret, client_secret, aws_secret_access_key
    r"token$",  # token, access_token, refresh_token, x-auth-token
    r"apikey",  # api_key, apiKey, x-api-key, API-KEY
    r"authorization",  # authorization, Proxy-Authorization
    r"cookie",  # cookie, set-cookie
    r"privatekey",  # private_key, privateKey
    r"credential",  # credentials, aws_credentials
)

_SEPARATORS: Final = str.maketrans("", "", "-_. ")
_CACHE_LIMIT: Final = 10_000
_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
_CONTAINERS: Final = (dict, list, tuple)

_T = TypeVar("_T")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``: sorted keys, compact, UTF-8.

    Raises ``orjson.JSONEncodeError`` (a ``TypeError``) for values orjson cannot serialise.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


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


def normalise_key(key: str) -> str:
    """The form of a key that redaction patterns are matched against.

    Lower-cased, with ``-``, ``_``, ``.`` and spaces removed: ``X-Api_Key`` -> ``xapikey``.
    """
    return key.lower().translate(_SEPARATORS)


class Redactor:
    """Replaces the values of secret-looking keys with :data:`REDACTED`.

    A key is secret when any pattern matches (``re.search``, case-insensitive) its
    :func:`normalise_key` form; write patterns without separators (``apikey``, not
    ``api_key``). Containers walked: ``dict`` (and subclasses), ``list`` and ``tuple``, at any
    depth; other objects are left alone, so convert dataclasses or models to dicts first.

    Guarantees: the input is never mutated; when nothing is redacted the input object itself
    is returned, otherwise a copy in which only the containers on the way to a redacted key
    are new. A value that already is ``"[REDACTED]"`` does not count as a redaction, so
    redacting twice changes nothing and reports ``False`` the second time. Not guaranteed:
    secrets that are not under a matching key (``{"name": "password", "value": "..."}``, a
    token inside a URL or free text) are not found.

    Instances are safe to share between threads; match results are cached per key.
    """

    __slots__ = ("_clean", "_regex", "_secret", "patterns")

    def __init__(self, patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigurationError(
                    f"redaction pattern {pattern!r} is not a valid regex: {exc}"
                ) from exc
        self._regex: re.Pattern[str] | None = (
            re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE)
            if self.patterns
            else None
        )
        # Keys seen before, split by verdict. Sets, so that "are all keys of this dict known
        # to be clean?" is one C-level subset test instead of a Python loop.
        self._clean: set[object] = set()
        self._secret: set[str] = set()

    def __repr__(self) -> str:
        return f"Redactor({self.patterns!r})"

    def matches(self, key: str) -> bool:
        """True when the value under ``key`` is redacted."""
        if key in self._secret:
            return True
        if key in self._clean:
            return False
        hit = self._regex is not None and self._regex.search(normalise_key(key)) is not None
        verdicts = self._secret if hit else self._clean
        if len(verdicts) >= _CACHE_LIMIT:
            verdicts.clear()
        verdicts.add(key)
        return hit

    def redact(self, value: _T) -> tuple[_T, bool]:
        """Return ``(redacted value, whether anything was redacted)``."""
        if self._regex is None:
            return value, False
        result = self._walk(value)
        return result, result is not value

    def _walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._walk_dict(value)
        if isinstance(value, list | tuple):
            return self._walk_sequence(value)
        return value

    def _secret_keys(self, keys: Iterable[object]) -> set[object]:
        clean = self._clean
        secret: set[object] = set()
        for key in keys:
            if key in clean:
                continue
            if isinstance(key, str):
                if self.matches(key):
                    secret.add(key)
            else:
                clean.add(key)
        return secret

    def _walk_dict(self, mapping: dict[Any, Any]) -> dict[Any, Any]:
        keys = mapping.keys()
        secret = None if keys <= self._clean else self._secret_keys(keys)
        if not secret and _SCALARS.issuperset(map(type, mapping.values())):
            return mapping
        copy: dict[Any, Any] | None = None
        for key, value in mapping.items():
            if secret and key in secret:
                if type(value) is str and value == REDACTED:
                    continue
                new: Any = REDACTED
            elif isinstance(value, _CONTAINERS):
                new = self._walk(value)
                if new is value:
                    continue
            else:
                continue
            if copy is None:
                copy = dict(mapping)
            copy[key] = new
        return mapping if copy is None else copy

    def _walk_sequence(self, items: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
        if _SCALARS.issuperset(map(type, items)):
            return items
        copy: list[Any] | None = None
        for index, item in enumerate(items):
            if isinstance(item, _CONTAINERS):
                new = self._walk(item)
                if new is not item:
                    if copy is None:
                        copy = list(items)
                    copy[index] = new
        if copy is None:
            return items
        return tuple(copy) if isinstance(items, tuple) else copy
