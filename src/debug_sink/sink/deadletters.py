"""Dead letters: every message that does not become a row, with the precise reason.

Owns the :class:`DeadLetter` type and :class:`Letters`, which makes one from any record --
whatever its key, value, headers, timestamp or size -- in a form both channels can always
take; the two channels: the dead-letter *topic* (a copy of the message with Kafka
Connect-style error headers, :class:`DeadLetterTopic`) and the ``sink_dead_letters`` *table*
(:func:`store`); the operator's listing (:func:`list_dead_letters`) and the web view's
browsing (:func:`letter_page`, :func:`letter`, :func:`letter_groups`). Every statement on the
table is in ``sql/deadletters.sql``.

What a letter keeps of its message (:class:`Letters`):

- the value and key, *redacted* (:class:`~debug_sink.wire.redact.Redactor`: JSON by key and
  by value, anything else by secret format; an OTLP topic's protobuf message decoded,
  redacted and re-encoded: :func:`~debug_sink.otlp.redact.redact_request`). The raw bytes of
  a message that held a secret are not kept anywhere. A value that cannot be read well
  enough to redact (broken JSON, binary data) and that names a secret is not kept at all:
  the letter says so, with the value's size (``debug-sink.truncated``);
- at most ``max_bytes`` of value, key and headers together: a larger message is cut, and its
  headers say so (``debug-sink.truncated``: the original size, and its SHA-256 when nothing
  in it was redacted -- a hash of a message that held a secret would let anyone who can
  guess the rest confirm a guess of the secret);
- headers as text that PostgreSQL's jsonb stores: invalid UTF-8 and NUL escaped (``\\xNN``),
  a null value kept as null, repeated keys kept in order; values redacted;
- the reason, redacted, never more than a few thousand characters;
- the record timestamp as sent (the table's ``record_time`` is NULL when it is not a date).

Guarantees: the writer publishes a batch's dead letters to the topic before its transaction
stores them in the table and commits the offsets; a broker that is down aborts the batch,
which is retried, so neither channel misses a letter (a retried batch may publish a letter
twice; the table keeps one per origin: message and part, the event's index within it). A
letter the broker refuses as too large is cut further until it fits: never retried as if the
broker were down. Not guaranteed: exactly one copy on the topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from debug_sink.db import sqlfiles
from debug_sink.db.pg import Conn, connection
from debug_sink.errors import BrokerUnavailable
from debug_sink.otlp.redact import redact_request
from debug_sink.sink.batch import Item, Origin
from debug_sink.wire.redact import REDACTED, Redactor
from debug_sink.wire.secrets import safe_name
from debug_sink.wire.validation import unframed

log = structlog.get_logger("debug_sink")

#: Kafka Connect-style headers on dead-letter messages.
DLQ_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Set when a letter's value was cut: ``original_bytes=N sha256=HEX``, without ``sha256``
#: when the value was redacted or withheld.
TRUNCATED_HEADER: Final = "debug-sink.truncated"
#: Set when the letter is one event of a message that carries several (an OTLP span): its
#: index among them.
PART_HEADER: Final = "debug-sink.part"
_MAX_REASON: Final = 4000
_MAX_KEY: Final = 1024
_MAX_HEADER_VALUE: Final = 8192
_MAX_HEADERS: Final = 64
#: Room kept for the error headers and Kafka's own record and batch framing.
_ENVELOPE: Final = 4096
_SHRINK_ATTEMPTS: Final = 6
#: Added to the reason of a letter whose value is not kept (:meth:`Letters.make`).
_WITHHELD: Final = (
    " [the message is not kept: it cannot be read well enough to redact (not JSON, or "
    "binary) and it names a secret; its size is in debug-sink.truncated]"
)


def _sql(name: str) -> str:
    return sqlfiles.load("deadletters.sql")[name]


@dataclass(slots=True)
class DeadLetter:
    """One message that will not become a row, with the precise reason; storable as is
    (build it with :class:`Letters`)."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int | None
    error_class: str
    reason: str
    #: ``(original size, SHA-256 hex)`` when the value was cut; no SHA-256 (None) when the
    #: value was redacted or withheld.
    truncated: tuple[int, str | None] | None = None


