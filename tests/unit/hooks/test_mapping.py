"""The mapping of Claude Code hook inputs to debug events (debug_sink.hooks.mapping)."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson

from debug_sink.hooks.ids import session_uuid, subagent_workflow
from debug_sink.hooks.mapping import MAX_RECOVERS, Mapped, map_hook, strategy
from debug_sink.hooks.state import fresh_state
from debug_sink.wire.events import DEFAULT_TOPICS, EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode
from tests import hook_payloads as p

SESSION = "5d3f1c2a-8b7e-4f60-9a1d-2c3b4a5e6f70"
T = 1_790_000_000.0
TOPIC_OF = {kind: topic for topic, kind in DEFAULT_TOPICS.items()}
CONFIG = ValidationConfig()


def run_session(inputs: list[dict[str, Any]], state: dict[str, Any] | None = None) -> list[Mapped]:
    state = {} if state is None else state
    return [map_hook(hook, state, T + n) for n, hook in enumerate(inputs)]


def records(outs: list[Mapped]) -> list[tuple[str, dict[str, Any]]]:
    return [r for out in outs for r in out.records]


def of_kind(outs: list[Mapped], kind: str) -> list[dict[str, Any]]:
    return [event for k, event in records(outs) if k == kind]


class TestEveryEvent:
    """The recorded session: every documented hook event maps to valid wire events."""

    def test_the_recording_covers_every_documented_event(self) -> None:
        assert p.event_names(p.session(SESSION)) == p.DOCUMENTED_EVENTS

    def test_every_event_is_accepted_by_the_sink(self) -> None:
        """Each produced event, sent as the spool would, passes the sink's own decoder."""
        for kind, event in records(run_session(p.session(SESSION))):
            topic = TOPIC_OF[EventKind(kind)]
            result = decode(topic, orjson.dumps(event), timestamp_ms=0, config=CONFIG)
            assert isinstance(result, Accepted), (kind, result)

    def test_one_hook_row_per_input_with_source_and_tool(self) -> None:
        inputs = p.session(SESSION)
        rows = of_kind(run_session(inputs), "hook")
        assert [r["source"] for r in rows] == [i["hook_event_name"] for i in inputs]
        for row, hook in zip(rows, inputs, strict=True):
            if hook["hook_event_name"] in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
                assert row["resource_id"] == hook["tool_name"]
            elif hook["hook_event_name"] != "PermissionRequest":
                assert "resource_id" not in row
        assert len({r["id"] for r in rows}) == len(rows)

    def test_one_session_is_one_workflow_and_a_subagent_another(self) -> None:
        inputs = p.session(SESSION)
        rows = of_kind(run_session(inputs), "hook")
        sub = subagent_workflow(SESSION, p.SUBAGENT_ID)
        for row, hook in zip(rows, inputs, strict=True):
            inside = "agent_id" in hook and hook["hook_event_name"] not in (
                "SubagentStart",
                "SubagentStop",
            )
            assert row["correlation_id"] == (sub if inside else SESSION)
            assert row["session_id"] == SESSION

    def test_large_tool_responses_are_cut_with_a_marker(self) -> None:
        rows = of_kind(run_session(p.session(SESSION)), "hook")
        read = next(r for r in rows if r["source"] == "PostToolUse")
        content = read["payload"]["tool_response"]["file"]["content"]
        assert content.endswith(f"…[cut by debug-sink: {p.LARGE_RESPONSE_CHARS} characters in all]")
        assert len(json.dumps(read["payload"])) < 48 * 1024
        assert read["payload"]["tool_response"]["file"]["totalLines"] == 19999


