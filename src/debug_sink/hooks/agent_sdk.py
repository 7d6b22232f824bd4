"""debug-sink's hook handling inside a Python agent built on the Claude Agent SDK.

Owns :class:`DebugSinkHooks`: the hook command's mapping, spool, state and known fixes
(:func:`~debug_sink.hooks.handler.handle`) as a Claude Agent SDK hook callback --
``async (input_data, tool_use_id, context) -> dict`` -- and :meth:`DebugSinkHooks.register`,
which adds it to the ``hooks`` mapping of ``ClaudeAgentOptions`` for every hook event the SDK
delivers::

    from claude_agent_sdk import ClaudeAgentOptions, HookMatcher
    from debug_sink.hooks.agent_sdk import DebugSinkHooks

    options = ClaudeAgentOptions(hooks=DebugSinkHooks().register({}, HookMatcher))

Duck-typed: debug-sink does not depend on the SDK. ``matcher_type`` is called as
``matcher_type(matcher=None, hooks=[callback])`` (the SDK's ``HookMatcher``; ``None``
matches every tool); the callback returns ``{}`` or the SDK's ``hookSpecificOutput`` with the
known fixes for a ``PostToolUseFailure``.

Guarantees: the callback never raises and never blocks the event loop (the work runs in a
thread, within the hook's bounds); events go through the same spool and background shipper as
the command's (same directory: same session state), so a session may mix both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from debug_sink.hooks import problems
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.handler import handle

__all__ = ["SDK_HOOK_EVENTS", "DebugSinkHooks"]

#: The hook events the Claude Agent SDK (Python) delivers to callbacks.
SDK_HOOK_EVENTS: Final = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "UserPromptSubmit",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "Notification",
    "PermissionRequest",
)


class DebugSinkHooks:
    """The hook handling as an SDK callback (instances are the callback)."""

    def __init__(self, config: HookConfig | None = None) -> None:
        #: Settings: ``DEBUG_SINK_HOOK_*`` of the environment unless given.
        self.config = config or HookConfig.from_environ()

    async def __call__(
        self, input_data: Mapping[str, Any], tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        """The SDK's ``HookCallback``: ``{}``, or the output that adds known fixes."""
        try:
            hook = dict(input_data)
            if tool_use_id and not hook.get("tool_use_id"):
                hook["tool_use_id"] = tool_use_id
            raw = json.dumps(hook, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
            output = await asyncio.to_thread(handle, raw, self.config, in_process=True)
        except Exception as exc:  # an agent's hook must not fail its run
            problems.log(self.config.directory, "hook_callback_failed", error=repr(exc)[:500])
            return {}
        return output or {}

    def register(
        self,
        hooks: Mapping[str, list[Any]] | None,
        matcher_type: Callable[..., Any],
        *,
        events: Iterable[str] = SDK_HOOK_EVENTS,
    ) -> dict[str, list[Any]]:
        """``hooks`` (``ClaudeAgentOptions.hooks``, not modified) with a
        ``matcher_type(matcher=None, hooks=[self])`` appended for each of ``events``."""
        merged = {event: list(matchers) for event, matchers in (hooks or {}).items()}
        for event in events:
            merged.setdefault(event, []).append(matcher_type(matcher=None, hooks=[self]))
        return merged
