"""The Live page's figures: what the sinks report on their own ``/metrics``.

Owns :class:`Scraper` (reads every configured ``/metrics`` URL -- each address of a host
name that has several, as a compose service with replicas does -- and keeps the previous
reading of each, so that counters become rates) and the pure parts: :func:`parse` (the
Prometheus text format into the few figures the page shows, per sink) and :func:`rates`.

Guarantees: a sink whose ``/metrics`` fails in any way (refused, not HTTP, not the
Prometheus format, cut short, too large, too slow) is shown as down with a short reason,
never an error of the page, and the page shows the other sinks; the page waits at most
``timeout`` seconds for all of them together (every URL is read at the same time, each
against one deadline for the whole request: resolving, connecting, the answer's every
byte), and a body is read up to 4 MiB; a reading is at most ``timeout`` seconds old when
the page renders; the URLs come from the settings only, never from a request or an answer
(a redirect is shown as its status, not followed; no proxy); the page and the reasons
never show a URL's user name, password or query. Not guaranteed: rates on the first
reading of a sink (there is nothing to subtract yet: the page says so, and has them on its
next refresh).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Reading", "Scraper", "SinkFigures", "parse", "rates", "shown"]

#: Counters the page turns into rates: name in the exposition -> the page's key.
_RATES: Final = {
    "debug_sink_events_consumed_total": "events",
    "debug_sink_rows_written_total": "rows",
    "debug_sink_dead_letters_total": "dead_letters",
    "debug_sink_batches_total": "batches",
}
_MAX_BYTES: Final = 4 << 20


@dataclass(slots=True)
class SinkFigures:
    """One sink's figures from one reading of its ``/metrics``."""

    events_consumed: float = 0.0
    events_by_topic: dict[str, float] = field(default_factory=dict)
    rows_written: float = 0.0
    rows_by_kind: dict[str, float] = field(default_factory=dict)
    dead_letters: float = 0.0
    dead_letters_by_class: dict[str, float] = field(default_factory=dict)
    batches: float = 0.0
    lag: float = 0.0
    lag_by_partition: dict[str, float] = field(default_factory=dict)
    parked: float = 0.0
    inflight_bytes: float = 0.0
    stalled: dict[str, float] = field(default_factory=dict)
    correlator_runs: dict[str, float] = field(default_factory=dict)
    correlator_agreement: dict[str, float] = field(default_factory=dict)
    batch_seconds_sum: float = 0.0
    batch_seconds_count: float = 0.0
    retries: dict[str, float] = field(default_factory=dict)
    rss_bytes: float | None = None
    version: str | None = None

    def counter(self, key: str) -> float:
        """The total of the counter the page calls ``key`` (see :data:`_RATES`)."""
        return {
            "events": self.events_consumed,
            "rows": self.rows_written,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
        }[key]


def parse(text: str) -> SinkFigures:
    """The figures of one ``/metrics`` exposition (unknown series are ignored)."""
    figures = SinkFigures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "debug_sink_events_consumed_total":
                figures.events_consumed += value
                _add(figures.events_by_topic, labels.get("topic", "?"), value)
            elif name == "debug_sink_rows_written_total":
                figures.rows_written += value
                _add(figures.rows_by_kind, labels.get("kind", "?"), value)
            elif name == "debug_sink_dead_letters_total":
                figures.dead_letters += value
                _add(figures.dead_letters_by_class, labels.get("error_class", "?"), value)
            elif name == "debug_sink_batches_total":
                figures.batches += value
            elif name == "debug_sink_consumer_lag":
                figures.lag += value
                where = f"{labels.get('topic', '?')}[{labels.get('partition', '?')}]"
                figures.lag_by_partition[where] = value
            elif name == "debug_sink_parked_rows":
                figures.parked = value
            elif name == "debug_sink_inflight_bytes":
                figures.inflight_bytes = value
            elif name == "debug_sink_stalled":
                figures.stalled[labels.get("reason", "?")] = value
            elif name == "debug_sink_correlator_runs_total":
                _add(figures.correlator_runs, labels.get("outcome", "?"), value)
            elif name == "debug_sink_correlator_agreement":
                figures.correlator_agreement[labels.get("outcome", "?")] = value
            elif name == "debug_sink_batch_seconds_sum":
                figures.batch_seconds_sum = value
            elif name == "debug_sink_batch_seconds_count":
                figures.batch_seconds_count = value
            elif name == "debug_sink_retries_total":
                _add(figures.retries, labels.get("what", "?"), value)
            elif name == "process_resident_memory_bytes":
                figures.rss_bytes = value
            elif name == "debug_sink_build_info":
                figures.version = labels.get("version")
    return figures


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def rates(before: SinkFigures, after: SinkFigures, seconds: float) -> dict[str, float]:
    """Per second between two readings ``seconds`` apart, for each counter of
    :data:`_RATES`; a counter that went down (the sink restarted) counts from zero."""
    if seconds <= 0:
        return {}
    out = {}
    for key in _RATES.values():
        old, new = before.counter(key), after.counter(key)
        out[key] = (new - old if new >= old else new) / seconds
    return out


@dataclass(frozen=True, slots=True)
class Reading:
    """One sink's state on the page: where it was read (as :func:`shown`), its figures
    (``None`` when it did not answer, with ``error``), and its rates since the previous
    reading (``None`` on the first)."""

    url: str
    figures: SinkFigures | None
    error: str | None = None
    rates: Mapping[str, float] | None = None
    at: float = 0.0


