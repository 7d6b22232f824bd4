"""Spans -> debug events: what an agent's trace means in debug-sink's tables.

Owns the mapping documented in the README ("Agents in through OpenTelemetry"), for the OTel
GenAI semantic conventions (``gen_ai.*``), OpenInference (``openinference.span.kind``,
``llm.*``, ``tool.*``) and OpenLLMetry (``traceloop.span.kind``):

- the trace is the workflow: ``correlation_id`` = the trace id (:mod:`.ids`);
  ``session.id`` / ``gen_ai.conversation.id`` (the span's, else its nearest ancestor's in the
  message) -> ``session_id``; the agent likewise from ``gen_ai.agent.name`` / ``agent.name``
  (else the service's name);
- **every span is a workflow step** (unknown spans too: nothing is dropped, and a child can
  name its parent's step without knowing what the parent is). ``step_type`` is the span's
  kind (``agent``, ``tool``, ``llm``, ``chain``, ``retriever``, ``embedding``, else
  ``span``); start and end from the span, ``parent_step_id`` = the parent span's step (none
  for a remote parent), status ``failed`` for an ERROR status else ``completed``;
- a model call (``llm``) is also an LLM call: a ``PostToolUse`` hook event in the shape
  ``debug_llm_call_summary`` reads (model, tokens, latency, finish reasons, quality from an
  evaluation score in [0, 1]);
- every ``exception`` event is an error event (``exception.type``, ``.message``,
  ``.stacktrace``); an ERROR status is the step's error: its last exception, else one error
  typed by ``error.type``;
- retries, where visible (the same kind and name under the same parent in one message): a
  span after failed attempts has ``attempt`` = 1 + the failures just before it, and when it
  succeeds it is a ``recovery_success`` that names those errors (``recovers_error_ids``: a
  stated link for the correlator);
- the configured state attributes -> state snapshots (deduplicated by the sink as always),
  the step's ``post_state_snapshot_id`` and its error's ``state_snapshot_id``.

The step number: OTel has none, so it is the span's start in milliseconds (modulo 2^31, an
``INTEGER``), a number that grows with time: the timeline and the workflow list order steps
by it, which then agrees with the spans' clocks (a trace that crosses the modulo's wrap,
every ~24.8 days, is ordered by time only within each side of it).

Pure and synchronous: spans in, wire-format objects (the JSON producers send, before
validation) out, plus a reason per span that cannot be mapped (no trace or span id, times
that are no clock's). Not here: validation and redaction (the sink's, on every object:
:func:`debug_sink.wire.validation.validate_object`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson

from debug_sink.otlp import ids
from debug_sink.otlp.decode import Span, hex_id
from debug_sink.wire.canonical import nested_deeper_than, parse_json
from debug_sink.wire.events import INT4_MAX, MAX_RECOVERS, EventKind

__all__ = [
    "DEFAULT_STATE_ATTRIBUTES",
    "IO_KEYS",
    "LONG_KEYS",
    "READ_KEYS",
    "MappedMessage",
    "MappedSpan",
    "map_spans",
    "span_type",
]

#: State attributes read unless configured otherwise (a span attribute holding the agent's
#: state as a map or a JSON object string). No convention names one yet.
DEFAULT_STATE_ATTRIBUTES: Final = ("agent.state", "gen_ai.agent.state")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Earliest plausible span time: a clock at 0 or a few seconds after the epoch is unset.
_EARLIEST_NS: Final = 946_684_800 * 10**9  # 2000-01-01
#: How far past its Kafka record a span may end (clocks drift; a day is no drift).
_FUTURE_SLACK_NS: Final = 86_400 * 10**9
#: Python's and PostgreSQL's last storable instant, in ns since the epoch.
_LATEST_NS: Final = 253_402_300_799 * 10**9
_ERROR_STATUS: Final = 2
_STEP_MODULO: Final = 2**31
_KINDS: Final = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS: Final = ("UNSET", "OK", "ERROR")

OI_KIND = "openinference.span.kind"
GEN_AI_OPERATION = "gen_ai.operation.name"
TRACELOOP_KIND = "traceloop.span.kind"
AGENT_NAME_KEYS = ("gen_ai.agent.name", "agent.name")
TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name")
TOOL_DESCRIPTION_KEYS = ("gen_ai.tool.description", "tool.description")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
TOTAL_TOKEN_KEYS = ("llm.token_count.total", "llm.usage.total_tokens")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id")
EVALUATION_KEYS = ("gen_ai.evaluation.score.value", "gen_ai.evaluation.name")
ERROR_TYPE = "error.type"
ERROR_CODE_KEYS = ("http.response.status_code", "rpc.grpc.status_code")
REQUEST_KEYS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
}
INPUT_KEYS = (
    "input.value",
    "gen_ai.input.messages",
    "gen_ai.tool.call.arguments",
    "traceloop.entity.input",
)
OUTPUT_KEYS = (
    "output.value",
    "gen_ai.output.messages",
    "gen_ai.tool.call.result",
    "traceloop.entity.output",
)
EXCEPTION_KEYS = (
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "exception.escaped",
)
#: Span attributes stored as the step's input and output (not again in its metadata).
IO_KEYS: Final = frozenset(INPUT_KEYS + OUTPUT_KEYS)
#: Attributes cut at the inputs' and outputs' larger limit: those, and exception texts.
LONG_KEYS: Final = IO_KEYS | {"exception.message", "exception.stacktrace"}
#: Every attribute the mapping reads: kept whatever the attribute limit.
READ_KEYS: Final = (
    frozenset(
        (
            OI_KIND,
            GEN_AI_OPERATION,
            TRACELOOP_KIND,
            ERROR_TYPE,
            "gen_ai.response.finish_reasons",
            "gen_ai.response.id",
            *AGENT_NAME_KEYS,
            *TOOL_NAME_KEYS,
            *TOOL_DESCRIPTION_KEYS,
            *MODEL_KEYS,
            *PROVIDER_KEYS,
            *INPUT_TOKEN_KEYS,
            *OUTPUT_TOKEN_KEYS,
            *TOTAL_TOKEN_KEYS,
            *SESSION_KEYS,
            *EVALUATION_KEYS,
            *ERROR_CODE_KEYS,
            *REQUEST_KEYS,
            *EXCEPTION_KEYS,
        )
    )
    | IO_KEYS
)

_OPENINFERENCE: Final = {
    "LLM": "llm",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "EMBEDDING": "embedding",
}
_GEN_AI: Final = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
}
_TRACELOOP: Final = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
#: Error category of a failing span, by its type: a tool's or a model's failure comes from
#: outside the agent; an agent's or a chain's is the agent's own.
_CATEGORY: Final = {
    "tool": "external",
    "llm": "external",
    "retriever": "external",
    "embedding": "external",
    "agent": "agent",
    "chain": "agent",
}


@dataclass(slots=True)
class MappedSpan:
    """What one span becomes, as wire-format objects, in the order they must be validated:
    snapshots, errors, the recovery success, the LLM call, then the step (which references
    the others)."""

    index: int
    span_id: str
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    success: dict[str, Any] | None = None
    llm_call: dict[str, Any] | None = None
    step: dict[str, Any] = field(default_factory=dict)

    def objects(self) -> Iterable[tuple[EventKind, dict[str, Any]]]:
        for snapshot in self.snapshots:
            yield EventKind.SNAPSHOT, snapshot
        for error in self.errors:
            yield EventKind.ERROR, error
        if self.success is not None:
            yield EventKind.SUCCESS, self.success
        if self.llm_call is not None:
            yield EventKind.HOOK, self.llm_call
        yield EventKind.STEP, self.step


@dataclass(slots=True)
class MappedMessage:
    """The spans of one message: mapped, and the reasons of those that cannot be."""

    spans: list[MappedSpan] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def span_type(attributes: Mapping[str, Any]) -> str:
    """What a span is, from the first convention that says: OpenInference, GenAI,
    OpenLLMetry; a span with a requested model is a model call; else ``span``."""
    kind = attributes.get(OI_KIND)
    if isinstance(kind, str) and kind:
        return _OPENINFERENCE.get(kind.upper(), kind.lower()[:100])
    operation = attributes.get(GEN_AI_OPERATION)
    if isinstance(operation, str) and operation in _GEN_AI:
        return _GEN_AI[operation]
    kind = attributes.get(TRACELOOP_KIND)
    if isinstance(kind, str) and kind in _TRACELOOP:
        return _TRACELOOP[kind]
    if _first(attributes, MODEL_KEYS) is not None:
        return "llm"
    return "span"


def map_spans(
    spans: Sequence[Span], *, record_ms: int, state_attributes: Sequence[str] = ()
) -> MappedMessage:
    """Map the spans of one message (see the module doc). ``record_ms``: the Kafka record's
    timestamp, the bound of plausible span times."""
    out = MappedMessage()
    latest = min(_LATEST_NS, max(record_ms * 10**6, _EARLIEST_NS) + _FUTURE_SLACK_NS)
    valid: dict[tuple[bytes, bytes], Span] = {}
    rejected: set[tuple[bytes, bytes]] = set()
    for span in spans:
        problem = _problem(span, latest)
        if problem is not None:
            out.rejected.append(f"span #{span.index} ({_span_label(span)}): {problem}")
            rejected.add((span.trace_id, span.span_id))
        elif (span.trace_id, span.span_id) not in valid:  # a repeated span is the same span
            valid[(span.trace_id, span.span_id)] = span
    # A child of a span rejected here names no parent step: it would wait for a row that
    # will not come (the parent's ids stay in its metadata).
    context = _Context(valid, tuple(state_attributes), rejected - valid.keys())
    for span in valid.values():
        out.spans.append(context.map(span))
    return out


def _problem(span: Span, latest: int) -> str | None:
    """Why a span cannot become events, or None."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return (
            "no trace id"
            if not any(span.trace_id)
            else (f"the trace id is {len(span.trace_id)} bytes, not 16")
        )
    if len(span.span_id) != 8 or not any(span.span_id):
        return (
            "no span id"
            if not any(span.span_id)
            else (f"the span id is {len(span.span_id)} bytes, not 8")
        )
    if len(span.parent_span_id) not in (0, 8):
        return f"the parent span id is {len(span.parent_span_id)} bytes, not 8"
    for name, value in (("start", span.start_ns), ("end", span.end_ns)):
        if value == 0:
            return f"its {name} time is not set (0)"
        if value < _EARLIEST_NS:
            return f"its {name} time ({value} ns since the epoch) is before the year 2000"
        if value > latest:
            return (
                f"its {name} time ({value} ns since the epoch) is more than a day after its "
                "Kafka record was produced"
            )
    if span.end_ns < span.start_ns:
        return "it ends before it starts"
    return None


