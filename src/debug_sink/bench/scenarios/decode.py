"""``decode``: the sink's Python cost per event, measured without Kafka or PostgreSQL.

A micro-benchmark on the run's workload (the realistic one by default: re-sent, redacted and
invalid messages included): the messages of ``decode_events`` events are generated in memory,
stamped, and then timed in this process, each step over all of them, best of several runs
(the cyclic GC off while timing, as good as the sink's relaxed GC gets):

- ``decode``: :func:`~debug_sink.wire.validation.decode`, bytes to an accepted event or a
  rejection -- overall and per kind (rejections under ``rejected``);
- ``record_of``: an accepted event to its COPY record, as the writer builds it.

Owns the ``decode`` section of the results. Guarantees: the same messages in every run; the
figures are microseconds per message. Not guaranteed: the same figures inside the sink
process, which shares the CPU with PostgreSQL and its own I/O (``throughput`` measures that).
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from debug_sink.bench.internals import Accepted, ValidationConfig, decode, record_of
from debug_sink.bench.realistic import producer_stream
from debug_sink.bench.workload import iter_workload, stamp_at, workflows_for
from debug_sink.settings import TOPIC_SUFFIXES

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["decode_section"]

_RUNS: Final = 5
_PREFIX: Final = "debug."


async def decode_section(h: Harness, backlogs: Backlogs) -> None:
    realism = backlogs.realism
    workflows = workflows_for(h.cfg.decode_events)
    base = 1_700_000_000.0
    if realism is not None:
        sent = [
            (s.message, s.seq)
            for p in range(realism.producers)
            for s in producer_stream(p, range(workflows), tag=h.tag, realism=realism)
        ]
    else:
        sent = [(m, i) for i, m in enumerate(iter_workload(workflows, tag=h.tag))]
    config = ValidationConfig(topics={_PREFIX + s: k for k, s in TOPIC_SUFFIXES.items()})
    messages = [
        (_PREFIX + TOPIC_SUFFIXES[m.kind], m.stamped(stamp_at(base + seq / 1000)), m.kind.value)
        for m, seq in sent
    ]
    ts = int(base * 1000)

    def decode_all() -> None:
        for topic, value, _ in messages:
            decode(topic, value, timestamp_ms=ts, config=config)

    results = [decode(t, v, timestamp_ms=ts, config=config) for t, v, _ in messages]
    accepted = [r for r in results if isinstance(r, Accepted)]

    def records_all() -> None:
        for r in accepted:
            record_of(r.kind, r.event, r.state_json)

    by_kind: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for (topic, value, kind), result in zip(messages, results, strict=True):
        by_kind[kind if isinstance(result, Accepted) else "rejected"].append((topic, value))

    with h.step("decode: micro-benchmark"):
        out: dict[str, Any] = {
            "messages": len(messages),
            "accepted": len(accepted),
            "redacted": sum(1 for r in accepted if r.redacted),
            "decode_us": _best(decode_all, len(messages)),
            "record_of_us": _best(records_all, len(accepted)),
            "decode_us_by_kind": {},
        }
        for kind, items in sorted(by_kind.items()):

            def decode_kind(items: list[tuple[str, bytes]] = items) -> None:
                for topic, value in items:
                    decode(topic, value, timestamp_ms=ts, config=config)

            out["decode_us_by_kind"][kind] = _best(decode_kind, len(items))
    h.results["decode"] = out


def _best(run: Callable[[], None], count: int) -> float:
    """Microseconds per item of the fastest of :data:`_RUNS` runs (GC off while timing)."""
    run()  # warm-up: caches of keys, compiled patterns
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(_RUNS):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
    finally:
        if enabled:
            gc.enable()
    return round(best / max(1, count) * 1e6, 2)
