"""The measured scenarios of ``debug-sink bench``: one module per section.

Owns :data:`SCENARIOS`: each section of :data:`~debug_sink.bench.config.SECTIONS` and the
coroutine that measures it. A scenario takes the run's
:class:`~debug_sink.bench.harness.Harness` and the backlogs the sections share
(:class:`~debug_sink.bench.scenarios.backlogs.Backlogs`), and adds its section to the
results:

- :mod:`.throughput` -- the sink draining a backlog, repeated, against raw COPY and two
  consumers a platform engineer might write (:mod:`.rivals`);
- :mod:`.latency` -- produce-to-committed time at steady rates;
- :mod:`.rss` -- the sink's peak memory draining a backlog;
- :mod:`.queries` -- the read paths on a database of millions of events;
- :mod:`.pages` -- the web view's pages on such a database;
- :mod:`.scaleout` -- two sinks in one consumer group against one;
- :mod:`.sdk` -- the agent's time in each capture call;
- :mod:`.hook` -- the wall time of the Claude Code hook command, a process per event;
- :mod:`.otlp` -- the sink draining OTLP traces (spans/s, events/s), next to the JSON path;
- :mod:`.decode` -- the sink's Python cost per event, without Kafka or PostgreSQL.

Guarantees: every section has exactly one scenario (a unit test holds the keys to
``SECTIONS``). Not guaranteed: that a scenario can run alone without another's backlog being
made -- ``rss`` and ``scaleout`` drain the throughput backlog, made on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from debug_sink.bench.scenarios import (
    decode,
    hook,
    latency,
    otlp,
    pages,
    queries,
    rss,
    scaleout,
    sdk,
    throughput,
)

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["SCENARIOS", "Scenario"]

Scenario = Callable[["Harness", "Backlogs"], Awaitable[None]]

SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType(
    {
        "throughput": throughput.throughput,
        "latency": latency.latency,
        "rss": rss.rss,
        "queries": queries.queries,
        "pages": pages.pages,
        "scaleout": scaleout.scaleout,
        "sdk": sdk.sdk,
        "hook": hook.hook,
        "otlp": otlp.otlp,
        "decode": decode.decode_section,
    }
)
