"""The Live page's figures from a sink's own /metrics (debug_sink.ui.live), and what the
scraper makes of answers that are not one: each is a sink down with a short reason, within
the scraper's deadline."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from debug_sink.metrics import Metrics
from debug_sink.ui.live import Scraper, parse, rates, shown
from tests.ui_support import answer_with, metrics_server, trickling


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


def _chunked(body: bytes) -> bytes:
    half = len(body) // 2
    return b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nTrailer: x\r\n\r\n" % (
        half,
        body[:half],
        len(body) - half,
        body[half:],
    )


BODY = exposition(10, 15).encode()
FINE = answer_with(_ok_head(BODY), BODY)
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
GOOD: dict[str, Callable[[socket.socket], None]] = {
    "content-length": answer_with(_ok_head(BODY), BODY),
    "chunked": answer_with(CHUNKED, _chunked(BODY)),
    "until-closed": answer_with(b"HTTP/1.0 200 OK\r\n\r\n", BODY),
    "after-100-continue": answer_with(b"HTTP/1.1 100 Continue\r\n\r\n" + _ok_head(BODY), BODY),
    "3-mib": answer_with(
        _ok_head(b"# padding\n" * 300_000 + BODY), b"# padding\n" * 300_000 + BODY
    ),
}
BAD: dict[str, tuple[Callable[[socket.socket], None], str]] = {
    "not-http": (answer_with(b"\x00\x00\x00\x10garbage-not-http\r\n\r\n"), "not an HTTP answer"),
    "closed-at-once": (answer_with(b""), "closed without an answer"),
    "cut-body": (answer_with(_ok_head(b"x" * 5000), BODY[:100]), "cut short"),
    "cut-chunk": (answer_with(CHUNKED, b"100\r\nabc"), "cut short"),
    "bad-chunk-size": (answer_with(CHUNKED, b"zz\r\nabc\r\n0\r\n\r\n"), "chunk size"),
    "bad-header": (answer_with(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), "not an HTTP"),
    "huge-header": (answer_with(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200_000), "too large"),
    "not-found": (answer_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), "HTTP 404"),
    "redirect": (
        answer_with(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\n\r\n"),
        "HTTP 302",
    ),
    "claims-too-large": (
        answer_with(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
        "more than 4 MiB",
    ),
    "too-large": (answer_with(b"HTTP/1.0 200 OK\r\n\r\n", b"#" * (4 << 20) + b"#\n"), "4 MiB"),
    "compressed": (
        answer_with(_ok_head(b"\x1f\x8b", b"Content-Encoding: gzip\r\n"), b"\x1f\x8b"),
        "compressed",
    ),
    "not-prometheus": (
        answer_with(_ok_head(b"<html>login</html>\n"), b"<html>login</html>\n"),
        "not the Prometheus text format",
    ),
}


class TestAnswers:
    """Whatever a URL answers, its reading has figures or says why not: never an error of
    the page (the Live page renders every reading)."""

    @pytest.mark.parametrize("answer", GOOD.values(), ids=GOOD.keys())
    async def test_a_sink_answers_in_any_http_framing(
        self, answer: Callable[[socket.socket], None]
    ) -> None:
        with metrics_server(answer) as url:
            (reading,) = await Scraper([url], timeout=10).read()
        assert reading.error is None
        assert reading.figures is not None
        assert reading.figures.events_consumed == 20

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

    async def test_a_url_that_can_never_work_is_a_sink_down(self) -> None:
        readings = await Scraper(
            ["http://127.0.0.1:99999/metrics", "http://127.0.0.1:x/metrics"], timeout=10
        ).read()
        assert [r.error for r in readings] == ["invalid: not a valid port"] * 2

    async def test_a_name_that_does_not_resolve_is_unreachable(self) -> None:
        (reading,) = await Scraper(["http://no-such-sink.invalid/metrics"], timeout=2).read()
        assert reading.figures is None
        assert reading.error is not None
        assert reading.error.startswith("unreachable: ")


class TestDeadline:
    """The page waits ``timeout`` for the whole of every answer, not for each read."""

    @pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
    async def test_a_trickling_answer_is_cut_at_the_deadline(self, headers_too: bool) -> None:
        with metrics_server(trickling(10, headers_too=headers_too)) as url:
            started = time.monotonic()
            (reading,) = await Scraper([url], timeout=0.5).read()
            took = time.monotonic() - started
        assert reading.figures is None
        assert reading.error == "unreachable: no whole answer within 0.5 s"
        assert took < 4, f"{took:.1f} s for a 0.5 s deadline (the answer lasts 10 s)"

    async def test_slow_sinks_do_not_add_up(self) -> None:
        """Read at once: five slow sinks cost the page one deadline, and a good one next to
        them has its figures."""
        with metrics_server(trickling(10)) as slow, metrics_server(FINE) as fast:
            urls = [f"{slow}?{n}" for n in range(5)] + [fast]
            started = time.monotonic()
            readings = await Scraper(urls, timeout=1).read()
            took = time.monotonic() - started
        assert [r.figures is None for r in readings] == [True] * 5 + [False]
        assert took < 4, f"{took:.1f} s for five sinks with a 1 s deadline"


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


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate with")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class TestTls:
    """``https://`` URLs: the certificate is checked as a browser would."""

    async def test_a_trusted_certificate(
        self, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cert, key = tls_files
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the default context trusts
        with metrics_server(FINE, tls=server) as url:
            (reading,) = await Scraper([url], timeout=10).read()
        assert url.startswith("https://")
        assert reading.error is None
        assert reading.figures is not None

    async def test_an_untrusted_certificate_is_a_sink_down(
        self, tls_files: tuple[Path, Path]
    ) -> None:
        cert, key = tls_files
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        with metrics_server(FINE, tls=server) as url:
            (reading,) = await Scraper([url], timeout=10).read()
        assert reading.figures is None
        assert reading.error is not None
        assert reading.error.startswith("unreachable: TLS certificate refused")
