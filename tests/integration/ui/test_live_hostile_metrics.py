"""The Live page when a configured sink's ``/metrics`` misbehaves: it shows that sink down
with a short reason and renders the others, within the scrape deadline, and shows nothing a
sink's URL or answer could smuggle in (credentials, markup).

(From a red team's findings: a port that does not speak HTTP made the page a 500, and an
answer that trickled held it for as long as it trickled.)"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.ui_support import answer_with, metrics_server, running_view, trickling, view_settings

NOT_HTTP = answer_with(b"\x00\x00\x00\x10garbage-not-http\r\n\r\n")
CUT_BODY = answer_with(
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n",
    b"# HELP debug_sink_events_consumed_total x\n",
)
NOT_PROMETHEUS = answer_with(b"HTTP/1.1 200 OK\r\n\r\n", b"<html>a login page</html>\n")


def _good(client: socket.socket) -> None:
    body = b'debug_sink_consumer_lag{topic="t",partition="0"} 4321\n'
    client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(NOT_HTTP, "not an HTTP answer"), (CUT_BODY, "cut short"),
     (NOT_PROMETHEUS, "not the Prometheus text format")],
    ids=["not-http", "cut-body", "not-prometheus"],
)  # fmt: skip
async def test_a_broken_metrics_answer_shows_the_sink_down_not_a_500(
    db_dsn: str, answer: Callable[[socket.socket], None], reason: str
) -> None:
    with metrics_server(answer) as broken, metrics_server(_good) as good:
        settings = view_settings(db_dsn, ui_metrics_urls=(broken, good))
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/live", timeout=30)
    assert response.status_code == 200, response.text[-400:]
    assert response.text.count('class="badge status-failed">down') == 1
    assert reason in response.text
    assert response.text.count('class="badge status-ok">up') == 1
    assert "4,321" in response.text  # the other sink's figures


async def test_a_trickling_metrics_answer_does_not_hold_the_page(db_dsn: str) -> None:
    """Three sinks that answer a byte every half second for 20 s: the page answers within the
    scrape timeout (2 s) and some slack, not after 20 s (or 60 s, one after the other)."""
    with metrics_server(trickling(20)) as metrics:
        urls = tuple(f"{metrics}?sink={n}" for n in range(3))
        settings = view_settings(db_dsn, ui_metrics_urls=urls)
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            started = time.monotonic()
            response = await http.get("/live", timeout=60)
            took = time.monotonic() - started
    assert response.status_code == 200
    assert took < 6, f"the Live page took {took:.1f} s (scrape timeout 2 s)"
    assert response.text.count("no whole answer within 2 s") == 3


async def test_credentials_in_a_metrics_url_are_not_on_the_page(db_dsn: str) -> None:
    with metrics_server(NOT_HTTP) as metrics:
        secret = metrics.replace("//", "//ops:pw-SECRET@") + "?token=tok-SECRET"
        refused = "http://ops:pw-SECRET@127.0.0.1:9/metrics?token=tok-SECRET"
        settings = view_settings(db_dsn, ui_metrics_urls=(secret, refused))
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/live", timeout=30)
    assert response.status_code == 200
    assert "SECRET" not in response.text
    assert len(re.findall(r"http://\.\.\.@127\.0\.0\.1:\d+/metrics\?\.\.\.", response.text)) == 2


def hostile_labels(client: socket.socket) -> None:
    """A sink's /metrics whose label values (topic names, classes, version) carry markup."""
    x = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>"
    body = (
        f'debug_sink_events_consumed_total{{topic="{x}"}} 5\n'
        f'debug_sink_dead_letters_total{{error_class="{x}"}} 1\n'
        f'debug_sink_consumer_lag{{topic="{x}",partition="{x}"}} 3\n'
        f'debug_sink_build_info{{version="{x}"}} 1\n'
    ).encode()
    client.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def test_markup_in_metric_labels_is_text_on_the_live_page(db_dsn: str) -> None:
    with metrics_server(hostile_labels) as metrics:
        settings = view_settings(db_dsn, ui_metrics_urls=(metrics,))
        async with running_view(settings) as url, httpx.AsyncClient(base_url=url) as http:
            first = await http.get("/live", timeout=30)
            second = await http.get("/live", timeout=30)
    for response in (first, second):
        assert response.status_code == 200
        assert "<script>window" not in response.text
        assert "<img src=x" not in response.text
        assert "&lt;script&gt;window" in response.text  # shown, as text
