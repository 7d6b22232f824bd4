"""Deterministic ids of what one Claude Code hook invocation publishes.

Owns the derivation of every id the hook command writes: the workflow (``correlation_id``) of
a session and of a subagent inside it, the session's UUID, and the event ids. An id is a
UUIDv5 of the session and what the event is about, so that running a hook again with the same
input produces the same ids and the sink stores each event once (it is idempotent on ids).

- A session's workflow is its own ``session_id`` when that is a UUID (Claude Code's are), so
  ``debug-sink show <session_id>`` shows the session; any other session id is mapped to a
  UUIDv5 of it.
- A subagent's workflow is a UUIDv5 of the session id and its ``agent_id``.

Imports only CPython's own SHA-1 (``_sha1``; ``hashlib`` loads OpenSSL, ~5-10 ms) and ``re``:
the hook command's start-up time is its latency (the ``uuid`` module alone costs several
milliseconds of imports; the UUIDv5 algorithm of RFC 9562 is a SHA-1 and two masks).
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha1
    from typing import Final
else:
    try:
        from _sha1 import sha1
    except ImportError:  # an interpreter without CPython's builtin SHA-1
        from hashlib import sha1

__all__ = [
    "NAMESPACE",
    "event_id",
    "session_uuid",
    "sha1_hex",
    "subagent_workflow",
    "uuid5",
]

#: The UUIDv5 namespace of debug-sink's hook ids (uuid5(NAMESPACE_URL,
#: "https://github.com/debug-sink/debug-sink/hooks")).
NAMESPACE: Final = "0b790987-2620-5609-82fa-0d0783feddae"
_NAMESPACE_BYTES: Final = bytes.fromhex(NAMESPACE.replace("-", ""))
_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
#: Separates the parts of a name: no Claude Code id contains it.
_SEP: Final = "\x1f"


def sha1_hex(data: bytes) -> str:
    """The SHA-1 of ``data`` in hex (names files and identifies inputs; not for security)."""
    return sha1(data).hexdigest()


def uuid5(name: str, namespace: bytes = _NAMESPACE_BYTES) -> str:
    """The UUIDv5 (RFC 9562) of ``name`` in ``namespace``, as its canonical string; equal to
    ``str(uuid.uuid5(UUID(bytes=namespace), name))``."""
    digest = bytearray(sha1(namespace + name.encode("utf-8", "surrogatepass")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def session_uuid(session_id: str) -> str:
    """The session's UUID: ``session_id`` itself (lower case) when it is one, else its
    UUIDv5."""
    if len(session_id) == 36 and _UUID.fullmatch(session_id):
        return session_id.lower()
    return uuid5(_SEP.join(("session", session_id)))


def subagent_workflow(session_id: str, agent_id: str) -> str:
    """The workflow (correlation id) of subagent ``agent_id`` of the session."""
    return uuid5(_SEP.join(("subagent", session_id, agent_id)))


def event_id(workflow: str, *parts: str) -> str:
    """The id of an event of ``workflow`` identified by ``parts`` (what it is and what it is
    about: the hook event's name and the tool call's id, or a per-session sequence number)."""
    return uuid5(_SEP.join(("event", workflow, *parts)))
