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

__all__ = ["RecordExpander"]


class RecordExpander:
    """Expands the records of the configured OTLP topics (``settings.otlp_topics``)."""

    def __init__(self, settings: Settings, validation: ValidationConfig) -> None:
        self._encodings: dict[str, Encoding] = settings.otlp_topic_encodings
        self._config = OtlpConfig(validation, tuple(settings.otlp_state_attributes))

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