def _span_label(span: Span) -> str:
    return f"span id {hex_id(span.span_id)}" if any(span.span_id) else "no span id"


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _first(attributes: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:limit] if text else None


def _count(value: Any) -> int | None:
    """A token count: a non-negative int4 (also from a numeric string or a whole float)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= INT4_MAX:
        return value
    return None


#: JSON text nested deeper than this stays text: the step that carries it must validate
#: (a whole event nests at most 64 levels; the decoder bounds attributes at 6).
_MAX_JSON_TEXT_DEPTH = 24


def _json_value(value: Any) -> Any:
    """An input or output: JSON text becomes its value (unless it nests deeper than
    :data:`_MAX_JSON_TEXT_DEPTH`); anything else stays as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            parsed = parse_json(value)
        except ValueError:  # not JSON, or a number not even jsonb stores
            return value
        return value if nested_deeper_than(parsed, _MAX_JSON_TEXT_DEPTH, value) else parsed
    return value


def _state(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value[:1] == "{":
        try:
            parsed = parse_json(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {"value": value}


@dataclass(slots=True)
class _Retry:
    attempt: int = 1
    recovers: list[UUID] = field(default_factory=list)
    retried: bool = False


class _Context:
    """The spans of one message, for what a span's mapping needs from its neighbours: the
    agent it runs in, its place in a retry sequence."""

    def __init__(
        self,
        spans: dict[tuple[bytes, bytes], Span],
        state_keys: tuple[str, ...],
        rejected: set[tuple[bytes, bytes]],
    ) -> None:
        self._spans = spans
        self._rejected = rejected
        self._agents: dict[tuple[bytes, bytes], str] = {}
        self._state_keys = state_keys
        self._types = {key: span_type(span.attributes) for key, span in spans.items()}
        self._retries = self._find_retries()

    # -- neighbours ----------------------------------------------------------------------

    def _failing_error(self, span: Span) -> UUID:
        exceptions = sum(1 for e in span.events if e.name == "exception")
        if exceptions:
            return ids.derived("error", span.trace_id, span.span_id, exceptions - 1)
        return ids.derived("error", span.trace_id, span.span_id)

    def _find_retries(self) -> dict[tuple[bytes, bytes], _Retry]:
        """Attempts and recoveries among spans of the same kind and name under the same
        parent, in start order: after failures, the next span is a retry."""
        groups: dict[tuple[bytes, bytes, str, str], list[Span]] = defaultdict(list)
        for key, span in self._spans.items():
            if span.parent_span_id and any(span.parent_span_id):
                name = str(_first(span.attributes, TOOL_NAME_KEYS) or span.name)
                groups[(span.trace_id, span.parent_span_id, self._types[key], name)].append(span)
        retries: dict[tuple[bytes, bytes], _Retry] = {}
        for members in groups.values():
            if len(members) < 2:
                continue
            ordered = sorted(members, key=lambda s: (s.start_ns, s.span_id))
            failed: list[Span] = []
            for position, span in enumerate(ordered):
                retry = _Retry(attempt=1 + len(failed))
                if span.status_code == _ERROR_STATUS:
                    failed.append(span)
                    # Another attempt follows: the agent tried to recover from this one.
                    retry.retried = position < len(ordered) - 1
                else:
                    retry.recovers = [self._failing_error(f) for f in failed][-MAX_RECOVERS:]
                    failed = []
                retries[(span.trace_id, span.span_id)] = retry
        return retries

    def _lineage(self, span: Span) -> Iterable[Span]:
        """The span, its parent, ... as far as this message holds them."""
        current: Span | None = span
        for _ in range(64):  # a cycle of parents is a producer's bug, not a reason to hang
            if current is None:
                return
            yield current
            current = self._spans.get((current.trace_id, current.parent_span_id))

    def agent_of(self, span: Span) -> str:
        """The span's own agent name, else its nearest ancestor's in this message, else the
        service's name."""
        key = (span.trace_id, span.span_id)
        known = self._agents.get(key)
        if known is not None:
            return known
        agent: str | None = None
        for current in self._lineage(span):
            name = _first(current.attributes, AGENT_NAME_KEYS)
            if name is None and self._types.get((current.trace_id, current.span_id)) == "agent":
                name = current.name.removeprefix("invoke_agent ").strip() or None
            if name is not None:
                agent = str(name)[:255]
                break
        if agent is None:
            service = span.resource.get("service.name")
            agent = str(service)[:255] if service else "unknown_agent"
        self._agents[key] = agent
        return agent

    def session_of(self, span: Span) -> Any:
        """The span's session or conversation id, else its nearest ancestor's in this
        message (instrumentations set it on the agent's span, not on every call)."""
        for current in self._lineage(span):
            value = _first(current.attributes, SESSION_KEYS)
            if value is not None:
                return value
        return None

    # -- one span ------------------------------------------------------------------------

    def map(self, span: Span) -> MappedSpan:
        key = (span.trace_id, span.span_id)
        attributes = span.attributes
        kind = self._types[key]
        trace, span_hex = hex_id(span.trace_id), hex_id(span.span_id)
        correlation = ids.correlation_id(span.trace_id)
        agent = self.agent_of(span)
        operation = (span.name or kind)[:255]
        failed = span.status_code == _ERROR_STATUS
        started, ended = _time(span.start_ns), _time(span.end_ns)
        duration = min((span.end_ns - span.start_ns) // 10**6, INT4_MAX)
        step_number = (span.start_ns // 10**6) % _STEP_MODULO
        retry = self._retries.get(key, _Retry())
        remote_parent = span.parent_is_remote is True
        parent = span.parent_span_id if any(span.parent_span_id) else b""
        parent_rejected = (span.trace_id, parent) in self._rejected
        otel: dict[str, Any] = {"trace_id": trace, "span_id": span_hex}
        common: dict[str, Any] = {"correlation_id": correlation}
        session_value = self.session_of(span)
        if session_value is not None:
            common["session_id"] = ids.session_id(str(session_value))
        out = MappedSpan(span.index, span_hex)
        step_id = ids.step_id(span.trace_id, span.span_id)

        # Snapshots of the configured state attributes.
        for name in self._state_keys:
            if name not in attributes:
                continue
            out.snapshots.append(
                {
                    "id": ids.derived("snapshot", span.trace_id, span.span_id, name),
                    **common,
                    "snapshot_type": "error" if failed else "checkpoint",
                    "agent_name": agent,
                    "agent_state": _state(attributes[name]),
                    "execution_step": step_number,
                    "task_description": operation,
                    "captured_at": ended,
                    "metadata": {"otel": {**otel, "attribute": name}},
                }
            )
        snapshot_id = out.snapshots[0]["id"] if out.snapshots else None

        # Errors: one per exception event; the ERROR status is the last one, or its own.
        category = _CATEGORY.get(kind, "framework")
        error_code = _text(_first(attributes, ERROR_CODE_KEYS), 50)
        recovery: dict[str, Any] = (
            {"recovery_attempted": True, "recovery_strategy": "retry"} if retry.retried else {}
        )
        exceptions = [e for e in span.events if e.name == "exception"]
        for position, event in enumerate(exceptions):
            last = position == len(exceptions) - 1
            failing = failed and last
            occurred = event.time_ns if span.start_ns <= event.time_ns <= span.end_ns else None
            error_type = _text(event.attributes.get("exception.type"), 255)
            if failing and error_type is None:
                error_type = _text(attributes.get(ERROR_TYPE), 255)
            out.errors.append(
                {
                    "id": ids.derived("error", span.trace_id, span.span_id, position),
                    **common,
                    "error_type": error_type or "exception",
                    "error_category": category,
                    "error_severity": "high" if failing else "low",
                    "error_message": _text(event.attributes.get("exception.message"), 10**6) or "",
                    "error_stack_trace": _text(event.attributes.get("exception.stacktrace"), 10**6),
                    "error_code": error_code if failing else None,
                    "agent_name": agent,
                    "operation_name": operation,
                    "execution_step": step_number,
                    "state_snapshot_id": snapshot_id if failing else None,
                    **(recovery if failing else {}),
                    "occurred_at": _time(occurred) if occurred is not None else ended,
                    "metadata": {
                        "otel": {
                            **otel,
                            "event": position,
                            "escaped": event.attributes.get("exception.escaped"),
                        },
                    },
                }
            )
        if failed and not exceptions:
            out.errors.append(
                {
                    "id": ids.derived("error", span.trace_id, span.span_id),
                    **common,
                    "error_type": _text(attributes.get(ERROR_TYPE), 255) or "SpanError",
                    "error_category": category,
                    "error_severity": "high",
                    "error_message": span.status_message,
                    "error_code": error_code,
                    "agent_name": agent,
                    "operation_name": operation,
                    "execution_step": step_number,
                    "state_snapshot_id": snapshot_id,
                    **recovery,
                    "occurred_at": ended,
                    "metadata": {"otel": otel},
                }
            )
        error_id = self._failing_error(span) if failed else None

        # A retry that worked: the success that recovers the failed attempts before it.
        if retry.recovers:
            out.success = {
                "id": ids.derived("success", span.trace_id, span.span_id),
                **common,
                "success_type": "recovery_success",
                "operation_name": operation,
                "agent_name": agent,
                "execution_step": step_number,
                "state_snapshot_id": snapshot_id,
                "execution_time_ms": duration,
                "retry_count": len(retry.recovers),
                "recovers_error_ids": retry.recovers,
                "success_factors": {"recovery_strategy": "retry", "attempt": retry.attempt},
                "occurred_at": ended,
                "metadata": {"otel": otel},
            }

        # A model call: the LLM call debug_llm_call_summary reads.
        if kind == "llm":
            out.llm_call = self._llm_call(
                span,
                common=common,
                otel=otel,
                step_id=step_id,
                agent=agent,
                step_number=step_number,
                duration=duration,
                ended=ended,
            )

        # The step.
        step_otel: dict[str, Any] = {
            **otel,
            "parent_span_id": hex_id(parent) if parent else None,
            "name": span.name,
            "kind": _KINDS[span.kind] if 0 <= span.kind < len(_KINDS) else str(span.kind),
            "scope": span.scope,
            "resource": dict(span.resource),
            "status": {
                "code": _STATUS[span.status_code] if 0 <= span.status_code < 3 else "UNSET",
                "message": span.status_message or None,
            },
            "attributes": {
                k: v
                for k, v in attributes.items()
                if k not in IO_KEYS and k not in self._state_keys
            },
            "events": [
                {"name": e.name, "time_unix_nano": e.time_ns, "attributes": e.attributes}
                for e in span.events
                if e.name != "exception"
            ],
        }
        if remote_parent:
            step_otel["parent_is_remote"] = True
        if parent_rejected:
            step_otel["parent_rejected"] = True
        if retry.attempt > 1:
            step_otel["attempt"] = retry.attempt
        for name, value in (
            ("dropped_attributes", span.dropped_attributes),
            ("dropped_events", span.dropped_events),
            ("links", span.links),
        ):
            if value:
                step_otel[name] = value
        if session_value is not None:
            step_otel["session"] = str(session_value)[:255]
        out.step = {
            "id": step_id,
            **common,
            "step_number": step_number,
            "attempt": retry.attempt,
            "step_type": kind[:100] or "span",
            "agent_name": agent,
            "operation_name": operation,
            "step_description": _text(_first(attributes, TOOL_DESCRIPTION_KEYS), 10_000),
            "status": "failed" if failed else "completed",
            "post_state_snapshot_id": snapshot_id,
            "error_event_id": error_id,
            "success_event_id": out.success["id"] if out.success else None,
            "duration_ms": duration,
            "parent_step_id": (
                ids.step_id(span.trace_id, parent)
                if parent and not remote_parent and not parent_rejected
                else None
            ),
            "input_data": _json_value(_first(attributes, INPUT_KEYS)),
            "output_data": _json_value(_first(attributes, OUTPUT_KEYS)),
            "started_at": started,
            "completed_at": ended,
            "metadata": {"otel": step_otel},
        }
        return out

    def _llm_call(
        self,
        span: Span,
        *,
        common: dict[str, Any],
        otel: dict[str, Any],
        step_id: UUID,
        agent: str,
        step_number: int,
        duration: int,
        ended: datetime,
    ) -> dict[str, Any]:
        attributes = span.attributes
        model = _text(_first(attributes, MODEL_KEYS), 255)
        usage: dict[str, int] = {}
        prompt = _count(_first(attributes, INPUT_TOKEN_KEYS))
        completion = _count(_first(attributes, OUTPUT_TOKEN_KEYS))
        total = _count(_first(attributes, TOTAL_TOKEN_KEYS))
        if prompt is not None:
            usage["prompt_tokens"] = prompt
        if completion is not None:
            usage["completion_tokens"] = completion
        if total is None and prompt is not None and completion is not None:
            total = prompt + completion
        if total is not None:
            usage["total_tokens"] = total
        metrics: dict[str, Any] = {"latency_ms": duration}
        score = self._evaluation(span)
        if score is not None:
            metrics["quality_score"] = score
        payload: dict[str, Any] = {
            "model": model,
            "provider": _text(_first(attributes, PROVIDER_KEYS), 255),
            "operation": _text(attributes.get(GEN_AI_OPERATION), 255),
            "quality_metrics": metrics,
            "success_classification": (
                "failure" if span.status_code == _ERROR_STATUS else "success"
            ),
            "finish_reasons": attributes.get("gen_ai.response.finish_reasons"),
            "response_id": _text(attributes.get("gen_ai.response.id"), 255),
        }
        if usage:
            payload["usage"] = usage
        request = {
            short: attributes[name] for name, short in REQUEST_KEYS.items() if name in attributes
        }
        if request:
            payload["request"] = request
        return {
            "id": ids.derived("llm", span.trace_id, span.span_id),
            **common,
            "source": "PostToolUse",
            "resource_id": model or span.name[:255] or None,
            "payload": {k: v for k, v in payload.items() if v is not None},
            "metadata": {
                "agent_name": agent,
                "execution_step": step_number,
                "step_id": str(step_id),
                "otel": {**otel, "name": span.name},
            },
            "created_at": ended,
        }

    @staticmethod
    def _evaluation(span: Span) -> float | None:
        """A quality score in [0, 1]: the span's evaluation score, else its last
        ``gen_ai.evaluation.result`` event's."""
        candidates = [span.attributes.get("gen_ai.evaluation.score.value")]
        candidates += [
            e.attributes.get("gen_ai.evaluation.score.value")
            for e in span.events
            if e.name == "gen_ai.evaluation.result"
        ]
        for value in reversed(candidates):
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
                return float(value)
        return None
