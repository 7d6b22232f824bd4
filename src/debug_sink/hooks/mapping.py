"""From one Claude Code hook input to the debug events that tell its story.

Owns :func:`map_hook`: the hook's JSON (and the session's state, which it updates) in, the
wire events out. Pure: no I/O; the clock is an argument.

What each hook event becomes (every event also becomes a ``hook_events`` row: ``source`` =
the hook event's name, ``resource_id`` = the tool's name where there is one, ``payload`` = the
hook's fields, large values cut by :func:`~debug_sink.hooks.truncate.bounded`):

- ``PreToolUse`` -- the row; its time is kept to give the tool call's duration.
- ``PostToolUse`` -- the row, with ``success_classification: "success"`` and
  ``quality_metrics.latency_ms`` (from the PreToolUse) that ``debug_llm_call_summary`` and
  ``show`` read. When the same tool failed earlier and nothing recovered it yet, a
  ``recovery_success`` success event that **states** it recovers those errors
  (``recovers_error_ids``), with the strategy in ``success_factors.recovery_strategy``
  (:func:`strategy`).
- ``PostToolUseFailure`` -- the row and an error event (type from
  :func:`~debug_sink.hooks.classify.classify`); the error waits for the tool's next success
  (an interrupt does not: the user stopped it, nothing is to recover -- it is resolved at
  once, ``resolved_at`` = when it happened, so that it leaves no workflow "unrecovered").
- ``UserPromptSubmit`` -- a step (``turn``, operation ``prompt``) starts; ``Stop`` completes
  it. A new prompt while a turn is open fails the open one (interrupted: Claude Code sends
  no Stop then).
- ``SubagentStart`` / ``SubagentStop`` -- in the session's workflow a step (``subagent``,
  operation = the agent type) starts / completes, and a hand-over to the subagent is recorded
  in both workflows.
- ``SessionStart`` / ``SessionEnd`` -- a checkpoint snapshot: how the session started; how
  it ended, with its counts (turns, tool calls, failures, recoveries, unrecovered errors by
  tool). An open turn at the end fails.
- anything else (``Notification``, ``PreCompact``, ``PermissionRequest``, events added later)
  -- the row.

Scope: events carrying an ``agent_id`` happen inside a subagent and belong to the subagent's
own workflow (:func:`~debug_sink.hooks.ids.subagent_workflow`), ``SubagentStart`` and
``SubagentStop`` excepted (they are the session's view of the subagent). Errors wait for a
recovery per workflow and tool.

Ids are deterministic (:mod:`debug_sink.hooks.ids`): a tool event's from its ``tool_use_id``,
any other (and a turn's step) from a per-session count of that hook event and the state's
``nonce`` (drawn when the state was created: a session whose state expired or broke counts
from 1 again under a new nonce, so its new events never take its first ones' ids -- the sink
stores an id once). The caller recognises a hook run again with the same input
(:func:`input_digest` equal to the state's ``last``) and publishes nothing new then.
"""

from __future__ import annotations

import json
import time

from debug_sink.hooks.classify import classify
from debug_sink.hooks.ids import event_id, session_uuid, sha1_hex, subagent_workflow
from debug_sink.hooks.truncate import bounded, cut_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = [
    "AGENT_NAME",
    "MAX_RECOVERS",
    "Mapped",
    "input_digest",
    "map_hook",
    "strategy",
]

#: agent_name of the session's main thread (unless it runs as an ``--agent``).
AGENT_NAME: Final = "claude-code"
#: At most this many errors wait per tool (the wire format's limit of recovers_error_ids).
MAX_RECOVERS: Final = 32
_TEXT_CHARS: Final = 8192
_DESCRIPTION_CHARS: Final = 2000
_MAX_PRE: Final = 256
_MAX_TOOLS_BETWEEN: Final = 3
_MAX_TOOLS_TRACKED: Final = 8
_TOOL_EVENTS: Final = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest"}
)


class Mapped:
    """The events of one hook invocation, and the known-fixes lookup it asks for."""

    __slots__ = ("lookup", "records")

    def __init__(self) -> None:
        #: ``(kind, event)``: kind is an EventKind value, event the wire JSON.
        self.records: list[tuple[str, dict[str, Any]]] = []
        #: ``(error_type, tool)`` of a failure whose known fixes the agent should see.
        self.lookup: tuple[str, str] | None = None


def input_digest(raw: bytes) -> str:
    """What identifies one hook input (a re-run sends the same bytes)."""
    return sha1_hex(raw)


