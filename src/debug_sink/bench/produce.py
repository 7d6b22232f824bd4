"""Sending the workload to the broker: a backlog as fast as it goes, or at a steady rate.

Owns how the bench's messages reach Kafka: the topic of each kind (the sink's suffixes under a
label's prefix), the key (the workflow's correlation id), and the time each message is
stamped with.

Guarantees: every message was acknowledged by the broker when a function returns; a backlog's
timestamps are one millisecond apart over the last hour (a realistic backlog's: per producer,
with a fixed clock skew of up to 20 ms between producers); a paced message carries its own
send time. Not guaranteed: the rate asked for -- paced sending falls behind when the producer or
the machine cannot keep up, which is why the achieved rate is reported next to it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from debug_sink.bench.realistic import Realism, Sent, StreamCounts, producer_stream
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

__all__ = ["new_backlog", "produce", "produce_paced", "produce_realistic"]


async def new_backlog(
    h: Harness,
    label: str,
    events: int,
    description: str,
    *,
    first: int = 0,
    references: bool = True,
    realism: Realism | None = None,
) -> dict[str, Any]:
    """Topics named for ``label``, and about ``events`` events (whole workflows) produced
    into them -- the realistic workload when ``realism`` is given: ``names``
    (:meth:`~debug_sink.bench.harness.Harness.names`), ``workflows``, and what
    :func:`produce` (or :func:`produce_realistic`) returns."""
    names = h.names(label)
    await h.create_topics(names["topic_prefix"])
    workflows = workflows_for(events)
    if realism is not None:
        produced = await produce_realistic(
            h, names["topic_prefix"], range(first, first + workflows), realism, description
        )
    else:
        produced = await produce(
            h, names["topic_prefix"], workflows, description, first=first, references=references
        )
    return {"names": names, "workflows": workflows, **produced}


async def produce_realistic(
    h: Harness, prefix: str, workflows: range, realism: Realism, label: str
) -> dict[str, Any]:
    """The realistic workload (:mod:`~debug_sink.bench.realistic`): ``realism.producers``
    producers at the same time, as fast as they go. Returns what :func:`produce` returns and
    ``counts`` (re-sent copies, invalid messages, events with secrets, per kind)."""
    rng = random.Random(realism.seed)
    skews = [rng.uniform(-0.02, 0.02) for _ in range(realism.producers)]
    counts = [StreamCounts() for _ in range(realism.producers)]
    task = h.progress.add_task(label, total=len(workflows) * EVENTS_PER_WORKFLOW)
    base = time.time() - 3600
    n = realism.producers

    def stamp(p: int, sent: Sent) -> str:
        return stamp_at(base + skews[p] + (sent.seq * n + p) / 1000)

    started = time.perf_counter()
    sizes = await asyncio.gather(
        *(
            _send_all(
                h,
                prefix,
                (
                    (s, stamp(p, s))
                    for s in producer_stream(
                        p, workflows, tag=h.tag, realism=realism, counts=counts[p]
                    )
                ),
                task,
            )
            for p in range(n)
        )
    )
    elapsed = time.perf_counter() - started
    total = StreamCounts()
    for c in counts:
        total.add(c)
    h.progress.update(task, completed=total.messages, total=total.messages)
    return {
        "events": total.messages,
        "bytes": sum(sizes),
        "seconds": round(elapsed, 3),
        "events_per_s": round(total.messages / elapsed),
        "producers": n,
        "counts": total.as_dict(),
    }


async def _send_all(
    h: Harness, prefix: str, stream: Iterable[tuple[Sent, str]], task: TaskID
) -> int:
    """One producer sending ``stream`` (each message with its stamp); returns the bytes."""
    producer = h.producer()
    await producer.start()
    size = 0
    try:
        pending: list[Any] = []
        for sent, when in stream:
            message = sent.message
            value = message.stamped(when)
            size += len(value)
            topic = prefix + TOPIC_SUFFIXES[message.kind]
            pending.append(await producer.send(topic, value, key=message.key))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                h.progress.advance(task, len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        h.progress.advance(task, len(pending))
    finally:
        await producer.stop()
    return size


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
