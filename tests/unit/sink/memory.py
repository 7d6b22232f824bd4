"""In-memory stand-ins for the sink's Kafka consumer, producer and database side.

Small and literal, like procrastinate's ``InMemoryConnector``: a :class:`MemoryLog` holds the
topics' records, :class:`MemoryConsumer` reads it with the calls the fetcher makes (pause,
seek, positions, high watermarks, a rebalance listener), :class:`MemoryStore` records what the
sink writes and the offsets it stores, and :class:`MemoryBackends` hands them to
:class:`~debug_sink.sink.runner.Sink`. Failures are injected by the tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from debug_sink.errors import DatabaseUnavailable
from debug_sink.settings import Settings
from debug_sink.sink.batch import Batch, Origin
from debug_sink.sink.deadletters import DeadLetter, Letters
from debug_sink.sink.writer import WriteResult
from debug_sink.wire.validation import Accepted


@dataclass(frozen=True, slots=True)
class Record:
    """What aiokafka's ConsumerRecord offers the fetcher."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()


class MemoryLog:
    """Topics -> partitions -> records, appended in offset order. ``starts``: a partition's
    first offset still held (the records before it were deleted, as by retention)."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[Record]] = {}
        self.starts: dict[TopicPartition, int] = {}

    def start(self, tp: TopicPartition) -> int:
        return self.starts.get(tp, 0)

    def append(self, topic: str, partition: int, value: Any, *, timestamp: int) -> Record:
        tp = TopicPartition(topic, partition)
        log = self.records.setdefault(tp, [])
        data = orjson.dumps(value) if isinstance(value, dict) else value
        record = Record(topic, partition, len(log), b"k", data, timestamp)
        log.append(record)
        return record

    def end(self, tp: TopicPartition) -> int:
        return len(self.records.get(tp, []))


class MemoryConsumer:
    """The calls the fetcher makes on aiokafka's consumer, over a :class:`MemoryLog`."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.listener: Any = None
        self.assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int | None]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.max_per_fetch = 50
        self.stopped = False
        #: What ListOffsets(earliest) answers where it is not the log's start (Tansu at times).
        self.reported_starts: dict[TopicPartition, int] = {}
        #: Called (and awaited) before ListOffsets is answered: tests hook rebalances here.
        self.before_list_offsets: Callable[[], Awaitable[None]] | None = None
        self._pending_assignment: set[TopicPartition] | None = None
        #: Called (and awaited) at the start of every getmany: tests hook rebalances here.
        self.before_fetch: Callable[[], Awaitable[None]] | None = None

    def subscribe(self, *, pattern: str, listener: Any) -> None:
        self.listener = listener
        self._pending_assignment = set(self.log.records)

    async def rebalance(self, partitions: set[TopicPartition]) -> None:
        """What the group coordinator does: revoke everything, assign ``partitions``."""
        await self.listener.on_partitions_revoked(set(self.assigned))
        self.assigned = set(partitions)
        self.paused.clear()
        await self.listener.on_partitions_assigned(set(partitions))

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        if self._pending_assignment is not None:
            partitions, self._pending_assignment = self._pending_assignment, None
            await self.rebalance(partitions)
        if self.before_fetch is not None:
            await self.before_fetch()
        out: dict[TopicPartition, list[Record]] = {}
        for tp in sorted(self.assigned):
            if tp in self.paused or tp not in self.positions:
                continue
            position = self.positions[tp]
            if position < self.log.start(tp):
                # Out of range: auto_offset_reset="earliest" moves to the log's start.
                position = self.positions[tp] = self.log.start(tp)
            chunk = self.log.records.get(tp, [])[position : position + self.max_per_fetch]
            if chunk:
                out[tp] = list(chunk)
                self.positions[tp] = position + len(chunk)
        if not out:
            await asyncio.sleep(min(timeout_ms, 20) / 1000)
        return out

    def highwater(self, tp: TopicPartition) -> int:
        return self.log.end(tp)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:  # as aiokafka
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        if self.before_list_offsets is not None:
            await self.before_list_offsets()
        return {tp: self.reported_starts.get(tp, self.log.start(tp)) for tp in tps}

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.log.end(tp) for tp in tps}

    async def topics(self) -> set[str]:
        return {tp.topic for tp in self.log.records}

    async def commit(self, offsets: Mapping[TopicPartition, Any]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    async def stop(self) -> None:
        self.stopped = True


class MemoryProducer:
    """The dead-letter producer: remembers what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, *, key: Any, headers: Any) -> Any:
        self.sent.append((topic, value, list(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def stop(self) -> None:
        return None


@dataclass
class MemoryStore:
    """The database side: rows by origin, stored offsets, dead letters; injectable failures.

    ``fail`` is called before every write attempt; it may raise (e.g. DatabaseUnavailable) or
    block (await an event) to simulate an outage or a slow database.
    """

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    written: list[Origin] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    attempts: int = 0
    fail: Callable[[int], Awaitable[None]] | None = None
    #: Like ``fail``, before every periodic release of parked events.
    release_fail: Callable[[int], Awaitable[None]] | None = None
    releases: int = 0
    publish: Any = None
    mirror: Any = None
    closed: bool = False

    async def write(self, batch: Batch) -> WriteResult:
        self.attempts += 1
        if self.fail is not None:
            await self.fail(self.attempts)
        result = WriteResult()
        for item in batch.items:
            if isinstance(item.result, Accepted):
                self.written.append(item.origin)
                result.rows[item.result.kind.value] = result.rows.get(item.result.kind.value, 0) + 1
            else:
                letter = Letters().of_item(item, item.result.error_class, item.result.reason)
                result.dead_letters.append(letter)
        if result.dead_letters and self.publish is not None:
            await self.publish(result.dead_letters)
        self.dead_letters += result.dead_letters
        for key, offset in batch.next_offsets.items():
            self.offsets[key] = max(self.offsets.get(key, 0), offset)
        self.batches.append(batch)
        if self.mirror is not None:
            await self.mirror(batch.next_offsets)
        return result

    async def release_parked(self) -> WriteResult:
        self.releases += 1
        if self.release_fail is not None:
            await self.release_fail(self.releases)
        return WriteResult()

    async def parked_count(self) -> int:
        return 0

    async def reset_connections(self) -> None:
        return None

    async def stored_offsets(
        self, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        return {p: self.offsets[p] for p in partitions if p in self.offsets}

    async def close(self) -> None:
        self.closed = True


class MemoryBackends:
    """What :class:`~debug_sink.sink.runner.Sink` connects to, in memory."""

    def __init__(self, log: MemoryLog, store: MemoryStore | None = None) -> None:
        self.kafka_consumer = MemoryConsumer(log)
        self.kafka_producer = MemoryProducer()
        self.store = store or MemoryStore()

    async def writer(
        self, settings: Settings, *, publish_dead_letters: Any, mirror_offsets: Any
    ) -> MemoryStore:
        self.store.publish = publish_dead_letters
        self.store.mirror = mirror_offsets
        return self.store

    async def producer(self, settings: Settings) -> MemoryProducer:
        return self.kafka_producer

    async def consumer(self, settings: Settings) -> MemoryConsumer:
        return self.kafka_consumer


class Outage:
    """A database outage under test control: every write fails (DatabaseUnavailable) until
    :meth:`heal`; :attr:`seen` is set by the first failed attempt."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()
        self.healed = asyncio.Event()

    def heal(self) -> None:
        self.healed.set()

    async def __call__(self, attempt: int) -> None:
        if not self.healed.is_set():
            self.seen.set()
            raise DatabaseUnavailable("simulated outage")


def unavailable_for(attempts: int) -> Callable[[int], Awaitable[None]]:
    """A ``MemoryStore.fail`` that raises DatabaseUnavailable for the first ``attempts``."""

    async def fail(attempt: int) -> None:
        if attempt <= attempts:
            raise DatabaseUnavailable(f"simulated outage (attempt {attempt})")

    return fail


def error_event(correlation_id: uuid.UUID, occurred_ms: int) -> dict[str, Any]:
    """A valid error event (the smallest kind with no references)."""
    return {
        "id": str(uuid.uuid4()),
        "correlation_id": str(correlation_id),
        "error_type": "ToolError",
        "error_category": "external",
        "error_severity": "medium",
        "error_message": "boom",
        "agent_name": "agent",
        "operation_name": "op",
        "occurred_at": f"2026-11-01T12:00:{occurred_ms // 1000 % 60:02d}.{occurred_ms % 1000:03d}Z",
    }