def map_hook(
    hook: dict[str, Any], state: dict[str, Any], now: float, *, stateless_key: str | None = None
) -> Mapped:
    """The events of ``hook`` (Claude Code's input), updating the session's ``state``.

    ``state`` is the session's JSON state (:class:`~debug_sink.hooks.state.SessionStore`);
    ``now`` is the time in seconds since the epoch. Without the state (``{}``: another
    process held it too long), pass ``stateless_key`` (e.g. the input's digest): events
    without a tool call id are then told apart by it instead of by the session's counts,
    and only the hook row (and a failure's error) is made -- steps and snapshots need the
    session's numbering, a recovery its waiting errors.
    """
    return _Invocation(hook, state, now, stateless_key).run()


def strategy(tools_between: list[str], same_input: bool) -> str:
    """The recovery strategy of a success after failures of the same tool:

    - ``retry after <tools>`` -- other tools succeeded in between (at most three, by name:
      ``retry after Read``, ``retry after Grep, Read``), e.g. the file was read again before
      the edit;
    - ``retry unchanged`` -- nothing in between and the same input as the last failure;
    - ``retry with changed input`` -- nothing in between, another input.

    Every name starts with "retry": the known-fixes context shows them to the model as what
    to do next.
    """
    if tools_between:
        names = sorted(set(tools_between))
        shown = ", ".join(names[:_MAX_TOOLS_BETWEEN])
        if len(names) > _MAX_TOOLS_BETWEEN:
            shown += f" +{len(names) - _MAX_TOOLS_BETWEEN}"
        return f"retry after {shown}"
    return "retry unchanged" if same_input else "retry with changed input"