@dataclass(frozen=True, slots=True)
class Letters:
    """Makes dead letters from records: redacted, bounded, storable. See the module doc."""

    redactor: Redactor = field(default_factory=Redactor)
    max_bytes: int = 900_000
    #: Topics of OTLP messages (their protobuf is redacted decoded).
    otlp_topics: frozenset[str] = frozenset()

    def of_item(self, item: Item, error_class: str, reason: str) -> DeadLetter:
        """The letter of a consumed message."""
        return self.make(
            item.origin,
            key=item.key,
            value=item.value,
            headers=item.headers,
            timestamp_ms=item.timestamp_ms,
            error_class=error_class,
            reason=reason,
        )

    def of_parked(self, origin: Origin, event: Any, error_class: str, reason: str) -> DeadLetter:
        """The letter of a parked event. Its raw message is gone (the offset was committed
        when it was parked), so the letter holds the validated event as JSON, keyed by its
        correlation_id like the wire format."""
        # Python mode: orjson writes ids, times and exactly kept numbers (orjson.Fragment).
        value = orjson.dumps(event.model_dump())
        key = str(event.correlation_id).encode()
        return self.make(
            origin,
            key=key,
            value=value,
            headers=(),
            timestamp_ms=None,
            error_class=error_class,
            reason=reason,
        )

    def make(
        self,
        origin: Origin,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[Any, Any]],
        timestamp_ms: int | None,
        error_class: str,
        reason: str,
    ) -> DeadLetter:
        redact = self.redactor
        safe_headers = tuple(self._header(k, v) for k, v in list(headers)[:_MAX_HEADERS])
        if key is not None:
            key, _ = redact.redact_bytes(key[:_MAX_KEY])
        truncated = None
        withheld = False
        if value is not None:
            room = self.max_bytes - len(key or b"") - _headers_size(safe_headers)
            room = max(0, room - _ENVELOPE)
            original = value
            # Redacted whole, then cut: a cut message is no JSON, and its secrets by key
            # would be out of reach of the scan of text.
            safe = self._safe_value(origin.topic, value)
            withheld = safe is None
            value = b"" if safe is None else safe
            if safe is None or len(value) > room:
                unchanged = safe is not None and safe == original
                truncated = (
                    len(original),
                    hashlib.sha256(original).hexdigest() if unchanged else None,
                )
                value = value[:room]
        # The note goes on after the reason is cut: NULs written as "\x00" lengthen it.
        chars = _MAX_REASON - (len(_WITHHELD) if withheld else 0)
        text, _ = redact.redact_text(reason.replace("\x00", "\\x00")[:chars])
        if withheld:
            text += _WITHHELD
        if (topic := safe_name(origin.topic)) != origin.topic:
            origin = dataclasses.replace(origin, topic=topic)
        return DeadLetter(
            origin, key, value, safe_headers, timestamp_ms, error_class, text, truncated
        )

    def _safe_value(self, topic: str, value: bytes) -> bytes | None:
        """``value`` redacted, or None when it cannot be made safe to keep."""
        if topic in self.otlp_topics:
            redacted = redact_request(value, self.redactor)
            if redacted is not None:
                return redacted
        # A Schema Registry header or a BOM would make the JSON after it unreadable as
        # JSON (and as good as binary to the scan): redact the JSON, keep the frame.
        body = unframed(value)
        safe = self.redactor.redact_payload(body)
        if safe is None:
            return None
        if safe is not body:
            safe = _without_sent_hash(safe)
        return value[: len(value) - len(body)] + safe if len(body) < len(value) else safe

    def _header(self, key: Any, value: Any) -> tuple[str, bytes | None]:
        name = key if isinstance(key, str) else bytes(key or b"").decode("utf-8", "replace")
        name = _text(name.encode("utf-8", "backslashreplace"))[:256]
        name, _ = self.redactor.redact_text(name)  # a token may be sent as a header's name
        if value is None:
            return name, None
        data = bytes(value)[:_MAX_HEADER_VALUE]
        if self.redactor.matches(name):
            return name, REDACTED.encode()
        data, _ = self.redactor.redact_bytes(data)
        return name, data


#: A producer's ``state_hash`` member as sent (the hex of a SHA-256, or what a cut left of
#: it), in JSON, in its remains, or in JSON held in a string (quotes escaped).
_SENT_HASH: Final = re.compile(rb'(\\?"state_hash\\?"\s*:\s*\\?")[0-9A-Fa-f]{1,64}')


