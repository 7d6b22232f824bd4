"""``max_inflight_bytes`` bounds what the sink holds against a real broker, not only against
the in-memory fakes of the unit tests: a broker may answer one fetch with far more of a
partition than ``max_partition_fetch_bytes`` (Tansu gives one partition of a response up
to the request's ``fetch_max_bytes``), and the backpressure pauses a partition only after
its records have arrived."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from debug_sink.sink.kafka import partition_buffer_bytes
from debug_sink.sink.runner import Sink
from debug_sink.wire.events import EventKind
from tests import support as s

PARTITIONS = 4
EVENTS = 5_000
#: ~4 KB per message: ~20 MB in all, well over the sink's in-flight budget.
MESSAGE_PADDING = "x" * 4_000
#: Small producer batches: a broker returns whole batches, so a batch is the overshoot a
#: fetch may add to a partition's budget.
PRODUCER_BATCH = 16 * 1024
INFLIGHT = 8 << 20


async def test_inflight_bytes_stay_near_the_limit_while_a_backlog_drains(
    db_dsn: str, kafka: Any
) -> None:
    """Sampled every 10 ms while a ~20 MB backlog on 4 partitions drains with an 8 MB
    in-flight budget: what the sink holds never goes past the budget plus one fetch of
    every partition (its budget and a producer batch each). Before the fetch size was
    bounded per response (one partition of a fetch could bring half the budget at once),
    this sink held 16.8 MB."""
    await s.create_topics(kafka, partitions=PARTITIONS, kinds=[EventKind.ERROR])
    topic = s.topic(kafka, EventKind.ERROR)
    producer = await s.start_producer(kafka.bootstrap_servers, max_batch_size=PRODUCER_BATCH)
    try:
        values = [
            orjson.dumps(s.error(s.uid(), error_message=MESSAGE_PADDING)) for _ in range(EVENTS)
        ]
        sends = [
            await producer.send(topic, value, partition=n % PARTITIONS)
            for n, value in enumerate(values)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    # The backlog is more than twice the budget: fetching unchecked would go past it.
    assert sum(map(len, values)) > 2 * INFLIGHT

    settings = s.sink_settings(db_dsn, kafka, max_inflight_bytes=INFLIGHT, batch_max_events=500)
    sink = Sink(settings, exit_when_idle=True, idle_grace=20.0)
    samples: list[int] = []
    run = asyncio.create_task(sink.run())
    while not run.done():
        samples.append(sink.health()["inflight_bytes"])
        await asyncio.sleep(0.01)
    await asyncio.wait_for(run, 180)

    counts = await s.fetch_counts(db_dsn)
    assert counts["debug_error_events"] == EVENTS
    # Per partition: its budget, the batch that crosses it, and 8 KB of margin (the
    # in-flight count includes the records' keys, which the producer's batch size does not
    # bound exactly).
    one_fetch = PARTITIONS * (partition_buffer_bytes(settings) + PRODUCER_BATCH + 8_192)
    assert max(samples) > 0, "the drain was sampled"
    assert max(samples) <= INFLIGHT + one_fetch, (
        f"held {max(samples):,} bytes; the budget is {INFLIGHT:,} plus one fetch {one_fetch:,}"
    )
