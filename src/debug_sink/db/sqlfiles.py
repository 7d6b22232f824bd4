"""Named SQL queries kept in ``.sql`` files next to the code (``debug_sink/sql/``).

A file holds several queries, each introduced by a marker line ``-- name: query_name``; the
comment lines right after the marker document the query and are kept with it (PostgreSQL
ignores them). :func:`load` parses a file once and returns ``{name: sql}``.

Owns nothing else: no connections, no execution.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from types import MappingProxyType
from typing import Final

_MARKER: Final = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """``{name: sql}`` of every ``-- name:`` block of ``text``; duplicates are an error."""
    queries: dict[str, str] = {}
    marks = list(_MARKER.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[mark.end() : end].strip()
        name = mark["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        if not body:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = body
    return queries


@functools.cache
def load(filename: str) -> MappingProxyType[str, str]:
    """The queries of ``debug_sink/sql/<filename>``, parsed once per process."""
    text = (resources.files("debug_sink") / "sql" / filename).read_text(encoding="utf-8")
    return MappingProxyType(parse(text))
