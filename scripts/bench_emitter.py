"""Benchmark of the agent-side emitter: throughput of 1 KB events into Kafka.

    .venv/bin/python scripts/bench_emitter.py [--events N] [--bootstrap-servers HOST:PORT]

Without --bootstrap-servers an embedded broker (Tansu, memory storage) is started and stopped.
For each producer configuration it emits N snapshot events whose encoded value is ~1 KB,
flushes, and reports events per second from the first emit to the last acknowledgement;
plus the agent-side cost of one DebugStateManager.capture_snapshot call (validate, redact,
hash, encode, queue) with a MemoryEmitter, so no broker time is included.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from debug_sink.dev.embedded import EmbeddedKafka
from debug_sink.sdk.emitter import Emitter, EmitterConfig, MemoryEmitter
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from debug_sink.wire.events import SnapshotEvent

STATE: dict[str, Any] = {
    "task": "review pull request #482",
    "files": [f"src/app/module_{i}.py" for i in range(20)],
    "context": {"repository": "acme/shop", "branch": "feature/cart-totals", "depth": 2},
    "llm": {"model": "gpt-4o", "max_tokens": 4096, "prompt_tokens": 3120},
    "notes": "x" * 380,
}


def make_events(count: int) -> list[SnapshotEvent]:
    corr = uuid.uuid4()
    return [
        SnapshotEvent(
            id=uuid.uuid4(),
            correlation_id=corr,
            snapshot_type="checkpoint",
            agent_name="bench",
            agent_state={**STATE, "i": i},
        )
        for i in range(count)
    ]


async def bench_emitter(settings: Settings, count: int, config: EmitterConfig) -> float:
    events = make_events(count)
    emitter = Emitter(settings, config)
    size = len(emitter.encode(events[0]).value)
    async with emitter:
        # Warm up: connection and topic metadata.
        await emitter.emit(events[0])
        await emitter.flush()
        started = time.perf_counter()
        for event in events:
            await emitter.emit(event)
        await emitter.flush()
        elapsed = time.perf_counter() - started
    assert emitter.stats.dropped == 0, emitter.stats
    print(
        f"  emitter  batch={config.max_batch_size // 1024:>4} KB linger={config.linger_ms:>2} ms"
        f"  value={size} B  {count / elapsed:>9,.0f} events/s"
    )
    return count / elapsed


async def bench_raw(settings: Settings, count: int, batch: int, linger: int) -> float:
    emitter = MemoryEmitter(settings)
    values = [emitter.encode(e) for e in make_events(count)]
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        enable_idempotence=False,
        max_batch_size=batch,
        linger_ms=linger,
    )
    await producer.start()
    try:
        await (await producer.send(values[0].topic, values[0].value, key=values[0].key))
        started = time.perf_counter()
        futures = [await producer.send(m.topic, m.value, key=m.key) for m in values]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    print(
        f"  raw      batch={batch // 1024:>4} KB linger={linger:>2} ms"
        f"  {count / elapsed:>9,.0f} msg/s"
    )
    return count / elapsed


async def bench_capture(count: int) -> None:
    emitter = MemoryEmitter(config=EmitterConfig(max_queue_events=count + 10))
    manager = DebugStateManager(emitter=emitter)
    corr = uuid.uuid4()
    timings = []
    for i in range(count):
        started = time.perf_counter()
        await manager.capture_snapshot(corr, "bench", {**STATE, "i": i})
        timings.append(time.perf_counter() - started)
    await manager.close()
    timings.sort()
    print(
        f"  capture_snapshot (1 KB state, MemoryEmitter): median "
        f"{statistics.median(timings) * 1e6:.0f} us, p99 "
        f"{timings[int(len(timings) * 0.99)] * 1e6:.0f} us"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    broker = None
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        broker = EmbeddedKafka()
        broker.start()
        bootstrap = broker.bootstrap_servers
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings.model_construct(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    try:
        print(f"{args.events} events of ~1 KB, one topic, broker {bootstrap}")
        for batch in (16 * 1024, 256 * 1024):
            await bench_raw(settings, args.events, batch, 5)
        for batch, linger in (
            (16 * 1024, 0),
            (16 * 1024, 5),
            (256 * 1024, 0),
            (256 * 1024, 5),
            (256 * 1024, 20),
            (1024 * 1024, 5),
        ):
            await bench_emitter(
                settings,
                args.events,
                EmitterConfig(
                    max_batch_size=batch, linger_ms=linger, max_queue_events=args.events + 10
                ),
            )
        await bench_capture(min(args.events, 20_000))
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
