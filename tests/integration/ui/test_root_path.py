"""The web view published under a path prefix, behind a real reverse proxy that strips it
(``DEBUG_SINK_UI_ROOT_PATH``), against real PostgreSQL and the real server: every URL a page
writes -- links, the stylesheet and script, forms, the Live page's refresh, the *Older*
cursors, redirects -- starts with the prefix and, followed through the proxy, answers; a
forged ``X-Forwarded-Prefix`` changes nothing.

The proxy (:func:`stripping_proxy`) is a few lines of asyncio: it answers only paths under
its prefix (anything else is its own 404, as an ingress's would be), strips the prefix and
forwards the bytes, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from debug_sink.ui.security import CONTENT_SECURITY_POLICY
from tests.ui_support import (
    INJECTION,
    Stored,
    running_view,
    store_dead_letter,
    store_fleet,
    view_settings,
)

PREFIX = "/debug-sink"
#: Pages fetched at most by the crawl (the demo's workflows link to hundreds of events).
CRAWL_LIMIT = 160


@pytest_asyncio.fixture(scope="module")
async def stored(module_db: str) -> Stored:
    demo, injected = await store_fleet(module_db, workflows=12)
    letters = [
        await store_dead_letter(
            module_db, value=b'{"note": "' + INJECTION.encode() + b'"}', reason="schema", offset=n
        )
        for n in range(3)
    ]
    return Stored(module_db, demo, injected, letters)


@contextlib.asynccontextmanager
async def stripping_proxy(upstream: str, prefix: str) -> AsyncIterator[str]:
    """A reverse proxy on a free loopback port publishing ``upstream`` under ``prefix``:
    ``GET PREFIX/x`` is forwarded as ``GET /x`` (``Connection: close``), anything outside
    the prefix is the proxy's own 404. Its base URL (the prefix included)."""
    target = urlsplit(upstream)
    assert target.hostname is not None
    assert target.port is not None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *headers = head.decode("latin-1").split("\r\n")
            method, path, version = request_line.split(" ")
            if path != prefix and not path.startswith((prefix + "/", prefix + "?")):
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                return
            path = path[len(prefix) :]
            path = path if path.startswith("/") else "/" + path
            kept = [h for h in headers if h and not h.lower().startswith("connection:")]
            forwarded = "\r\n".join([f"{method} {path} {version}", *kept, "connection: close"])
            up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
            try:
                up_writer.write(forwarded.encode("latin-1") + b"\r\n\r\n")
                await up_writer.drain()
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            finally:
                up_writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://localhost:{port}{prefix}"
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class Published:
    base: str  # the proxy's URL, the prefix included
    origin: str  # the proxy's scheme://host:port
    http: httpx.AsyncClient  # on the proxy's origin


@pytest_asyncio.fixture(scope="module")
async def published(stored: Stored) -> AsyncIterator[Published]:
    settings = view_settings(stored.dsn, ui_root_path=PREFIX)
    async with (
        running_view(settings) as url,
        stripping_proxy(url, PREFIX) as base,
    ):
        origin = base[: -len(PREFIX)]
        async with httpx.AsyncClient(base_url=origin, timeout=30) as http:
            yield Published(base, origin, http)