def _without_sent_hash(redacted: bytes) -> bytes:
    """A redacted message without the ``state_hash`` its producer computed over the state
    as sent: with the rest of the state known, that hash confirms a guess of what was
    redacted (a short password). Also in a cut or broken message."""
    return _SENT_HASH.sub(rb"\1" + REDACTED.encode(), redacted)


def _text(data: bytes) -> str:
    """Bytes as text jsonb can store: invalid UTF-8 escaped, NUL escaped."""
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _headers_size(headers: Sequence[tuple[str, bytes | None]]) -> int:
    return sum(len(k.encode()) + len(v or b"") + 8 for k, v in headers)


#: Called with the dead letters of a batch before its transaction commits (produce them to
#: the dead-letter topic); raising aborts the batch, which is then retried.
DeadLetterPublisher = Callable[[Sequence[DeadLetter]], Awaitable[None]]


class DeadLetterTopic:
    """Produces dead letters to ``topic`` through ``producer`` (an aiokafka producer). A
    letter with neither key nor value is sent with an empty value (aiokafka cannot send
    both null); the table keeps the null."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Produce every letter and wait for the broker's acknowledgements. A letter the
        broker finds too large is cut further and sent again; a broker that cannot be
        reached is :class:`~debug_sink.errors.BrokerUnavailable` (the batch is retried)."""
        try:
            futures = [await self._send(d, d.value) for d in letters]
            results = await asyncio.gather(*futures, return_exceptions=True)
            for letter, result in zip(letters, results, strict=True):
                if isinstance(result, MessageSizeTooLargeError | RecordTooLargeError):
                    await self._shrink(letter)
                elif isinstance(result, BaseException):
                    raise result
        except (MessageSizeTooLargeError, RecordTooLargeError):
            raise  # pragma: no cover - handled per letter above
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot produce dead letters to {self.topic}: {exc}") from exc

    async def _send(self, d: DeadLetter, value: bytes | None) -> Any:
        if value is None and d.key is None:
            # Kafka allows a record with neither key nor value (librdkafka sends one);
            # aiokafka's producer refuses it (AssertionError). The copy gets an empty value;
            # its reason says the value was null.
            value = b""
        try:
            return await self._producer.send(
                self.topic, value, key=d.key, headers=_kafka_headers(d, value)
            )
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_exception(exc)
            return done

    async def _shrink(self, d: DeadLetter) -> None:
        """Halve the value until the broker takes the letter; at worst, an empty value."""
        value = d.value or b""
        for _ in range(_SHRINK_ATTEMPTS):
            value = value[: len(value) // 2] if len(value) > 64 else b""
            try:
                await (await self._send(d, value))
                log.warning(
                    "dead_letter_cut_to_fit",
                    topic=d.origin.topic,
                    partition=d.origin.partition,
                    offset=d.origin.offset,
                    bytes=len(value),
                )
                return
            except (MessageSizeTooLargeError, RecordTooLargeError):
                if not value:
                    break
        raise BrokerUnavailable(
            f"the broker refuses even an empty dead letter on {self.topic}: check its "
            "message size limits"
        )


def _kafka_headers(d: DeadLetter, value: bytes | None) -> list[tuple[str, bytes | None]]:
    # A null header value stays null: the topic copy is the message as it was sent.
    headers: list[tuple[str, bytes | None]] = list(d.headers)
    headers += [
        (DLQ_HEADERS[0], d.origin.topic.encode()),
        (DLQ_HEADERS[1], str(d.origin.partition).encode()),
        (DLQ_HEADERS[2], str(d.origin.offset).encode()),
        (DLQ_HEADERS[3], d.error_class.encode()),
        (DLQ_HEADERS[4], d.reason.encode()),
    ]
    if d.origin.part:
        headers.append((PART_HEADER, str(d.origin.part).encode()))
    note = d.truncated
    if note is None and value is not None and d.value is not None and len(value) < len(d.value):
        note = (len(d.value), hashlib.sha256(d.value).hexdigest())  # cut to fit the broker
    if note is not None:
        headers.append((TRUNCATED_HEADER, _truncated_note(note).encode()))
    return headers


def _truncated_note(note: tuple[int, str | None]) -> str:
    size, digest = note
    return f"original_bytes={size}" + ("" if digest is None else f" sha256={digest}")


def _record_time(timestamp_ms: int | None) -> datetime | None:
    """The record timestamp as a date, or None when it is not one (absent, negative, or
    beyond what a date can hold: producers may send any 64-bit number)."""
    if timestamp_ms is None or timestamp_ms < 0:
        return None  # 0 is a date (the epoch); -1 is Kafka's "no timestamp"
    try:
        # Integer arithmetic: timestamp_ms / 1000 as a float is off by microseconds in
        # late years (9999-12-31T23:59:59.999 became .998993).
        return _EPOCH + timedelta(milliseconds=timestamp_ms)
    except OverflowError:
        return None


def _headers_json(letter: DeadLetter) -> dict[str, Any] | None:
    """Headers for the jsonb column: text values (null stays null), repeated keys as a list,
    the truncation note as a header."""
    out: dict[str, Any] = {}
    for key, value in letter.headers:
        text = None if value is None else _text(value)
        if key in out:
            previous = out[key]
            out[key] = [*previous, text] if isinstance(previous, list) else [previous, text]
        else:
            out[key] = text
    if letter.truncated is not None:
        out[TRUNCATED_HEADER] = _truncated_note(letter.truncated)
    return out or None


async def store(conn: Conn, letters: Sequence[DeadLetter], *, group_id: str) -> None:
    """Insert ``letters`` into the table (inside the batch's transaction)."""
    if letters:
        await conn.executemany(
            _sql("store"),
            [
                (
                    d.origin.topic,
                    d.origin.partition,
                    d.origin.offset,
                    d.key,
                    d.value,
                    _headers_json(d),
                    d.error_class,
                    d.reason,
                    group_id,
                    _record_time(d.timestamp_ms),
                    d.origin.part,
                )
                for d in letters
            ],
        )


# -- listing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One row of ``debug-sink dead-letters list``."""

    id: int
    received_at: datetime
    topic: str
    partition: int
    offset: int
    error_class: str
    reason: str
    value_preview: str
    value_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_class": self.error_class,
            "reason": self.reason,
            "value_preview": self.value_preview,
            "value_bytes": self.value_bytes,
        }


