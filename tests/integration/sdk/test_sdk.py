"""The SDK end to end: DebugStateManager -> Kafka -> the sink -> PostgreSQL -> queries."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from debug_sink.dev.embedded import EmbeddedKafka
from debug_sink.sdk.emitter import Emitter, EmitterConfig
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from debug_sink.wire.canonical import state_hash
from debug_sink.wire.events import EventKind
from tests import support as s
from tests.sdk_support import (
    completes_without_suspending,
    correlate,
    returns_while_blocked,
    watch_transport,
)


async def quickstart_failure(debug_mgr: DebugStateManager, workflow_id: uuid.UUID) -> uuid.UUID:
    """The error half of the quickstart's "Python Integration", as written."""
    try:
        raise TimeoutError("upstream did not answer")
    except TimeoutError as exception:
        # Capture error with state
        error_id = await debug_mgr.capture_error_state(
            correlation_id=workflow_id,
            agent_name="my-agent",
            error=exception,
            agent_state={"context": "data"},
            error_severity="high",
        )
    return error_id


async def quickstart_report(debug_mgr: DebugStateManager, workflow_id: uuid.UUID) -> None:
    """The read half of the quickstart's "Python Integration", as written."""
    # Get workflow debug summary
    summary = await debug_mgr.get_workflow_debug_summary(workflow_id)
    print(f"Errors: {summary['error_count']}, Successes: {summary['success_count']}")

    # Analyze recovery patterns
    patterns = await debug_mgr.get_recovery_patterns()
    for p in patterns:
        print(f"{p['error_type']}: {p['recovery_strategy']} ({p['success_count']} successes)")


