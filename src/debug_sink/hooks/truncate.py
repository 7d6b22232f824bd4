"""Keeping a hook's payload small: large tool inputs and responses cut, with a visible marker.

Owns :func:`bounded`. A tool's input or response can be megabytes (a file read, a command's
output); what the hook command stores is a copy within :data:`MAX_PAYLOAD_BYTES` of JSON,
where every cut is marked so that nobody mistakes it for the whole:

- a string longer than the limit keeps its start and ends with
  ``…[cut by debug-sink: N characters in all]``;
- a list or an object with more entries keeps the first ones and says how many there were
  (``"…[cut by debug-sink: N items in all]"`` as the last item, ``"…": "[cut by debug-sink:
  N keys in all]"`` as the last key);
- nesting deeper than :data:`MAX_DEPTH` becomes ``"[cut by debug-sink: nested deeper]"``.

If the copy is still larger than the budget, the string limit is lowered and it is made
again (4096, 1024, 256, 64 characters), so a payload of many medium strings shrinks evenly
rather than losing its end. Pure; the input is not modified.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["MAX_DEPTH", "MAX_PAYLOAD_BYTES", "bounded", "cut_text", "encoded_size"]

#: The largest payload kept, in bytes of JSON: under the SDK's 64 KiB for a JSON field, with
#: room for what redaction may add.
MAX_PAYLOAD_BYTES: Final = 48 * 1024
#: Deeper nesting is replaced by a marker (the sink accepts 64 levels in a whole message).
MAX_DEPTH: Final = 24
_STRING_LIMITS: Final = (4096, 1024, 256, 64)
_MAX_ITEMS: Final = 200
#: Entries copied in one pass at most: far more than 48 KiB of JSON can hold, so a huge
#: structure (a query result of millions of numbers) costs one bounded walk, not five whole.
_MAX_NODES: Final = 20_000
_MARK: Final = "cut by debug-sink"
#: The token-like run a cut would split (an API key, a password in a URL, a bearer token):
#: its start is dropped with the rest, so that no part of a secret is kept whose format
#: (which redaction, later, recognises whole) the cut hides. Words and filler are kept: only
#: a run with a digit or a token's punctuation in it counts.
_SPLIT_RUN: Final = re.compile(r"[\w+/=.:~@-]{1,256}\Z")
_TOKEN_LIKE: Final = re.compile(r"[\d_+/=:@]")


def cut_text(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and the marker."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    run = _SPLIT_RUN.search(head) if _SPLIT_RUN.match(text[limit]) else None
    if run is not None and _TOKEN_LIKE.search(run.group()):
        head = head[: run.start()]
    return f"{head}…[{_MARK}: {len(text)} characters in all]"


def _cut_key(key: str, limit: int) -> str:
    """A key of at most ``limit`` characters: its start and its end, where a credential's
    name usually says what it is (``..._database_password``), so that redaction by key,
    later, still knows it."""
    if len(key) <= limit:
        return key
    start = max(1, (limit - 1) // 2)
    return f"{key[:start]}…{key[-max(1, limit - 1 - start) :]}"


def encoded_size(value: Any) -> int:
    """Bytes of ``value``'s JSON (as the spool writes it; a lone surrogate is 3 bytes)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def bounded(value: Any, budget: int = MAX_PAYLOAD_BYTES) -> Any:
    """A copy of JSON ``value`` within ``budget`` bytes of JSON, cut as the module says."""
    result = value
    for limit in _STRING_LIMITS:
        result = _cut(value, limit, 0, [_MAX_NODES])
        if encoded_size(result) <= budget:
            return result
    # Still too large (thousands of short entries): keep the outline only.
    return _cut(value, 16, MAX_DEPTH - 1, [_MAX_NODES])


def _cut(value: Any, limit: int, depth: int, nodes: list[int]) -> Any:
    """``nodes``: how many more entries this pass may copy (shared by the whole walk)."""
    if isinstance(value, str):
        return cut_text(value, limit)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return f"[{_MARK}: nested deeper]"
        items = list(value.items())
        kept = items[: min(_MAX_ITEMS, max(0, nodes[0]))]
        nodes[0] -= len(kept)
        out: dict[str, Any] = {}
        for k, v in kept:
            out[_cut_key(str(k), limit)] = _cut(v, limit, depth + 1, nodes)
        if len(items) > len(kept):
            out["…"] = f"[{_MARK}: {len(items)} keys in all]"
        return out
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return f"[{_MARK}: nested deeper]"
        head = value[: min(_MAX_ITEMS, max(0, nodes[0]))]
        nodes[0] -= len(head)
        cut = [_cut(v, limit, depth + 1, nodes) for v in head]
        if len(value) > len(head):
            cut.append(f"…[{_MARK}: {len(value)} items in all]")
        return cut
    return value
