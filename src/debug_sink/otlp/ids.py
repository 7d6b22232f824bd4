"""Deterministic ids for what a span becomes: replaying a record, or exporting a trace again,
gives the same ids, so every write is a no-op the second time.

Owns the derivation. ``correlation_id`` is the 16-byte trace id read as a UUID (the workflow
is the trace; a trace id shown in another tool is the same hex digits). Every other id is a
UUID v5 in :data:`NAMESPACE` of ``<what>:<trace id hex>:<span id hex>[:<index>]`` -- the
span's step, its errors (one per ``exception`` event, or one for an ERROR status without
any), its recovery success, its LLM call, a snapshot per state attribute. A parent span's
step id is computed from the parent's span id alone, without seeing the parent: that is how
a child names a step that arrives in a later message.

Pure functions, no state. Not guaranteed: uniqueness against ids a JSON producer makes up
(v4 UUIDs cannot collide with these v5 ones in practice).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

__all__ = ["NAMESPACE", "correlation_id", "derived", "session_id", "step_id"]

#: The namespace of every id this package derives (a fixed, random UUID).
NAMESPACE: Final = uuid.UUID("7d6f3c1e-2b4a-4f0e-9a51-0c5e8f1d2a47")
_NAMESPACE_BYTES: Final = NAMESPACE.bytes
#: uuid.uuid5's version and variant bits, set on the SHA-1 digest's first 16 bytes.
_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_SET: Final = (5 << 76) | (0x8000 << 48)


def _uuid5(name: str) -> uuid.UUID:
    """``uuid.uuid5(NAMESPACE, name)``, a third faster (a span makes several ids)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()
    return uuid.UUID(int=(int.from_bytes(digest[:16], "big") & _CLEAR) | _SET)


def correlation_id(trace_id: bytes) -> uuid.UUID:
    """The workflow of a trace: its 16-byte id as a UUID."""
    return uuid.UUID(bytes=trace_id)


def derived(
    what: str, trace_id: bytes, span_id: bytes, index: int | str | None = None
) -> uuid.UUID:
    """The id of the ``what`` (``error``, ``llm``, ...) of one span, ``index``-th of its kind."""
    name = f"{what}:{trace_id.hex()}:{span_id.hex()}"
    if index is not None:
        name += f":{index}"
    return _uuid5(name)


def step_id(trace_id: bytes, span_id: bytes) -> uuid.UUID:
    """The workflow step of a span (every span is one)."""
    return derived("step", trace_id, span_id)


def session_id(value: str) -> uuid.UUID:
    """A session or conversation id as a UUID: itself when it is one, else derived from it
    (conversation ids are free-form strings; the same string gives the same UUID)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return _uuid5(f"session:{value}")