class _Urls(HTMLParser):
    """Every URL an HTML page makes a browser load or go to."""

    ATTRIBUTES = frozenset({"href", "src", "action", "data-refresh", "formaction", "srcset"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.ATTRIBUTES and value is not None:
                self.urls.append((tag, name, value))


def urls_of(html: str) -> list[tuple[str, str, str]]:
    parser = _Urls()
    parser.feed(html)
    return parser.urls


def assert_under_prefix(page: str, html: str) -> list[str]:
    """The page's URLs (fragments of itself aside), each asserted to be under the prefix."""
    found = []
    for tag, attribute, value in urls_of(html):
        if value.startswith("#"):
            continue
        assert value.startswith(PREFIX + "/"), (page, tag, attribute, value)
        found.append(value)
    assert found, page
    return found


class TestEveryUrlIsUnderThePrefix:
    async def test_crawl_every_page_kind_through_the_proxy(
        self, published: Published, stored: Stored
    ) -> None:
        """From the root, every page reached through the proxy writes only URLs under the
        prefix, and each of them answers 200 through the proxy (pages, assets, forms, the
        cursors of both lists, the Live page's refresh)."""
        start = [
            PREFIX + "/",
            PREFIX + "/workflows?limit=3",  # an Older cursor
            PREFIX + "/dead-letters?limit=1",  # and the letters'
            PREFIX + f"/workflows/{stored.injected}",
            PREFIX + "/known-fixes",
            PREFIX + "/live",
            PREFIX + "/no-such-page",  # the 404 page's links too
        ]
        queue = list(start)
        seen: set[str] = set(queue)
        fetched = 0
        kinds: set[str] = set()
        while queue and fetched < CRAWL_LIMIT:
            url = queue.pop(0)
            response = await published.http.get(url, follow_redirects=True)
            fetched += 1
            expected = 404 if url.endswith("/no-such-page") else 200
            assert response.status_code == expected, (url, response.status_code)
            assert response.url.path.startswith(PREFIX + "/"), (url, str(response.url))
            kinds.add(response.url.path[len(PREFIX) :].split("/")[1])
            if not response.headers["content-type"].startswith("text/html"):
                continue
            for found in assert_under_prefix(url, response.text):
                # Events are many and alike: a few suffice; every other URL is followed.
                if found not in seen and (
                    "/events/" not in found or sum("/events/" in s for s in seen) < 5
                ):
                    seen.add(found)
                    queue.append(found)
        assert {"workflows", "events", "known-fixes", "dead-letters", "live", "static"} <= kinds

    async def test_forms_and_the_live_refresh(self, published: Published) -> None:
        workflows = (await published.http.get(PREFIX + "/workflows")).text
        forms = [v for t, a, v in urls_of(workflows) if a == "action"]
        assert forms == [PREFIX + "/workflows"]
        answer = await published.http.get(forms[0], params={"status": "failed"})
        assert answer.status_code == 200
        live = (await published.http.get(PREFIX + "/live")).text
        (refresh,) = [v for t, a, v in urls_of(live) if a == "data-refresh"]
        assert refresh == PREFIX + "/live"
        assert (await published.http.get(refresh)).status_code == 200

    async def test_redirects_stay_under_the_prefix(
        self, published: Published, stored: Stored
    ) -> None:
        home = await published.http.get(PREFIX + "/")
        assert home.status_code == 303
        assert home.headers["location"] == PREFIX + "/workflows"
        target = stored.demo[0]
        found = await published.http.get(PREFIX + "/workflows", params={"q": str(target)})
        assert found.status_code == 303
        assert found.headers["location"] == f"{PREFIX}/workflows/{target}"

    async def test_the_navigation_marks_the_current_page(self, published: Published) -> None:
        html = (await published.http.get(PREFIX + "/known-fixes")).text
        assert f'<a href="{PREFIX}/known-fixes" aria-current="page">' in html

    async def test_security_headers_and_static_caching_hold(self, published: Published) -> None:
        page = await published.http.get(PREFIX + "/workflows")
        asset = await published.http.get(PREFIX + "/static/style.css")
        assert asset.status_code == 200
        for response in (page, asset):
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "no-store" not in asset.headers.get("cache-control", "")


class TestTheHeaderIsNotTrusted:
    @pytest.mark.parametrize(
        "forged", ["//evil.example", "https://evil.example", '/x"><script>alert(1)</script>']
    )
    async def test_x_forwarded_prefix_changes_nothing(
        self, published: Published, forged: str
    ) -> None:
        for path in ("/workflows", "/live", "/"):
            response = await published.http.get(
                PREFIX + path, headers={"x-forwarded-prefix": forged}
            )
            assert "evil" not in response.headers.get("location", "")
            assert "evil" not in response.text
            assert "alert(1)" not in response.text
            if response.status_code == 200:
                assert_under_prefix(path, response.text)


async def test_without_a_root_path_urls_are_the_routes(stored: Stored) -> None:
    """The default: the view's own paths, as before."""
    async with (
        running_view(view_settings(stored.dsn)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        html = (await http.get("/workflows")).text
        values = [v for _, _, v in urls_of(html) if not v.startswith("#")]
        assert values
        assert all(v.startswith("/") and not v.startswith(PREFIX) for v in values)
        assert (await http.get("/")).headers["location"] == "/workflows"


async def test_a_person_clicks_through_behind_the_prefix(published: Published) -> None:
    """In Chromium, through the proxy: the root leads to the list, styled (the stylesheet
    and script load, nothing is refused); the filter form, a workflow, its raw event and
    the navigation all stay under the prefix; the Live page's script refreshes from it."""
    from playwright.async_api import async_playwright

    from tests.integration.ui.test_browser import chromium

    executable = chromium()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    errors: list[str] = []
    requested: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda request: requested.append(request.url))

            await page.goto(published.base + "/")
            assert page.url == published.base + "/workflows"
            # the stylesheet applied: the top bar is laid out as a flex row
            header = page.locator("header.top")
            assert await header.evaluate("e => getComputedStyle(e).display") == "flex"

            await page.get_by_label("Status").select_option("failed")
            await page.get_by_role("button", name="Apply").click()
            await page.wait_for_url(published.base + "/workflows?*status=failed*")
            first = page.locator("#workflows tbody a.id").first
            title = await first.get_attribute("title")
            await first.click()
            await page.wait_for_url(f"{published.base}/workflows/{title}")
            await page.get_by_role("link", name="Raw event (with stack trace)").first.click()
            await page.wait_for_url(published.base + "/events/*")

            await (
                page.get_by_role("navigation", name="Pages")
                .get_by_role("link", name="Live")
                .click()
            )
            await page.wait_for_url(published.base + "/live")
            await page.get_by_role("button", name="Pause").wait_for()  # app.js ran
            async with page.expect_request(published.base + "/live", timeout=12_000):
                pass  # the 5 s refresh, fetched under the prefix
        finally:
            await browser.close()
    assert not errors, errors
    outside = [u for u in requested if not u.startswith(published.base + "/")]
    assert not outside, outside
