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
_MARK: Final = "cut by debug-sink"


def cut_text(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and the marker."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{_MARK}: {len(text)} characters in all]"


def encoded_size(value: Any) -> int:
    """Bytes of ``value``'s JSON (as the spool writes it)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def bounded(value: Any, budget: int = MAX_PAYLOAD_BYTES) -> Any:
    """A copy of JSON ``value`` within ``budget`` bytes of JSON, cut as the module says."""
    result = value
    for limit in _STRING_LIMITS:
        result = _cut(value, limit, 0)
        if encoded_size(result) <= budget:
            return result
    # Still too large (thousands of short entries): keep the outline only.
    return _cut(value, 16, MAX_DEPTH - 1)


def _cut(value: Any, limit: int, depth: int) -> Any:
    if isinstance(value, str):
        return cut_text(value, limit)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return f"[{_MARK}: nested deeper]"
        items = list(value.items())
        out = {str(k)[:limit]: _cut(v, limit, depth + 1) for k, v in items[:_MAX_ITEMS]}
        if len(items) > _MAX_ITEMS:
            out["…"] = f"[{_MARK}: {len(items)} keys in all]"
        return out
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return f"[{_MARK}: nested deeper]"
        cut = [_cut(v, limit, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            cut.append(f"…[{_MARK}: {len(value)} items in all]")
        return cut
    return value
