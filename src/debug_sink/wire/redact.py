"""Redaction: no credential an agent sends is stored, published or logged.

Owns :class:`Redactor`, which the sink and the SDK both run on everything they store:

- by *key*: the value under a secret-looking key is replaced by ``"[REDACTED]"`` -- keys
  normalised first (:func:`~debug_sink.wire.secrets.normalise_key`: NFKC, case, look-alike
  letters, invisible characters, separators), also in name/value pair lists
  (``{"name": "Authorization", "value": "..."}``) and in two-item lists whose first item
  is such a name (``["X-Api-Key", "..."]``, headers as HTTP clients list them);
- by *value*: every string is scanned for secret formats
  (:class:`~debug_sink.wire.secrets.SecretScrubber`) and only the secret is replaced -- keys
  too (``{"sk-...": "alice"}``); a string holding a JSON object or array is parsed, redacted
  as JSON and written back.

Value scanning is precise and slow, so it runs only where a cheap linear-time pass over the
message (or the value's JSON) says a secret may be present (:meth:`Redactor.may_contain`).

Depth: the walk recurses, two frames a level, and orjson parses JSON up to 1024 levels deep
-- deeper than Python's recursion limit lets a walk go. JSON this module parses itself (a
dead letter's bytes, JSON inside a string) is walked only while the whole walk stays within
:data:`MAX_WALK_DEPTH` levels; deeper, it is scrubbed as text (secret formats and
secret-named pairs). A value passed to :meth:`Redactor.redact` is walked as it is: its own
depth is the caller's to bound (the sink refuses messages deeper than ``max_depth`` first).

Guarantees: the input is never mutated; when nothing is redacted the input object itself is
returned, otherwise a copy in which only the containers on the way to a change are new;
redacting twice changes nothing the second time. Numbers, booleans and nulls under a name
ending in ``tokens`` are counts (``tokens: 1234``), not credentials, and are kept. Not
guaranteed: secrets in no known format under no secret-looking name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, TypeVar

import orjson

from debug_sink.errors import ConfigurationError
from debug_sink.wire import commands
from debug_sink.wire.canonical import nested_deeper_than, parse_json
from debug_sink.wire.secrets import (
    REDACTED,
    SECRET_KEY_PATTERNS,
    SecretScrubber,
    normalise_key,
)

__all__ = ["DEFAULT_REDACT_PATTERNS", "MAX_WALK_DEPTH", "REDACTED", "Redactor", "normalise_key"]

#: The default secret names: regexes searched in the :func:`normalise_key` form of a key.
DEFAULT_REDACT_PATTERNS: Final[tuple[str, ...]] = SECRET_KEY_PATTERNS

#: Deepest walk over JSON this module parses (see the module doc): 2 frames a level, well
#: inside Python's 1000 with the caller's stack on top; and as deep as orjson writes JSON
#: (a redacted JSON is written back).
MAX_WALK_DEPTH: Final = 254
_CACHE_LIMIT: Final = 10_000
#: orjson.Fragment: a number kept exactly (:func:`~debug_sink.wire.canonical.parse_json`).
_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None), orjson.Fragment})
_NON_TEXT: Final[frozenset[type]] = frozenset({int, float, bool, type(None), orjson.Fragment})
_CONTAINERS: Final = (dict, list, tuple)
#: Keys that name the other entry of a name/value pair, and that entry's keys.
_PAIR_NAMES: Final = ("name", "key", "header", "field", "Name", "Key", "Header", "Field")
_PAIR_VALUES: Final = ("value", "val", "Value", "Val")
_PAIR_VALUE_SET: Final = frozenset(_PAIR_VALUES)

_T = TypeVar("_T")
#: What JSON that cannot be walked parses to, for :meth:`Redactor.redact_payload`.
_UNWALKABLE: Final = object()
#: Control characters text does not hold (binary data: protobuf's tags and lengths).
_BINARY: Final = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]")
#: Runs of characters between binary data's control bytes and quotes.
_RUNS: Final = re.compile(r"[^\x00-\x1f\x7f\ufffd\"]{3,}")
#: Words that secret names are made of (normalised): binary data holding one is not kept.
_SECRET_WORD: Final = re.compile(
    r"passw|passphrase|pwd|secret|token|key|auth|cookie|credential|jwt|dsn|connstring|"
    r"connectionstring|databaseurl|dburl|bearer"
)
#: A JSON string literal (group 1, quotes included) and, when it is a key, its colon.
_LITERAL: Final = re.compile(r'("(?:[^"\\\x00-\x1f]|\\.)*")\s*(:?)\s*')
#: A count's value (a number, a boolean or null), kept under names ending in "tokens".
_COUNT: Final = re.compile(r"(?:-?[0-9]|true\b|false\b|null\b)")


class Redactor:
    """Redacts secrets by key and by value. Build once and share (thread-safe).

    ``patterns``: regexes of secret names (searched case-insensitively in the normalised
    key; write them without separators: ``apikey``, not ``api_key``). ``value_patterns``:
    extra regexes of secret values, on top of the built-in formats.
    """

    __slots__ = ("_clean", "_counts", "_regex", "_scrubber", "_secret", "patterns")

    def __init__(
        self,
        patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        value_patterns: Iterable[str] = (),
    ) -> None:
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
        self._scrubber = SecretScrubber(value_patterns)
        # Keys seen before, split by verdict. Sets, so that "are all keys of this dict known
        # to be clean?" is one C-level subset test instead of a Python loop.
        self._clean: set[object] = set()
        self._secret: set[str] = set()
        #: Secret keys under which numbers are counts (names ending in "tokens").
        self._counts: set[str] = set()

    def __repr__(self) -> str:
        return f"Redactor({self.patterns!r})"

    @property
    def value_patterns(self) -> tuple[str, ...]:
        return self._scrubber.extra_patterns

    # -- keys -----------------------------------------------------------------------------

    def matches(self, key: str) -> bool:
        """True when the value under ``key`` is redacted."""
        if key in self._secret:
            return True
        if key in self._clean:
            return False
        normal = normalise_key(key)
        hit = self._regex is not None and self._regex.search(normal) is not None
        verdicts = self._secret if hit else self._clean
        if len(verdicts) >= _CACHE_LIMIT:
            verdicts.clear()
            self._counts.clear()
        verdicts.add(key)
        if hit and normal.endswith("tokens"):
            self._counts.add(key)
        return hit

    # -- values ---------------------------------------------------------------------------

    def may_contain(self, data: bytes | str) -> bool:
        """Whether ``data`` (a message as sent, or any JSON or text) may hold a secret by
        value: False is certain, True a maybe. One linear-time pass."""
        return self._scrubber.may_contain(data)

    def redact(self, value: _T, *, values: bool | None = None) -> tuple[_T, bool]:
        """Return ``(redacted value, whether anything was redacted)``.

        ``values``: also scan strings for secret formats. ``None`` (the default) decides by
        :meth:`may_contain` on the value's JSON; the sink passes what the pass over the raw
        message said, so that a message is scanned once.
        """
        if values is None:
            values = self._scan_needed(value)
        if self._regex is None and not values:
            return value, False
        result = self._walk(value, values)
        return result, result is not value

    def redact_text(self, text: str) -> tuple[str, bool]:
        """``text`` with every secret format replaced (free text: no keys to look at)."""
        result = self._scrub(text)
        return result, result is not text

    def redact_bytes(self, data: bytes) -> tuple[bytes, bool]:
        """A raw message of unknown content: JSON is redacted as JSON (keys and values) and
        written back; anything else is scanned for secret formats as bytes."""
        parsed = self._walkable_json(data)
        if parsed is _UNWALKABLE:
            return self._scrub_bytes(data)
        return self._redact_json_bytes(data, parsed)

    def redact_payload(self, data: bytes) -> bytes | None:
        """A whole message as a dead letter keeps it: :meth:`redact_bytes`, or None when it
        cannot be made safe to keep.

        JSON it can walk is redacted by key and by value. Anything else (broken JSON,
        protobuf, other binary data) can only be scanned as text -- secret formats and
        ``"name": value`` pairs -- which does not see a secret named in any other shape: a
        name/value pair list (OTLP/JSON's ``{"key": "authorization", "value": ...}``), a
        name written with escapes (``"pass\\u0077ord"``), the length-prefixed strings of
        binary data. Such a message that names a secret in a way the scan did not redact is
        not kept.
        """
        parsed = self._walkable_json(data)
        if parsed is not _UNWALKABLE:
            return self._redact_json_bytes(data, parsed)[0]
        scrubbed = self._scrubber.scrub_bytes(data)
        return None if self._names_unredacted_secret(scrubbed) else scrubbed

    def _walkable_json(self, data: bytes) -> Any:
        try:
            parsed = parse_json(data)
        except ValueError:  # not JSON, or a number not even jsonb stores
            return _UNWALKABLE
        return _UNWALKABLE if nested_deeper_than(parsed, MAX_WALK_DEPTH, data) else parsed

    def _names_unredacted_secret(self, data: bytes) -> bool:
        """Whether ``data`` (not walkable JSON, scanned already) may name a secret whose
        value the scan of text left in place (see :meth:`redact_payload`)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or _BINARY.search(text):
            # Binary: no structure to read. Any run of text naming a secret, or holding a
            # word secret names are made of, is enough.
            runs = _RUNS.findall(data.decode("utf-8", "replace"))
            return any(_SECRET_WORD.search(normalise_key(r)) or self.matches(r) for r in runs)
        for literal in _LITERAL.finditer(text):
            try:
                name = orjson.loads(literal[1])
            except orjson.JSONDecodeError:
                name = literal[1][1:-1]
            if type(name) is not str or not self.matches(name):
                continue
            if not literal[2]:
                return True  # a secret's name as a value: a name/value pair, a header list
            after = text[literal.end() :]
            if after.startswith(f'"{REDACTED}"'):
                continue
            if name in self._counts and _COUNT.match(after):
                continue
            return True
        return False

    def _redact_json_bytes(self, data: bytes, parsed: Any) -> tuple[bytes, bool]:
        redacted, changed = self.redact(parsed, values=True)
        if not changed:
            # Parsing drops what the bytes still hold: a key given twice keeps its last
            # value. When the bytes seem to hold a secret the value does not, the value
            # (found clean) is written back instead of them.
            if self._scrub_bytes(data)[1]:
                return orjson.dumps(parsed), True
            return data, False
        try:
            return orjson.dumps(redacted), True
        except TypeError:  # unencodable (too deep): fall back to the text scan
            return self._scrub_bytes(data)

    def _scrub_bytes(self, data: bytes) -> tuple[bytes, bool]:
        scrubbed = self._scrubber.scrub_bytes(data)
        return scrubbed, scrubbed is not data

    # -- walking --------------------------------------------------------------------------

    def _scan_needed(self, value: Any) -> bool:
        if type(value) is str:
            return self._scrubber.may_contain(value)
        try:
            return self._scrubber.may_contain(orjson.dumps(value))
        except TypeError:
            return True

    def _scrub(self, text: str, depth: int = 0) -> str:
        if len(text) < 8:
            return text
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            # JSON inside a string: its keys are redacted by name, which no pass over
            # values can foresee.
            redacted = self._json_in_string(stripped, depth)
            if redacted is not None:
                return redacted if redacted != stripped else text
        # Most strings of a message that may hold a secret hold none: the linear-time pass
        # again, per string, before the precise (slow) scan. It reads JSON as sent, where a
        # quote inside a string is \" -- so a quote is shown to it that way
        # ('"password": "x"' in a log line is a secret-named pair).
        if not self._scrubber.may_contain(text) and not (
            '"' in text and self._scrubber.may_contain(text.replace('"', '\\"'))
        ):
            return text
        return self._scrubber.scrub(text)

    def _json_in_string(self, text: str, depth: int) -> str | None:
        """JSON inside a string (tool-call arguments) found ``depth`` levels into a walk,
        redacted as JSON; None if not JSON, or too deep to walk (then it is text)."""
        try:
            parsed = parse_json(text)
        except ValueError:  # not JSON, or a number not even jsonb stores
            return None
        if not isinstance(parsed, dict | list) or nested_deeper_than(
            parsed, MAX_WALK_DEPTH - depth, text
        ):
            return None
        redacted = self._walk(parsed, True, depth + 1)
        if redacted is parsed:
            return text
        try:
            return orjson.dumps(redacted).decode()
        except TypeError:
            return None

    def _walk(self, value: Any, values: bool, depth: int = 0) -> Any:
        if isinstance(value, dict):
            return self._walk_dict(value, values, depth)
        if isinstance(value, list | tuple):
            return self._walk_sequence(value, values, depth)
        if values and type(value) is str:
            return self._scrub(value, depth)
        return value

    def _secret_keys(self, keys: Iterable[object]) -> set[object]:
        clean = self._clean
        secret: set[object] = set()
        if self._regex is None:
            return secret
        for key in keys:
            if key in clean:
                continue
            if isinstance(key, str):
                if self.matches(key):
                    secret.add(key)
            else:
                clean.add(key)
        return secret

    def _walk_dict(self, mapping: dict[Any, Any], values: bool, depth: int) -> dict[Any, Any]:
        keys = mapping.keys()
        secret = None if keys <= self._clean else self._secret_keys(keys)
        pairs = not keys.isdisjoint(_PAIR_VALUE_SET)
        if (
            not secret
            and not pairs
            and not values
            and _SCALARS.issuperset(map(type, mapping.values()))
        ):
            return mapping
        pair_value = self._pair_value_key(mapping) if pairs else None
        copy: dict[Any, Any] | None = None
        if values and type(mapping.get("command")) is str and isinstance(mapping.get("args"), list):
            # {"command": "mysql", "args": ["-pX"]}: how MCP and process configurations
            # give a command. Its words are read together (the walk below still scans them).
            scrubbed = self._scrubber.scrub_argv([mapping["command"], *mapping["args"]])
            if scrubbed is not None:
                copy = {**mapping, "args": scrubbed[1:]}
                mapping = copy
        for key, value in mapping.items():
            if (secret and key in secret) or key == pair_value:
                if type(value) is str and value == REDACTED:
                    continue
                if type(value) in _NON_TEXT and key in self._counts:
                    continue
                new: Any = REDACTED
            elif isinstance(value, _CONTAINERS) or (values and type(value) is str):
                new = self._walk(value, values, depth + 1)
                if new is value:
                    continue
            else:
                continue
            if copy is None:
                copy = dict(mapping)
            copy[key] = new
        if values:
            copy = self._scrub_keys(copy if copy is not None else mapping) or copy
        return mapping if copy is None else copy

    def _scrub_keys(self, mapping: dict[Any, Any]) -> dict[Any, Any] | None:
        """``mapping`` with secrets written as keys (``{"sk-...": "alice"}``, a cache keyed
        by token) replaced in the key; None if there is none. A key that would become equal
        to another gets a suffix (``[REDACTED] #2``): no entry is lost."""
        scrubber = self._scrubber
        if not any(type(key) is str and scrubber.may_contain(key) for key in mapping):
            return None
        renamed: dict[Any, Any] = {}
        changed = False
        for key, value in mapping.items():
            new = scrubber.scrub(key) if type(key) is str else key
            if new != key:
                changed = True
                candidate, n = new, 1
                while candidate in renamed or candidate in mapping:
                    n += 1
                    candidate = f"{new} #{n}"
                new = candidate
            renamed[new] = value
        return renamed if changed else None

    def _pair_value_key(self, mapping: dict[Any, Any]) -> str | None:
        """In ``{"name": "Authorization", "value": "..."}``: the key of the value entry."""
        if len(mapping) > 6:
            return None
        for name_key in _PAIR_NAMES:
            name = mapping.get(name_key)
            if type(name) is str and self.matches(name):
                for value_key in _PAIR_VALUES:
                    if value_key in mapping:
                        return value_key
        return None

    def _walk_sequence(
        self, items: list[Any] | tuple[Any, ...], values: bool, depth: int
    ) -> list[Any] | tuple[Any, ...]:
        if (
            len(items) == 2
            and type(items[0]) is str
            and self.matches(items[0])
            and _name_like(items[0])
        ):
            # A [name, value] pair: headers as HTTP clients list them.
            name, value = items
            if (type(value) is str and value == REDACTED) or (
                type(value) in _NON_TEXT and name in self._counts
            ):
                return items
            return (name, REDACTED) if isinstance(items, tuple) else [name, REDACTED]
        if not values and _SCALARS.issuperset(map(type, items)):
            return items
        copy: list[Any] | None = None
        if values and len(items) > 1 and commands.argv_has_tool(items):
            # A command as a list of words: its options' passwords are in the word after.
            copy = self._scrubber.scrub_argv(items)
        for index, item in enumerate(items if copy is None else copy):
            if isinstance(item, _CONTAINERS) or (values and type(item) is str):
                new = self._walk(item, values, depth + 1)
                if new is not item:
                    if copy is None:
                        copy = list(items)
                    copy[index] = new
        if copy is None:
            return items
        return tuple(copy) if isinstance(items, tuple) else copy


_NAME: Final = re.compile(r"[^\s:=]{1,64}")


def _name_like(text: str) -> bool:
    """Short, without spaces, ``:`` or ``=``: a name, not a header line or a sentence."""
    return _NAME.fullmatch(text) is not None
