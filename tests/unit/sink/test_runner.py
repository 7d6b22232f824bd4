"""The Sink's loops on in-memory stand-ins for Kafka and PostgreSQL (no services).

What is checked here is the orchestration -- positioning, batching, hand-over, retries,
revocation, backpressure, stop -- not the SQL (the integration tests run the same Sink on
real PostgreSQL and a real broker).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition

from debug_sink.errors import DatabaseError
from debug_sink.settings import Settings
from debug_sink.sink.batch import Origin
from debug_sink.sink.runner import Sink
from tests.unit.sink.memory import (
    MemoryBackends,
    MemoryLog,
    MemoryStore,
    Outage,
    error_event,
    unavailable_for,
)

TOPIC = "debug.error_events"
T0 = 1_793_534_400_000  # 2026-11-01T12:00:00Z in ms


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "postgres_dsn": "postgresql://sink@localhost/debug",
        "metrics_port": 0,
        "batch_max_age_ms": 20,
        "batch_max_events": 40,
        "correlator_interval": 0,
        "retention_days": 0,
    }
    values.update(overrides)
    return Settings(**values)


def fill(log: MemoryLog, partitions: int, per_partition: int) -> list[Origin]:
    """Valid events on ``partitions`` partitions, timestamps interleaved across them."""
    origins = []
    workflow = uuid.uuid4()
    for n in range(per_partition):
        for p in range(partitions):
            ts = T0 + n * partitions + p
            record = log.append(TOPIC, p, error_event(workflow, ts - T0), timestamp=ts)
            origins.append(Origin(record.topic, record.partition, record.offset))
    return origins


def sink_settings_dead_letter_topic() -> str:
    return settings().dead_letter_topic


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (checked every few ms); fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls plain state, no event to await
            await asyncio.sleep(0.005)


async def drain(sink: Sink, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        await sink.run()


class TestDrain:
    """A backlog is written once, in batches whose offsets cover exactly what was read."""

    async def test_every_record_once_and_offsets_at_the_end(self) -> None:
        log = MemoryLog()
        origins = fill(log, partitions=3, per_partition=50)
        backends = MemoryBackends(log)
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        store = backends.store
        assert sorted(store.written, key=lambda o: (o.partition, o.offset)) == sorted(
            origins, key=lambda o: (o.partition, o.offset)
        )
        assert len(set(store.written)) == len(store.written)
        assert store.offsets == {(TOPIC, p): 50 for p in range(3)}
        assert all(len(b) <= 40 for b in store.batches)
        assert store.closed
        assert backends.kafka_consumer.stopped

    async def test_batches_interleave_partitions_by_timestamp(self) -> None:
        """Within a batch, records leave in timestamp order across partitions."""
        log = MemoryLog()
        fill(log, partitions=2, per_partition=30)
        backends = MemoryBackends(log)
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        for batch in backends.store.batches:
            stamps = [item.timestamp_ms for item in batch.items]
            assert stamps == sorted(stamps)

    async def test_kafka_mirror_gets_the_stored_offsets(self) -> None:
        log = MemoryLog()
        fill(log, partitions=2, per_partition=10)
        backends = MemoryBackends(log)
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        last = {}
        for commit in backends.kafka_consumer.commits:
            last.update(commit)
        assert last == {TopicPartition(TOPIC, p): 10 for p in range(2)}

    async def test_invalid_records_are_dead_letters_on_both_channels(self) -> None:
        log = MemoryLog()
        fill(log, partitions=1, per_partition=5)
        bad = log.append(TOPIC, 0, b"{not json", timestamp=T0 + 100)
        fill(log, partitions=1, per_partition=5)
        backends = MemoryBackends(log)
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        assert [d.origin.offset for d in backends.store.dead_letters] == [bad.offset]
        assert len(backends.store.written) == 10
        ((topic, value, headers),) = backends.kafka_producer.sent
        assert topic == sink_settings_dead_letter_topic()
        assert value == b"{not json"
        assert dict(headers)["__connect.errors.exception.class.name"] == b"not_json"


class TestPositioning:
    """Assigned partitions start where PostgreSQL says, never where Kafka's group says."""

    async def test_resume_at_stored_offsets_else_the_beginning(self) -> None:
        log = MemoryLog()
        fill(log, partitions=2, per_partition=20)
        store = MemoryStore(offsets={(TOPIC, 0): 15})
        backends = MemoryBackends(log, store)
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        seeks = dict(backends.kafka_consumer.seeks)
        assert seeks == {TopicPartition(TOPIC, 0): 15, TopicPartition(TOPIC, 1): 0}
        assert sorted(o.offset for o in store.written if o.partition == 0) == list(range(15, 20))
        assert len([o for o in store.written if o.partition == 1]) == 20

    async def test_a_rebalance_while_asking_where_logs_start(self) -> None:
        """The partitions revoked while ListOffsets was asked are not sought (aiokafka
        refuses to seek a partition it no longer holds): the new assignment is positioned."""
        log = MemoryLog()
        fill(log, partitions=2, per_partition=10)
        store = MemoryStore()
        backends = MemoryBackends(log, store)
        consumer = backends.kafka_consumer
        rebalanced = False

        async def rebalance_once() -> None:
            nonlocal rebalanced
            if not rebalanced:
                rebalanced = True
                await consumer.rebalance({TopicPartition(TOPIC, 1)})

        consumer.before_list_offsets = rebalance_once
        await drain(Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends))
        assert rebalanced
        assert sorted(o.offset for o in store.written if o.partition == 1) == list(range(10))
        assert [o for o in store.written if o.partition == 0] == []

    async def test_a_new_group_reads_from_the_first_record_whatever_list_offsets_says(
        self,
    ) -> None:
        """Tansu at times answers ListOffsets(earliest) with an offset past a log's first
        records: a new group read from there lost them (20 events of a bench drain). It
        starts at offset 0; where the log does start later (retention), it reads from
        there, neither stalled nor lagging when it has read everything."""
        log = MemoryLog()
        fill(log, partitions=4, per_partition=30)
        log.starts[TopicPartition(TOPIC, 2)] = 12  # records 0-11 deleted
        log.starts[TopicPartition(TOPIC, 3)] = 30  # every record deleted
        store = MemoryStore()
        backends = MemoryBackends(log, store)
        backends.kafka_consumer.reported_starts[TopicPartition(TOPIC, 1)] = 20  # wrong
        sink = Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends)
        await drain(sink)
        written = {p: sorted(o.offset for o in store.written if o.partition == p) for p in range(4)}
        assert written == {0: list(range(30)), 1: list(range(30)), 2: list(range(12, 30)), 3: []}
        assert store.offsets == {(TOPIC, 0): 30, (TOPIC, 1): 30, (TOPIC, 2): 30}
        progress = sink._progress
        assert progress.lag() == {(TOPIC, p): 0 for p in range(4)}
        assert not progress.stalls(0.0)

    async def test_ready_only_once_positioned(self) -> None:
        """/healthz says ready only when every assigned partition is positioned."""
        log = MemoryLog()
        fill(log, partitions=1, per_partition=5)
        release = asyncio.Event()
        store = MemoryStore()
        original = store.stored_offsets

        async def slow_offsets(partitions: Any) -> Any:
            await release.wait()
            return await original(partitions)

        store.stored_offsets = slow_offsets  # type: ignore[method-assign]
        backends = MemoryBackends(log, store)
        sink = Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends)
        task = asyncio.create_task(drain(sink))
        await until(lambda: sink.health()["assigned_partitions"] == 1)
        assert sink.health()["ready"] is False
        release.set()
        await until(lambda: sink.health()["ready"] or task.done())
        await task
        assert len(store.written) == 5


