"""OTLP messages -> validated events: the mapping of an instrumented agent loop, the ids that
make replays no-ops, and the spans that cannot be mapped (no services)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from debug_sink.otlp import ids
from debug_sink.otlp.decode import ErrorClass
from debug_sink.otlp.records import OtlpConfig, expand
from debug_sink.wire.events import EventKind
from debug_sink.wire.validation import Accepted, Rejected, ValidationConfig
from tests import otlp_support as o

CONFIG = OtlpConfig()


@pytest.fixture(scope="module")
def recorder() -> o.Recorder:
    recorder = o.Recorder()
    o.agent_loop(recorder)
    return recorder


def expanded(value: bytes, config: OtlpConfig = CONFIG) -> list[Accepted | Rejected]:
    return expand(value, timestamp_ms=o.NOW_MS * 2, config=config)


def events(value: bytes, config: OtlpConfig = CONFIG) -> dict[EventKind, list[Any]]:
    out: dict[EventKind, list[Any]] = {kind: [] for kind in EventKind}
    for result in expanded(value, config):
        assert isinstance(result, Accepted), result
        out[result.kind].append(result.event)
    return out


def step_of(recorder: o.Recorder, name: str, index: int = 0) -> uuid.UUID:
    span = recorder.named(name)[index]
    return ids.step_id(
        span.context.trace_id.to_bytes(16, "big"), span.context.span_id.to_bytes(8, "big")
    )


class TestAgentLoop:
    """The agent loop of tests.otlp_support, in one message: every span a step in the trace's
    tree, model calls as LLM calls, the failed tool call as an error that its retry recovers."""

    def test_the_trace_is_the_workflow(self, recorder: o.Recorder) -> None:
        got = events(o.proto(recorder.spans))
        trace_id = recorder.spans[0].context.trace_id
        everything = [e for kind in EventKind for e in got[kind]]
        assert {e.correlation_id for e in everything} == {uuid.UUID(int=trace_id)}
        session = ids.session_id("conv-42")
        assert {s.session_id for s in got[EventKind.STEP]} == {session}

    def test_every_span_is_a_step_in_the_tree(self, recorder: o.Recorder) -> None:
        steps = {s.id: s for s in events(o.json(recorder.spans))[EventKind.STEP]}
        assert len(steps) == len(recorder.spans)
        planner = steps[step_of(recorder, "invoke_agent planner")]
        booker = steps[step_of(recorder, "invoke_agent booker")]
        book = steps[step_of(recorder, "execute_tool book_flight")]
        assert planner.parent_step_id is None
        assert booker.parent_step_id == planner.id
        assert book.parent_step_id == booker.id
        assert (book.agent_name, booker.agent_name, planner.agent_name) == (
            "booker",
            "booker",
            "planner",
        )
        types = sorted(s.step_type for s in steps.values())
        assert types == ["agent"] * 2 + ["llm"] * 4 + ["tool"] * 3
        span = recorder.named("execute_tool book_flight")[0]
        # Exact, in integers: the span's nanoseconds truncated to the column's microseconds
        # (a float comparison is off by one microsecond for some clock readings).
        since_epoch = book.started_at - datetime(1970, 1, 1, tzinfo=UTC)
        assert since_epoch // timedelta(microseconds=1) == span.start_time // 1000
        assert book.duration_ms == (span.end_time - span.start_time) // 10**6
        assert book.input_data == {"from": "OSL", "to": "LIS"}
        assert book.output_data == {"booking": "X7Q2"}
        # Step numbers grow with the spans' start: the timeline's order is the clock's.
        ordered = sorted(steps.values(), key=lambda s: s.started_at)
        numbers = [s.step_number for s in ordered]
        assert numbers == sorted(numbers)

    def test_the_failed_tool_call_is_an_error_its_retry_recovers(
        self, recorder: o.Recorder
    ) -> None:
        got = events(o.proto(recorder.spans))
        (error,) = got[EventKind.ERROR]
        (success,) = got[EventKind.SUCCESS]
        steps = {s.id: s for s in got[EventKind.STEP]}
        failed = steps[step_of(recorder, "execute_tool search_flights", 0)]
        retried = steps[step_of(recorder, "execute_tool search_flights", 1)]
        assert (failed.status, failed.attempt, failed.error_event_id) == ("failed", 1, error.id)
        assert (retried.status, retried.attempt) == ("completed", 2)
        assert retried.success_event_id == success.id
        assert error.error_type == "TimeoutError"
        assert error.error_message == "flight API timed out after 30 s"
        assert "TimeoutError" in (error.error_stack_trace or "")
        assert (error.agent_name, error.operation_name) == ("planner", failed.operation_name)
        assert (error.recovery_attempted, error.recovery_strategy) == (True, "retry")
        assert success.recovers_error_ids == [error.id]
        assert (success.success_type, success.retry_count) == ("recovery_success", 1)
        # The model calls around it are not retries of each other.
        assert {s.attempt for s in steps.values() if s.step_type == "llm"} == {1}

    def test_model_calls_are_llm_calls(self, recorder: o.Recorder) -> None:
        calls = events(o.proto(recorder.spans))[EventKind.HOOK]
        assert len(calls) == 4
        first = min(calls, key=lambda c: c.created_at)
        assert first.source == "PostToolUse"
        assert first.resource_id == "gpt-4o"
        assert first.payload["usage"] == {
            "prompt_tokens": 120,
            "completion_tokens": 18,
            "total_tokens": 138,
        }
        assert first.payload["finish_reasons"] == ["tool_calls"]
        assert first.payload["success_classification"] == "success"
        assert first.payload["quality_metrics"]["latency_ms"] >= 0
        assert first.metadata["agent_name"] == "planner"
        assert first.metadata["correlation_id"] == str(first.correlation_id)

    def test_state_becomes_a_snapshot_redacted(self, recorder: o.Recorder) -> None:
        got = events(o.proto(recorder.spans))
        (snapshot,) = got[EventKind.SNAPSHOT]
        assert snapshot.agent_state == {
            "cart": ["TP1234"],
            "traveller": "Ada",
            "api_key": "[REDACTED]",
        }
        assert snapshot.agent_name == "booker"
        booker = next(
            s for s in got[EventKind.STEP] if s.id == step_of(recorder, "invoke_agent booker")
        )
        assert booker.post_state_snapshot_id == snapshot.id
        assert "agent.state" not in booker.metadata["otel"]["attributes"]

    def test_no_secret_survives_anywhere(self, recorder: o.Recorder) -> None:
        leaky = o.Recorder()
        with leaky.tracer.start_as_current_span(
            "execute_tool fetch",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "http.request.header.authorization": "Bearer " + o.LEAKED_KEY,
                "note": "the key is " + o.LEAKED_KEY,
            },
        ) as span:
            span.add_event("log", {"message": "retrying with " + o.LEAKED_KEY})
        for value in (o.proto(recorder.spans), o.json(leaky.spans)):
            for result in expanded(value):
                assert isinstance(result, Accepted)
                assert (
                    o.LEAKED_KEY not in orjson.dumps(result.event.model_dump(mode="json")).decode()
                )

    @pytest.mark.parametrize(
        "text",
        ["auth failed with Bearer\tZm9vYmFyYmF6cXV4NTU1", "login failed: password=pw-6t7y8u9i"],
        ids=["tab-before-the-token", "pair-after-a-label"],
    )
    def test_secrets_in_shapes_json_escapes_or_labels_hide(self, text: str) -> None:
        """A span's text is validated as orjson writes it (a tab is ``\\t`` there), and a
        pair after a label is a pair: neither hides the secret."""
        secret = text.rsplit("=", 1)[-1].rsplit("\t", 1)[-1]
        status = Status(code=Status.STATUS_CODE_ERROR, message=text)
        span = o.raw_span(1, attributes={"note": text}, status=status)
        results = expanded(o.raw_message(span))
        assert results
        assert all(isinstance(r, Accepted) for r in results)
        dumped = orjson.dumps([r.event.model_dump(mode="json") for r in results]).decode()
        assert secret not in dumped
        assert "[REDACTED]" in dumped


class TestReplaySafeIds:
    """Ids come from the trace and span ids: the same spans give the same events, however
    they are grouped into messages."""

    def test_same_message_same_events(self, recorder: o.Recorder) -> None:
        first = [r.event for r in expanded(o.proto(recorder.spans)) if isinstance(r, Accepted)]
        again = [r.event for r in expanded(o.json(recorder.spans)) if isinstance(r, Accepted)]
        assert first == again

    def test_split_into_two_messages_same_ids(self, recorder: o.Recorder) -> None:
        whole = {
            (r.kind, r.event.id)
            for r in expanded(o.proto(recorder.spans))
            if isinstance(r, Accepted)
        }
        spans = recorder.spans
        failed = spans.index(recorder.named("execute_tool search_flights")[0])
        halves = (o.proto(spans[: failed + 1]), o.proto(spans[failed + 1 :]))
        split = {
            (r.kind, r.event.id)
            for value in halves
            for r in expanded(value)
            if isinstance(r, Accepted)
        }
        # Split apart, the retry is no longer visible as one: no recovery success; the rest
        # is the same events.
        assert whole - split == {
            (EventKind.SUCCESS, r.event.id)
            for r in expanded(o.proto(spans))
            if isinstance(r, Accepted) and r.kind is EventKind.SUCCESS
        }
        assert split <= whole


class TestHostileSpans:
    """A span that cannot be mapped is named in the message's one rejection; its neighbours
    are events."""

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"trace_id": b""}, "no trace id"),
            ({"trace_id": bytes(16)}, "no trace id"),
            ({"trace_id": b"\x01" * 8}, "the trace id is 8 bytes, not 16"),
            ({"span_id": bytes(8)}, "no span id"),
            ({"parent_span_id": b"\x01\x02"}, "the parent span id is 2 bytes, not 8"),
            ({"start_time_unix_nano": 0}, "its start time is not set (0)"),
            ({"end_time_unix_nano": 0}, "its end time is not set (0)"),
            ({"start_time_unix_nano": 10**9}, "before the year 2000"),
            ({"end_time_unix_nano": 2**63}, "more than a day after its Kafka record"),
            ({"end_time_unix_nano": 2**64 - 1}, "more than a day after its Kafka record"),
            ({"end_time_unix_nano": o.NOW_NS - 10 * 10**9}, "it ends before it starts"),
        ],
    )
    def test_rejected_span_neighbours_land(self, fields: dict[str, Any], reason: str) -> None:
        value = o.raw_message(o.raw_span(1), o.raw_span(2, **fields), o.raw_span(3))
        results = expand(value, timestamp_ms=o.NOW_MS, config=CONFIG)
        *accepted, rejected = results
        assert isinstance(rejected, Rejected)
        assert rejected.error_class == ErrorClass.SPAN
        assert "span #1" in rejected.reason
        assert reason in rejected.reason
        steps = [r.event for r in accepted if isinstance(r, Accepted)]
        assert [s.operation_name for s in steps] == ["step 1", "step 3"]

    def test_a_state_too_large_drops_the_snapshot_not_the_step(self) -> None:
        state = orjson.dumps({"blob": "x" * 5000}).decode()
        value = o.raw_message(o.raw_span(1, attributes={"agent.state": state}))
        config = OtlpConfig(ValidationConfig(max_state_bytes=1024))
        *accepted, rejected = expand(value, timestamp_ms=o.NOW_MS, config=config)
        assert isinstance(rejected, Rejected)
        assert "snapshot event" in rejected.reason
        (step,) = [r.event for r in accepted if isinstance(r, Accepted)]
        assert step.post_state_snapshot_id is None

    def test_every_span_rejected_still_one_item(self) -> None:
        value = o.raw_message(o.raw_span(1, trace_id=b""), o.raw_span(2, trace_id=b""))
        (rejected,) = expand(value, timestamp_ms=o.NOW_MS, config=CONFIG)
        assert isinstance(rejected, Rejected)
        assert rejected.reason.startswith("2 problem(s) in 2 span(s)")

    def test_ten_thousand_attributes_map_to_a_bounded_step(self) -> None:
        attributes = {f"attr.{i}": "v" * 100 for i in range(10_000)}
        (result,) = expand(
            o.raw_message(o.raw_span(1, attributes=attributes)),
            timestamp_ms=o.NOW_MS,
            config=CONFIG,
        )
        assert isinstance(result, Accepted)
        otel = result.event.metadata["otel"]
        assert len(otel["attributes"]) == 128
        assert otel["dropped_attributes"] == 10_000 - 128
        assert len(orjson.dumps(result.event.model_dump(mode="json"))) < 64_000

    def test_a_remote_parent_is_no_parent_step(self) -> None:
        value = o.raw_message(o.raw_span(1, parent_span_id=b"\x09" * 8, flags=0x300))
        (result,) = expand(value, timestamp_ms=o.NOW_MS, config=CONFIG)
        assert isinstance(result, Accepted)
        assert result.event.parent_step_id is None
        assert result.event.metadata["otel"]["parent_is_remote"] is True
        local = o.raw_message(o.raw_span(1, parent_span_id=b"\x09" * 8, flags=0x100))
        (result,) = expand(local, timestamp_ms=o.NOW_MS, config=CONFIG)
        assert isinstance(result, Accepted)
        assert result.event.parent_step_id == ids.step_id(bytes(range(1, 17)), b"\x09" * 8)


class TestNestedInput:
    """JSON text in ``input.value`` (OpenInference) is parsed, within a depth."""

    def test_json_nested_too_deep_stays_text_and_the_step_lands(self) -> None:
        deep = "[" * 100 + "]" * 100
        span = o.raw_span(1, attributes={"input.value": deep})
        got = events(o.raw_message(span))
        (step,) = got[EventKind.STEP]
        assert step.input_data == deep

    def test_a_child_of_a_step_validation_refuses_names_no_parent(self) -> None:
        """Validation (here: a depth limit the parent's input passes the mapper with and
        fails the sink's) refuses the parent's step: the child names no parent step, so it
        is not parked for one that never comes."""
        parent = o.raw_span(1, attributes={"input.value": '{"a": {"b": {"c": {"d": 1}}}}'})
        child = o.raw_span(2, parent_span_id=(1).to_bytes(8, "big"))
        config = OtlpConfig(validation=ValidationConfig(max_depth=4))
        results = expanded(o.raw_message(parent, child), config)
        steps = {r.event.id: r.event for r in results if isinstance(r, Accepted)}
        trace = o.raw_span(1).trace_id
        assert ids.step_id(trace, (1).to_bytes(8, "big")) not in steps
        got = steps[ids.step_id(trace, (2).to_bytes(8, "big"))]
        assert got.parent_step_id is None
        assert got.metadata["otel"]["parent_rejected"] is True


class TestNeverRaises:
    """Whatever the bytes, a message gives at least one item and never an exception."""

    @given(st.binary(max_size=256))
    def test_any_bytes(self, raw: bytes) -> None:
        results = expand(raw, timestamp_ms=o.NOW_MS, config=CONFIG)
        assert results
        assert all(isinstance(r, Accepted | Rejected) for r in results)

    @given(st.data())
    def test_mutated_real_messages(self, data: st.DataObject) -> None:
        """A real message with bytes flipped, cut or inserted (protobuf), or a JSON message
        with values replaced."""
        recorder = _RECORDER
        value = bytearray(
            data.draw(st.sampled_from([o.proto(recorder.spans), o.json(recorder.spans)]))
        )
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(value) - 1))
            action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip":
                value[at] = data.draw(st.integers(0, 255))
            elif action == "cut":
                del value[at : at + data.draw(st.integers(1, 16))]
            else:
                value[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            if not value:
                break
        results = expand(bytes(value), timestamp_ms=o.NOW_MS * 2, config=CONFIG)
        assert results
        assert all(isinstance(r, Accepted | Rejected) for r in results)
        assert sum(isinstance(r, Rejected) for r in results) <= 1
        assert isinstance(results[-1], Rejected) or all(isinstance(r, Accepted) for r in results)


_RECORDER = o.Recorder()
o.agent_loop(_RECORDER)


class TestIds:
    """The ids are UUID v5 in the package's namespace, whatever the fast path computes."""

    def test_derived_is_uuid5(self) -> None:
        for what, index in (("step", None), ("error", 3), ("snapshot", "agent.state")):
            name = f"{what}:{'ab' * 16}:{'cd' * 8}" + ("" if index is None else f":{index}")
            expected = uuid.uuid5(ids.NAMESPACE, name)
            got = ids.derived(what, bytes.fromhex("ab" * 16), bytes.fromhex("cd" * 8), index)
            assert got == expected
            assert got.version == 5
        assert ids.session_id("conv-42") == uuid.uuid5(ids.NAMESPACE, "session:conv-42")
        same = "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21"
        assert ids.session_id(same) == uuid.UUID(same)


class TestRejectedParent:
    """A child of a span rejected in the same message names no parent step (it would wait for
    a row that never comes); the parent's id stays in its metadata."""

    def test_child_of_a_rejected_span(self) -> None:
        parent = o.raw_span(1, start_time_unix_nano=0)
        child = o.raw_span(2, parent_span_id=(1).to_bytes(8, "big"))
        *accepted, rejected = expand(
            o.raw_message(parent, child), timestamp_ms=o.NOW_MS, config=CONFIG
        )
        assert isinstance(rejected, Rejected)
        (step,) = [r.event for r in accepted if isinstance(r, Accepted)]
        assert step.parent_step_id is None
        assert step.metadata["otel"]["parent_rejected"] is True
        assert step.metadata["otel"]["parent_span_id"] == (1).to_bytes(8, "big").hex()


class TestOtherConventions:
    """OpenInference and OpenLLMetry spans map like the GenAI conventions'; an unknown span
    is still a step."""

    def test_openinference(self) -> None:
        recorder = o.Recorder()
        tracer = recorder.tracer
        with tracer.start_as_current_span(
            "AgentExecutor",
            attributes={
                "openinference.span.kind": "AGENT",
                "session.id": "s-1",
                "input.value": '{"question": "weather?"}',
            },
        ):
            with tracer.start_as_current_span(
                "ChatOpenAI",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.token_count.prompt": 50,
                    "llm.token_count.completion": 7,
                    "llm.token_count.total": 57,
                },
            ) as llm:
                llm.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.score.value": 0.75})
            with tracer.start_as_current_span(
                "get_weather",
                attributes={"openinference.span.kind": "TOOL", "tool.name": "get_weather"},
            ):
                pass
            with tracer.start_as_current_span("http GET", attributes={"http.method": "GET"}):
                pass
        got = events(o.json(recorder.spans))
        types = {s.operation_name: s.step_type for s in got[EventKind.STEP]}
        assert types == {
            "AgentExecutor": "agent",
            "ChatOpenAI": "llm",
            "get_weather": "tool",
            "http GET": "span",
        }
        (call,) = got[EventKind.HOOK]
        assert call.resource_id == "gpt-4o-mini"
        assert call.payload["usage"] == {
            "prompt_tokens": 50,
            "completion_tokens": 7,
            "total_tokens": 57,
        }
        assert call.payload["quality_metrics"]["quality_score"] == 0.75
        agent = next(s for s in got[EventKind.STEP] if s.step_type == "agent")
        assert agent.input_data == {"question": "weather?"}
        assert {s.session_id for s in got[EventKind.STEP]} == {ids.session_id("s-1")}
        assert {s.agent_name for s in got[EventKind.STEP]} == {"AgentExecutor"}

    def test_openllmetry(self) -> None:
        recorder = o.Recorder()
        with (
            recorder.tracer.start_as_current_span(
                "plan.workflow", attributes={"traceloop.span.kind": "workflow"}
            ),
            recorder.tracer.start_as_current_span(
                "search.tool",
                attributes={"traceloop.span.kind": "tool", "traceloop.entity.output": "3 results"},
            ),
        ):
            pass
        steps = events(o.proto(recorder.spans))[EventKind.STEP]
        assert sorted((s.step_type, s.output_data) for s in steps) == [
            ("chain", None),
            ("tool", "3 results"),
        ]
