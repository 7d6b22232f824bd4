"""The start-up's event loops and its signals (debug_sink.dev.session)."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import warnings
from asyncio import selector_events
from collections.abc import Iterator
from typing import Any

import pytest

from debug_sink.dev import session


@pytest.fixture
def raising_sigint() -> Iterator[None]:
    """SIGINT raises at once, as during dev's start-up."""

    def handle(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("raising_sigint")
def test_a_signal_while_the_loop_is_made_leaves_no_half_made_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C that lands inside the loop's constructor stops the step (KeyboardInterrupt),
    and nothing prints "Exception ignored in BaseEventLoop.__del__" afterwards (seen in CI:
    the half-made loop had no self-pipe to close). The step's coroutine is closed, not left
    "never awaited"."""
    monkeypatch.setattr(
        asyncio, "get_event_loop_policy", asyncio.DefaultEventLoopPolicy
    )  # the selector loop whose constructor is patched, whatever policy the suite set
    make_pipe = selector_events.BaseSelectorEventLoop._make_self_pipe

    def interrupted(self: Any) -> None:
        signal.raise_signal(signal.SIGINT)  # delivered here unless held
        make_pipe(self)

    monkeypatch.setattr(selector_events.BaseSelectorEventLoop, "_make_self_pipe", interrupted)
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    ran: list[bool] = []

    async def step() -> None:
        ran.append(True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            session._run(step())
        gc.collect()
    assert unraisable == []
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert ran == []


def test_a_step_runs_and_its_loop_is_closed() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def step() -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 7

    assert session._run(step()) == 7
    assert loops[0].is_closed()
