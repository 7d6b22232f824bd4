"""OTLP input for tests, made the way agents and the OpenTelemetry Collector make it.

Spans come from the real ``opentelemetry-sdk`` (a ``TracerProvider`` whose span processor
collects finished spans in memory), instrumenting a small agent loop with the GenAI semantic
conventions; they are encoded by the encoders the OTLP exporters use
(``opentelemetry-exporter-otlp-proto-common`` for ``otlp_proto``,
``opentelemetry-exporter-otlp-json-common`` for ``otlp_json``) into one
``ExportTraceServiceRequest`` per Kafka message, as the Collector's Kafka exporter writes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry import trace
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_proto
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from tests import support as s

#: A secret the agent puts where it should not: it must never reach a row or a dead letter.
LEAKED_KEY = "sk-live-51HqLyjWDarjtT1zdp7dcXv2Kq0N7h4fZ"


def otlp_topic(kafka: Any) -> str:
    """The test's OTLP topic: PREFIX + otlp_spans, the sink's default."""
    return str(kafka.topic_prefix + "otlp_spans")


async def create_otlp_topic(kafka: Any, partitions: int = 1) -> str:
    name = otlp_topic(kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


def proto(spans: Sequence[ReadableSpan]) -> bytes:
    """One ``otlp_proto`` message, as the Collector's Kafka exporter writes it."""
    return bytes(encode_proto(spans).SerializeToString())


def json(spans: Sequence[ReadableSpan]) -> bytes:
    """One ``otlp_json`` message (OTLP/JSON: hex ids, lowerCamelCase, int64 as strings)."""
    return str(encode_json(spans).to_json()).encode()


@dataclass
class Recorder:
    """A tracer whose finished spans are kept, in the order they ended."""

    service: str = "travel-agent"
    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    provider: TracerProvider = field(init=False)

    def __post_init__(self) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": self.service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("tests.agent", "1.0")

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]


class Clock:
    """Span times of an agent that takes its time: each reading ``step`` ns after the last
    (a model call, a tool call), from ``start`` (default: now)."""

    def __init__(self, start: int | None = None, step: int = 150 * 10**6) -> None:
        self.now = time.time_ns() - 60 * 10**9 if start is None else start
        self.step = step

    def tick(self) -> int:
        self.now += self.step
        return self.now


@contextlib.contextmanager
def _span(tracer: Tracer, clock: Clock, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    span = tracer.start_span(name, attributes=attributes, start_time=clock.tick())
    with trace.use_span(span, end_on_exit=False):
        yield span
    span.end(end_time=clock.tick())


def _llm(tracer: Tracer, clock: Clock, model: str, *, tokens: tuple[int, int], finish: str) -> None:
    prompt, completion = tokens
    with _span(
        tracer,
        clock,
        f"chat {model}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
            "gen_ai.response.finish_reasons": [finish],
            "gen_ai.request.temperature": 0.2,
        },
    ):
        pass


def _tool(
    tracer: Tracer, clock: Clock, name: str, *, fail: str | None = None, result: str = "{}"
) -> None:
    with _span(
        tracer,
        clock,
        f"execute_tool {name}",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": '{"from": "OSL", "to": "LIS"}',
        },
    ) as span:
        if fail is None:
            span.set_attribute("gen_ai.tool.call.result", result)
            return
        try:
            raise TimeoutError(fail)
        except TimeoutError as exc:
            span.record_exception(exc, timestamp=clock.tick())
            span.set_attribute("error.type", "TimeoutError")
            span.set_status(Status(StatusCode.ERROR, fail))


def agent_loop(
    recorder: Recorder, *, conversation: str = "conv-42", clock: Clock | None = None
) -> None:
    """One run of a small travel agent, instrumented with the GenAI conventions.

    ``planner`` asks the model, calls ``search_flights``, which times out; the model sees the
    error and the agent calls the tool again, which works; then ``planner`` delegates to a
    nested agent ``booker`` (whose span carries the agent's state, with a leaked API key),
    which asks a model and calls ``book_flight``; ``planner`` ends with a last model call.
    Every span starts and ends ``clock.step`` after the previous reading.
    """
    tracer, clock = recorder.tracer, clock or Clock()
    with _span(
        tracer,
        clock,
        "invoke_agent planner",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": conversation,
            "input.value": "Find me a flight from Oslo to Lisbon",
        },
    ):
        _llm(tracer, clock, "gpt-4o", tokens=(120, 18), finish="tool_calls")
        _tool(tracer, clock, "search_flights", fail="flight API timed out after 30 s")
        _llm(tracer, clock, "gpt-4o", tokens=(160, 12), finish="tool_calls")
        _tool(tracer, clock, "search_flights", result='{"flights": 3}')
        with _span(
            tracer,
            clock,
            "invoke_agent booker",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "booker",
                "agent.state": (
                    '{"cart": ["TP1234"], "traveller": "Ada", "api_key": "' + LEAKED_KEY + '"}'
                ),
            },
        ):
            _llm(tracer, clock, "claude-sonnet-4", tokens=(300, 40), finish="tool_calls")
            _tool(tracer, clock, "book_flight", result='{"booking": "X7Q2"}')
        _llm(tracer, clock, "gpt-4o", tokens=(400, 60), finish="stop")


async def produce_otlp(kafka: Any, messages: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Produce ``(key, value)`` messages to the OTLP topic, in order."""
    producer = await s.start_producer(kafka.bootstrap_servers)
    count = 0
    try:
        futures = [
            await producer.send(otlp_topic(kafka), value, key=key) for key, value in messages
        ]
        for future in futures:
            await future
            count += 1
    finally:
        await producer.stop()
    return count


# -- hand-made requests (what no SDK would send) -------------------------------------------

NOW_NS = 1_790_000_000 * 10**9  # 2026-09-21
NOW_MS = NOW_NS // 10**6


def raw_span(index: int = 1, **fields: Any) -> Any:
    """A protobuf span, valid unless ``fields`` say otherwise (``attributes`` as a dict of
    strings)."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    attributes = fields.pop("attributes", {})
    values: dict[str, Any] = {
        "trace_id": bytes(range(1, 17)),
        "span_id": index.to_bytes(8, "big"),
        "name": f"step {index}",
        "start_time_unix_nano": NOW_NS - 2 * 10**9 + index * 10**6,
        "end_time_unix_nano": NOW_NS - 10**9 + index * 10**6,
        **fields,
    }
    span = Span(**values)
    span.attributes.extend(
        KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()
    )
    return span


def raw_message(*spans: Any, service: str = "svc") -> bytes:
    """One ExportTraceServiceRequest holding ``spans`` (protobuf)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    resource = ResourceSpans()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    resource.scope_spans.append(ScopeSpans(spans=list(spans)))
    return bytes(ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString())
