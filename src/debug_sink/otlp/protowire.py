"""The protobuf wire format walked by hand: a message the parser refuses whole, repaired.

Owns :func:`repair`. protobuf's parser (upb) refuses a whole message for one bad part: a
``string`` field that is not UTF-8, or a message nested past its 100 levels. In an OTLP
request a producer puts both where one span's attribute or name can hold them, and the
refusal loses every span of the request. :func:`repair` rewrites the bytes, led only by the
message descriptors (no schema of its own): it walks the fields -- varints, 64-bit,
length-delimited, 32-bit -- and descends into each length-delimited field that the
descriptor says is a message. There,

- a ``string`` field that is not UTF-8 is decoded with U+FFFD for what is not (and its
  length prefix, and every enclosing one, re-encoded);
- an instance of the ``deep`` message type with ``max_depth`` instances of it above it that
  would nest further (holds a message-typed field) is replaced by ``placeholder``;
- every other field is copied as it is: numbers, bytes, unknown fields, packed lists.

Guarantees: the result is the input (the same object) when nothing needed repairing; None
when the bytes are not a protobuf message (a truncated field, a length past its end, a
varint longer than 10 bytes, field number 0, wire types 6 and 7), use groups (refused: OTLP
has none), or nest past 100 message levels even after the cut; never raises for any input.
Bounded: one recursion per message level (at most 100), each field read once, a byte
copied once per enclosing message that changed (not at all in one that did not). Not done
here: parsing the result (the caller does; a message this walk accepts may still be
refused, a malformed packed list say), nor any check of what values mean.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = ["repair"]

#: Message levels walked at most (upb refuses deeper messages anyway).
MAX_LEVELS: Final = 100
_VARINT: Final = 0
_FIXED64: Final = 1
_LENGTH: Final = 2
_FIXED32: Final = 5
_STRING: Final = "string"
_MAX_TAG: Final = 0xFFFF_FFFF


class _Malformed(Exception):
    """The bytes are not a protobuf message this walk can repair."""


def repair(
    data: bytes, message: Descriptor, *, deep: Descriptor, max_depth: int, placeholder: bytes
) -> bytes | None:
    """``data`` (a serialized ``message``) with its strings made UTF-8 and its ``deep``
    values cut past ``max_depth`` levels (see the module doc); None if it is malformed."""
    walk = _Walk(data, deep, max_depth, placeholder)
    try:
        repaired = walk.message(0, len(data), message, 1, 0)
    except _Malformed:
        return None
    return data if repaired is None else bytes(repaired)


@cache
def _fields(message: Descriptor) -> dict[int, Descriptor | str]:
    """Field number -> the message type of a message field, or :data:`_STRING`."""
    kinds: dict[int, Descriptor | str] = {}
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            kinds[field.number] = field.message_type
        elif field.type == FieldDescriptor.TYPE_STRING:
            kinds[field.number] = _STRING
    return kinds


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(data: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """The field at ``pos``: (number, wire type, where its value starts, where it ends);
    a length-delimited value starts after its length."""
    tag, pos = _varint(data, pos, end)
    number, wire_type = tag >> 3, tag & 7
    if number == 0 or tag > _MAX_TAG:
        raise _Malformed
    if wire_type == _VARINT:
        _, after = _varint(data, pos, end)
        return number, wire_type, pos, after
    if wire_type == _LENGTH:
        length, pos = _varint(data, pos, end)
        after = pos + length
    elif wire_type == _FIXED64:
        after = pos + 8
    elif wire_type == _FIXED32:
        after = pos + 4
    else:  # groups (3, 4) and the wire types that do not exist (6, 7)
        raise _Malformed
    if after > end:
        raise _Malformed
    return number, wire_type, pos, after


class _Walk:
    def __init__(self, data: bytes, deep: Descriptor, max_depth: int, placeholder: bytes):
        self.data = data
        self.deep = deep
        self.max_depth = max_depth
        self.placeholder = placeholder

    def message(
        self, pos: int, end: int, message: Descriptor, level: int, deep_above: int
    ) -> bytes | bytearray | None:
        """The message in ``data[pos:end]`` repaired; None if it needs no repair."""
        if level > MAX_LEVELS:
            raise _Malformed
        kinds = _fields(message)
        is_deep = message is self.deep
        if is_deep and deep_above >= self.max_depth and self._nests(pos, end, kinds):
            return self.placeholder
        below = deep_above + 1 if is_deep else deep_above
        data = self.data
        out: bytearray | None = None
        copied = pos  # data[copied:pos] is still to be copied into out
        while pos < end:
            number, wire_type, start, after = _field(data, pos, end)
            kind = kinds.get(number) if wire_type == _LENGTH else None
            new: bytes | bytearray | None = None
            if kind is _STRING:
                text = data[start:after]
                try:
                    text.decode()
                except UnicodeDecodeError:
                    new = text.decode(errors="replace").encode()
            elif isinstance(kind, Descriptor):
                new = self.message(start, after, kind, level + 1, below)
            if new is not None:
                if out is None:
                    out = bytearray()
                _, tag_end = _varint(data, pos, end)
                out += data[copied:tag_end]
                out += _encode_varint(len(new))
                out += new
                copied = after
            pos = after
        if out is None:
            return None
        out += data[copied:end]
        return out

    def _nests(self, pos: int, end: int, kinds: dict[int, Descriptor | str]) -> bool:
        """Whether the message in ``data[pos:end]`` holds a message-typed field (read on its
        own level only: what it holds is not walked)."""
        nests = False
        while pos < end:
            number, wire_type, _, pos = _field(self.data, pos, end)
            if wire_type == _LENGTH and isinstance(kinds.get(number), Descriptor):
                nests = True
        return nests
