"""Structural diff of two agent states (JSON values): what was added, removed or changed.

Owns :func:`diff_json`, the pure function behind ``DebugQueries.diff_states`` and the state
diffs of ``debug-sink show``. Synchronous, no I/O.

Rules:

- objects are compared key by key, at any depth: a key only in ``after`` is ``added``, only
  in ``before`` is ``removed``; a key in both is descended into when both values are objects
  (or both arrays), and is ``changed`` when the values differ otherwise;
- arrays are compared index by index (a list is a sequence, not a set): common indexes are
  descended into, extra elements are ``added`` or ``removed`` at their index. Inserting at the
  front of an array therefore reports every later index as changed -- the diff is exact, not
  minimal;
- values are compared as JSON: ``1`` and ``1.0`` are equal (JSON has one number type), ``1``
  and ``True`` are not, and neither are ``"1"`` and ``1``;
- changes come out sorted by path (object keys by code point, array indexes numerically), so
  the same two states always give the same list.

A path is a tuple of keys and indexes; :func:`format_path` renders it as
``context.files[2]["x-api"]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from debug_sink.wire.canonical import format_path

__all__ = ["Change", "StateDiff", "diff_json", "format_path"]


Path = tuple[str | int, ...]
Op = Literal["added", "removed", "changed"]
_MISSING: Any = object()
_CONTAINERS = (Mapping, list, tuple)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: at ``path``, ``before`` became ``after`` (absent sides are ``None``)."""

    op: Op
    path: Path
    before: Any = None
    after: Any = None

    @property
    def where(self) -> str:
        """The path as text, e.g. ``context.files[2]``."""
        return format_path(self.path)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"op", "path", "before"?, "after"?}`` (path as text)."""
        out: dict[str, Any] = {"op": self.op, "path": self.where}
        if self.op != "added":
            out["before"] = self.before
        if self.op != "removed":
            out["after"] = self.after
        return out


@dataclass(frozen=True, slots=True)
class StateDiff:
    """Every change between two states, sorted by path. Falsy when the states are equal."""

    changes: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    @property
    def added(self) -> list[Change]:
        return [c for c in self.changes if c.op == "added"]

    @property
    def removed(self) -> list[Change]:
        return [c for c in self.changes if c.op == "removed"]

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.op == "changed"]

    def as_dict(self) -> dict[str, Any]:
        """``{"added": [...], "removed": [...], "changed": [...]}`` of :meth:`Change.as_dict`."""
        return {
            "added": [c.as_dict() for c in self.added],
            "removed": [c.as_dict() for c in self.removed],
            "changed": [c.as_dict() for c in self.changed],
        }


def diff_json(before: Any, after: Any) -> StateDiff:
    """The changes that turn ``before`` into ``after`` (both JSON values)."""
    changes: list[Change] = []
    _walk(before, after, (), changes)
    return StateDiff(tuple(changes))


def _same_scalar(a: Any, b: Any) -> bool:
    # bool is an int subclass in Python but a distinct type in JSON.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _walk(before: Any, after: Any, path: Path, out: list[Change]) -> None:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            old = before.get(key, _MISSING)
            new = after.get(key, _MISSING)
            where = (*path, key)
            if old is _MISSING:
                out.append(Change("added", where, None, new))
            elif new is _MISSING:
                out.append(Change("removed", where, old, None))
            else:
                _walk(old, new, where, out)
        return
    if _is_array(before) and _is_array(after):
        for index in range(max(len(before), len(after))):
            where = (*path, index)
            if index >= len(before):
                out.append(Change("added", where, None, after[index]))
            elif index >= len(after):
                out.append(Change("removed", where, before[index], None))
            else:
                _walk(before[index], after[index], where, out)
        return
    if (
        isinstance(before, _CONTAINERS)
        or isinstance(after, _CONTAINERS)
        or not _same_scalar(before, after)
    ):
        out.append(Change("changed", path, before, after))


def _is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)
