"""Making what an agent hands the SDK storable: plain JSON, NUL-free, within the sink's limits.

Owns turning arbitrary Python values (agent state, metadata, step input and output, text) into
values the wire models accept and the sink stores unchanged. Pure: no I/O, no clock.

Guarantees:

- **Plain JSON.** Tuples become lists, non-string keys strings (numbers, booleans, ``None``,
  dates, UUIDs and enums as orjson writes them, any other key its ``str()``, cut at
  :data:`MAX_KEY_CHARS`; a key whose ``str()`` raises its type's name), sets sorted lists
  (their ``str()`` when unorderable), Decimals floats (non-finite ones strings), bytes UTF-8
  text, enums their value, pydantic models their JSON dump, anything else its ``str()``.
- **No NUL characters** (PostgreSQL cannot store them): they become U+FFFD in strings and keys.
- **No lone surrogates** (no UTF-8 encoder takes them; a string cut in the middle of an
  emoji, or a file name decoded with ``surrogateescape``, has one): each becomes U+FFFD in
  strings and keys, and in text (:func:`fit`, :func:`free_text`); a surrogate pair becomes
  the character it encodes. The rest of the value is kept.
- **No entry is lost to a key made a string.** A key that becomes equal to another key of
  its object gets a suffix (``"(0, 1) #2"``), as the redactor does with keys it scrubs --
  an integer key equal to a string key (``{1: .., "1": ..}``) included.
- **A value that cannot be JSON at all** (a reference cycle, an integer beyond 64 bits)
  becomes ``{"_unserialisable": true, "_error": ..., "_type": ...}``, logged
  (``sdk_value_unserialisable``).
- **Cheap when nothing needs mending.** Keys that are not strings and lone surrogates are
  found and mended only when orjson refuses the value (it refuses every key that is not a
  string): the value is then walked once.
- **The sink finds nothing to change.** Secrets are redacted with the sink's
  :class:`~debug_sink.wire.redact.Redactor` and a state's hash is
  :func:`~debug_sink.wire.canonical.state_hash` of the redacted state.
- **Too large or too deep is visible.** A state over ``max_state_bytes`` of canonical JSON,
  another JSON field over :data:`MAX_JSON_FIELD_BYTES`, or either nested deeper than
  ``max_depth`` allows, becomes the truncation marker (:func:`marker`), itself within the limit.
- **Text fits its column.** :func:`fit` cuts a string to the ``max_length`` its model field
  declares (the wire models are the one source of column lengths), marking the cut with
  ``…``; :func:`free_text` cuts unbounded text at :data:`MAX_TEXT_CHARS` and says how much
  it cut.

Not guaranteed: that a model accepts the result otherwise (types, ranges, required fields are
the models' to check), or that a truncated value can be recovered: the marker keeps the
original's size, hash, top-level keys and the start of its JSON only.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Iterator, Mapping
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin, overload

import orjson
import structlog
from annotated_types import MaxLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from debug_sink.wire.canonical import canonical_json, state_hash
from debug_sink.wire.redact import Redactor

__all__ = [
    "MAX_JSON_FIELD_BYTES",
    "MAX_KEY_CHARS",
    "MAX_TEXT_CHARS",
    "Sanitizer",
    "depth",
    "fit",
    "free_text",
    "marker",
    "max_length",
    "nul_free",
    "plain_json",
    "replace_nul",
    "without_surrogates",
]

log = structlog.get_logger("debug_sink.sdk.sanitize")

#: Free text (messages, stack traces, descriptions) is cut at this many characters.
MAX_TEXT_CHARS: Final = 64 * 1024
#: JSON fields other than agent_state are truncated above this many bytes.
MAX_JSON_FIELD_BYTES: Final = 64 * 1024
#: A key made a string from another type is cut at this many characters.
MAX_KEY_CHARS: Final = 256
# The truncation marker's own sizes: it is a JSON value, not a column, so no model bounds them.
_PREVIEW_CHARS: Final = 2000
_MAX_KEYS_LISTED: Final = 50
_MAX_KEY_CHARS: Final = 100
_MAX_ERROR_CHARS: Final = 500
_NUL_ESCAPE: Final = b"\\u0000"
_REPLACEMENT: Final = "\ufffd"
_ELLIPSIS: Final = "…"
_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
#: For the first try: keys that are not strings refused, so that they are made strings by
#: the walk, which keeps two keys that would be written alike apart (orjson would write
#: ``{1: .., "1": ..}`` with the key twice, and a reader keeps the last).
_STRICT: Final = orjson.OPT_SERIALIZE_NUMPY
# Containers nested deeper are not walked: orjson refuses more than 254 levels anyway.
_MAX_MEND_DEPTH: Final = 256


class Sanitizer:
    """Prepares agent state and JSON fields as the sink would store them, under one set of
    limits (the sink's ``max_state_bytes`` and ``max_depth``) and redaction patterns."""

    def __init__(self, redactor: Redactor, *, max_state_bytes: int, max_depth: int) -> None:
        self._redactor = redactor
        self._max_state_bytes = max_state_bytes
        # The message object is depth 1, so a JSON field's own nesting may use max_depth - 1.
        self._max_field_depth = max_depth - 1

    def state(self, agent_state: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """``(state as sent, its state_hash)``: plain JSON, NUL-free, redacted, within
        ``max_state_bytes`` and ``max_depth`` (else the truncation marker)."""
        tree, data = plain_json(agent_state)
        if not isinstance(tree, dict):
            tree = {"value": tree}
        tree, _ = self._redactor.redact(tree)
        if self._too_deep(tree, data):
            tree = marker(tree, "too_deep", self._max_state_bytes)
        encoded = canonical_json(tree)
        if len(encoded) > self._max_state_bytes:
            tree = marker(tree, "too_large", self._max_state_bytes, encoded)
        return tree, state_hash(tree)

    def json_field(self, value: Any) -> Any:
        """``value`` as a JSON field other than the state: plain JSON, NUL-free, redacted,
        within :data:`MAX_JSON_FIELD_BYTES` and ``max_depth`` (else the marker); ``None``
        stays ``None``."""
        if value is None:
            return None
        tree, data = plain_json(value)
        tree, _ = self._redactor.redact(tree)
        too_deep = self._too_deep(tree, data)
        if too_deep or len(data) > MAX_JSON_FIELD_BYTES:
            return marker(tree, "too_deep" if too_deep else "too_large", MAX_JSON_FIELD_BYTES)
        return tree

    def _too_deep(self, tree: Any, data: bytes) -> bool:
        # Counting brackets in the bytes is a cheap upper bound; walk the tree only past it.
        limit = self._max_field_depth
        return data.count(b"{") + data.count(b"[") > limit and depth(tree) > limit


# -- text -----------------------------------------------------------------------------------


def nul_free(value: str) -> str:
    """``value`` with every NUL character replaced by U+FFFD."""
    return value.replace("\x00", _REPLACEMENT)


def without_surrogates(value: str) -> str:
    """``value`` with every lone surrogate replaced by U+FFFD; a surrogate pair (two code
    points, as Python keeps them) becomes the character it encodes."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


@functools.cache
def max_length(model: type[BaseModel], name: str) -> int:
    """The ``max_length`` that field ``name`` of ``model`` declares (also when optional).

    Raises ``LookupError`` for a field without one: fitting it would be a programming error.
    """
    field = model.model_fields[name]
    for constraint in _constraints(field.metadata, field.annotation):
        if isinstance(constraint, MaxLen):
            return constraint.max_length
    raise LookupError(f"{model.__name__}.{name} declares no max_length")


@overload
def fit(
    model: type[BaseModel], name: str, value: str, *, keep: Literal["start", "end"] = ...
) -> str: ...
@overload
def fit(
    model: type[BaseModel], name: str, value: str | None, *, keep: Literal["start", "end"] = ...
) -> str | None: ...
def fit(
    model: type[BaseModel],
    name: str,
    value: str | None,
    *,
    keep: Literal["start", "end"] = "start",
) -> str | None:
    """``value`` without NULs or lone surrogates (U+FFFD instead), cut to the ``max_length``
    of ``model``'s field ``name``.

    A cut value ends (``keep="start"``) or, with ``keep="end"``, starts with ``…`` and is
    exactly ``max_length`` characters long. ``None`` stays ``None``.
    """
    if value is None:
        return None
    limit = max_length(model, name)
    value = without_surrogates(nul_free(str(value)))
    if len(value) <= limit:
        return value
    if keep == "end":
        return _ELLIPSIS + value[len(value) - limit + 1 :]
    return value[: limit - 1] + _ELLIPSIS


def free_text(value: str | None) -> str | None:
    """Free text without NULs or lone surrogates (U+FFFD instead), cut at
    :data:`MAX_TEXT_CHARS` with a marker saying how much was cut; ``None`` stays ``None``."""
    if value is None:
        return None
    value = without_surrogates(nul_free(str(value)))
    if len(value) <= MAX_TEXT_CHARS:
        return value
    cut = len(value) - MAX_TEXT_CHARS
    return value[:MAX_TEXT_CHARS] + f"\n{_ELLIPSIS}[truncated {cut} characters]"


def _constraints(metadata: list[Any], annotation: Any) -> Iterator[Any]:
    """The constraints of a field: its own metadata, and for ``Annotated[...] | None`` the
    metadata inside the annotation (pydantic keeps it there for optional fields)."""
    for item in metadata:
        yield from item.metadata if isinstance(item, FieldInfo) else (item,)
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _constraints(list(annotation.__metadata__), None)
    elif origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            yield from _constraints([], member)


# -- JSON -----------------------------------------------------------------------------------


def plain_json(value: Any) -> tuple[Any, bytes]:
    """``value`` as plain JSON types (and its JSON bytes), NUL characters and lone surrogates
    replaced, keys strings.

    When orjson refuses ``value``, it is mended (:func:`_mended`: keys of other types made
    strings, lone surrogates replaced) and tried again. A value that cannot be made JSON at
    all (a reference cycle, an integer beyond 64 bits) becomes ``{"_unserialisable": true,
    "_error": ..., "_type": ...}``, logged.
    """
    try:
        data = orjson.dumps(value, default=_default, option=_STRICT)
    except TypeError as refused:
        data = _mended_json(value, refused)
    tree = orjson.loads(data)
    if _NUL_ESCAPE in data:
        tree = replace_nul(tree)
        data = orjson.dumps(tree)
    return tree, data


def _mended_json(value: Any, refused: TypeError) -> bytes:
    """The JSON of ``value`` mended, or of the ``_unserialisable`` marker (logged)."""
    exc: Exception = refused
    try:
        return orjson.dumps(_mended(value, 0, set()), default=_default, option=_OPTIONS)
    except TypeError as again:  # not a key or a surrogate: an integer beyond 64 bits, ...
        exc = again
    except (_Unmendable, RecursionError):  # a cycle, or nested too deep: orjson's own words
        pass
    log.warning("sdk_value_unserialisable", type=type(value).__name__, error=str(exc))
    return orjson.dumps(
        {
            "_unserialisable": True,
            "_error": without_surrogates(str(exc))[:_MAX_ERROR_CHARS],
            "_type": type(value).__qualname__,
        }
    )


class _Unmendable(Exception):
    """A value that no mending makes JSON: a reference cycle, or nested too deep."""


def _mended(value: Any, depth: int, active: set[int]) -> Any:
    """``value`` with what orjson refuses and can be mended mended: keys of types it does not
    take become strings, lone surrogates U+FFFD (in strings and keys). What orjson writes
    as it is stays as it is; other objects become what :func:`_default` makes of them.

    ``active``: the ids of the containers being walked (a cycle raises
    :class:`_Unmendable`, as does nesting past orjson's limit).
    """
    if isinstance(value, str):
        return without_surrogates(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > _MAX_MEND_DEPTH:
        raise _Unmendable("nested too deep")
    # The containers orjson writes itself: dicts and lists (subclasses too) and tuples.
    if isinstance(value, dict | list) or type(value) is tuple:
        if id(value) in active:
            raise _Unmendable("a reference cycle")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return _mended_dict(value, depth, active)
            return [_mended(item, depth + 1, active) for item in value]
        finally:
            active.discard(id(value))
    try:
        orjson.dumps(value, default=_default, option=_STRICT)
    except TypeError:
        pass
    else:
        return value  # a datetime, a UUID, a numpy array, ...: orjson writes it as it is
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # orjson writes a dataclass as its fields, leaving out those named _private.
        fields = dataclasses.fields(value)
        converted: Any = {f.name: getattr(value, f.name) for f in fields if f.name[:1] != "_"}
    else:
        try:
            converted = _default(value)
        except Exception as exc:  # e.g. a __str__ that raises: nothing to show of it
            raise _Unmendable(f"{type(value).__qualname__}: {exc}") from exc
    return _mended(converted, depth + 1, active)


def _mended_dict(mapping: dict[Any, Any], depth: int, active: set[int]) -> dict[str, Any]:
    """:func:`_mended` of a dict: every key a string. String keys that need nothing keep
    their place; a key made a string that would equal another gets a suffix."""
    kept = {key for key in mapping if type(key) is str and without_surrogates(key) is key}
    mended: dict[str, Any] = {}
    for key, item in mapping.items():
        name = key if key in kept and type(key) is str else _unique(_key_text(key), mended, kept)
        mended[name] = _mended(item, depth + 1, active)
    return mended


def _key_text(key: Any) -> str:
    """``key`` as a string: as orjson writes the keys it takes (numbers, booleans, ``None``,
    dates, UUIDs, enums), else its ``str()`` cut at :data:`MAX_KEY_CHARS`; never raises."""
    if isinstance(key, str) and not isinstance(key, Enum):
        return without_surrogates(key)
    try:
        written = orjson.loads(orjson.dumps({key: None}, option=orjson.OPT_NON_STR_KEYS))
        return without_surrogates(next(iter(written)))
    except (TypeError, ValueError):
        pass
    try:
        text = str(key)
    except Exception:  # a __str__ that raises
        text = f"<{type(key).__qualname__}>"
    text = without_surrogates(text)
    return text if len(text) <= MAX_KEY_CHARS else text[: MAX_KEY_CHARS - 1] + _ELLIPSIS


def _unique(name: str, taken: Mapping[str, Any], reserved: set[Any]) -> str:
    """``name``, or with a suffix (``"name #2"``, ``#3``, ...) when another key of the object
    has it already (``taken``) or keeps it (``reserved``), as the redactor's scrubbed keys."""
    candidate, n = name, 1
    while candidate in taken or candidate in reserved:
        n += 1
        candidate = f"{name} #{n}"
    return candidate


def replace_nul(value: Any) -> Any:
    """A JSON tree with NUL characters replaced by U+FFFD in every string and key; a key
    that would then equal another gets a suffix (``"k\ufffd #2"``): no entry is lost."""
    if isinstance(value, str):
        return nul_free(value)
    if isinstance(value, dict):
        if not any("\x00" in key for key in value):
            return {key: replace_nul(item) for key, item in value.items()}
        kept = {key for key in value if "\x00" not in key}
        replaced: dict[str, Any] = {}
        for key, item in value.items():
            name = key if key in kept else _unique(nul_free(key), replaced, kept)
            replaced[name] = replace_nul(item)
        return replaced
    if isinstance(value, list):
        return [replace_nul(v) for v in value]
    return value


def depth(value: Any) -> int:
    """Nesting depth of containers: ``{}`` is 1, ``{"a": []}`` is 2, a scalar 0."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def marker(tree: Any, reason: str, limit: int, encoded: bytes | None = None) -> dict[str, Any]:
    """The visible stand-in for a JSON value too large or too deep to send.

    ``{"_truncated": true, "_reason": reason, "_original_size_bytes": N,
    "_original_state_hash": ..., "_top_level_keys": [...], "preview": "<start of the JSON>"}``,
    its canonical JSON within ``limit`` bytes (keys and preview are shortened until it fits).
    """
    if encoded is None:
        encoded = canonical_json(tree)
    text = encoded.decode("utf-8")
    keys = sorted(str(k)[:_MAX_KEY_CHARS] for k in tree) if isinstance(tree, dict) else []
    stand_in: dict[str, Any] = {
        "_truncated": True,
        "_reason": reason,
        "_original_size_bytes": len(encoded),
        "_original_state_hash": state_hash(tree),
        "_top_level_keys": keys[:_MAX_KEYS_LISTED],
        "preview": text[:_PREVIEW_CHARS],
    }
    # The marker itself must fit (limits can be as low as 1 KiB).
    while len(canonical_json(stand_in)) > limit and (
        stand_in["preview"] or stand_in["_top_level_keys"]
    ):
        if stand_in["_top_level_keys"]:
            stand_in["_top_level_keys"] = stand_in["_top_level_keys"][:-10]
        else:
            stand_in["preview"] = stand_in["preview"][: len(stand_in["preview"]) // 2]
    return stand_in


def _default(value: Any) -> Any:
    """orjson fallback: what a debugger would want to see of a non-JSON value."""
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return [str(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Enum):
        return value.value
    return str(value)