class TestRetries:
    """A transient database failure retries the same batch; nothing is skipped or doubled."""

    async def test_outage_is_waited_out(self) -> None:
        log = MemoryLog()
        origins = fill(log, partitions=2, per_partition=15)
        store = MemoryStore(fail=unavailable_for(3))
        backends = MemoryBackends(log, store)
        sink = Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends)
        await drain(sink, timeout=30)
        assert store.attempts >= 4
        assert sorted(store.written, key=lambda o: (o.partition, o.offset)) == sorted(
            origins, key=lambda o: (o.partition, o.offset)
        )
        retries = sink.metrics.registry.get_sample_value(
            "debug_sink_retries_total", {"what": "postgres"}
        )
        assert retries == 3

    async def test_health_reports_the_outage(self) -> None:
        log = MemoryLog()
        fill(log, partitions=1, per_partition=5)
        outage = Outage()
        backends = MemoryBackends(log, MemoryStore(fail=outage))
        sink = Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends)
        task = asyncio.create_task(drain(sink, timeout=30))
        await asyncio.wait_for(outage.seen.wait(), 10)
        await until(lambda: sink.health()["postgres"] is False)
        assert sink.health()["ready"] is False
        outage.heal()
        await task
        assert sink.health()["postgres"] is True

    async def test_health_reports_an_outage_while_no_batch_is_written(self) -> None:
        """An idle sink learns of it from the periodic release of parked events."""
        log = MemoryLog()
        fill(log, partitions=1, per_partition=2)
        outage = Outage()
        store = MemoryStore()
        sink = Sink(settings(park_grace_seconds=1), backends=MemoryBackends(log, store))
        task = asyncio.create_task(sink.run())
        try:
            await until(lambda: len(store.written) == 2 and sink.health()["ready"])
            store.release_fail = outage
            await asyncio.wait_for(outage.seen.wait(), 10)
            assert sink.health()["postgres"] is False
            assert sink.health()["ready"] is False
            outage.heal()
            await until(lambda: sink.health()["ready"])
        finally:
            sink.stop()
            await asyncio.wait_for(task, 10)

    async def test_a_permanent_failure_ends_run_with_it(self) -> None:
        """Never a half-dead sink: the writer task's crash is Sink.run's exception."""
        log = MemoryLog()
        fill(log, partitions=1, per_partition=5)

        async def fail(attempt: int) -> None:
            raise DatabaseError("PostgreSQL error: relation is gone")

        backends = MemoryBackends(log, MemoryStore(fail=fail))
        with pytest.raises(DatabaseError, match="relation is gone"):
            await drain(Sink(settings(), backends=backends))