class TestFailureAndRecovery:
    """A failure is an error event; the tool's next success states that it recovered it."""

    def test_error_then_stated_recovery_after_a_read(self) -> None:
        outs = run_session(p.session(SESSION))
        errors = {e["error_type"]: e for e in of_kind(outs, "error")}
        edit = errors["Edit: old_string not found"]
        assert edit["error_category"] == "agent"
        assert edit["operation_name"] == "Edit"
        successes = {s["operation_name"]: s for s in of_kind(outs, "success")}
        assert successes["Edit"]["recovers_error_ids"] == [edit["id"]]
        assert successes["Edit"]["success_type"] == "recovery_success"
        assert successes["Edit"]["success_factors"]["recovery_strategy"] == "retry after Read"

    def test_changed_command_is_a_retry_with_changed_input(self) -> None:
        outs = run_session(p.session(SESSION))
        bash = next(e for e in of_kind(outs, "error") if e["error_type"] == "Bash: exit 1")
        assert bash["error_code"] == "1"
        success = next(s for s in of_kind(outs, "success") if s["operation_name"] == "Bash")
        assert success["recovers_error_ids"] == [bash["id"]]
        assert success["success_factors"]["recovery_strategy"] == "retry with changed input"

    def test_a_subagent_recovers_within_its_own_workflow(self) -> None:
        outs = run_session(p.session(SESSION))
        sub = subagent_workflow(SESSION, p.SUBAGENT_ID)
        grep_error = next(e for e in of_kind(outs, "error") if e["operation_name"] == "Grep")
        grep_ok = next(s for s in of_kind(outs, "success") if s["operation_name"] == "Grep")
        assert grep_error["correlation_id"] == grep_ok["correlation_id"] == sub
        assert grep_error["agent_name"] == grep_ok["agent_name"] == "Explore"
        assert grep_ok["recovers_error_ids"] == [grep_error["id"]]

    def test_an_interrupt_is_an_error_that_waits_for_nothing(self) -> None:
        state: dict[str, Any] = {}
        outs = run_session(p.session(SESSION), state)
        interrupt = next(
            e for e in of_kind(outs, "error") if e["error_type"].endswith("interrupted")
        )
        assert interrupt["error_category"] == "user"
        assert interrupt["error_severity"] == "low"
        assert interrupt["resolved_at"] == interrupt["occurred_at"]  # nothing to recover
        assert all(not a.get("pending") for a in state["agents"].values())
        assert outs[-1].lookup is None

    def test_only_the_next_success_of_the_same_tool_recovers(self) -> None:
        state: dict[str, Any] = {}
        outs = run_session(
            [
                p.failure(SESSION, "t1"),
                p.success(SESSION, "t2", tool="Bash"),
                p.failure(SESSION, "t3"),
                p.success(SESSION, "t4"),
                p.success(SESSION, "t5"),
            ],
            state,
        )
        errors = of_kind(outs, "error")
        (success,) = of_kind(outs, "success")
        assert success["recovers_error_ids"] == [errors[0]["id"], errors[1]["id"]]
        assert success["retry_count"] == 2
        assert success["success_factors"]["recovery_strategy"] == "retry after Bash"

    def test_waiting_errors_are_bounded(self) -> None:
        state: dict[str, Any] = {}
        inputs = [p.failure(SESSION, f"t{n}") for n in range(MAX_RECOVERS + 5)]
        outs = run_session([*inputs, p.success(SESSION, "ok")], state)
        (success,) = of_kind(outs, "success")
        assert len(success["recovers_error_ids"]) == MAX_RECOVERS
        assert success["recovers_error_ids"][-1] == of_kind(outs, "error")[-1]["id"]
        assert state["counts"]["errors_no_longer_waiting"] == 5

    def test_a_failure_asks_for_its_known_fixes(self) -> None:
        (out,) = run_session([p.failure(SESSION, "t1")])
        assert out.lookup == ("Edit: old_string not found", "Edit")


class TestStory:
    """Prompts, stops, subagents and the session's start and end become steps and snapshots."""

    def test_a_turn_is_a_step_started_by_the_prompt_and_completed_by_stop(self) -> None:
        steps = of_kind(run_session(p.session(SESSION)), "step")
        turns = [s for s in steps if s["step_type"] == "turn"]
        first = [s for s in turns if s["step_number"] == 1]
        assert [s["status"] for s in first] == ["started", "completed"]
        assert first[0]["id"] == first[1]["id"]
        assert first[0]["step_description"].startswith("turn 1: Fix the cart total")
        assert first[1]["output_data"] == {
            "last_assistant_message": "The cart total now sums the prices; the test passes."
        }

    def test_a_subagent_is_a_step_and_a_handover_in_both_workflows(self) -> None:
        outs = run_session(p.session(SESSION))
        sub = subagent_workflow(SESSION, p.SUBAGENT_ID)
        steps = [s for s in of_kind(outs, "step") if s["step_type"] == "subagent"]
        assert [s["status"] for s in steps] == ["started", "completed"]
        assert steps[0]["operation_name"] == "Explore"
        assert steps[0]["correlation_id"] == SESSION
        assert steps[0]["parent_step_id"] == next(
            s["id"] for s in of_kind(outs, "step") if s["step_type"] == "turn"
        )
        handovers = of_kind(outs, "transformation")
        assert {h["correlation_id"] for h in handovers} == {SESSION, sub}
        assert all(h["target_agent"] == "Explore" for h in handovers)

    def test_errors_and_rows_carry_the_turns_step(self) -> None:
        outs = run_session(p.session(SESSION))
        edit = next(e for e in of_kind(outs, "error") if e["operation_name"] == "Edit")
        assert edit["execution_step"] == 1
        assert edit["metadata"]["execution_step"] == 1

    def test_session_start_and_end_are_checkpoints(self) -> None:
        snaps = of_kind(run_session(p.session(SESSION)), "snapshot")
        assert [s["agent_state"]["hook_event_name"] for s in snaps] == [
            "SessionStart",
            "SessionEnd",
        ]
        end = snaps[1]["agent_state"]
        assert end["reason"] == "prompt_input_exit"
        assert end["turns"] == 2
        assert end["tool_failures"] == 3 + 1  # Edit, Bash, Grep, the interrupt
        assert end["recovered"] == 3
        assert end["unrecovered_by_tool"] == {}

    def test_a_prompt_while_a_turn_is_open_fails_the_open_turn(self) -> None:
        prompt = {"session_id": SESSION, "hook_event_name": "UserPromptSubmit", "prompt": "a"}
        outs = run_session([prompt, {**prompt, "prompt": "b"}])
        steps = of_kind(outs, "step")
        assert [(s["step_number"], s["status"]) for s in steps] == [
            (1, "started"),
            (1, "failed"),
            (2, "started"),
        ]
        assert steps[1]["output_data"] == {"ended": "interrupted: a new prompt came before Stop"}

    def test_latency_comes_from_the_pre_tool_use(self) -> None:
        outs = run_session(p.session(SESSION)[2:4])
        row = of_kind(outs, "hook")[1]
        assert row["payload"]["quality_metrics"] == {"latency_ms": 1000}
        assert row["payload"]["success_classification"] == "success"


