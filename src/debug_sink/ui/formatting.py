"""How the web view writes values: times (UTC), durations, counts, rates, short ids, links.

Owns the Jinja filters and globals of :func:`environment`, the one template environment:
autoescaping on for every template (agent names, error messages, states and payloads are
written by whoever can produce to the topics), ``StrictUndefined`` (a misspelt variable is an
error, not an empty string). No template marks data safe: every piece of markup comes from a
template file.

URLs: :func:`link`, :func:`workflow_url` and :func:`event_url` give a page's path within the
view (``/workflows/ID``); every URL a page *writes* starts with the view's root path (the
ASGI ``root_path``, ``DEBUG_SINK_UI_ROOT_PATH``: the prefix a reverse proxy publishes it
under). In a template that is the globals ``url`` (a path of the view, or one of the above's
results, under the root) and ``link`` / ``workflow_url`` / ``event_url`` (the same, under
the root); the root comes from the ``root_path`` of the page's context
(:func:`~debug_sink.ui.pages.render` puts it there, from :func:`root_path`), never from a
request's header.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

import jinja2

from debug_sink.durations import show_ms
from debug_sink.read.text import escape_controls
from debug_sink.settings import UI_ROOT_PATH
from debug_sink.ui.statediff import json_text

__all__ = [
    "ago",
    "clock",
    "duration",
    "environment",
    "link",
    "number",
    "percent",
    "printable",
    "root_path",
    "route_path",
    "short",
    "when",
]


def printable(value: Any) -> str:
    """``value`` as text with control characters, bidirectional overrides and invisible
    characters shown escaped (:func:`~debug_sink.read.text.escape_controls`; escaping for
    HTML is the template's)."""
    return escape_controls("" if value is None else str(value))


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return _moment(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def when(value: Any) -> str:
    """``2026-12-02 13:57:16Z`` (UTC), ``-`` for nothing."""
    moment = _moment(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def clock(value: Any) -> str:
    """``13:57:16.123`` (UTC, milliseconds)."""
    moment = _moment(value)
    if moment is None:
        return "-"
    moment = moment.astimezone(UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def iso(value: Any) -> str:
    """The machine-readable time of a ``<time datetime=...>``."""
    moment = _moment(value)
    return moment.astimezone(UTC).isoformat() if moment else ""


def ago(value: Any, now: datetime | None = None) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``; ``in the future`` for a clock
    ahead of this one."""
    moment = _moment(value)
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < -1:
        return "in the future"
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


duration = show_ms


def number(value: Any, digits: int = 0) -> str:
    """``12,345`` (or with ``digits`` decimals); ``-`` for nothing."""
    if value is None or isinstance(value, bool):
        return "-"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return printable(value)


def percent(value: Any) -> str:
    """A fraction as ``81.6%``."""
    if value is None:
        return "-"
    return f"{float(value) * 100:.1f}%"


def short(value: Any) -> str:
    """The first 8 characters of an id."""
    return str(value)[:8] if value else "-"


def link(path: str, **params: Any) -> str:
    """``path`` with the query of ``params`` that are not None or empty."""
    query = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return path + ("?" + urlencode(query) if query else "")


def workflow_url(correlation_id: UUID | str) -> str:
    return "/workflows/" + quote(str(correlation_id), safe="")


def event_url(event_id: UUID | str) -> str:
    return "/events/" + quote(str(event_id), safe="")


def root_path(scope: Mapping[str, Any]) -> str:
    """The view's root path in an ASGI ``scope`` (``""`` or e.g. ``/debug-sink``): the
    app's, also inside a mount (Starlette keeps it as ``app_root_path`` there). One that is
    not a plain path of :data:`~debug_sink.settings.UI_ROOT_PATH` is an error, not written
    into a page: the setting is checked where it is read, this is for whatever else sets
    the scope's."""
    root = str(scope.get("app_root_path", scope.get("root_path", "")) or "")
    if not UI_ROOT_PATH.fullmatch(root):
        raise ValueError("the ASGI root_path is not a plain path such as /debug-sink")
    return root


def route_path(scope: Mapping[str, Any]) -> str:
    """The path a request asked for within the view: its ``path`` without the root path
    (uvicorn puts the root in front of the path it received)."""
    path = str(scope.get("path", ""))
    root = root_path(scope)
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def _rooted(build: Callable[..., str]) -> Callable[..., str]:
    """``build`` for templates: its path under the page's ``root_path``."""

    @jinja2.pass_context
    def rooted(context: jinja2.runtime.Context, *args: Any, **kwargs: Any) -> str:
        # Not .get(): a page (or macros imported without context) that lacks the root
        # would write links that leave the proxy's prefix.
        if "root_path" not in context:
            raise jinja2.UndefinedError("root_path: render pages with pages.render")
        return str(context["root_path"]) + build(*args, **kwargs)

    return rooted


def _path(path: str) -> str:
    """A path of the view (a template's ``url``): it must start with ``/``, whatever follows
    comes from this package, so the root cannot be glued to another name."""
    if not path.startswith("/"):
        raise ValueError(f"not a path of the view: {path!r}")
    return path


def environment(extra_globals: Mapping[str, Any] | None = None) -> jinja2.Environment:
    """The templates of ``debug_sink/ui/templates`` with the filters of this module."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("debug_sink.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        {
            "when": when,
            "clock": clock,
            "iso": iso,
            "ago": ago,
            "duration": duration,
            "number": number,
            "percent": percent,
            "short": short,
            "printable": printable,
            "json": json_text,
        }
    )
    env.globals.update(
        {
            "url": _rooted(_path),
            "link": _rooted(link),
            "workflow_url": _rooted(workflow_url),
            "event_url": _rooted(event_url),
            **(extra_globals or {}),
        }
    )
    return env
