"""The web view in a real headless browser (Chromium driven by Playwright): what a person
does -- open the list, filter it to failed workflows, open one, read its waterfall, an
error's recovery and state diff, the known fixes -- and that markup stored as an agent name
stays text and runs nothing.

Chromium is the system's (Debian: ``apt-get install chromium``; or
``DEBUG_SINK_TEST_CHROMIUM=/path/to/chrome``): Playwright downloads no browser. Without one
these tests are skipped with that reason. One browser for the module, a fresh page per
test; the data is the demo fleet's, loaded once.

``DEBUG_SINK_SCREENSHOTS=docs/screenshots`` makes the tests save a screenshot of each page
there (the README shows them); without it nothing is written.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from debug_sink.read.queries import DebugQueries
from tests import support as s
from tests.ui_support import (
    INJECTION,
    running_view,
    store_dead_letter,
    store_fleet,
    view_settings,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SCREENSHOTS = os.environ.get("DEBUG_SINK_SCREENSHOTS")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium() -> str:
    """The system's Chromium, or skip saying how to get one."""
    candidates = [
        os.environ.get("DEBUG_SINK_TEST_CHROMIUM"),
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.skip(
        "no Chromium for the browser tests: apt-get install chromium (Debian), or set "
        "DEBUG_SINK_TEST_CHROMIUM to a Chrome/Chromium binary"
    )


@dataclass
class Site:
    url: str
    dsn: str
    queries: DebugQueries
    injected: uuid.UUID
    browser: Any


@dataclass
class Tab:
    """A page and what it saw: dialogs opened, script errors, console errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class FakeSink:
    """A /metrics like a running sink's, its counters moving between two readings."""

    def __init__(self) -> None:
        from debug_sink.metrics import Metrics

        self.metrics = Metrics()
        self.metrics.build.info({"version": "0.1.0"})
        self.metrics.lag.labels(topic="debug.error_events", partition="0").set(120)
        self.metrics.lag.labels(topic="debug.workflow_steps", partition="1").set(35)
        self.metrics.parked_rows.set(2)
        self.metrics.correlator_runs.labels(outcome="ran").inc(42)
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.metrics.consumed.labels(topic="debug.workflow_steps").inc(1840)
        self.metrics.written.labels(kind="step").inc(1790)
        self.metrics.batches.inc(4)
        body = self.metrics.render()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/metrics"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest_asyncio.fixture(scope="module")
async def site(module_db: str) -> AsyncIterator[Site]:
    executable = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    _, injected = await store_fleet(module_db, workflows=30)
    await store_dead_letter(
        module_db,
        value=b'{"error_severity": "urgent", "api_key": "[REDACTED]"}',
        reason="error_severity: Input should be 'low', 'medium', 'high' or 'critical'",
    )
    sink = FakeSink()
    metrics_url = await sink.start()
    settings = view_settings(module_db, ui_metrics_urls=(metrics_url,))
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    try:
        async with (
            running_view(settings) as url,
            await DebugQueries.connect(s.as_reader(module_db)) as queries,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(executable_path=executable, args=args)
            try:
                yield Site(url.rstrip("/"), module_db, queries, injected, browser)
            finally:
                await browser.close()
    finally:
        await sink.stop()


@pytest_asyncio.fixture
async def tab(site: Site) -> AsyncIterator[Tab]:
    context = await site.browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    seen = Tab(page)

    async def dismiss(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on(
        "console",
        lambda message: seen.errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield seen
    finally:
        await context.close()


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)


async def screenshot(tab: Tab, name: str, *, full_page: bool = True) -> None:
    """Save the page as docs/screenshots/NAME.png when asked to (see the module doc)."""
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, f"{name}.png")
        await tab.page.screenshot(path=path, full_page=full_page)


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def texts(tab: Tab, selector: str) -> list[str]:
    return [t.strip() for t in await tab.page.locator(selector).all_inner_texts()]


class TestFindingAWorkflow:
    """The demo's workflows load; a person filters them to the failed ones and opens one."""

    async def test_filter_to_failed_and_open_one(self, site: Site, tab: Tab) -> None:
        page = tab.page
        await page.goto(site.url + "/workflows")
        statuses = await texts(tab, "#workflows tbody td[data-label=Status]")
        assert len(statuses) == 25  # a full first page of the 31 stored
        await screenshot(tab, "workflows")

        await page.get_by_label("Status").select_option("failed")
        await page.get_by_role("button", name="Apply").click()
        await page.wait_for_url("**/workflows?*status=failed*")
        failed = await texts(tab, "#workflows tbody td[data-label=Status]")
        expected = await site.queries.workflows(EPOCH, status="failed")
        assert failed == ["failed"] * len(expected)
        assert failed

        first = page.locator("#workflows tbody a.id").first
        title = await first.get_attribute("title")
        await first.click()
        await page.wait_for_url(f"**/workflows/{title}")
        assert title in await page.locator("h1").inner_text()
        assert "failed" in await page.locator("h1 .badge").inner_text()
        assert not tab.errors, tab.errors

    async def test_waterfall_shows_every_step(self, site: Site, tab: Tab) -> None:
        """One row per step number under its parent, each attempt a bar, nested rows
        indented under their parent."""
        (corr,) = [
            r[0]
            for r in await fetch(
                site.dsn,
                "SELECT correlation_id FROM debug_workflow_steps WHERE parent_step_id IS NOT NULL "
                "GROUP BY correlation_id ORDER BY count(*) DESC, correlation_id LIMIT 1",
            )
        ]
        steps = await fetch(
            site.dsn,
            "SELECT step_number, attempt, operation_name, parent_step_id FROM "
            "debug_workflow_steps WHERE correlation_id = $1",
            corr,
        )
        page = tab.page
        await page.goto(f"{site.url}/workflows/{corr}")
        rows = page.locator("#waterfall li.kind-step")
        numbers = {f"#{r['step_number']}" for r in steps}
        assert await rows.count() == len(numbers)
        labels = await rows.locator(".wf-label").all_inner_texts()
        assert {label.split()[0] for label in labels} == numbers
        for r in steps:
            assert any(r["operation_name"] in label for label in labels)
        assert await rows.locator("rect.seg").count() == len(steps)
        nested = {f"#{r['step_number']}" for r in steps if r["parent_step_id"]}
        deeper = await page.locator(
            "#waterfall li.kind-step:not(.depth-0) .wf-label"
        ).all_inner_texts()
        assert {label.split()[0] for label in deeper} == nested
        assert await page.locator("#waterfall li.kind-llm").count() > 0
        await screenshot(tab, "workflow")
        assert not tab.errors, tab.errors


class TestAnError:
    """An error on a workflow's page shows the recovery that fixed it and the state diff."""

    async def test_recovery_and_state_diff(self, site: Site, tab: Tab) -> None:
        links = await fetch(
            site.dsn,
            "SELECT c.correlation_id, c.error_event_id, c.recovery_strategy, c.link_source, "
            "c.confidence_score FROM debug_error_success_correlation AS c "
            "ORDER BY c.link_source DESC, c.error_event_id",
        )
        chosen = None
        for link in links:  # the first (stated first) whose error changed the state
            diffs = await site.queries.error_diffs(
                await site.queries.timeline(link["correlation_id"])
            )
            diff = diffs[link["error_event_id"]].diff
            if diff:
                chosen = link, diff
                break
        assert chosen is not None
        link, diff = chosen
        page = tab.page
        await page.goto(f"{site.url}/workflows/{link['correlation_id']}")
        card = page.locator(f"#error-{link['error_event_id']}")
        recovery = await card.locator(".recovered").inner_text()
        assert link["recovery_strategy"] in recovery
        assert link["link_source"] in recovery
        assert f"confidence {float(link['confidence_score']) * 100:.1f}%" in recovery
        changes = card.locator("table.diff tbody tr:not(.diff-head)")
        assert await changes.count() == len(diff)
        keys = await changes.locator("th").all_inner_texts()
        assert [k.strip() for k in keys] == [
            f"[{c.path[-1]}]" if isinstance(c.path[-1], int) else str(c.path[-1]) for c in diff
        ]
        await card.scroll_into_view_if_needed()
        assert not tab.errors, tab.errors


class TestKnownFixes:
    async def test_strategies_ranked(self, site: Site, tab: Tab) -> None:
        """Choosing an error type lists its strategies in known_fixes() order, most
        successful first."""
        types = [t["error_type"] for t in await site.queries.error_type_names()]
        ranked = {}
        for error_type in types:
            fixes = await site.queries.known_fixes(error_type)
            if len(fixes) >= 2:
                ranked[error_type] = fixes
        assert ranked
        error_type, fixes = next(iter(ranked.items()))
        page = tab.page
        await page.goto(site.url + "/known-fixes")
        await screenshot(tab, "known-fixes")
        await page.get_by_label("Error type", exact=True).select_option(error_type)
        await page.get_by_role("button", name="Show all its fixes").click()
        await page.wait_for_url("**/known-fixes?error_type=*")
        assert await texts(tab, "td.rank") == [str(i) for i in range(1, len(fixes) + 1)]
        assert await texts(tab, "td.strategy") == [f["recovery_strategy"] for f in fixes]
        counts = [int(c.replace(",", "")) for c in await texts(tab, "td[data-label=Recovered]")]
        assert counts == sorted(counts, reverse=True)
        example = page.locator("td.examples a").first
        await example.click()
        await page.wait_for_url("**/workflows/*")
        assert not tab.errors, tab.errors


class TestUntrustedText:
    async def test_script_in_an_agent_name_is_text(self, site: Site, tab: Tab) -> None:
        """Stored ``<script>`` renders as text on the list, the filter and the workflow
        page; nothing runs (no dialog, nothing set on the window)."""
        page = tab.page
        for path in ("/workflows", f"/workflows/{site.injected}", "/known-fixes"):
            await page.goto(site.url + path)
            await page.wait_for_load_state("load")
            assert await page.evaluate("typeof window.__pwned") == "undefined", path
        await page.goto(f"{site.url}/workflows/{site.injected}")
        shown = page.get_by_text(INJECTION, exact=True)
        assert await shown.count() >= 2  # agent chips of the summary and the waterfall
        await page.goto(site.url + "/workflows")
        await page.get_by_label("Agent").select_option(INJECTION)
        await page.get_by_role("button", name="Apply").click()
        await page.wait_for_url("**/workflows?*agent=*")
        assert await page.locator("#workflows tbody tr").count() == 1
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        assert tab.dialogs == []
        assert not tab.errors, tab.errors


class TestEveryPage:
    """Each page loads without a script error or a blocked resource (the CSP reports
    those as console errors), works from the keyboard and fits a phone."""

    PAGES: tuple[tuple[str, str], ...] = (
        ("/workflows", "workflows"),
        ("/known-fixes", "known-fixes"),
        ("/dead-letters", "dead-letters"),
        ("/live", "live"),
    )

    async def test_pages_load_clean_and_live_refreshes(self, site: Site, tab: Tab) -> None:
        page = tab.page
        for path, name in self.PAGES:
            await page.goto(site.url + path)
            await page.wait_for_load_state("load")
            if name == "live":
                # the script ran under the CSP (it adds the Pause button); a second reading
                # of the sink's /metrics gives rates (the first has nothing to subtract)
                await page.get_by_role("button", name="Pause").wait_for()
                await page.wait_for_timeout(600)
                await page.reload()
                await expect(page.locator("#live")).not_to_contain_text("…")
                assert "down" not in await page.locator("#live .card").inner_text()
            if name not in ("workflows", "known-fixes"):
                await screenshot(tab, name)
        assert not tab.errors, tab.errors
        assert tab.dialogs == []

    async def test_keyboard_first_stop_is_skip_link(self, site: Site, tab: Tab) -> None:
        page = tab.page
        await page.goto(site.url + "/workflows")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"
        unlabeled = await page.evaluate(
            "[...document.querySelectorAll('input, select')]"
            ".filter(e => !e.labels || e.labels.length === 0).length"
        )
        assert unlabeled == 0

    @pytest.mark.parametrize("path", ["/workflows", "/workflows/{injected}", "/known-fixes"])
    async def test_fits_a_phone(self, site: Site, tab: Tab, path: str) -> None:
        page = tab.page
        await page.set_viewport_size(PHONE)
        await page.goto(site.url + path.format(injected=site.injected))
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
        if path == "/workflows":
            await screenshot(tab, "workflows-phone", full_page=False)
