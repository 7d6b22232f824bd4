"""``otlp``: the sink draining OTLP traces as the Collector's Kafka exporter writes them.

A backlog of agent traces (per trace: an agent span, four model calls, a tool call that fails
and its retry, a nested agent with its own model and tool call -- 9 spans, 16 events: 9
steps, 4 LLM calls, an error, its recovery, a state snapshot), ``TRACES_PER_MESSAGE`` whole
traces per ``ExportTraceServiceRequest`` (``otlp_proto``), as a Collector's batch processor
would send them, drained by one ``debug-sink run --exit-when-idle``. Measured like
``throughput``: events committed between the first and the last ``batch_committed`` line,
and the spans that makes; next to them the JSON path's events/s, the median of the
``throughput`` section's drains (one drain here if that section did not run).
Diagnostic: the decode -> map -> validate cost per span in this process (one core, no I/O),
the part of the work the OTLP path adds.

Owns the ``otlp`` section of the results. Guarantees: the row counts the backlog must leave
are checked (a wrong count is a note). Not guaranteed: absolute rates on a shared machine.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from debug_sink.bench.scenarios.throughput import median_of
from debug_sink.bench.sinks import drain
from debug_sink.otlp.records import OtlpConfig, expand

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["TRACES_PER_MESSAGE", "agent_trace", "otlp"]

TRACES_PER_MESSAGE: Final = 50
SPANS_PER_TRACE: Final = 9
#: Rows one trace leaves, per table.
ROWS_PER_TRACE: Final = {
    "debug_workflow_steps": 9,
    "hook_events": 4,
    "debug_error_events": 1,
    "debug_success_events": 1,
    "debug_state_snapshots": 1,
}
EVENTS_PER_TRACE: Final = sum(ROWS_PER_TRACE.values())
_MS: Final = 10**6


def _attributes(span: Any, values: dict[str, Any]) -> None:
    """Add ``values`` to the attributes of ``span`` (a span or a span event)."""
    for key, value in values.items():
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        else:
            any_value = AnyValue(string_value=str(value))
        span.attributes.append(KeyValue(key=key, value=any_value))


def agent_trace(rng: random.Random, start_ns: int, index: int) -> list[Span]:
    """The spans of one agent run (see the module doc), starting at ``start_ns``."""
    trace_id = rng.randbytes(16)
    clock = start_ns
    spans: list[Span] = []

    def new(name: str, parent: Span | None, values: dict[str, Any], ms: int) -> Span:
        nonlocal clock
        span = Span(
            trace_id=trace_id,
            span_id=rng.randbytes(8),
            parent_span_id=parent.span_id if parent is not None else b"",
            flags=0x100,
            name=name,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=clock,
            end_time_unix_nano=clock + ms * _MS,
        )
        _attributes(span, values)
        clock += ms * _MS + _MS
        spans.append(span)
        return span

    def llm(parent: Span, model: str, tokens: int) -> None:
        new(
            f"chat {model}",
            parent,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": tokens,
                "gen_ai.usage.output_tokens": tokens // 8,
                "gen_ai.response.finish_reasons": "stop",
                "input.value": "Find me a flight from Oslo to Lisbon " * 4,
            },
            900,
        )

    def tool(parent: Span, name: str, fail: bool = False) -> None:
        span = new(
            f"execute_tool {name}",
            parent,
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name},
            300,
        )
        if fail:
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="timed out"))
            event = span.events.add(time_unix_nano=span.end_time_unix_nano, name="exception")
            _attributes(
                event,
                {
                    "exception.type": "TimeoutError",
                    "exception.message": "flight API timed out after 30 s",
                    "exception.stacktrace": 'Traceback (most recent call last):\n  File "agent.py"',
                },
            )

    root = new(
        "invoke_agent planner",
        None,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": f"conv-{index}",
        },
        0,
    )
    llm(root, "gpt-4o", 400)
    tool(root, "search_flights", fail=True)
    llm(root, "gpt-4o", 500)
    tool(root, "search_flights")
    booker = new(
        "invoke_agent booker",
        root,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "booker",
            "agent.state": f'{{"cart": ["TP{index}"], "traveller": "Ada", "step": {index}}}',
        },
        0,
    )
    llm(booker, "claude-sonnet-4", 600)
    tool(booker, "book_flight")
    booker.end_time_unix_nano = clock
    llm(root, "gpt-4o", 700)
    root.end_time_unix_nano = clock
    return spans


def _message(spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    resource = ResourceSpans()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="bench-agent"))
    )
    resource.scope_spans.append(ScopeSpans(spans=spans))
    request.resource_spans.append(resource)
    return bytes(request.SerializeToString())


def messages(traces: int, seed: int) -> list[bytes]:
    """``traces`` agent traces over the last hour, ``TRACES_PER_MESSAGE`` per message."""
    rng = random.Random(seed)
    start = time.time_ns() - 3600 * 10**9
    step = 3600 * 10**9 // max(1, traces)
    out: list[bytes] = []
    batch: list[Span] = []
    for i in range(traces):
        batch.extend(agent_trace(rng, start + i * step, i))
        if (i + 1) % TRACES_PER_MESSAGE == 0:
            out.append(_message(batch))
            batch = []
    if batch:
        out.append(_message(batch))
    return out


async def otlp(h: Harness, backlogs: Backlogs) -> None:
    traces = max(TRACES_PER_MESSAGE, h.cfg.events // EVENTS_PER_TRACE)
    values = messages(traces, h.cfg.seed)
    spans = traces * SPANS_PER_TRACE
    events = traces * EVENTS_PER_TRACE
    out: dict[str, Any] = {
        "traces": traces,
        "spans": spans,
        "events": events,
        "messages": len(values),
        "mean_message_bytes": round(sum(map(len, values)) / len(values)),
    }
    h.results["otlp"] = out

    # In this process: what decoding, mapping and validating a span costs (one core).
    config = OtlpConfig()
    sample = values[: max(1, min(len(values), 2000 // TRACES_PER_MESSAGE))]
    with h.step("otlp: decode, map, validate in process"):
        started = time.perf_counter()
        made = sum(
            len(expand(v, timestamp_ms=int(time.time() * 1000), config=config)) for v in sample
        )
        seconds = time.perf_counter() - started
    sampled_spans = len(sample) * TRACES_PER_MESSAGE * SPANS_PER_TRACE
    out["in_process"] = {
        "spans_per_s": round(sampled_spans / seconds),
        "events_per_s": round(made / seconds),
        "us_per_span": round(seconds / sampled_spans * 1e6, 1),
    }

    names = h.names("otlp")
    topic = names["topic_prefix"] + "otlp_spans"
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=h.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, h.cfg.partitions, 1)])
    finally:
        await admin.close()
    producer = h.producer()
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value) for value in values]
        for future in futures:
            await future
    finally:
        await producer.stop()
    out["produce_s"] = round(time.perf_counter() - started, 3)

    dsn = await h.database("bench_otlp")
    drained = await drain(h, dsn, names, events, "otlp: sink drains")
    figures = drained.figures({"events": events, "bytes": sum(map(len, values))})
    eps = figures["events_per_s"]
    out["sink"] = {
        **{k: v for k, v in figures.items() if k != "problems"},
        "spans_per_s": round(eps * SPANS_PER_TRACE / EVENTS_PER_TRACE),
        "cores_busy": drained.cores_busy(),
    }
    # The JSON path on the same machine in the same run: the median of the throughput
    # section's drains (one drain now if that section did not run). With the default
    # workload those write the realistic backlog into a prefilled database: compare with
    # ``--workload simple --prefill 0`` for like with like.
    json_eps = median_of((h.results.get("throughput") or {}).get("sink", {}))
    if json_eps is None:
        json_eps = (await backlogs.sink_drain(0))["events_per_s"]
        await backlogs.forget(0)
    out["json_path_events_per_s"] = json_eps
    if json_eps:
        out["events_vs_json"] = round(eps / json_eps, 2)
    counts = await h.table_counts(dsn)
    out["rows"] = counts
    expected = {table: n * traces for table, n in ROWS_PER_TRACE.items()}
    expected.update({"sink_parked_events": 0, "sink_dead_letters": 0})
    wrong = {t: (counts.get(t), n) for t, n in expected.items() if counts.get(t) != n}
    if wrong:
        h.notes.append(f"otlp: unexpected row counts (found, expected): {wrong}")
    await h.drop_database("bench_otlp")
