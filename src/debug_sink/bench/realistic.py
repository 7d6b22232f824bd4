"""The realistic workload: what the headline throughput is measured on.

Owns :class:`Realism` (its knobs) and :func:`producer_stream`: the messages one of several
producers sends -- each producer an agent process running a few workflows at a time -- made
of the workflows of :func:`~debug_sink.bench.workload.workflow_events` with what a best case
leaves out:

- random ids: version-4 UUIDs as the SDK makes them (``uuid4``), so every index on an id
  takes inserts all over its key range, not at its right edge;
- workflows interleaved: a producer runs ``concurrent`` workflows at once and sends the next
  event of a randomly chosen one; several producers send at the same time (their streams
  interleave in the partitions);
- re-sent messages: a share of the messages is sent a second time, a little later in the
  same producer's stream (an at-least-once producer retrying after a lost acknowledgement):
  the same bytes, the same key, so the same partition;
- secrets: some workflows carry credentials the sink must redact (a bearer token in an error
  message, an API key in its metadata, a password in an agent state);
- invalid messages: a few per thousand, extra messages no event references (invalid JSON, a
  string over its column's length, a number sent as a string); each becomes a dead letter.

Guarantees: deterministic for ``(tag, realism, producer, workflows)``; every valid event
passes the sink's validation once stamped; parents precede their children within a
producer's stream (a re-sent copy comes after its original); each stream item says which
producer-local sequence number its timestamp is derived from (a re-sent copy repeats its
original's, so its bytes are identical). Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from debug_sink.bench.internals import EventKind
from debug_sink.bench.workload import IdScheme, Message, workflow_events

__all__ = ["INVALID_KINDS", "Realism", "Sent", "StreamCounts", "producer_stream", "random_ids"]

#: The invalid messages, in the order they are used: (topic kind, how it is invalid).
INVALID_KINDS: Final = (
    (EventKind.HOOK, "not_json"),
    (EventKind.HOOK, "too_long"),
    (EventKind.STEP, "schema"),
)


@dataclass(frozen=True, slots=True)
class Realism:
    """How far from the best case a workload is.

    ``producers`` send at the same time, each running ``concurrent`` workflows at once;
    ``duplicates``: share of messages sent twice; ``secrets``: share of workflows carrying
    credentials (two of their events are redacted); ``invalid``: share of workflows with one
    invalid message among theirs.
    """

    producers: int = 4
    concurrent: int = 8
    duplicates: float = 0.05
    secrets: float = 0.05
    invalid: float = 0.02
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Sent:
    """One message of a producer's stream; ``seq``: the producer-local number its
    timestamps are derived from (a re-sent copy has its original's); ``invalid``: the sink
    must dead-letter it."""

    message: Message
    seq: int
    invalid: bool = False


@dataclass(slots=True)
class StreamCounts:
    """What a stream held, counted as it was generated."""

    messages: int = 0
    workflows: int = 0
    duplicates: int = 0
    #: Invalid messages sent, re-sent copies included: the dead letters to expect.
    invalid: int = 0
    with_secrets: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, other: StreamCounts) -> None:
        self.messages += other.messages
        self.workflows += other.workflows
        self.duplicates += other.duplicates
        self.invalid += other.invalid
        self.with_secrets += other.with_secrets
        self.kinds.update(other.kinds)

    def count(self, sent: Sent, *, copy: bool) -> None:
        self.messages += 1
        self.duplicates += copy
        self.invalid += sent.invalid
        self.kinds[sent.message.kind.value] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "workflows": self.workflows,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "events_with_secrets": self.with_secrets,
            "kinds": dict(sorted(self.kinds.items())),
        }


def random_ids(tag: int) -> IdScheme:
    """Version-4 UUIDs that look random (a hash of tag, workflow and slot), as uuid4 ids
    do: deterministic, so a backlog can be described and checked."""

    def ids(w: int, slot: int) -> str:
        digest = hashlib.blake2b(f"{tag}:{w}:{slot}".encode(), digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    return ids


def _token(rng: random.Random) -> str:
    return "sk-live-" + "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(32))


def _with_secrets(events: list[tuple[EventKind, dict[str, Any]]], rng: random.Random) -> None:
    """Credentials where agents leak them: the error's message and metadata, a state."""
    token = _token(rng)
    for kind, body in events:
        if kind is EventKind.ERROR:
            body["error_message"] += f" (request sent with Authorization: Bearer {token})"
            body["metadata"] = {**body.get("metadata", {}), "api_key": token}
        elif kind is EventKind.SNAPSHOT and body["snapshot_type"] == "error":
            body["agent_state"] = {
                **body["agent_state"],
                "credentials": {"user": "ci-bot", "password": f"pw-{rng.getrandbits(40):x}"},
            }


def _invalid(n: int, key: bytes, ids: IdScheme, w: int) -> Message:
    """The ``n``-th kind of invalid message (:data:`INVALID_KINDS`) for workflow ``w``."""
    kind, how = INVALID_KINDS[n % len(INVALID_KINDS)]
    corr = key.decode()
    if how == "not_json":
        value = b'{"id": "' + ids(w, 29).encode() + b'", "source": "PostToolUse", "payl'
    elif how == "too_long":
        value = orjson.dumps(
            {
                "id": ids(w, 29),
                "correlation_id": corr,
                "source": "PostToolUse" * 30,
                "payload": {},
            }
        )
    else:
        value = orjson.dumps(
            {
                "id": ids(w, 28),
                "correlation_id": corr,
                "step_number": "3",
                "step_type": "execution",
                "agent_name": "a",
                "operation_name": "o",
                "status": "started",
            }
        )
    return Message(kind, key, value)


def producer_stream(
    producer: int,
    workflows: range,
    *,
    tag: int,
    realism: Realism,
    counts: StreamCounts | None = None,
) -> Iterator[Sent]:
    """The stream of producer ``producer``: the workflows ``w`` of ``workflows`` with
    ``w % realism.producers == producer``, interleaved, with re-sent copies, secrets and
    invalid messages as :class:`Realism` says. ``counts`` is filled as it goes."""
    counts = counts if counts is not None else StreamCounts()
    rng = random.Random(f"{realism.seed}:{tag}:{producer}")
    ids = random_ids(tag)
    mine = iter(w for w in workflows if w % realism.producers == producer)
    active: list[Iterator[tuple[Message, bool]]] = []
    #: re-sends due: send-count at which they go -> (message, original seq)
    resend: dict[int, list[Sent]] = {}
    seq = 0

    def start_next() -> bool:
        w = next(mine, None)
        if w is None:
            return False
        active.append(
            _workflow_messages(w, tag=tag, ids=ids, rng=rng, realism=realism, counts=counts)
        )
        counts.workflows += 1
        return True

    while len(active) < realism.concurrent and start_next():
        pass
    while active or resend:
        for copy in resend.pop(seq, ()):
            counts.count(copy, copy=True)
            yield copy
        if not active:
            # Only re-sends are left: send them now, in order.
            for at in sorted(resend):
                for copy in resend.pop(at):
                    counts.count(copy, copy=True)
                    yield copy
            break
        index = rng.randrange(len(active))
        item = next(active[index], None)
        if item is None:
            active.pop(index)
            start_next()
            continue
        message, invalid = item
        sent = Sent(message, seq, invalid)
        counts.count(sent, copy=False)
        yield sent
        if rng.random() < realism.duplicates:
            resend.setdefault(seq + rng.randint(1, 256), []).append(sent)
        seq += 1


def _workflow_messages(
    w: int,
    *,
    tag: int,
    ids: IdScheme,
    rng: random.Random,
    realism: Realism,
    counts: StreamCounts,
) -> Iterator[tuple[Message, bool]]:
    """The messages of workflow ``w`` (and whether each is invalid)."""
    events = workflow_events(w, tag, ids=ids)
    if rng.random() < realism.secrets:
        _with_secrets(events, rng)
        counts.with_secrets += 2
    key = events[0][1]["correlation_id"].encode()
    invalid_at = rng.randrange(len(events)) if rng.random() < realism.invalid else None
    for i, (kind, body) in enumerate(events):
        yield Message(kind, key, orjson.dumps(body)), False
        if i == invalid_at:
            yield _invalid(rng.randrange(len(INVALID_KINDS)), key, ids, w), True