class Scraper:
    """Reads the configured ``/metrics`` URLs; remembers each sink's previous reading."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 2.0) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout
        self._previous: dict[str, tuple[float, SinkFigures]] = {}

    async def read(self) -> list[Reading]:
        """Every sink's reading, in the order of the URLs (a host name's addresses in the
        order the resolver gives them), all read at once within ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        found = await asyncio.gather(*(self._read_url(url, deadline) for url in self.urls))
        return [reading for readings in found for reading in readings]

    async def _read_url(self, url: str, deadline: float) -> list[Reading]:
        try:
            async with asyncio.timeout_at(deadline):
                targets = await _addresses(url)
        except Exception:  # read as it is: its reading says what is wrong with it
            targets = [url]
        return list(await asyncio.gather(*(self._read(t, deadline) for t in targets)))

    async def _read(self, url: str, deadline: float) -> Reading:
        try:
            async with asyncio.timeout_at(deadline):
                text = await _get(url)
            figures = parse(text)
        except Exception as exc:  # whatever one sink answers, the page shows the others
            self._previous.pop(url, None)
            return Reading(shown(url), None, _reason(exc, self.timeout))
        now = time.monotonic()
        previous = self._previous.get(url)
        self._previous[url] = (now, figures)
        # Too close readings (two tabs) give noise, not a rate: keep the older one.
        if previous is not None and now - previous[0] < 0.5:
            self._previous[url] = previous
        got = rates(previous[1], figures, now - previous[0]) if previous else None
        return Reading(shown(url), figures, None, got, now)


class _Invalid(Exception):
    """An answer that is not a sink's ``/metrics``: the page shows this message (ours, short,
    never the URL or the answer's bytes)."""


async def _get(url: str) -> str:
    """The body of ``GET url`` (status 200) as text, at most :data:`_MAX_BYTES`. Bounded in
    size, not in time: the caller's deadline cancels it, which closes the connection.
    httpx speaks HTTP (framing, TLS); no redirect is followed and no proxy variable read
    (the URLs are the settings', and a sink answers itself)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid("not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 -- raises for a port that is no number
    except ValueError:
        raise _Invalid("not a valid port") from None
    try:
        async with (
            httpx.AsyncClient(
                verify=ssl.create_default_context(),
                trust_env=False,
                follow_redirects=False,
                timeout=None,
            ) as client,
            client.stream("GET", url, headers=_HEADERS) as response,
        ):
            if response.status_code != 200:
                raise _Invalid(f"HTTP {response.status_code}")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise _Invalid("a compressed answer (not asked for)")
            length = response.headers.get("content-length", "0")
            if length.isascii() and length.isdigit() and int(length) > _MAX_BYTES:
                raise _TOO_LARGE
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > _MAX_BYTES:
                    raise _TOO_LARGE
    except httpx.TransportError as exc:
        raise _transport_error(exc) from None
    return body.decode("utf-8", "replace")


_HEADERS: Final = {"Accept": "text/plain", "Accept-Encoding": "identity"}
_TOO_LARGE: Final = _Invalid(f"more than {_MAX_BYTES >> 20} MiB: not a sink's /metrics")


def _transport_error(exc: httpx.TransportError) -> BaseException:
    """What went wrong under httpx, as :func:`_reason` reads it: the socket's or TLS's own
    error where there is one, else an :class:`_Invalid` of ours (h11's words quote bytes of
    the answer: never shown)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):  # ssl.SSLError and socket.gaierror are OSErrors
            return cause
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "without sending a response" in text or "disconnected" in text:
            return _Invalid("closed without an answer")
        if "incomplete" in text or "complete message body" in text:
            return _Invalid("answer cut short")
        if "too long" in text or "too large" in text or "buffer" in text:
            return _Invalid("headers too large")
        if "chunk" in text:
            return _Invalid("not an HTTP answer (chunk size)")
        return _Invalid("not an HTTP answer")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.LocalProtocolError):
        return _Invalid("not a URL this page can read")
    return _Invalid(f"unreadable answer ({type(exc).__name__})")


def shown(url: str) -> str:
    """``url`` as the page shows it: without a user name, a password or a query (they can
    hold credentials), which become ``...``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "...@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", ""))


async def _addresses(url: str) -> list[str]:
    """``url`` once per address of its host (plain HTTP to a name only: HTTPS must keep the
    name its certificate is for)."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme != "http" or host is None or _is_address(host):
        return [url]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 80, type=socket.SOCK_STREAM
        )
    except OSError:
        return [url]
    addresses = _unique(str(info[4][0]) for info in infos)
    if len(addresses) <= 1:
        return [url]
    port = f":{parts.port}" if parts.port else ""
    return [
        urlunsplit(parts._replace(netloc=(f"[{a}]" if ":" in a else a) + port)) for a in addresses
    ]


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _unique(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


def _reason(exc: BaseException, timeout: float) -> str:
    """Why a sink shows as down, in a few words of ours: never the URL (it can hold
    credentials) nor the answer's bytes."""
    if isinstance(exc, TimeoutError) and exc.errno is None:  # the deadline, not a socket's
        return f"unreachable: no whole answer within {timeout:g} s"
    if isinstance(exc, _Invalid):
        return f"invalid: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"unreachable: TLS certificate refused ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"unreachable: TLS failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return "unreachable: the host name does not resolve"
    if isinstance(exc, OSError):
        return f"unreachable: {os.strerror(exc.errno) if exc.errno else 'cannot connect'}"
    if isinstance(exc, ValueError):
        return "invalid: not the Prometheus text format"
    return f"invalid: {type(exc).__name__}"
