"""The start-up's event loops and its signals (debug_sink.dev.session)."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import threading
import time
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
    make_pipe = selector_events.BaseSelectorEventLoop._make_self_pipe  # type: ignore[attr-defined]

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


@pytest.mark.usefixtures("raising_sigint")
def test_a_signal_during_a_slow_shutdown_is_not_held_back() -> None:
    """Cancelling what a step left behind may take long: a signal then still stops it at
    once (the signals are held only while the loop is made and closed)."""
    started = time.monotonic()
    left: list[asyncio.Task[None]] = []

    async def step() -> None:
        async def slow_cleanup() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(3)  # cleanup that takes its time

        left.append(asyncio.get_running_loop().create_task(slow_cleanup()))
        await asyncio.sleep(0)

    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))  # as Ctrl-C does
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            session._run(step())
    finally:
        timer.cancel()
    assert time.monotonic() - started < 2.5
    for task in left:  # interrupted for good: no "destroyed but pending" later, elsewhere
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        task.get_coro().close()
