"""Kafka records that carry several events: the OTLP traces topics.

Owns turning one record of an OTLP topic into the batch items of its events
(:func:`debug_sink.otlp.records.expand`): one :class:`~debug_sink.sink.batch.Item` per event,
all with the record's topic, partition and offset and their own ``part`` (the event's index
in the record), the record's rejected spans as one trailing item. The fetcher adds them with
:meth:`~debug_sink.sink.batch.BatchBuilder.add_record`, so a record's events are written in
one transaction with its offset, like a JSON record's one event.

Guarantees: every record of an OTLP topic gives at least one item (its offset is stored
only with an item); never raises for bad input. Records the Kafka client could not decode
are not handled here (the fetcher dead-letters them like any other).
"""

from __future__ import annotations

from typing import Any

from debug_sink.otlp.decode import Encoding
from debug_sink.otlp.records import OtlpConfig, expand
from debug_sink.settings import Settings
from debug_sink.sink.batch import Item, Origin
from debug_sink.sink.recovery import Undecodable
from debug_sink.wire.validation import ValidationConfig

__all__ = ["ExpansionEstimate", "RecordExpander"]


class RecordExpander:
    """Expands the records of the configured OTLP topics (``settings.otlp_topics``)."""

    def __init__(self, settings: Settings, validation: ValidationConfig) -> None:
        self._encodings: dict[str, Encoding] = settings.otlp_topic_encodings
        self._config = OtlpConfig(validation, tuple(settings.otlp_state_attributes))

    def handles_topic(self, topic: str) -> bool:
        return topic in self._encodings

    def handles(self, msg: Any) -> bool:
        """Whether ``msg`` is a record of an OTLP topic that this expands."""
        return msg.topic in self._encodings and not isinstance(msg, Undecodable)

    def items(self, msg: Any) -> list[Item]:
        """The items of one record of an OTLP topic, in order (see the module doc)."""
        results = expand(
            msg.value,
            encoding=self._encodings[msg.topic],
            timestamp_ms=msg.timestamp,
            config=self._config,
        )
        headers = tuple(msg.headers or ())
        return [
            Item(
                Origin(msg.topic, msg.partition, msg.offset, part),
                msg.key,
                msg.value,
                headers,
                msg.timestamp,
                result,
            )
            for part, result in enumerate(results)
        ]


class ExpansionEstimate:
    """How many items a record makes lately: how many records to take for a batch that has
    room for ``room`` more items.

    A record is never split across batches, so a batch can only stop between records; a take
    of a few hundred OTLP records (hundreds of spans each) would otherwise make one batch of a
    hundred thousand events. The estimate rises at once to a larger ratio (overshooting is
    what costs) and decays slowly to a smaller one; :meth:`expect` raises it before anything
    is seen (OTLP partitions assigned: take one record at a time until their size is known).
    JSON topics only: 1, and takes are as before.
    """

    def __init__(self, weight: float = 0.2) -> None:
        self._weight = weight
        self.items_per_record = 1.0

    def expect(self, items_per_record: float) -> None:
        self.items_per_record = max(self.items_per_record, items_per_record)

    def observe(self, records: int, items: int) -> None:
        if not records:
            return
        ratio = items / records
        if ratio >= self.items_per_record:
            self.items_per_record = ratio
        else:
            self.items_per_record += self._weight * (ratio - self.items_per_record)

    def records_for(self, room: int, most: int) -> int:
        return max(1, min(most, int(room / self.items_per_record)))
