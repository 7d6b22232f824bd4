"""Prometheus metrics and the small HTTP server for ``/metrics`` and ``/healthz``.

Each :class:`Metrics` owns its own registry, so several sinks in one process (tests) do not
collide. Beside the sink's own ``debug_sink_*`` series it carries what prometheus_client's
default registry would have -- ``process_*`` (CPU, memory, open files), ``python_info`` and
``python_gc_*`` -- and ``debug_sink_build_info`` (the package and Python versions), so a
dashboard sees the process and what is deployed. The HTTP server is plain asyncio: two GET
endpoints need no framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from debug_sink.errors import ConfigurationError
from debug_sink.version import package_version
from debug_sink.wire.secrets import safe_name

#: The ``topic`` label of every topic the settings do not name. Producers may create topics
#: (a topic the subscription pattern matches is consumed, and its messages dead-lettered), and
#: each would otherwise be new series of every per-topic metric, without bound.
OTHER_TOPIC = "(other)"


class Metrics:
    """Every metric the sink exports, prefixed ``debug_sink_``."""

    def __init__(self) -> None:
        #: The topics the settings name (:meth:`topic`); None: every topic has its own label.
        self.topics: frozenset[str] | None = None
        self.registry = CollectorRegistry()
        r = self.registry
        # The default registry's collectors read this process only; sharing them is safe.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.build = Info("debug_sink_build", "The running debug-sink", registry=r)
        self.build.info({"version": package_version(), "python": platform.python_version()})
        self.consumed = Counter(
            "debug_sink_events_consumed", "Messages consumed", ["topic"], registry=r
        )
        self.written = Counter(
            "debug_sink_rows_written",
            "Event rows inserted, per table kind (a re-delivered event adds none)",
            ["kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "debug_sink_dead_letters",
            "Messages dead-lettered",
            ["topic", "error_class"],
            registry=r,
        )
        self.parked = Counter(
            "debug_sink_events_parked", "Events parked for a missing parent", registry=r
        )
        self.released = Counter("debug_sink_events_released", "Parked events written", registry=r)
        self.dangling = Counter(
            "debug_sink_references_expired",
            "Events written with a reference NULLed after the grace period",
            registry=r,
        )
        self.duplicates = Counter(
            "debug_sink_snapshots_deduplicated",
            "Snapshots dropped as duplicates of (correlation_id, state_hash)",
            registry=r,
        )
        self.hash_replaced = Counter(
            "debug_sink_state_hash_replaced",
            "Producer-sent state hashes that were wrong",
            registry=r,
        )
        self.redacted = Counter(
            "debug_sink_events_redacted", "Events with redacted values", registry=r
        )
        self.retries = Counter(
            "debug_sink_retries", "Transient failures retried", ["what"], registry=r
        )
        self.batches = Counter("debug_sink_batches", "Batches committed", registry=r)
        self.batch_seconds = Histogram(
            "debug_sink_batch_seconds",
            "Time to write and commit one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_events = Histogram(
            "debug_sink_batch_events",
            "Events per batch",
            registry=r,
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000),
        )
        self.lag = Gauge(
            "debug_sink_consumer_lag",
            "Records in the partition not yet committed to PostgreSQL (high watermark of the "
            "latest fetch - committed offset), per assigned partition, updated every second",
            ["topic", "partition"],
            registry=r,
        )
        self.parked_rows = Gauge("debug_sink_parked_rows", "Events currently parked", registry=r)
        self.inflight_bytes = Gauge(
            "debug_sink_inflight_bytes", "Bytes fetched but not yet committed", registry=r
        )
        self.stalled = Gauge(
            "debug_sink_stalled",
            "1 while stuck for stall_timeout_seconds: a partition with records waiting and no "
            "committed progress (reason=partition), or a batch retried (reason=batch_retry)",
            ["reason"],
            registry=r,
        )
        self.correlator_runs = Counter(
            "debug_sink_correlator_runs", "Correlator runs", ["outcome"], registry=r
        )
        self.correlator_agreement = Gauge(
            "debug_sink_correlator_agreement",
            "Errors where the correlator's blind inference can be checked against links the "
            "agents stated, by outcome: agreed (inferred the stated link), wrong (inferred a "
            "link the agents contradict), missed (did not infer a stated link)",
            ["outcome"],
            registry=r,
        )
        self.correlator_inference = Gauge(
            "debug_sink_correlator_inference",
            "Precision and recall of the correlator's inference measured against the links "
            "agents stated (absent until some are stated)",
            ["measure"],
            registry=r,
        )

    def topic(self, name: str) -> str:
        """The ``topic`` label of ``name``: :data:`OTHER_TOPIC` for a topic the settings do
        not name (when :attr:`topics` is set), else the name with a secret in it replaced."""
        if self.topics is not None and name not in self.topics:
            return OTHER_TOPIC
        return safe_name(name)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpServer:
    """Serves ``GET /metrics`` and ``GET /healthz`` (200 when ready, else 503).

    Small doors for a port that may face a network: at most ``max_connections`` at a time
    (more are answered 503 and closed), a request must arrive whole within ``timeout``
    seconds, and its request line and headers may not exceed ``max_request_bytes`` (431).
    """

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], dict[str, Any]],
        host: str,
        port: int,
        *,
        max_connections: int = 32,
        timeout: float = 5.0,
        max_request_bytes: int = 8192,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._timeout = timeout
        self._max_request = max_request_bytes
        self._active = 0
        self._server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; a port that is taken or a host that does not resolve is a
        :class:`~debug_sink.errors.ConfigurationError` (one line, not a traceback)."""
        if self._server is None:
            try:
                self._server = await asyncio.start_server(
                    self._handle, self._host, self._port, limit=self._max_request
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve /metrics and /healthz on {self._host}:{self._port}: "
                    f"{exc.strerror or exc} (choose another metrics port, or 0 for none)"
                ) from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._active += 1
        try:
            if self._active > self._max_connections:
                _respond(writer, "503 Service Unavailable", "text/plain", b"busy\n")
            else:
                status, ctype, body = await asyncio.wait_for(self._serve(reader), self._timeout)
                _respond(writer, status, ctype, body)
            await asyncio.wait_for(writer.drain(), self._timeout)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        try:
            request = await reader.readline()
            size = len(request)
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                size += len(line)
                if size > self._max_request:
                    return _too_large()
        except (ValueError, asyncio.LimitOverrunError):  # one line over the limit
            return _too_large()
        if size > self._max_request:
            return _too_large()
        parts = request.decode("latin-1").split()
        path = parts[1] if len(parts) >= 2 else "/"
        if path.startswith("/metrics"):
            return "200 OK", CONTENT_TYPE_LATEST, self._metrics.render()
        if path.startswith("/healthz"):
            health = self._health()
            status = "200 OK" if health.get("ready") else "503 Service Unavailable"
            return status, "application/json", orjson.dumps(health)
        return "404 Not Found", "text/plain", b"not found\n"


def _too_large() -> tuple[str, str, bytes]:
    return "431 Request Header Fields Too Large", "text/plain", b"request too large\n"


def _respond(writer: asyncio.StreamWriter, status: str, ctype: str, body: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
