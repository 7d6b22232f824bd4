"""The SDK against a real broker that is late, goes away, or is shared with a forked child."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from debug_sink.dev.embedded import EmbeddedKafka, free_port
from debug_sink.sdk.emitter import Emitter, EmitterConfig
from debug_sink.sdk.manager import DebugStateManager
from debug_sink.settings import Settings
from debug_sink.wire.events import EventKind
from tests.integration.sdk.test_sdk import consume_ids

pytestmark = pytest.mark.timeout(90)


def settings_for(bootstrap: str) -> Settings:
    return Settings.model_construct(
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"rt{uuid.uuid4().hex[:6]}."
    )


class TestBrokerLateOrGone:
    async def test_broker_down_at_start_then_up_delivers_everything(self, tmp_path: Path) -> None:
        """The agent starts before the broker: captures return at once, and once a broker
        listens on the address everything captured arrives."""
        port = free_port()
        settings = settings_for(f"127.0.0.1:{port}")
        config = EmitterConfig(request_timeout_ms=1000)
        manager = DebugStateManager(emitter=Emitter(settings, config))
        corr = uuid.uuid4()
        broker: EmbeddedKafka | None = None
        try:
            ids = []
            for i in range(30):
                began = time.monotonic()
                ids.append(await manager.capture_snapshot(corr, "a", {"i": i}))
                assert time.monotonic() - began < 0.5
            await asyncio.sleep(1.5)  # several failed connection attempts
            broker = EmbeddedKafka(port=port, log_path=tmp_path / "late.log")
            broker.start()
            assert await manager.flush(40), manager.stats
            assert manager.stats.dropped == 0
            received = await consume_ids(settings, EventKind.SNAPSHOT, expected=30)
            assert received == {str(i) for i in ids}
        finally:
            await manager.close(timeout=1)
            if broker is not None:
                broker.stop()

    async def test_close_with_the_broker_gone_keeps_its_timeout(self, tmp_path: Path) -> None:
        """close(timeout) is the agent's bound on shutdown. With the broker gone mid-run it
        returns about then -- not after aiokafka's stop has waited for batches it cannot
        deliver (it took 6 s here) -- what was not delivered is counted, and nothing of the
        producer is left running."""
        broker = EmbeddedKafka(log_path=tmp_path / "gone.log")
        broker.start()
        settings = settings_for(broker.bootstrap_servers)
        manager = DebugStateManager(emitter=Emitter(settings))
        corr = uuid.uuid4()
        try:
            await manager.capture_snapshot(corr, "a", {"warm": "up"})
            assert await manager.flush(20)
            broker.stop()
            for i in range(50):
                await manager.capture_snapshot(corr, "a", {"i": i})
            await asyncio.sleep(0.5)  # the sender hands them to aiokafka, which cannot send
            began = time.monotonic()
            await manager.close(timeout=1.0)
            took = time.monotonic() - began
            stats = manager.stats
            await asyncio.sleep(0.2)
            left = [
                repr(t.get_coro())
                for t in asyncio.all_tasks()
                if t is not asyncio.current_task() and "aiokafka" in repr(t.get_coro())
            ]
        finally:
            broker.stop()
        assert stats.sent + stats.dropped == 51, stats
        assert stats.dropped == 50, stats
        assert took < 2.5, f"close(timeout=1.0) took {took:.1f} s; stats {stats}"
        assert not left, left


class TestFork:
    async def test_a_forked_child_publishes(self, kafka: Any) -> None:
        """README: one manager may serve 'a forked child'. The parent used the emitter; the
        child (forked after that) captures and flushes on its own loop: its events arrive,
        nothing raises, and the parent keeps working."""
        settings = settings_for(kafka.bootstrap_servers)
        manager = DebugStateManager(settings)
        corr = uuid.uuid4()
        parent_ids = [await manager.capture_snapshot(corr, "parent", {"i": i}) for i in range(5)]
        assert await manager.flush(20)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(read_end)

                async def child() -> str:
                    ids = [
                        await manager.capture_snapshot(corr, "child", {"c": i}) for i in range(5)
                    ]
                    ok = await manager.flush(20)
                    await manager.close(5)
                    return ",".join(map(str, ids)) + f";{ok};{manager.stats.dropped}"

                os.write(write_end, asyncio.run(child()).encode())
                code = 0
            except BaseException as exc:
                os.write(write_end, f"error: {exc!r}".encode())
            finally:
                os._exit(code)
        os.close(write_end)
        parent_ids += [await manager.capture_snapshot(corr, "parent", {"after": True})]
        assert await manager.flush(20)
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
        report = os.read(read_end, 65536).decode()
        os.close(read_end)
        await manager.close(5)
        assert os.waitstatus_to_exitcode(status) == 0, report
        child_ids, flushed, dropped = report.split(";")
        assert (flushed, dropped) == ("True", "0"), report
        expected = {*map(str, parent_ids), *child_ids.split(",")}
        received = await consume_ids(settings, EventKind.SNAPSHOT, expected=len(expected))
        assert received == expected
