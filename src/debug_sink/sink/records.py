"""Kafka record batches that a producer wrote wrongly, read anyway.

aiokafka decodes every header key of a record batch as strict UTF-8 while it iterates the
batch. One key that is not UTF-8 (Kafka stores bytes; only well-behaved clients send text)
raises in the middle of the batch, aiokafka drops the records it had already decoded from
that batch and, on the next fetch, fails at the same place again: the partition stalls, and
the records before the bad one are lost to a consumer that skips ahead.

:func:`install` makes the consumer's fetcher read record batches through
:class:`LenientRecords`: batches are iterated by aiokafka's fast (C) reader as usual; when one
raises on a header key, the same bytes are read again by aiokafka's pure-Python reader with
header keys decoded leniently (invalid bytes become ``\\xNN`` escapes), and iteration goes on
from the record that failed. Nothing else about records changes, and the slow path runs only
for such batches.

What is not readable at all (a corrupt batch, a codec that is not installed) is the
fetcher's business: it dead-letters those offsets (:mod:`debug_sink.sink.fetcher`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog

# aiokafka's pure-Python readers, private names: the dependency pins aiokafka's minor
# versions, and a test reads a bad batch through them.
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

log = structlog.get_logger("debug_sink")

__all__ = ["LenientRecords", "install"]

_MAGIC_OFFSET = 16


class _LenientText(bytes):
    """A header key's bytes: decoding never fails (invalid UTF-8 becomes ``\\xNN``)."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes.decode(self, encoding, "backslashreplace")


class _LenientBuffer(bytearray):
    """A batch's bytes whose slices decode leniently (the reader slices then decodes)."""

    def __getitem__(self, index: Any) -> Any:
        item = bytearray.__getitem__(self, index)
        return _LenientText(item) if isinstance(index, slice) else item


class _LenientBatchReader(_DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's pure-Python batch reader over a :class:`_LenientBuffer`."""

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        buffer: bytearray = self._buffer  # type: ignore[has-type]
        if type(buffer) is not _LenientBuffer:
            self._buffer = _LenientBuffer(buffer)


class _Batch:
    """A record batch read by the fast reader, re-read leniently if it fails on a header."""

    __slots__ = ("_batch", "_iterator", "_raw")

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw
        self._iterator: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        return self._records()

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._records()
        return next(self._iterator)

    def _records(self) -> Iterator[Any]:
        done = 0
        try:
            for record in self._batch:
                yield record
                done += 1
            return
        except UnicodeDecodeError as exc:
            log.warning(
                "record_header_not_utf8",
                base_offset=self._batch.base_offset,
                record=done,
                error=str(exc),
            )
        reader = _LenientBatchReader(bytes(self._raw))
        for index, record in enumerate(reader):
            if index >= done:
                yield record


class LenientRecords(_MemoryRecordsPy):  # type: ignore[misc]
    """aiokafka's ``MemoryRecords`` whose v2 batches are :class:`_Batch`."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if batch is None or raw is None or raw[_MAGIC_OFFSET] < 2:
            return batch
        return _Batch(batch, raw)


def install() -> None:
    """Make aiokafka's fetcher read batches through :class:`LenientRecords` (idempotent)."""
    from aiokafka.consumer import fetcher

    fetcher.MemoryRecords = LenientRecords
