"""``debug_sink_consumer_lag`` is true under load: non-zero while a backlog drains, falling
as batches commit, zero once everything is written."""

from __future__ import annotations

import asyncio
from typing import Any

from debug_sink.sink.runner import Sink
from debug_sink.wire.events import EventKind
from tests import support as s

EVENTS = 10_000


async def test_lag_moves_while_a_backlog_drains(db_dsn: str, kafka: Any) -> None:
    """Sampled every 50 ms while the sink drains a 10k-event backlog in 200-event batches:
    the lag is reported non-zero before the last row is written, takes several values on the
    way down, and ends at zero."""
    await s.create_topics(kafka, partitions=2, kinds=[EventKind.ERROR])
    topic = s.topic(kafka, EventKind.ERROR)
    await s.produce(kafka, ((topic, s.error(s.uid())) for _ in range(EVENTS)))
    settings = s.sink_settings(db_dsn, kafka, batch_max_events=200)
    sink = Sink(settings, exit_when_idle=True, idle_grace=20.0)
    registry = sink.metrics.registry

    def lag() -> float:
        return sum(
            registry.get_sample_value("debug_sink_consumer_lag", {"topic": topic, "partition": p})
            or 0.0
            for p in ("0", "1")
        )

    def written() -> float:
        return registry.get_sample_value("debug_sink_rows_written_total", {"kind": "error"}) or 0

    samples: list[tuple[float, float]] = []
    run = asyncio.create_task(sink.run())
    while not run.done():
        samples.append((lag(), written()))
        await asyncio.sleep(0.05)
    await asyncio.wait_for(run, 120)

    draining = [(lag_, rows) for lag_, rows in samples if 0 < rows < EVENTS]
    assert draining, "the drain was sampled"
    backlog = {lag_ for lag_, _ in draining if lag_ > 0}
    assert len(backlog) >= 3, f"lag reported while draining: {sorted(backlog)}"
    assert max(backlog) > EVENTS / 10
    assert written() == EVENTS
    assert lag() == 0