class TestRevocation:
    """Revoked partitions drop what was not committed; their next owner re-reads it."""

    async def test_batch_retrying_through_a_rebalance_is_abandoned_then_reread(self) -> None:
        log = MemoryLog()
        origins = fill(log, partitions=2, per_partition=10)
        outage = Outage()
        store = MemoryStore(fail=outage)
        backends = MemoryBackends(log, store)
        sink = Sink(settings(), exit_when_idle=True, idle_grace=0, backends=backends)
        task = asyncio.create_task(drain(sink, timeout=40))
        await asyncio.wait_for(outage.seen.wait(), 10)
        consumer = backends.kafka_consumer
        everything = set(consumer.assigned)
        rebalanced = asyncio.Event()

        async def rebalance_once() -> None:
            consumer.before_fetch = None
            await consumer.rebalance(everything)
            outage.heal()
            rebalanced.set()

        consumer.before_fetch = rebalance_once
        await asyncio.wait_for(rebalanced.wait(), 20)
        await task
        assert sorted(store.written, key=lambda o: (o.partition, o.offset)) == sorted(
            origins, key=lambda o: (o.partition, o.offset)
        )
        # Re-positioned after the rebalance: from the beginning (nothing was stored).
        beginnings = [tp for tp, offset in consumer.seeks if offset == 0]
        assert len(beginnings) == 4


class TestBackpressure:
    """While the writer is stuck, fetching pauses before memory grows without bound."""

    async def test_partitions_pause_at_the_inflight_limit(self) -> None:
        log = MemoryLog()
        workflow = uuid.uuid4()
        padding = "x" * 20_000
        for n in range(200):
            for p in range(2):
                event = error_event(workflow, n) | {"error_message": padding}
                log.append(TOPIC, p, event, timestamp=T0 + 2 * n + p)
        release = asyncio.Event()

        async def stuck(attempt: int) -> None:
            await release.wait()

        backends = MemoryBackends(log, MemoryStore(fail=stuck))
        limits = {"max_inflight_bytes": 1 << 20, "batch_max_events": 10}
        sink = Sink(settings(**limits), exit_when_idle=True, idle_grace=0, backends=backends)
        task = asyncio.create_task(drain(sink, timeout=60))
        consumer = backends.kafka_consumer
        await until(lambda: consumer.paused == consumer.assigned and bool(consumer.assigned))
        fetched = sum(consumer.positions.values())
        assert fetched < 400
        assert sink.health()["inflight_bytes"] < 2 * (1 << 20)
        release.set()
        await task
        assert len(backends.store.written) == 400


class TestStop:
    """stop(): the batch being built is written and committed, then run() returns."""

    async def test_batch_in_progress_is_committed(self) -> None:
        log = MemoryLog()
        fill(log, partitions=1, per_partition=7)
        backends = MemoryBackends(log)
        # Batches close only by age (1 minute): without the stop they would wait.
        sink = Sink(settings(batch_max_age_ms=60_000), backends=backends)
        task = asyncio.create_task(drain(sink))
        consumer = backends.kafka_consumer
        await until(lambda: sum(consumer.positions.values()) == 7)
        assert backends.store.written == []
        sink.stop()
        await task
        assert len(backends.store.written) == 7
        assert backends.store.offsets == {(TOPIC, 0): 7}
