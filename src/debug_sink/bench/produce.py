"""Sending the workload to the broker: a backlog as fast as it goes, or at a steady rate.

Owns how the bench's messages reach Kafka: the topic of each kind (the sink's suffixes under a
label's prefix), the key (the workflow's correlation id), and the time each message is
stamped with.

Guarantees: every message was acknowledged by the broker when a function returns; a backlog's
timestamps are one millisecond apart over the last hour; a paced message carries its own send
time. Not guaranteed: the rate asked for -- paced sending falls behind when the producer or
the machine cannot keep up, which is why the achieved rate is reported next to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from debug_sink.bench.workload import (
    EVENTS_PER_WORKFLOW,
    Message,
    iter_workload,
    now_stamp,
    stamp_at,
    workflows_for,
)
from debug_sink.settings import TOPIC_SUFFIXES

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from rich.progress import TaskID

    from debug_sink.bench.harness import Harness

__all__ = ["new_backlog", "produce", "produce_paced"]


async def new_backlog(
    h: Harness,
    label: str,
    events: int,
    description: str,
    *,
    first: int = 0,
    references: bool = True,
) -> dict[str, Any]:
    """Topics named for ``label``, and about ``events`` events (whole workflows) produced
    into them: :meth:`~debug_sink.bench.harness.Harness.names` as ``names``, ``workflows``,
    and what :func:`produce` returns."""
    names = h.names(label)
    await h.create_topics(names["topic_prefix"])
    workflows = workflows_for(events)
    produced = await produce(
        h, names["topic_prefix"], workflows, description, first=first, references=references
    )
    return {"names": names, "workflows": workflows, **produced}


async def produce(
    h: Harness,
    prefix: str,
    workflows: int,
    label: str,
    *,
    first: int = 0,
    references: bool = True,
) -> dict[str, Any]:
    """Produce whole workflows as fast as the producer goes; timestamps spread over the
    last hour (one millisecond apart)."""
    total = workflows * EVENTS_PER_WORKFLOW
    task = h.progress.add_task(label, total=total)
    producer = h.producer()
    await producer.start()
    sent = size = 0
    base = time.time() - 3600
    started = time.perf_counter()
    try:
        pending: list[Any] = []
        for message in iter_workload(workflows, tag=h.tag, first=first, references=references):
            value = message.stamped(stamp_at(base + sent / 1000))
            size += len(value)
            topic = prefix + TOPIC_SUFFIXES[message.kind]
            pending.append(await producer.send(topic, value, key=message.key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                h.progress.update(task, completed=sent)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    elapsed = time.perf_counter() - started
    h.progress.update(task, completed=sent)
    return {
        "events": sent,
        "bytes": size,
        "seconds": round(elapsed, 3),
        "events_per_s": round(sent / elapsed),
    }


async def produce_paced(
    h: Harness,
    producer: AIOKafkaProducer,
    prefix: str,
    messages: Sequence[Message],
    *,
    rate: int,
    task: TaskID,
) -> tuple[float, float]:
    """Send ``messages`` at ``rate`` per second, each stamped with its send time. Returns
    the epoch seconds of the first and the last send."""
    started = time.monotonic()
    t0 = time.time()
    sent = 0
    futures = []
    while sent < len(messages):
        due = min(len(messages), int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            m = messages[sent]
            futures.append(
                await producer.send(
                    prefix + TOPIC_SUFFIXES[m.kind], m.stamped(now_stamp()), key=m.key
                )
            )
            sent += 1
        h.progress.update(task, completed=sent)
        await asyncio.sleep(0.002)
    t1 = time.time()
    await asyncio.gather(*futures)
    return t0, t1
