"""A state diff as the workflow page shows it: a tree of the keys that changed.

Owns :func:`diff_rows`, pure: the changes of a :class:`~debug_sink.read.diff.StateDiff`
(sorted by path) become rows of a nested list -- each object key or array index on the way
to a change once, as a heading at its depth, then the change itself (added, removed or
changed, with the values before and after as JSON). So ``context.files[2]`` added and
``context.branch`` changed read as::

    context
      branch     "main" -> "fix"
      files
        [2]      + "api.py"

Values are JSON text, cut at :data:`MAX_VALUE_CHARS` (the row says so); the template
escapes them like every other string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from debug_sink.read.diff import Change

__all__ = ["MAX_VALUE_CHARS", "DiffRow", "diff_rows", "json_text"]

MAX_VALUE_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class DiffRow:
    """A heading (``op`` None: a key on the way to changes) or a change at ``depth``."""

    depth: int
    key: str
    op: Literal["added", "removed", "changed"] | None = None
    before: str | None = None
    after: str | None = None
    path: str = ""


def json_text(value: Any, *, indent: bool = False, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` as JSON (non-JSON leaves as their ``str``), cut to ``limit`` characters with
    a note of the full length."""
    option = orjson.OPT_INDENT_2 if indent else 0
    try:
        text = orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:
        text = str(value)
    if len(text) > limit:
        return text[:limit] + f"… ({len(text):,} characters)"
    return text


def _label(part: str | int) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def diff_rows(changes: Iterable[Change]) -> list[DiffRow]:
    """The rows of the tree (see the module doc), in the changes' order."""
    rows: list[DiffRow] = []
    shown: tuple[str | int, ...] = ()
    for change in changes:
        path = change.path
        common = 0
        while common < min(len(shown), len(path) - 1) and shown[common] == path[common]:
            common += 1
        for depth in range(common, len(path) - 1):
            rows.append(DiffRow(depth, _label(path[depth])))
        shown = path[:-1]
        rows.append(
            DiffRow(
                max(len(path) - 1, 0),
                _label(path[-1]) if path else "(the whole state)",
                change.op,
                None if change.op == "added" else json_text(change.before),
                None if change.op == "removed" else json_text(change.after),
                change.where,
            )
        )
    return rows
