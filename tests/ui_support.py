"""Helpers of the web view's tests: the demo fleet's data in a database, and a running view.

:func:`load_demo` stores what ``debug-sink dev --demo`` would produce -- the demo fleet's
workflows, emitted through the SDK -- through the sink's own decode -> BatchWriter path
(:func:`tests.sdk_support.write_direct`), then runs the correlator once, so the pages have
errors, recoveries (stated and inferred), LLM calls, hand-overs and known fixes to show. A
fixed seed makes the workflows the same on every run; their times end "now".

:func:`running_view` starts the web view in this process on a free loopback port, as
``debug-sink ui`` does, reading as the least-privileged reader role.

:func:`metrics_server` stands in for a sink's ``/metrics`` that answers however a test says
(not HTTP, cut short, a byte at a time...).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from debug_sink.dev.demo import DemoFleet
from debug_sink.sdk.emitter import EmitterConfig, MemoryEmitter
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from tests import support as s
from tests.sdk_support import correlate, settings_for, write_direct

#: The demo's seed in the web view's tests: the same fleet every run.
DEMO_SEED = 18


async def load_demo(dsn: str, *, workflows: int = 40, seed: int = DEMO_SEED) -> list[uuid.UUID]:
    """``workflows`` demo workflows stored in ``dsn`` and correlated; their ids, in the
    order they were emitted."""
    from debug_sink.dev import demo

    settings = Settings.model_construct()
    emitter = MemoryEmitter(settings, EmitterConfig(max_queue_events=1_000_000))
    manager = DebugStateManager(
        settings, emitter=emitter, clock=demo._now, monotonic=demo._monotonic
    )
    fleet = DemoFleet(settings, seed=seed, manager=manager, history_s=3600.0)
    ids = []
    for _ in range(workflows):
        ids.append(await fleet.workflow(pace=0.0, ago_s=fleet.rng.uniform(0, 3600.0)))
    await manager.close()
    await write_direct(settings_for(dsn), emitter.messages)
    await correlate(dsn)
    return ids


async def store_dead_letter(
    dsn: str, *, value: bytes, reason: str, error_class: str = "schema", offset: int = 1
) -> int:
    """One row of ``sink_dead_letters`` as the sink stores it; its id."""
    conn = await asyncpg.connect(dsn)
    try:
        letter_id: int = await conn.fetchval(
            'INSERT INTO sink_dead_letters (topic, partition, "offset", value, error_class, '
            "reason, group_id) VALUES ('debug.error_events', 0, $1, $2, $3, $4, 'debug-sink') "
            "RETURNING id",
            offset,
            value,
            error_class,
            reason,
        )
    finally:
        await conn.close()
    return letter_id


def view_settings(dsn: str, **overrides: Any) -> Settings:
    """The web view's settings on ``dsn`` as the reader role, on any free loopback port."""
    values: dict[str, Any] = {
        "postgres_dsn": s.as_reader(dsn),
        "ui_host": "127.0.0.1",
        "ui_port": 0,
        "ui_metrics_urls": ("http://127.0.0.1:9/metrics",),
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_view(settings: Settings) -> AsyncIterator[str]:
    """The web view serving ``settings`` in this process; its base URL."""
    from debug_sink.ui.server import WebView

    async with WebView(settings) as view:
        yield view.url


#: Stored as an agent name, an error type and message and in a state: the pages must show it
#: as text. ``window.__pwned`` is set and a dialog opens if any of it ever runs.
INJECTION = '<script>window.__pwned = 1; alert("pwned")</script>'
IMG_INJECTION = '<img src=x onerror="window.__pwned = 2; alert(2)">'


async def store_injection(dsn: str) -> uuid.UUID:
    """A workflow whose agent name, error message, error type and state carry markup: one
    step of agent :data:`INJECTION` that fails with :data:`IMG_INJECTION`, after a good
    snapshot (so the error has a state diff with the markup in it). Its correlation id."""
    from tests.sdk_support import memory_manager

    corr = uuid.uuid4()
    manager = memory_manager()
    good = {"note": "fine", "html": "<b>ok</b>"}
    await manager.capture_snapshot(corr, INJECTION, good, "checkpoint")
    step = await manager.start_step(corr, INJECTION, "render</td><td>", agent_state=good)
    error = await manager.capture_error_state(
        corr,
        INJECTION,
        IMG_INJECTION,
        {**good, "html": INJECTION, "payload": IMG_INJECTION},
        "high",
        error_type="Xss<svg/onload=alert(3)>",
        operation_name="render</td><td>",
    )
    await manager.complete_step(step, "failed", error_event_id=error)
    await manager.close()
    emitter = manager.emitter
    assert isinstance(emitter, MemoryEmitter)
    await write_direct(settings_for(dsn), emitter.messages)
    return corr


@dataclass(frozen=True)
class Stored:
    """What a module of the view's tests stored: the demo workflows, the markup-laden one
    (:func:`store_injection`) and the ids of its dead letters."""

    dsn: str
    demo: list[uuid.UUID]
    injected: uuid.UUID
    letters: list[int]


async def store_fleet(dsn: str, *, workflows: int) -> tuple[list[uuid.UUID], uuid.UUID]:
    """``workflows`` demo workflows (:func:`load_demo`) and the markup-laden one
    (:func:`store_injection`), correlated: the demo's ids and the injected one's."""
    demo = await load_demo(dsn, workflows=workflows)
    injected = await store_injection(dsn)
    await correlate(dsn)
    return demo, injected


@contextlib.contextmanager
def metrics_server(
    answer: Callable[[socket.socket], None], *, tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A server on a free loopback port that reads each connection's request and runs
    ``answer`` on the connection, in a thread of its own; the URL of its ``/metrics``
    (``https`` with ``tls``). (Threads, not the test's event loop: an answer that sleeps
    must not hold the view.)"""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=_answer, args=(answer, client, tls), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{server.getsockname()[1]}/metrics"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _answer(
    answer: Callable[[socket.socket], None], client: socket.socket, tls: ssl.SSLContext | None
) -> None:
    with contextlib.suppress(OSError), client:
        client.settimeout(30)
        if tls is None:
            client.recv(65536)
            answer(client)
            return
        with tls.wrap_socket(client, server_side=True) as secure:
            secure.recv(65536)
            answer(secure)


def answer_with(head: bytes, body: bytes = b"") -> Callable[[socket.socket], None]:
    """An answer of these bytes (a status line and headers, then a body), then closed."""
    return lambda client: client.sendall(head + body)


def trickling(seconds: float, *, headers_too: bool = False) -> Callable[[socket.socket], None]:
    """An answer that comes a byte every 0.5 s for ``seconds``: every read of it is quick,
    the whole never is (``headers_too``: from the status line's end on, else the body)."""

    def answer(client: socket.socket) -> None:
        if headers_too:
            client.sendall(b"HTTP/1.1 200 OK\r\n")
            byte = b"X"
        else:
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            byte = b"#"
        for _ in range(int(seconds / 0.5)):
            client.sendall(byte)
            time.sleep(0.5)

    return answer