class TestIds:
    """Ids are deterministic: the same inputs in the same state give the same events."""

    def test_same_inputs_same_ids(self) -> None:
        first = [e["id"] for _, e in records(run_session(p.session(SESSION)))]
        second = [e["id"] for _, e in records(run_session(p.session(SESSION)))]
        assert first == second
        assert len(set(first)) == len(first) - 3  # 3 steps: started and completed share an id

    def test_a_lost_state_does_not_give_the_first_ids_again(self) -> None:
        """A session resumed after its state expired (or broke) counts from 1 again: under
        the new state's nonce its prompts, turns and snapshots get ids of their own (the
        sink would store the first ones' ids once, dropping the new events); a tool event's
        id is its tool call's, a subagent's its agent id's, whatever the state."""
        inputs = p.session(SESSION)
        first = records(run_session(inputs, fresh_state()))
        again = records(run_session(inputs, fresh_state()))
        by_tool = {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest"}

        def counted(recs: list[tuple[str, dict[str, Any]]]) -> set[str]:
            return {
                e["id"]
                for kind, e in recs
                if kind == "snapshot"
                or (kind == "step" and e["step_type"] == "turn")
                or (kind == "hook" and e["source"] not in by_tool)
            }

        def of_tools(recs: list[tuple[str, dict[str, Any]]]) -> set[str]:
            return {
                e["id"]
                for kind, e in recs
                if kind == "hook" and e["source"] in by_tool and e["payload"].get("tool_use_id")
            }

        assert counted(first)
        assert not counted(first) & counted(again)
        assert of_tools(first) == of_tools(again)

    def test_the_same_state_gives_the_same_ids(self) -> None:
        inputs = p.session(SESSION)
        state = fresh_state()
        one = records(run_session(inputs, copy.deepcopy(state)))
        two = records(run_session(inputs, copy.deepcopy(state)))
        assert [e["id"] for _, e in one] == [e["id"] for _, e in two]

    def test_a_session_id_that_is_no_uuid_still_makes_a_workflow(self) -> None:
        (out,) = run_session([{"session_id": "abc123", "hook_event_name": "Notification"}])
        (row,) = of_kind([out], "hook")
        assert row["correlation_id"] == session_uuid("abc123")
        assert row["metadata"]["claude_session_id"] == "abc123"

    def test_without_state_only_the_row_and_the_error(self) -> None:
        prompt = {"session_id": SESSION, "hook_event_name": "UserPromptSubmit", "prompt": "a"}
        out = map_hook(prompt, {}, T, stateless_key="d1")
        assert [k for k, _ in out.records] == ["hook"]
        failure = map_hook(p.failure(SESSION, "t1"), {}, T, stateless_key="d2")
        assert [k for k, _ in failure.records] == ["hook", "error"]

    def test_mapping_does_not_change_its_input(self) -> None:
        inputs = p.session(SESSION)
        before = copy.deepcopy(inputs)
        run_session(inputs)
        assert inputs == before


class TestStrategy:
    """The recovery strategy's name says what happened between failure and success."""

    def test_names(self) -> None:
        assert strategy(["Read"], False) == "retry after Read"
        assert strategy(["Read", "Grep", "Read"], True) == "retry after Grep, Read"
        assert strategy(["E", "D", "C", "B", "A"], True) == "retry after A, B, C +2"
        assert strategy([], True) == "retry unchanged"
        assert strategy([], False) == "retry with changed input"
