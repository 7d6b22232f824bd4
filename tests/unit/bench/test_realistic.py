"""The realistic workload: random ids, interleaved producers, re-sent, redacted and invalid
messages (pure, no services)."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter

import orjson

from debug_sink.bench import workload
from debug_sink.bench.realistic import Realism, Sent, StreamCounts, producer_stream
from debug_sink.wire.events import DEFAULT_TOPICS
from debug_sink.wire.validation import Accepted, Rejected, ValidationConfig, decode

TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
REALISM = Realism(producers=3, duplicates=0.05, secrets=0.2, invalid=0.2, seed=4)
WORKFLOWS = range(200)


def streams(realism: Realism = REALISM) -> list[list[Sent]]:
    return [list(producer_stream(p, WORKFLOWS, tag=9, realism=realism)) for p in range(3)]


def decoded(sent: Sent) -> Accepted | Rejected:
    message = sent.message
    value = message.stamped(workload.stamp_at(1_700_000_000 + sent.seq / 1000))
    return decode(TOPIC_OF[message.kind], value, timestamp_ms=0, config=ValidationConfig())


class TestRealisticWorkload:
    """What producer_stream sends, and that the sink can tell each kind of message apart."""

    def test_deterministic(self) -> None:
        """The same tag, knobs and workflows give the same messages in the same order."""
        assert streams() == streams()
        assert streams() != streams(Realism(producers=3, seed=5))

    def test_each_producer_sends_its_own_workflows_whole(self) -> None:
        """Every workflow is sent by exactly one producer, all 16 of its events."""
        keys: dict[bytes, set[int]] = {}
        events: Counter[bytes] = Counter()
        for p, stream in enumerate(streams()):
            for sent in stream:
                if not sent.invalid:
                    keys.setdefault(sent.message.key, set()).add(p)
        assert len(keys) == len(WORKFLOWS)
        assert all(len(p) == 1 for p in keys.values())
        unique = {s.message.value for st in streams() for s in st if not s.invalid}
        for value in unique:
            events[orjson.loads(value)["correlation_id"].encode()] += 1
        # 16 events, of which the 3 step ids are sent twice (started, ended): distinct bytes.
        assert set(events.values()) == {workload.EVENTS_PER_WORKFLOW}

    def test_ids_are_random_version_4(self) -> None:
        """Ids are version-4 UUIDs in no particular order (not increasing like the simple
        workload's)."""
        ids = [orjson.loads(s.message.value)["id"] for s in streams()[0] if not s.invalid][:200]
        assert all(uuid.UUID(i).version == 4 for i in ids)
        assert ids != sorted(ids)

    def test_workflows_interleave(self) -> None:
        """A producer runs several workflows at once: their events alternate."""
        keys = [s.message.key for s in streams()[0]]
        changes = sum(1 for a, b in itertools.pairwise(keys) if a != b)
        assert changes > len(keys) / 2

    def test_resent_copies_are_identical_and_later(self) -> None:
        """About ``duplicates`` of the messages are sent again, byte for byte, after their
        original, with the original's sequence number (so the same stamp)."""
        counts = StreamCounts()
        for p in range(3):
            seen: dict[bytes, int] = {}
            for sent in producer_stream(p, WORKFLOWS, tag=9, realism=REALISM, counts=counts):
                value = sent.message.value
                if value in seen and not sent.invalid:
                    assert sent.seq == seen[value]
                seen.setdefault(value, sent.seq)
        share = counts.duplicates / counts.messages
        assert 0.03 < share < 0.07
        assert counts.workflows == len(WORKFLOWS)

    def test_parents_precede_children_in_each_stream(self) -> None:
        """Within a producer's stream every referenced id was sent before the reference."""
        for stream in streams():
            seen: set[str] = set()
            for sent in stream:
                if sent.invalid:
                    continue
                body = orjson.loads(sent.message.value)
                for name in workload._REFERENCE_FIELDS.intersection(body):
                    assert body[name] in seen, name
                seen.add(body["id"])

    def test_the_sink_accepts_valid_redacts_secrets_and_rejects_invalid(self) -> None:
        """Valid messages are accepted (those with credentials redacted), each invalid one is
        rejected -- as many as the counts say."""
        counts = StreamCounts()
        results = [
            (sent, decoded(sent))
            for p in range(3)
            for sent in producer_stream(p, WORKFLOWS, tag=9, realism=REALISM, counts=counts)
        ]
        rejected = [r for s, r in results if s.invalid]
        assert rejected
        assert all(isinstance(r, Rejected) for r in rejected)
        assert len(rejected) == counts.invalid
        accepted = [r for s, r in results if not s.invalid]
        assert all(isinstance(r, Accepted) for r in accepted)
        redacted = [r for r in accepted if isinstance(r, Accepted) and r.redacted]
        assert redacted
        for r in redacted:
            assert b"sk-live-" not in orjson.dumps(r.event.model_dump(mode="json"))
