"""Awkward values handed to the SDK: never raised into the agent, stored sanely."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from debug_sink.wire.events import EventKind
from debug_sink.wire.validation import Accepted, ValidationConfig, decode
from tests.sdk_support import memory_manager

SETTINGS = Settings.model_construct()


async def events(manager: DebugStateManager, kind: EventKind) -> list[dict[str, Any]]:
    assert await manager.flush(5)
    return manager.emitter.events(kind)  # type: ignore[attr-defined]


def accepted_by_sink(manager: DebugStateManager) -> None:
    config = ValidationConfig(
        topics=SETTINGS.topics,
        max_state_bytes=SETTINGS.max_state_bytes,
        max_depth=SETTINGS.max_depth,
        redact_patterns=SETTINGS.redact_patterns,
    )
    for m in manager.emitter.messages:  # type: ignore[attr-defined]
        result = decode(m.topic, m.value, timestamp_ms=0, config=config)
        assert isinstance(result, Accepted), result


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class TestOddStates:
    async def test_mixed_python_values_are_stored_as_documented(self) -> None:
        """Sets, bytes, datetimes, enums, custom classes and a recursive list in one state:
        the call returns, the snapshot is sent, and the sink would accept it."""
        manager = memory_manager()
        corr = uuid.uuid4()
        loop: list[Any] = [1]
        loop.append(loop)
        state = {
            "set": {3, 1, 2},
            "mixed_set": {1, "a"},
            "bytes": b"\xff\xfeabc",
            "when": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "naive": dt.datetime(2025, 1, 2, 3, 4, 5),
            "color": Color.RED,
            "obj": Opaque(),
        }
        sid = await manager.capture_snapshot(corr, "agent", state)
        assert isinstance(sid, uuid.UUID)
        sent = await events(manager, EventKind.SNAPSHOT)
        assert len(sent) == 1
        agent_state = sent[0]["agent_state"]
        assert agent_state["set"] == [1, 2, 3]
        assert agent_state["obj"] == "<opaque thing>"
        assert agent_state["color"] == "red"
        accepted_by_sink(manager)

        # the recursive value alone: a marker, never an exception
        await manager.capture_snapshot(corr, "agent", {"loop": loop})
        await manager.capture_snapshot(corr, "agent", {"broken": BrokenStr()})
        sent = await events(manager, EventKind.SNAPSHOT)
        assert len(sent) == 3, manager.stats
        accepted_by_sink(manager)

    async def test_non_string_keys_become_strings(self) -> None:
        """sanitize.py: "non-string keys strings". A tuple key (e.g. a coordinate map, a
        (row, col) cache) must not cost the whole state."""
        manager = memory_manager()
        corr = uuid.uuid4()
        await manager.capture_snapshot(
            corr, "agent", {"task": "route", "grid": {(0, 1): "wall", (2, 3): "door"}}
        )
        (snapshot,) = await events(manager, EventKind.SNAPSHOT)
        state = snapshot["agent_state"]
        assert state.get("task") == "route", state
        assert "_unserialisable" not in state, state


class TestSurrogates:
    async def test_error_whose_message_has_a_lone_surrogate_is_not_lost(self) -> None:
        """A FileNotFoundError for a non-UTF-8 file name (os.fsdecode gives a lone surrogate)
        is an ordinary error on Linux. The error event is what the agent captured; it must
        reach the sink (text made storable, as NULs are), not be dropped."""
        manager = memory_manager()
        corr = uuid.uuid4()
        name = b"report-\xff.csv".decode("utf-8", "surrogateescape")
        try:
            open(f"/nonexistent-dir/{name}")  # noqa: SIM115
        except FileNotFoundError as exc:
            error_id = await manager.capture_error_state(
                corr, "agent", exc, {"file": "report"}, "high"
            )
        assert manager.stats.dropped == 0, dict(manager.stats.dropped_by_reason)
        errors = await events(manager, EventKind.ERROR)
        assert [e["id"] for e in errors] == [str(error_id)]
        accepted_by_sink(manager)

    async def test_state_with_a_lone_surrogate_keeps_the_rest_of_the_state(self) -> None:
        manager = memory_manager()
        corr = uuid.uuid4()
        await manager.capture_snapshot(
            corr, "agent", {"step": 4, "tool_output": "emoji cut: \ud83d"}
        )
        (snapshot,) = await events(manager, EventKind.SNAPSHOT)
        assert snapshot["agent_state"].get("step") == 4, snapshot["agent_state"]
