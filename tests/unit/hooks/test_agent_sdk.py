"""The Claude Agent SDK helper: debug-sink's handling registered as SDK hook callbacks.

The SDK is not a dependency: a stand-in with the documented shapes plays it -- ``HookMatcher``
(``matcher``, ``hooks``, ``timeout``) and callbacks called as
``await callback(input_data, tool_use_id, {"signal": None})`` returning the hook's JSON output.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from debug_sink.hooks import control
from debug_sink.hooks.agent_sdk import SDK_HOOK_EVENTS, DebugSinkHooks
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.fixes import write_cache
from debug_sink.hooks.spool import Spool
from tests import hook_payloads as p

SESSION = "5d3f1c2a-8b7e-4f60-9a1d-2c3b4a5e6f70"


@dataclass
class HookMatcher:
    """The SDK's HookMatcher, as documented."""

    matcher: str | None = None
    hooks: list[Any] = field(default_factory=list)
    timeout: float | None = None


@pytest.fixture
def hook_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(control, "spawn", lambda *a, **k: None)
    with tempfile.TemporaryDirectory(prefix="dsh-") as d:
        yield d


class TestDebugSinkHooks:
    """Registration keeps the user's hooks; callbacks spool events and answer like the command."""

    def test_register_adds_a_matcher_per_event_and_keeps_the_users(self, hook_dir: str) -> None:
        mine = HookMatcher(matcher="Bash", hooks=[lambda *a: None])
        hooks = DebugSinkHooks(HookConfig(hook_dir)).register({"PreToolUse": [mine]}, HookMatcher)
        assert set(hooks) == set(SDK_HOOK_EVENTS)
        assert hooks["PreToolUse"][0] is mine
        added = hooks["PreToolUse"][1]
        assert added.matcher is None
        assert isinstance(added.hooks[0], DebugSinkHooks)

    async def test_callbacks_spool_and_answer_a_failure_with_known_fixes(
        self, hook_dir: str
    ) -> None:
        write_cache(
            hook_dir,
            "Edit: old_string not found",
            "Edit",
            [{"recovery_strategy": "retry after Read", "success_count": 2, "success_rate": 1.0}],
            time.time(),
        )
        hooks = DebugSinkHooks(HookConfig(hook_dir)).register(None, HookMatcher)
        callback = hooks["PostToolUseFailure"][0].hooks[0]
        failure = p.failure(SESSION, "toolu_9")
        tool_use_id = failure.pop("tool_use_id")  # the SDK passes it as the second argument
        output = await callback(failure, tool_use_id, {"signal": None})
        assert output == {
            "hookSpecificOutput": {
                "hookEventName": "PostToolUseFailure",
                "additionalContext": "debug-sink known fixes for `Edit: old_string not found` "
                "(seen twice before, recovered twice):\n1. retry after Read: 2/2 (100%)",
            }
        }
        ok = await hooks["PostToolUse"][0].hooks[0](
            p.success(SESSION, "toolu_10"), "toolu_10", {"signal": None}
        )
        assert ok == {}
        lines, _ = Spool(hook_dir, 1).read(0)
        kinds = [json.loads(line)["kind"] for line in lines]
        assert kinds == ["hook", "error", "hook", "success"]

    async def test_a_callback_never_raises(self, hook_dir: str) -> None:
        callback = DebugSinkHooks(HookConfig(hook_dir))
        assert await callback({"unserialisable": object()}, None, {"signal": None}) == {}
