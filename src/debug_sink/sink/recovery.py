"""Reading past records the Kafka client cannot decode, without losing their neighbours.

When aiokafka fails to decode a fetched record batch (a corrupt batch, a codec that is not
installed, a malformed record a foreign producer wrote), ``getmany`` raises -- and it has
already moved the positions of partitions whose records it had decoded in the same call,
without returning them. Retried as is, the same batch fails again forever, and those
neighbours are lost.

Owns :class:`FetchRecovery`: it remembers, per partition, the next offset the sink has
actually received. After such a failure it seeks every partition back there (nothing
is skipped), then reads each one alone to find the one that fails; a partition that fails at
the same offset ``attempts`` times gets that offset as an :class:`Undecodable` record (a dead
letter with the decoder's error as its reason) and is read on from the next offset.

Not guaranteed: that the records of a batch after an undecodable one are readable -- each
is tried, and dead-lettered the same way if it is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

log = structlog.get_logger("debug_sink")

#: How long to wait for one partition's records while looking for the failing one.
_PROBE_MS = 1000


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in a batch for an offset whose record could not be decoded."""

    topic: str
    partition: int
    offset: int
    reason: str
    timestamp: int = -1
    key: None = None
    value: None = None
    headers: tuple[()] = ()


class FetchRecovery:
    """See the module doc. ``consumer``: the sink's aiokafka consumer."""

    def __init__(self, consumer: Any, *, attempts: int = 2) -> None:
        self._consumer = consumer
        self._attempts = attempts
        self._expected: dict[TopicPartition, int] = {}
        self._failures: dict[tuple[TopicPartition, int], int] = {}

    def positioned(self, tp: TopicPartition, offset: int) -> None:
        """The partition was sought to ``offset``."""
        self._expected[tp] = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._expected.pop(tp, None)

    def received(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        """Records of ``tp`` the sink took (in offset order)."""
        if records:
            self._expected[tp] = records[-1].offset + 1

    async def recover(
        self,
        exc: BaseException,
        positioned: Iterable[TopicPartition],
        fetching: Iterable[TopicPartition],
    ) -> dict[TopicPartition, list[Any]]:
        """After ``getmany`` raised ``exc`` (not a broker error): rewind every ``positioned``
        partition, read each of those ``fetching`` (not paused) alone to find the failing
        one, read on. Returns the records (and stand-ins) read meanwhile."""
        consumer = self._consumer
        rewound = [tp for tp in positioned if tp in self._expected]
        log.warning("fetch_undecodable", error=f"{type(exc).__name__}: {exc}")
        for tp in rewound:
            consumer.seek(tp, self._expected[tp])
        out: dict[TopicPartition, list[Any]] = {}
        for tp in (tp for tp in fetching if tp in self._expected):
            offset = self._expected[tp]
            try:
                records = await consumer.getmany(tp, timeout_ms=_PROBE_MS)
            except KafkaError:
                consumer.seek(tp, offset)
                continue
            except Exception as failure:
                consumer.seek(tp, offset)
                stand_in = self._failed(tp, offset, failure)
                if stand_in is not None:
                    out[tp] = [stand_in]
                continue
            got = records.get(tp, [])
            if got:
                self.received(tp, got)
                out[tp] = list(got)
        return out

    def _failed(self, tp: TopicPartition, offset: int, failure: BaseException) -> Any:
        key = (tp, offset)
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] < self._attempts:
            return None
        del self._failures[key]
        self._expected[tp] = offset + 1
        self._consumer.seek(tp, offset + 1)
        log.error(
            "record_undecodable",
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            error=type(failure).__name__,
        )
        reason = (
            f"the Kafka client cannot decode the record at offset {offset}: "
            f"{type(failure).__name__}: {failure}"
        )
        return Undecodable(tp.topic, tp.partition, offset, reason[:2000])