class TestQuickstartEndToEnd:
    """The quickstart example runs as written: SDK -> broker -> sink -> queries."""

    async def test_quickstart(
        self, db_dsn: str, kafka: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings = s.sink_settings(db_dsn, kafka, max_state_bytes=2048)
        async with DebugStateManager(settings) as debug_mgr:
            workflow_id = uuid.uuid4()
            error_id = await quickstart_failure(debug_mgr, workflow_id)

            # Three more workflows in which an agent retried a timed-out call and succeeded
            # (steps through the context manager and the decorator), so that the recovery
            # pattern reaches the quickstart's default of 3 successes.
            @debug_mgr.traced(agent_name="my-agent", operation_name="fetch")
            async def fetch(correlation_id: uuid.UUID, attempt: int) -> str:
                if attempt == 1:
                    raise TimeoutError("slow upstream")
                return "ok"

            others = [uuid.uuid4() for _ in range(3)]
            for corr in others:
                if corr == others[2]:
                    async with debug_mgr.step(corr, "plan", agent_name="my-agent") as first:
                        first.state = {"n": 0}
                        await debug_mgr.record_llm_call(
                            corr, "gpt-4o", agent_name="my-agent", quality_score=0.8, latency_ms=300
                        )
                with pytest.raises(TimeoutError):
                    await fetch(corr, 1)
                number = 2 if corr == others[2] else 1
                async with debug_mgr.step(
                    corr,
                    "fetch",
                    agent_name="my-agent",
                    step_number=number,
                    attempt=2,
                    agent_state={"n": 1},
                ) as step:
                    assert step.state is not None
                    step.state["api_key"] = "sk-live-123"
                    step.state["blob"] = "x" * 5000  # over max_state_bytes: truncated
            await debug_mgr.log_transformation_with_state(
                "router", "my-agent", others[2], {"route": "fetch"}
            )
            assert await debug_mgr.flush(30)
            stats = debug_mgr.stats
        assert stats.dropped == 0
        assert stats.queued == 0

        sink = await s.run_sink(settings)
        assert sink.committed_batches >= 1
        await correlate(db_dsn)

        async with DebugStateManager(settings) as debug_mgr:
            capsys.readouterr()  # the logs so far (structlog prints to stdout unconfigured)
            await quickstart_report(debug_mgr, workflow_id)
            assert capsys.readouterr().out.splitlines() == [
                "Errors: 1, Successes: 0",
                "TimeoutError: retry (3 successes)",
            ]
            other = await debug_mgr.get_workflow_debug_summary(others[2])
        assert other["step_count"] == 3
        assert other["failed_step_count"] == 1
        assert other["llm_call_count"] == 1
        assert other["transformation_count"] == 1

        counts = await s.fetch_counts(db_dsn)
        assert counts["sink_dead_letters"] == 0
        assert counts["sink_parked_events"] == 0
        conn = await asyncpg.connect(db_dsn)
        try:
            row = await conn.fetchrow(
                "SELECT error_type, error_severity, error_message, "
                "error_stack_trace, state_snapshot_id "
                "FROM debug_error_events WHERE id = $1",
                error_id,
            )
            assert row["error_type"] == "TimeoutError"
            assert row["error_severity"] == "high"
            assert "raise TimeoutError" in row["error_stack_trace"]
            state = await conn.fetchrow(
                "SELECT agent_state::text, state_hash FROM debug_state_snapshots WHERE id = $1",
                row["state_snapshot_id"],
            )
            assert state["state_hash"] == state_hash({"context": "data"})
            truncated = await conn.fetch(
                "SELECT agent_state->>'_reason' AS reason, agent_state->>'preview' AS preview "
                "FROM debug_state_snapshots WHERE agent_state ? '_truncated'"
            )
            assert [r["reason"] for r in truncated] == ["too_large"] * 3
            assert all("sk-live" not in r["preview"] for r in truncated)
            assert all("[REDACTED]" in r["preview"] for r in truncated)
            statuses = await conn.fetch(
                "SELECT status, count(*) FROM debug_workflow_steps GROUP BY status ORDER BY status"
            )
            assert [(r["status"], r["count"]) for r in statuses] == [
                ("completed", 4),
                ("failed", 3),
            ]
        finally:
            await conn.close()


class TestBrokerOutage:
    """With the broker stopped, captures return without waiting for it and the drop counter
    is exact; once a broker is back on the same address, what was queued arrives."""

    async def test_bounded_queue_survives_an_outage(self, tmp_path: Any) -> None:
        broker = EmbeddedKafka(log_path=tmp_path / "tansu.log")
        broker.start()
        port = broker.port
        settings = Settings.model_construct(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            topic_prefix=f"outage{uuid.uuid4().hex[:6]}.",
        )
        config = EmitterConfig(max_queue_events=20, max_block_ms=10, request_timeout_ms=1000)
        manager = DebugStateManager(emitter=Emitter(settings, config))
        corr = uuid.uuid4()
        restarted: EmbeddedKafka | None = None
        try:
            await manager.capture_snapshot(corr, "a", {"warm": "up"})
            assert await manager.flush(20)
            broker.stop()

            # The broker stays down until every capture has returned: the first 20 find room
            # and are queued without suspending at all; the other 30 wait for room only
            # (max_block_ms), never for the broker, and drop. Only the emitter's sender
            # awaits the network.
            transport_users = watch_transport(manager.emitter)
            ids = []
            for i in range(20):
                ids.append(
                    completes_without_suspending(manager.capture_snapshot(corr, "a", {"i": i}))
                )
            for i in range(20, 50):
                ids.append(
                    await returns_while_blocked(manager.capture_snapshot(corr, "a", {"i": i}))
                )
            assert set(transport_users) <= {"debug-sink-emitter"}, transport_users
            assert manager.stats.dropped_by_reason == {"queue_full": 30}
            assert manager.stats.queued == 20

            # An outage longer than a request timeout: the batch in flight fails, is queued
            # again, and waits in the emitter (not in aiokafka) until the broker answers.
            await asyncio.sleep(2.0)
            assert manager.stats.queued == 20
            # Tansu keeps topics in memory: the new broker starts empty, and sending
            # recreates the topic on it.
            restarted = EmbeddedKafka(port=port, log_path=tmp_path / "tansu2.log")
            restarted.start()
            assert await manager.flush(30), manager.stats
            assert manager.stats.sent == 21
            assert manager.stats.dropped == 30
            assert manager.stats.retried >= 1

            received = await consume_ids(settings, EventKind.SNAPSHOT, expected=20)
            assert received == {str(i) for i in ids[:20]}
        finally:
            await manager.close(timeout=1)
            broker.stop()
            if restarted is not None:
                restarted.stop()


async def consume_ids(
    settings: Settings, kind: EventKind, *, expected: int, timeout: float = 20.0
) -> set[str]:
    """Event ids on ``kind``'s topic, read from the beginning without a consumer group."""
    topic = settings.topic_for(kind)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, 0)  # not ListOffsets(earliest): see tests.support.read_partitions
        seen: set[str] = set()
        deadline = asyncio.get_running_loop().time() + timeout
        while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                seen.update(orjson.loads(r.value)["id"] for r in records)
        return seen
    finally:
        await consumer.stop()


class TestEventLoops:
    """A module-level manager (``@debug.traced`` needs it at import) used by two
    ``asyncio.run`` calls delivers both runs' events; nothing raises into the agent, and
    no producer of the first loop is left unclosed (warnings are errors here)."""

    @pytest.mark.parametrize("first_run_flushes", [True, False])
    def test_a_second_asyncio_run_delivers(self, kafka: Any, first_run_flushes: bool) -> None:
        settings = Settings.model_construct(
            kafka_bootstrap_servers=kafka.bootstrap_servers, topic_prefix=kafka.topic_prefix
        )

        def scenario() -> Any:
            debug = DebugStateManager(settings)
            corr = uuid.uuid4()

            @debug.traced(agent_name="agent")
            async def work(correlation_id: uuid.UUID) -> None:
                return None

            async def first() -> None:
                await work(corr)  # started, success, completed
                if first_run_flushes:
                    assert await debug.flush(20)

            async def second() -> tuple[bool, Any]:
                await work(corr)
                flushed = await debug.flush(20)
                await debug.close(5)
                return flushed, debug.stats

            asyncio.run(first())
            return asyncio.run(second())

        out: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: out.update(result=scenario()))
        thread.start()
        thread.join(60)
        flushed, stats = out["result"]
        assert flushed
        assert (stats.sent, stats.dropped) == (6, 0), stats
