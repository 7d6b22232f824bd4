"""``pages``: p50/p95 server time of the web view's pages on a database of millions of events.

A database filled as the ``queries`` section's (10M events, 1M workflows; ``--quick``: 1M
events), its own copy. Then each page is requested ``query_samples`` times, after a warm-up,
from the web view's ASGI application in this process (:func:`~debug_sink.ui.app.create_app`
over a pool set up as ``debug-sink ui``'s): the time is the server's whole work
for the page -- its queries and the template -- without the network or a browser:

- ``list``: ``/workflows``, the newest page (25 workflows);
- ``list next page``: the page after a page, from cursors spread over the first pages;
- ``list failed`` / ``list error type``: ``/workflows`` filtered by status, by error type;
- ``workflow``: ``/workflows/ID`` on workflows spread over the table;
- ``known fixes``: ``/known-fixes``, and ``known fixes of a type``: ``?error_type=X``.

Owns the ``pages`` section of the results. Guarantees: a page that fails or answers other
than 200 is reported with the reason (``note``) and the others are still measured. Not
guaranteed: browser time (rendering, the stylesheet) -- the pages are server-rendered and
their static files are cached.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from debug_sink.bench.fill import FILL_EVENTS_PER_WORKFLOW, fill
from debug_sink.bench.harness import connection
from debug_sink.bench.internals import sqlfiles
from debug_sink.bench.stats import summarize

if TYPE_CHECKING:
    from debug_sink.bench.harness import Harness
    from debug_sink.bench.scenarios.backlogs import Backlogs

__all__ = ["PAGES", "pages"]

#: Rows per workflow of the SQL fill (``sql/bench.sql``), each standing for one event.
_EVENTS_PER_WORKFLOW: Final = FILL_EVENTS_PER_WORKFLOW
#: The pages measured, in the report's order.
PAGES: Final = (
    "list",
    "list next page",
    "list failed",
    "list error type",
    "workflow",
    "known fixes",
    "known fixes of a type",
)
_OLDER: Final = re.compile(rb'<a href="(/workflows\?[^"]+)" rel="next">')

Get = Callable[[str], Awaitable[tuple[int, bytes]]]


async def pages(h: Harness, _backlogs: Backlogs) -> None:
    workflows = max(1, h.cfg.query_events // _EVENTS_PER_WORKFLOW)
    dsn = await h.database("bench_pages")
    filled = await fill(h, dsn, workflows, aggregates=True, label="pages")
    measured = await _measure(h, dsn, workflows)
    h.results["pages"] = {
        "events": workflows * _EVENTS_PER_WORKFLOW,
        "workflows": workflows,
        "fill_s": filled.get("seconds"),
        "samples": h.cfg.query_samples,
        "pages": measured,
    }
    await h.drop_database("bench_pages")


def asgi_client(app: Any) -> Get:
    """GET a path of ``app`` in this process: (status, body). Host 127.0.0.1, as a browser
    on the machine sends it."""

    async def get(target: str) -> tuple[int, bytes]:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        status = 0
        body = bytearray()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await app(scope, receive, send)
        return status, bytes(body)

    return get


async def _measure(h: Harness, dsn: str, workflows: int) -> dict[str, Any]:

    from debug_sink.read.queries import DebugQueries
    from debug_sink.ui.app import create_app
    from debug_sink.ui.live import Scraper
    from debug_sink.ui.security import Access
    from debug_sink.ui.server import create_view_pool

    q = sqlfiles.load("bench.sql")
    n = h.cfg.query_samples
    async with connection(dsn) as conn:
        ids = [r[0] for r in await conn.fetch(q["sample_workflows"], n, workflows)]
        error_types = [
            r[0]
            for r in await conn.fetch("SELECT DISTINCT error_type FROM debug_error_events LIMIT 20")
        ]
    random.Random(h.cfg.seed).shuffle(ids)
    pool = await create_view_pool(dsn, max_size=4, application_name="debug-sink-bench")
    try:
        app = create_app(DebugQueries(pool), pool, access=Access(), scraper=Scraper(()))
        get = asgi_client(app)
        cursors = await _cursors(get, 10)
        targets: dict[str, Callable[[int], str]] = {
            "list": lambda i: "/workflows",
            "list next page": lambda i: cursors[i % len(cursors)],
            "list failed": lambda i: "/workflows?status=failed",
            "list error type": lambda i: (
                "/workflows?" + urlencode({"error_type": error_types[i % len(error_types)]})
            ),
            "workflow": lambda i: f"/workflows/{ids[i % len(ids)]}",
            "known fixes": lambda i: "/known-fixes",
            "known fixes of a type": lambda i: (
                "/known-fixes?" + urlencode({"error_type": error_types[i % len(error_types)]})
            ),
        }
        return await _time_pages(h, get, targets, n)
    finally:
        await pool.close()


async def _cursors(get: Get, count: int) -> list[str]:
    """The "Older" links of the first ``count`` pages of the list."""
    found: list[str] = []
    target = "/workflows"
    for _ in range(count):
        _, body = await get(target)
        older = _OLDER.search(body)
        if older is None:
            break
        target = older[1].decode().replace("&amp;", "&")
        found.append(target)
    return found or ["/workflows"]


async def _time_pages(
    h: Harness, get: Get, targets: dict[str, Callable[[int], str]], n: int
) -> dict[str, Any]:
    """Each page ``n`` times after a warm-up: its summary in ms, or why it was not."""
    out: dict[str, Any] = {}
    task = h.progress.add_task("pages: measure", total=len(targets) * n)
    for name, target in targets.items():
        try:
            for i in range(5):  # warm-up: plans cached, pages read once
                await _ok(get, target(n + i))
            times = []
            for i in range(n):
                t = time.perf_counter()
                await _ok(get, target(i))
                times.append((time.perf_counter() - t) * 1000)
                h.progress.advance(task)
            out[name] = summarize(times)
        except Exception as exc:
            out[name] = {"note": f"not measured: {type(exc).__name__}: {exc}"[:300]}
    return out


async def _ok(get: Get, target: str) -> None:
    status, body = await get(target)
    if status != 200:
        raise RuntimeError(f"{target} answered {status}: {body[:200]!r}")
