"""The mixed workload of the fault tests, without faults: the baseline they compare to."""

from __future__ import annotations

import time
from typing import Any

from tests import support as s


class TestMixedWorkload:
    """A cross-referencing multi-topic workload lands exactly, in one in-process run."""

    async def test_mixed_workload_lands_exactly(self, db_dsn: str, kafka: Any) -> None:
        await s.create_topics(kafka, partitions=2)
        workload = s.mixed_workload(kafka, 200, seed=1)
        await s.produce(kafka, workload.messages)
        await s.run_sink(s.sink_settings(db_dsn, kafka, batch_max_events=500))
        await s.assert_workload_stored(db_dsn, workload)

    async def test_backlog_is_written_in_time_order_across_topics(
        self, db_dsn: str, kafka: Any
    ) -> None:
        """A backlog whose children sit on other topics than their parents is read in record
        timestamp order across all partitions, so no child arrives before its parent and
        nothing is parked (read partition by partition, most of the children were)."""
        await s.create_topics(kafka, partitions=4)
        workload = s.mixed_workload(kafka, 150, seed=3)
        await s.produce(
            kafka, workload.messages, first_timestamp_ms=int(time.time() * 1000) - 600_000
        )
        sink = await s.run_sink(
            s.sink_settings(db_dsn, kafka, batch_max_events=300, batch_max_age_ms=1000)
        )
        await s.assert_workload_stored(db_dsn, workload)
        assert sink.committed_batches >= len(workload.messages) // 300
        parked = sink.metrics.registry.get_sample_value("debug_sink_events_parked_total")
        assert parked == 0
