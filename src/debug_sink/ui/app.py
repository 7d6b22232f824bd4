"""The web view as an ASGI application: routes, middlewares, error pages.

Owns :func:`create_app`: the pages of :mod:`.pages` on their paths, the static files (the
stylesheet and the one small script, served from the package: no CDN, no build step), the
middlewares of :mod:`.security` (outermost first: security headers on every response, GET
and HEAD only, credentials or a loopback ``Host``), and the error pages: 400 for a parameter
a page cannot use, 404 for an unknown path or id, 503 when the database is unavailable or
a page has no answer within its deadline (waiting for a pool connection included), 500
for anything else -- each a page of the view, never a traceback. Routes are the view's own
paths; every URL a page or a redirect writes starts with the ASGI ``root_path``
(``DEBUG_SINK_UI_ROOT_PATH``, see :mod:`.formatting`).

Guarantees: no route accepts a method that writes; an error page names the problem, not
the internals (the log has the error's class, never a request's values or a row). Not
guaranteed: anything about the pages' content (:mod:`.pages`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from debug_sink.errors import DatabaseUnavailable, TransientError
from debug_sink.read.queries import DebugQueries
from debug_sink.ui import pages
from debug_sink.ui.formatting import environment, root_path
from debug_sink.ui.live import Scraper
from debug_sink.ui.security import (
    Access,
    Authenticate,
    ReadOnlyMethods,
    SecurityHeaders,
    add_security_headers,
)
from debug_sink.version import package_version

__all__ = ["PAGE_DEADLINE_S", "create_app"]

log = structlog.get_logger("debug_sink")

#: A page's answer within this many seconds, or a 503 (see :func:`create_app`).
PAGE_DEADLINE_S: Final = 20.0

_Endpoint = Callable[[Request], Awaitable[Response]]


async def _home(request: Request) -> Response:
    return RedirectResponse(root_path(request.scope) + "/workflows", status_code=303)


def _error(request: Request, status: int, title: str, message: str) -> Response:
    return pages.render(
        request, "error.html", status_code=status, title=title, status=status, message=message
    )


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(request, 400, "Bad request", str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, "Not found", str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(request, 404, "Not found", f"nothing at {request.url.path}")
    return _error(request, exc.status_code, "Error", str(exc.detail))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("ui_database_unavailable", error=type(exc).__name__, route=_route(request))
    return _error(
        request,
        503,
        "Database unavailable",
        "the database did not answer; this page will work again once it does",
    )


def _route(request: Request) -> str:
    """The route a request matched, as written (``/dead-letters/{letter_id}``): a path holds
    ids and search text, which the log never does."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "(no route)")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("ui_page_failed", error=type(exc).__name__, route=_route(request))
    response = _error(
        request, 500, "Something went wrong", "this page failed; the view's log says why"
    )
    add_security_headers(response.headers)
    return response


def _within(deadline_s: float, endpoint: _Endpoint) -> _Endpoint:
    """``endpoint`` cut off after ``deadline_s`` seconds: its ``TimeoutError`` is the 503 of
    :func:`_unavailable` (the waits it cuts are the database's: a pool connection, a query;
    a cancelled query is cancelled on the server too)."""

    @functools.wraps(endpoint)
    async def page(request: Request) -> Response:
        async with asyncio.timeout(deadline_s):
            return await endpoint(request)

    return page


def create_app(
    queries: DebugQueries,
    pool: Any,
    *,
    access: Access,
    scraper: Scraper,
    deadline_s: float = PAGE_DEADLINE_S,
) -> Starlette:
    """The web view over ``queries`` (and ``pool``, the same read-only pool, for the dead
    letters); ``scraper`` reads the sinks' ``/metrics`` for the Live page. Each page answers
    within ``deadline_s`` seconds, waiting for a pool connection included, or is a 503: with
    the database slow, requests beyond the pool's size must not queue without a bound."""

    def route(path: str, endpoint: _Endpoint) -> Route:
        return Route(path, _within(deadline_s, endpoint))

    routes = [
        Route("/", _home),
        route("/workflows", pages.workflows),
        route("/workflows/{correlation_id}", pages.workflow),
        route("/events/{event_id}", pages.event),
        route("/events/{event_id}/json", pages.event_json),
        route("/known-fixes", pages.known_fixes),
        route("/dead-letters", pages.dead_letters),
        route("/dead-letters/{letter_id}", pages.dead_letter),
        route("/live", pages.live),
        route("/healthz", pages.healthz),
        Mount("/static", StaticFiles(packages=[("debug_sink.ui", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ReadOnlyMethods),
            Middleware(Authenticate, access=access),
        ],
        exception_handlers={
            pages.BadRequest: _bad_request,
            pages.NotFound: _not_found,
            HTTPException: _http_error,
            DatabaseUnavailable: _unavailable,
            TransientError: _unavailable,
            OSError: _unavailable,
            Exception: _server_error,
        },
    )
    app.state.queries = queries
    app.state.pool = pool
    app.state.scraper = scraper
    app.state.templates = environment({"version": package_version()})
    return app
