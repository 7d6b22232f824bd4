"""What an operator sees: health and metrics endpoints, logs without secrets, settings in
--help, the dead-letters command, and bounded memory while a backlog drains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from debug_sink.dev.embedded import free_port
from debug_sink.settings import Settings
from debug_sink.sink.runner import Sink
from debug_sink.wire.events import EventKind
from tests import support as s

pytestmark = pytest.mark.timeout(300)

#: The bound the issue asks us to state for a 200k-event backlog (the 1M-event target of the
#: benchmark is 300 MB; a 200k backlog must stay well inside it).
RSS_BOUND_MB = 300


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class TestEndpoints:
    """/healthz is ready only when connected and assigned; /metrics counts what happened."""

    async def test_health_and_metrics(self, db_dsn: str, kafka: Any) -> None:
        """From the moment the endpoint listens until the first batch is committed, every
        /healthz answer is 200 exactly when it says ready, and ready only with PostgreSQL
        and Kafka connected and partitions assigned; it is not ready at first (the group
        join takes seconds) and ready at the end."""
        corr = s.uid()
        await s.produce(
            kafka,
            [
                (s.topic(kafka, EventKind.ERROR), s.error(corr)),
                (s.topic(kafka, EventKind.ERROR), b"{not json"),
            ],
        )
        port = free_port()
        sink = Sink(s.sink_settings(db_dsn, kafka, metrics_port=port, metrics_host="127.0.0.1"))
        task = asyncio.create_task(sink.run())
        samples: list[tuple[int, dict[str, Any]]] = []

        async def ready_after_a_batch() -> bool:
            try:
                status, body = await asyncio.to_thread(http_get, port, "/healthz")
            except urllib.error.URLError:
                return False  # not listening yet
            samples.append((status, json.loads(body)))
            return status == 200 and sink.committed_batches > 0

        try:
            await s.eventually(
                ready_after_a_batch,
                timeout=60,
                what="/healthz ready after the first batch",
                details=lambda: repr(samples[-5:]),
            )
            for status, health in samples:
                assert (status == 200) is health["ready"], (status, health)
                if health["ready"]:
                    assert health["postgres"] is True, health
                    assert health["kafka"] is True, health
                    assert health["assigned_partitions"] >= 1, health
            statuses = [status for status, _ in samples]
            assert statuses[0] == 503, statuses
            assert samples[-1][1]["assigned_partitions"] >= 1
            _, metrics = await asyncio.to_thread(http_get, port, "/metrics")
            text = metrics.decode()
            assert 'debug_sink_rows_written_total{kind="error"} 1.0' in text
            assert "debug_sink_dead_letters_total" in text
            assert 'error_class="not_json"' in text
            assert "debug_sink_batch_seconds_bucket" in text
            status, _ = await asyncio.to_thread(http_get, port, "/nope")
            assert status == 404
        finally:
            sink.stop()
            await asyncio.wait_for(task, 60)


class TestCommandLine:
    """Settings are discoverable; secrets and agent states never reach the logs."""

    def test_run_help_lists_every_setting_with_env_var(self) -> None:
        result = s.run_cli("run", "--help")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        for name in Settings.model_fields:
            assert f"DEBUG_SINK_{name.upper()}" in out, name

    async def test_logs_have_no_secrets_or_states(self, db_dsn: str, kafka: Any) -> None:
        marker = "agent-private-marker-7f3a"
        await s.produce(
            kafka,
            [
                (
                    s.topic(kafka, EventKind.SNAPSHOT),
                    s.snapshot(s.uid(), {"note": marker, "password": "pw-123"}),
                ),
                (s.topic(kafka, EventKind.SNAPSHOT), b'{"agent_state": "' + marker.encode() + b'"'),
            ],
        )
        settings = s.sink_settings(db_dsn.replace("postgres@", "postgres:db-secret-99@", 1), kafka)
        env = s.sink_env(settings)
        env["DEBUG_SINK_KAFKA_SASL_PASSWORD"] = "sasl-secret-42"
        proc = await asyncio.create_subprocess_exec(
            *s.CLI,
            "run",
            "--exit-when-idle",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        logs = (out + err).decode()
        assert proc.returncode == 0, logs[-2000:]
        assert "batch_committed" in logs
        for secret in ("db-secret-99", "sasl-secret-42", "pw-123", marker):
            assert secret not in logs, secret
        lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
        batch = next(line for line in lines if line["event"] == "batch_committed")
        assert batch["dead_letters"] == 1
        assert batch["rows"] == {"snapshot": 1}

    async def test_dead_letters_list(self, db_dsn: str, kafka: Any) -> None:
        await s.produce(
            kafka,
            [
                (s.topic(kafka, EventKind.ERROR), b"[1, 2]"),
                (s.topic(kafka, EventKind.ERROR), {**s.error(s.uid()), "error_severity": "urgent"}),
            ],
        )
        await s.run_sink(s.sink_settings(db_dsn, kafka))
        reader = s.as_reader(db_dsn)
        result = s.run_cli("dead-letters", "list", "--json", "--dsn", reader, "--since", "1h")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert sorted(r["error_class"] for r in rows) == ["not_object", "schema"]
        schema_row = next(r for r in rows if r["error_class"] == "schema")
        assert "error_severity" in schema_row["reason"]
        bad = s.run_cli("dead-letters", "list", "--dsn", db_dsn, "--since", "yesterday")
        assert bad.returncode == 1
        assert "not a duration" in bad.stderr


class TestMemory:
    """Peak RSS while a 200k-event backlog drains stays under RSS_BOUND_MB."""

    @pytest.mark.slow
    async def test_peak_rss_draining_200k(self, db_dsn: str, kafka: Any, tmp_path: Path) -> None:
        await s.create_topics(kafka, partitions=2)
        workload = s.mixed_workload(kafka, 12_500, seed=2, state_bytes=400)  # 200k messages
        assert len(workload.messages) == 200_000
        await s.produce(kafka, workload.messages)
        settings = s.sink_settings(db_dsn, kafka)
        # The log goes to a file: a pipe nobody reads until the end would fill up and stall
        # the sink on its next log line.
        log = tmp_path / "sink.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [*s.CLI, "run", "--exit-when-idle"],
                env=s.sink_env(settings),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        peak = 0
        started = time.monotonic()
        handle = psutil.Process(proc.pid)

        async def sampled_until_exit() -> bool:
            nonlocal peak
            with contextlib.suppress(psutil.NoSuchProcess):
                peak = max(peak, handle.memory_info().rss)
            return proc.poll() is not None

        try:
            await s.eventually(
                sampled_until_exit,
                timeout=240,
                what="the sink draining the backlog and exiting",
                details=lambda: log.read_text(errors="replace")[-2000:],
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, log.read_text(errors="replace")[-2000:]
        peak_mb = peak / 1024 / 1024
        print(
            f"peak RSS draining 200k events: {peak_mb:.0f} MB in {time.monotonic() - started:.1f} s"
        )
        assert peak_mb < RSS_BOUND_MB
        await s.assert_workload_stored(db_dsn, workload)
