"""How many records the fetcher takes at once when records expand into many events."""

from __future__ import annotations

from debug_sink.sink.expand import ExpansionEstimate


class TestExpansionEstimate:
    """Records that expand into many items are taken a few at a time: a batch overshoots
    its event limit by at most one record."""

    def test_json_records_take_as_before(self) -> None:
        estimate = ExpansionEstimate()
        estimate.observe(256, 256)
        assert estimate.records_for(2500, 256) == 256

    def test_otlp_records_take_a_few(self) -> None:
        estimate = ExpansionEstimate()
        estimate.observe(1, 800)  # one OTLP record: at once
        assert estimate.records_for(2500, 256) == 3
        assert estimate.records_for(100, 256) == 1
        for _ in range(40):  # then JSON records only: back to taking many
            estimate.observe(256, 256)
        assert estimate.records_for(2500, 256) == 256

    def test_before_any_record_of_an_otlp_partition(self) -> None:
        estimate = ExpansionEstimate()
        estimate.expect(2500)
        assert estimate.records_for(2500, 256) == 1
