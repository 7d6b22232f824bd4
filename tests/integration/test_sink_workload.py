"""The mixed workload of the fault tests, without faults: the baseline they compare to."""

from __future__ import annotations

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