async def list_dead_letters(
    dsn: str,
    *,
    schema: str = "public",
    since: datetime | None = None,
    topic: str | None = None,
    error_class: str | None = None,
    limit: int = 50,
    ssl: Any = None,
) -> list[DeadLetterRow]:
    """Newest first; ``since``: only those received at or after that moment."""
    async with connection(dsn, schema=schema, ssl=ssl, application_name="debug-sink-cli") as conn:
        rows = await conn.fetch(
            _sql("newest"),
            since,
            topic,
            error_class,
            limit,
        )
    return [
        DeadLetterRow(
            r["id"],
            r["received_at"],
            r["topic"],
            r["partition"],
            r["offset"],
            r["error_class"],
            r["reason"],
            (r["preview"] or b"").decode("utf-8", "replace"),
            r["size"] or 0,
        )
        for r in rows
    ]


# -- browsing (the web view) --------------------------------------------------------------


async def letter_page(
    conn: Conn,
    *,
    before_id: int | None = None,
    topic: str | None = None,
    error_class: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first, ids below ``before_id`` (the next page), filtered by topic, class and
    time: origin, class, reason, ``value_head`` (the first 2 KB of the stored, redacted
    value, bytes), ``value_bytes``, ``key_bytes``."""
    rows = await conn.fetch(_sql("page"), before_id, topic, error_class, since, limit)
    return [dict(r) for r in rows]


async def letter(conn: Conn, letter_id: int) -> dict[str, Any] | None:
    """One letter with its key, value (bytes, as stored) and headers; ``None`` when unknown."""
    row = await conn.fetchrow(_sql("one"), letter_id)
    return dict(row) if row is not None else None


async def letter_groups(conn: Conn, since: datetime | None = None) -> list[dict[str, Any]]:
    """Letters since ``since`` (``None``: all retained) counted per topic and class, most
    first: ``letters``, ``first_received_at``, ``last_received_at``."""
    return [dict(r) for r in await conn.fetch(_sql("groups"), since)]
