"""The Live page's figures from a sink's own /metrics (debug_sink.ui.live), and what the
scraper makes of answers that are not one: each is a sink down with a short reason, within
the scraper's deadline."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from debug_sink.metrics import Metrics
from debug_sink.ui.live import Scraper, parse, rates, shown
from tests.ui_support import answer_with, metrics_server


def exposition(consumed: int, written: int) -> str:
    """What a real sink's /metrics says after consuming and writing these many events."""
    metrics = Metrics()
    metrics.consumed.labels(topic="debug.error_events").inc(consumed)
    metrics.consumed.labels(topic="debug.workflow_steps").inc(consumed)
    metrics.written.labels(kind="error").inc(written)
    metrics.dead_letters.labels(topic="debug.error_events", error_class="schema").inc(3)
    metrics.lag.labels(topic="debug.error_events", partition="0").set(7)
    metrics.lag.labels(topic="debug.error_events", partition="1").set(5)
    metrics.parked_rows.set(4)
    metrics.correlator_runs.labels(outcome="ran").inc(2)
    metrics.batches.inc(9)
    return metrics.render().decode()


class TestParse:
    """The sink's exposition becomes the page's figures, summed over labels."""

    def test_figures(self) -> None:
        figures = parse(exposition(10, 15))
        assert figures.events_consumed == 20
        assert figures.events_by_topic == {"debug.error_events": 10, "debug.workflow_steps": 10}
        assert figures.rows_written == 15
        assert figures.dead_letters == 3
        assert figures.lag == 12
        assert figures.lag_by_partition == {"debug.error_events[0]": 7, "debug.error_events[1]": 5}
        assert figures.parked == 4
        assert figures.correlator_runs == {"ran": 2}
        assert figures.batches == 9
        assert figures.version

    def test_rates_between_two_readings(self) -> None:
        before, after = parse(exposition(10, 15)), parse(exposition(30, 55))
        got = rates(before, after, 2.0)
        assert got["events"] == 20.0  # (60 - 20) / 2
        assert got["rows"] == 20.0
        assert got["dead_letters"] == 0.0

    def test_a_restarted_sink_counts_from_zero(self) -> None:
        got = rates(parse(exposition(100, 100)), parse(exposition(5, 5)), 1.0)
        assert got["events"] == 10.0


class TestScraper:
    async def test_a_sink_that_does_not_answer_is_down_with_the_reason(self) -> None:
        (reading,) = await Scraper(["http://127.0.0.1:9/metrics"], timeout=1).read()
        assert reading.figures is None
        assert reading.error is not None
        assert "unreachable" in reading.error

    @pytest.mark.parametrize("url", ["http://127.0.0.1:1/metrics"])
    async def test_first_reading_has_no_rates(self, url: str) -> None:
        (reading,) = await Scraper([url], timeout=1).read()
        assert reading.rates is None


def _ok_head(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n" % (
        len(body),
        extra,
    )


BODY = exposition(10, 15).encode()
FINE = answer_with(_ok_head(BODY), BODY)
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD: dict[str, tuple[Callable[[socket.socket], None], str]] = {
    "not-http": (answer_with(b"\x00\x00\x00\x10garbage-not-http\r\n\r\n"), "not an HTTP answer"),
    "cut-chunk": (answer_with(CHUNKED, b"100\r\nabc"), "cut short"),
    "not-found": (answer_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), "HTTP 404"),
    "too-large": (answer_with(b"HTTP/1.0 200 OK\r\n\r\n", b"#" * (4 << 20) + b"#\n"), "4 MiB"),
    "not-prometheus": (
        answer_with(_ok_head(b"<html>login</html>\n"), b"<html>login</html>\n"),
        "not the Prometheus text format",
    ),
}


class TestAnswers:
    """Whatever a URL answers, its reading has figures or says why not: never an error of
    the page (the Live page renders every reading)."""

    @pytest.mark.parametrize(("answer", "reason"), BAD.values(), ids=BAD.keys())
    async def test_a_broken_answer_is_a_sink_down_with_the_reason(
        self, answer: Callable[[socket.socket], None], reason: str
    ) -> None:
        with metrics_server(answer) as url, metrics_server(FINE) as fine:
            good, bad = await Scraper([fine, url], timeout=10).read()
        assert good.figures is not None  # the next sink is read all the same
        assert bad.figures is None
        assert bad.error is not None
        assert reason in bad.error
        assert bad.error.startswith("invalid: ")
        assert len(bad.error) < 80

    async def test_a_name_that_does_not_resolve_is_unreachable(self) -> None:
        (reading,) = await Scraper(["http://no-such-sink.invalid/metrics"], timeout=2).read()
        assert reading.figures is None
        assert reading.error is not None
        assert reading.error.startswith("unreachable: ")


class TestSecrets:
    """A URL's user name, password and query can be credentials: not on the page."""

    def test_shown(self) -> None:
        assert (
            shown("http://ops:pw@sink:9464/metrics?token=t") == "http://...@sink:9464/metrics?..."
        )
        assert shown("https://[::1]:9464/metrics") == "https://[::1]:9464/metrics"

    @pytest.mark.parametrize(
        "answer",
        [answer_with(b"\x00garbage\r\n\r\n"), answer_with(b"HTTP/1.1 401 No\r\n\r\n"), None],
        ids=["not-http", "401", "refused"],
    )
    async def test_credentials_in_a_url_are_not_shown(
        self, answer: Callable[[socket.socket], None] | None
    ) -> None:
        with metrics_server(answer or FINE) as served:
            where = served if answer else "http://127.0.0.1:9/metrics"  # nothing listens
            url = where.replace("//", "//ops:pw-SECRET@", 1) + "?token=tok-SECRET"
            (reading,) = await Scraper([url], timeout=5).read()
        assert reading.figures is None
        assert "SECRET" not in f"{reading.url} {reading.error}"
        assert "ops" not in reading.url
        assert reading.url.endswith("/metrics?...")