def _iso(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds (``datetime`` costs the hook command an import)."""
    whole = int(seconds)
    millis = min(round((seconds - whole) * 1000), 999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}+00:00"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _digest(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return sha1_hex(data.encode("utf-8", "surrogatepass"))[:16]


class _Invocation:
    """One hook input being mapped (keeps the shared values at hand)."""

    def __init__(
        self, hook: dict[str, Any], state: dict[str, Any], now: float, stateless_key: str | None
    ) -> None:
        self.hook = hook
        self.stateless_key = stateless_key
        self.state = state
        self.now = now
        self.at = _iso(now)
        self.out = Mapped()
        self.name = str(hook.get("hook_event_name") or "unknown")[:255]
        self.raw_session = str(hook.get("session_id") or "unknown")
        self.session = session_uuid(self.raw_session)
        tool = hook.get("tool_name")
        self.tool = str(tool)[:255] if tool else None
        tool_use_id = hook.get("tool_use_id")
        self.tool_use_id = str(tool_use_id) if tool_use_id else None
        agent_id = hook.get("agent_id")
        self.agent_id = str(agent_id) if agent_id else None
        agent_type = hook.get("agent_type")
        self.agent_type = str(agent_type)[:255] if agent_type else None
        # The session's own thread: claude-code, or the agent it runs as (--agent).
        self.main_agent = self.agent_type if self.agent_type and not self.agent_id else AGENT_NAME
        inside_subagent = self.agent_id is not None and self.name not in (
            "SubagentStart",
            "SubagentStop",
        )
        if inside_subagent:
            assert self.agent_id is not None
            self.workflow = subagent_workflow(self.raw_session, self.agent_id)
            self.agent = self.agent_type or "subagent"
            self.scope = self.agent_id
        else:
            self.workflow = self.session
            self.agent = self.main_agent
            self.scope = ""

    # -- the story ------------------------------------------------------------------------

    def run(self) -> Mapped:
        handler = getattr(self, f"_on_{self.name}", None)
        if self.stateless_key is not None and self.name not in _TOOL_EVENTS:
            handler = None  # steps and snapshots need the session's numbering
        extra = handler() if handler is not None else None
        self._hook_row(extra)
        self.state["seen"] = self.now
        return self.out

    def _on_PreToolUse(self) -> None:
        if self.tool_use_id:
            pre = self.state.setdefault("pre", {})
            pre[self.tool_use_id] = self.now
            while len(pre) > _MAX_PRE:
                del pre[next(iter(pre))]

    def _latency_ms(self) -> int | None:
        started = (
            self.state.get("pre", {}).pop(self.tool_use_id, None) if self.tool_use_id else None
        )
        if not isinstance(started, int | float):
            return None
        return max(0, min(int((self.now - started) * 1000), 2**31 - 1))

    def _on_PostToolUse(self) -> dict[str, Any]:
        latency = self._latency_ms()
        self._count("tool_calls")
        tool = self.tool or "tool"
        agent = self._agent_state()
        pending = agent.get("pending", {}).pop(tool, None)
        between = agent.get("since", {}).pop(tool, [])
        if pending:
            self._recovery(pending, between, latency)
        # This success is "a tool used in between" for the others still waiting.
        for waiting, used in agent.get("since", {}).items():
            if waiting != tool and tool not in used and len(used) < _MAX_TOOLS_TRACKED:
                used.append(tool)
        extra: dict[str, Any] = {"success_classification": "success"}
        if latency is not None:
            extra["quality_metrics"] = {"latency_ms": latency}
        return extra

    def _on_PostToolUseFailure(self) -> dict[str, Any] | None:
        latency = self._latency_ms()
        self._count("tool_calls")
        self._count("tool_failures")
        tool = self.tool or "tool"
        error_text = _text(self.hook.get("error") or self.hook.get("error_message") or "")
        interrupted = self.hook.get("is_interrupt") is True
        kind = classify(tool, error_text, interrupted=interrupted)
        error_id = event_id(self.workflow, "PostToolUseFailure", "error", self._key())
        error: dict[str, Any] = {
            "id": error_id,
            "correlation_id": self.workflow,
            "session_id": self.session,
            "error_type": kind.error_type,
            "error_category": kind.category,
            "error_severity": kind.severity,
            "error_message": cut_text(error_text, _TEXT_CHARS),
            "agent_name": self.agent,
            "operation_name": tool,
            "is_recoverable": not interrupted,
            "metadata": self._metadata(),
            "occurred_at": self.at,
        }
        if kind.code is not None:
            error["error_code"] = kind.code
        if interrupted:
            error["resolved_at"] = self.at
        step = self._current_step()
        if step is not None:
            error["execution_step"] = step
        self.out.records.append(("error", error))
        if interrupted:
            self._count("interrupts")
            return None
        agent = self._agent_state()
        pending = agent.setdefault("pending", {}).setdefault(tool, [])
        pending.append([error_id, self.now, _digest(self.hook.get("tool_input"))])
        if len(pending) > MAX_RECOVERS:
            del pending[0]
            self._count("errors_no_longer_waiting")
        agent.setdefault("since", {}).setdefault(tool, [])
        self.out.lookup = (kind.error_type, tool)
        return (
            {"error_type": kind.error_type}
            if latency is None
            else {
                "error_type": kind.error_type,
                "quality_metrics": {"latency_ms": latency},
            }
        )

    def _recovery(self, pending: list[list[Any]], between: list[str], latency: int | None) -> None:
        tool = self.tool or "tool"
        ids = [str(p[0]) for p in pending][-MAX_RECOVERS:]
        same = bool(pending) and pending[-1][2] == _digest(self.hook.get("tool_input"))
        how = strategy(between, same)
        success: dict[str, Any] = {
            "id": event_id(self.workflow, "PostToolUse", "success", self._key()),
            "correlation_id": self.workflow,
            "session_id": self.session,
            "success_type": "recovery_success",
            "operation_name": tool,
            "agent_name": self.agent,
            "retry_count": min(len(pending), 2**31 - 1),
            "recovers_error_ids": ids,
            "success_factors": {
                "recovery_strategy": how,
                "tools_between": sorted(set(between)),
                "failed_attempts": len(pending),
            },
            "metadata": self._metadata(),
            "occurred_at": self.at,
        }
        if latency is not None:
            success["execution_time_ms"] = latency
        step = self._current_step()
        if step is not None:
            success["execution_step"] = step
        self.out.records.append(("success", success))
        self._count("recovered", len(ids))

    def _on_UserPromptSubmit(self) -> None:
        self._close_turn("failed", "interrupted: a new prompt came before Stop")
        turns = self._count("turns")
        number = self._next_step()
        step_id = self._turn_id(number)
        self.state["turn"] = {"n": turns, "step": number, "id": step_id, "at": self.now}
        prompt = _text(self.hook.get("prompt") or "")
        self._step(
            step_id,
            number,
            "started",
            step_type="turn",
            operation="prompt",
            description=f"turn {turns}: {cut_text(prompt, _DESCRIPTION_CHARS)}",
            input_data={"prompt": cut_text(prompt, _TEXT_CHARS)},
            started_at=self.at,
        )

    def _on_Stop(self) -> None:
        if self.state.get("turn"):
            self._close_turn("completed", None)
            return
        if self.hook.get("stop_hook_active") is True:
            return
        # A response without a prompt we saw (hooks installed mid-session, a resume).
        turns = self._count("turns")
        number = self._next_step()
        self._step(
            self._turn_id(number),
            number,
            "completed",
            step_type="turn",
            operation="prompt",
            description=f"turn {turns}",
            completed_at=self.at,
            output_data=self._stop_output(None),
        )

    def _on_SubagentStart(self) -> None:
        if not self.agent_id:
            return
        number = self._next_step()
        step_id = event_id(self.workflow, "subagent", self.agent_id)
        subagent = subagent_workflow(self.raw_session, self.agent_id)
        agent_type = self.agent_type or "subagent"
        subagents = self.state.setdefault("subagents", {})
        subagents[self.agent_id] = {"step": number, "id": step_id, "at": self.now}
        while len(subagents) > _MAX_PRE:
            del subagents[next(iter(subagents))]
        turn = self.state.get("turn") or {}
        self._step(
            step_id,
            number,
            "started",
            step_type="subagent",
            operation=agent_type,
            description=f"subagent {agent_type} (workflow {subagent})",
            started_at=self.at,
            parent=turn.get("id"),
            metadata={"agent_id": self.agent_id, "subagent_correlation_id": subagent},
        )
        for workflow, metadata in (
            (self.workflow, {"subagent_correlation_id": subagent}),
            (subagent, {"parent_correlation_id": self.workflow}),
        ):
            self.out.records.append(
                (
                    "transformation",
                    {
                        "id": event_id(workflow, "SubagentStart", "handover", self.agent_id),
                        "correlation_id": workflow,
                        "session_id": self.session,
                        "source_agent": self.main_agent,
                        "target_agent": agent_type,
                        "transformation_type": "delegation",
                        "reason": f"subagent {agent_type} ({self.agent_id})",
                        "metadata": {"agent_id": self.agent_id, **metadata},
                        "created_at": self.at,
                    },
                )
            )

    def _on_SubagentStop(self) -> None:
        if not self.agent_id:
            return
        known = self.state.get("subagents", {}).pop(self.agent_id, None)
        agent_type = self.agent_type or "subagent"
        subagent = subagent_workflow(self.raw_session, self.agent_id)
        number = known["step"] if known else self._next_step()
        duration = max(0, int((self.now - known["at"]) * 1000)) if known else None
        self._step(
            known["id"] if known else event_id(self.workflow, "subagent", self.agent_id),
            number,
            "completed",
            step_type="subagent",
            operation=agent_type,
            description=f"subagent {agent_type} (workflow {subagent})",
            completed_at=self.at,
            duration_ms=duration,
            metadata={"agent_id": self.agent_id, "subagent_correlation_id": subagent},
        )

    def _on_SessionStart(self) -> None:
        state = {
            key: self.hook[key]
            for key in (
                "hook_event_name",
                "source",
                "model",
                "cwd",
                "permission_mode",
                "agent_type",
            )
            if self.hook.get(key) is not None
        }
        self._snapshot(state)

    def _on_SessionEnd(self) -> None:
        self._close_turn("failed", "the session ended before Stop")
        counts = self.state.get("counts", {})
        unrecovered: dict[str, int] = {}
        for agent in self.state.get("agents", {}).values():
            for tool, pending in agent.get("pending", {}).items():
                unrecovered[tool] = unrecovered.get(tool, 0) + len(pending)
        state: dict[str, Any] = {
            "hook_event_name": "SessionEnd",
            "reason": self.hook.get("reason"),
            "turns": counts.get("turns", 0),
            "tool_calls": counts.get("tool_calls", 0),
            "tool_failures": counts.get("tool_failures", 0),
            "recovered": counts.get("recovered", 0),
            "unrecovered_by_tool": unrecovered,
        }
        self._snapshot(state)

    # -- events ---------------------------------------------------------------------------

    def _hook_row(self, extra: dict[str, Any] | None) -> None:
        payload = bounded(self.hook)
        if extra:
            payload.update(extra)
        row: dict[str, Any] = {
            "id": event_id(self.workflow, self.name, self._key()),
            "correlation_id": self.workflow,
            "session_id": self.session,
            "source": self.name,
            "payload": payload,
            "metadata": self._metadata(),
            "created_at": self.at,
        }
        if self.tool is not None and self.name in _TOOL_EVENTS:
            row["resource_id"] = self.tool
        self.out.records.insert(0, ("hook", row))

    def _step(
        self,
        step_id: str,
        number: int,
        status: str,
        *,
        step_type: str,
        operation: str,
        description: str | None = None,
        input_data: Any = None,
        output_data: Any = None,
        started_at: str | None = None,
        completed_at: str | None = None,
        duration_ms: int | None = None,
        parent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "id": step_id,
            "correlation_id": self.workflow,
            "session_id": self.session,
            "step_number": number,
            "step_type": step_type,
            "agent_name": self.main_agent,
            "operation_name": operation[:255],
            "status": status,
            "metadata": {**self._metadata(), **(metadata or {})},
        }
        optional = {
            "step_description": description,
            "input_data": input_data,
            "output_data": output_data,
            "started_at": started_at,
            "completed_at": completed_at,
            "duration_ms": duration_ms,
            "parent_step_id": parent,
        }
        event.update({k: v for k, v in optional.items() if v is not None})
        self.out.records.append(("step", event))

    def _snapshot(self, agent_state: dict[str, Any]) -> None:
        self.out.records.append(
            (
                "snapshot",
                {
                    "id": event_id(self.workflow, self.name, "snapshot", self._key()),
                    "correlation_id": self.workflow,
                    "session_id": self.session,
                    "snapshot_type": "checkpoint",
                    "agent_name": self.main_agent,
                    "agent_state": bounded(agent_state),
                    "metadata": self._metadata(),
                    "captured_at": self.at,
                },
            )
        )

    def _close_turn(self, status: str, why: str | None) -> None:
        turn = self.state.pop("turn", None)
        if not turn:
            return
        self._step(
            turn["id"],
            turn["step"],
            status,
            step_type="turn",
            operation="prompt",
            completed_at=self.at,
            duration_ms=max(0, int((self.now - turn["at"]) * 1000)),
            output_data=self._stop_output(why),
        )

    def _stop_output(self, why: str | None) -> dict[str, Any] | None:
        if why is not None:
            return {"ended": why}
        message = self.hook.get("last_assistant_message")
        if isinstance(message, str) and message:
            return {"last_assistant_message": cut_text(message, _TEXT_CHARS)}
        return None

    # -- state ----------------------------------------------------------------------------

    def _key(self) -> str:
        """What makes this invocation's events distinct from the session's others."""
        if self.tool_use_id and self.name in _TOOL_EVENTS:
            return f"{self.scope}/{self.tool_use_id}"
        if self.stateless_key is not None:
            return f"{self.scope}/~{self.stateless_key}"
        return f"{self.scope}/#{self._nonce()}{self._sequence()}"

    def _turn_id(self, number: int) -> str:
        return event_id(self.workflow, "turn", f"{self._nonce()}{number}")

    def _nonce(self) -> str:
        """The state's nonce and a separator (``""`` for a state made before nonces: its
        ids go on as they began)."""
        nonce = self.state.get("nonce")
        return f"{nonce}." if isinstance(nonce, str) and nonce else ""

    def _sequence(self) -> int:
        cached = getattr(self, "_seq", None)
        if cached is None:
            numbers = self.state.setdefault("seq", {})
            cached = numbers[self.name] = int(numbers.get(self.name, 0)) + 1
            self._seq = cached
        return cached

    def _count(self, what: str, n: int = 1) -> int:
        counts = self.state.setdefault("counts", {})
        counts[what] = int(counts.get(what, 0)) + n
        return int(counts[what])

    def _next_step(self) -> int:
        self.state["steps"] = int(self.state.get("steps", 0)) + 1
        return int(self.state["steps"])

    def _current_step(self) -> int | None:
        if self.scope:
            return None  # a subagent's workflow has no turns
        turn = self.state.get("turn")
        return int(turn["step"]) if turn else None

    def _agent_state(self) -> dict[str, Any]:
        agents = self.state.setdefault("agents", {})
        agent = agents.get(self.scope)
        if agent is None:
            agent = agents[self.scope] = {}
            while len(agents) > _MAX_PRE:
                del agents[next(iter(agents))]
        return agent  # type: ignore[no-any-return]

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"agent_name": self.agent, "claude_session_id": self.raw_session}
        step = self._current_step()
        if step is not None:
            meta["execution_step"] = step
        if self.agent_id:
            meta["agent_id"] = self.agent_id
        if self.tool_use_id:
            meta["tool_use_id"] = self.tool_use_id
        return meta
