"""The sink's per-topic and per-kind metrics: exact, and bounded whatever producers do.

``debug_sink_rows_written_total`` counts rows the tables gained -- a re-delivered event adds
none, in this member or another; the ``topic`` label of a topic the settings do not name is
``(other)``: producers may create topics, which must not grow the series without bound.
(From a red team's tests: re-sent events were counted twice, and 150 new topics were 150
label values.)
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from debug_sink.metrics import OTHER_TOPIC
from debug_sink.wire.events import EventKind
from tests import support as s

pytestmark = pytest.mark.timeout(120)


def samples(sink: Any, name: str) -> list[Any]:
    return [
        sample
        for metric in sink.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


def written(sink: Any) -> float:
    return sum(x.value for x in samples(sink, "debug_sink_rows_written_total"))


class TestRowsWritten:
    async def test_resent_events_are_not_rows_written(self, db_dsn: str, kafka: Any) -> None:
        """40 hook events, each sent twice (an SDK retry after a lost acknowledgement): 40
        rows, and the metric says 40."""
        await s.create_topics(kafka, partitions=1)
        hooks = [s.hook(s.uid()) for _ in range(40)]
        topic = s.topic(kafka, EventKind.HOOK)
        await s.produce(kafka, [(topic, h) for h in hooks] + [(topic, h) for h in hooks])
        sink = await s.run_sink(s.sink_settings(db_dsn, kafka), idle_grace=3.0)
        assert (await s.fetch_counts(db_dsn))["hook_events"] == 40
        assert written(sink) == 40

    async def test_a_second_reader_of_stored_rows_writes_none(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """A member re-reading records another already stored (a rebalance's or a crash's
        overlap; a replay next to the live sink) adds no row and reports none."""
        await s.create_topics(kafka, partitions=1)
        topic = s.topic(kafka, EventKind.HOOK)
        await s.produce(kafka, [(topic, s.hook(s.uid())) for _ in range(30)])
        first = await s.run_sink(s.sink_settings(db_dsn, kafka), idle_grace=3.0)
        second = await s.run_sink(
            s.sink_settings(db_dsn, kafka, group_id=kafka.group_id + "-other"), idle_grace=3.0
        )
        assert (await s.fetch_counts(db_dsn))["hook_events"] == 30
        assert (written(first), written(second)) == (30, 0)


async def test_topics_nobody_configured_share_one_label(db_dsn: str, kafka: Any) -> None:
    """40 topics the subscription matches but the settings do not name, one message each:
    40 dead letters, and one (other) label on each per-topic series beside the configured
    topics' own."""
    names = [f"{kafka.topic_prefix}x{i:03d}" for i in range(40)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in names])
    finally:
        await admin.close()
    await s.create_topics(kafka, partitions=1)
    known = s.topic(kafka, EventKind.HOOK)
    await s.produce(kafka, [(t, s.hook(s.uid())) for t in names] + [(known, s.hook(s.uid()))])
    settings = s.sink_settings(db_dsn, kafka)
    sink = await s.run_sink(settings, idle_grace=5.0, timeout=100)
    assert (await s.fetch_counts(db_dsn))["sink_dead_letters"] == 40
    consumed = {
        x.labels["topic"]: x.value for x in samples(sink, "debug_sink_events_consumed_total")
    }
    dead = {x.labels["topic"] for x in samples(sink, "debug_sink_dead_letters_total")}
    lag = {x.labels["topic"] for x in samples(sink, "debug_sink_consumer_lag")}
    assert consumed == {OTHER_TOPIC: 40, known: 1}
    assert dead == {OTHER_TOPIC}
    assert lag <= set(settings.topics) | set(settings.otlp_topic_encodings)


async def test_rows_written_by_the_periodic_release_are_counted(db_dsn: str, kafka: Any) -> None:
    """Errors whose snapshot never comes are parked, then written by the sink's periodic
    release once the grace period is over: rows the tables gained, so rows written. (From a
    red team's tests: the metric counted the batches' rows only, so every event released by
    the periodic release -- all the orphans of a buggy producer -- was missing from it.)"""
    await s.create_topics(kafka, partitions=1)
    corr = s.uid()
    errors = [s.error(corr, state_snapshot_id=s.uid()) for _ in range(25)]
    await s.produce(kafka, [(s.topic(kafka, EventKind.ERROR), e) for e in errors])
    sink = await s.run_sink(
        s.sink_settings(db_dsn, kafka, park_grace_seconds=1), idle_grace=6.0, timeout=100
    )
    assert (await s.fetch_counts(db_dsn))["debug_error_events"] == 25
    assert written(sink) == 25
