"""The live status line of ``debug-sink dev``: events/s, rows, dead letters, lag, parked,
demo progress.

Owns :class:`StatusLine`. Cosmetic by design: a failure to measure shows as ``lag ?`` and
never ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, TextIO

from debug_sink.settings import Settings

if TYPE_CHECKING:
    from debug_sink.dev.demo import DemoFleet
    from debug_sink.sink.runner import Sink

__all__ = ["StatusLine"]


def _metric_total(registry: Any, name: str) -> float:
    """Sum of every sample called ``name`` (all label values)."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


class StatusLine:
    """The live status: events/s, rows, dead letters, lag, parked, demo progress.

    Counters come from the sink's Prometheus registry; lag is the end offsets of the topics
    (:func:`~debug_sink.sink.replay.log_ends`, right on Tansu too) minus the offsets the sink
    stored in PostgreSQL: what is not yet a committed row. On a
    terminal the line is redrawn in place every second; otherwise a plain line is printed
    every ``plain_interval`` seconds.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        fleet: DemoFleet | None,
        out: TextIO,
        *,
        plain_interval: float = 5.0,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.fleet = fleet
        self.out = out
        self.tty = out.isatty()
        self.plain_interval = plain_interval
        self.lag: int | None = None
        self._consumer: Any = None
        self._conn: Any = None
        self._last = (time.monotonic(), 0.0)
        self._rate = 0.0

    async def _measure_lag(self) -> int | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from debug_sink.db.pg import connect
        from debug_sink.sink import offsets
        from debug_sink.sink.replay import log_ends

        try:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(**self.settings.kafka_client_options())
                await consumer.start()
                self._consumer = consumer
            if self._conn is None:
                self._conn = await connect(
                    self.settings.require_dsn(),
                    schema=self.settings.db_schema,
                    ssl=self.settings.postgres_ssl(),
                    application_name="debug-sink-dev",
                )
            tps = [
                TopicPartition(topic, p)
                for topic in self.settings.topics
                for p in self._consumer.partitions_for_topic(topic) or ()
            ]
            if not tps:
                return 0
            ends = await log_ends(self._consumer, tps, timeout=2.0)
            stored = await offsets.of_group(self._conn, self.settings.group_id)
        except Exception:  # the status is cosmetic: never let it fail the session
            await self.close()
            return None
        behind = (end - stored.get((tp.topic, tp.partition), 0) for tp, end in ends.items())
        return int(sum(max(0, n) for n in behind))

    def render(self) -> str:
        registry = self.sink.metrics.registry
        consumed = _metric_total(registry, "debug_sink_events_consumed_total")
        now = time.monotonic()
        then, before = self._last
        if now - then >= 0.5:
            self._rate = (consumed - before) / (now - then)
            self._last = (now, consumed)
        health = self.sink.health()
        state = "ready" if health["ready"] else "starting (joining the consumer group)"
        parts = [
            state,
            f"{self._rate:,.0f} events/s",
            f"{_metric_total(registry, 'debug_sink_rows_written_total'):,.0f} rows",
            f"{_metric_total(registry, 'debug_sink_dead_letters_total'):,.0f} dead letters",
            f"lag {self.lag:,}" if self.lag is not None else "lag ?",
            f"{_metric_total(registry, 'debug_sink_parked_rows'):,.0f} parked",
        ]
        if self.fleet is not None:
            parts.append(f"demo {self.fleet.workflows_done:,} workflows")
        return " | ".join(parts)

    async def run(self) -> None:
        last_plain = last_lag = 0.0
        while True:
            if time.monotonic() - last_lag >= 3.0:  # it fetches every partition's last batch
                last_lag = time.monotonic()
                self.lag = await self._measure_lag()
            line = self.render()
            if self.tty:
                self.out.write("\r\x1b[2K" + line)
                self.out.flush()
            elif time.monotonic() - last_plain >= self.plain_interval:
                last_plain = time.monotonic()
                self.out.write(f"status: {line}\n")
                self.out.flush()
            await asyncio.sleep(1.0)

    async def drain(self, timeout: float) -> int | None:
        """Wait until the sink has written everything in the topics; the lag left."""
        deadline = time.monotonic() + timeout
        while True:
            self.lag = await self._measure_lag()
            if self.lag == 0 or time.monotonic() >= deadline:
                return self.lag
            await asyncio.sleep(0.25)

    def end_line(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    async def close(self) -> None:
        consumer, conn = self._consumer, self._conn
        self._consumer = self._conn = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
