"""The web view's pages: what each one reads and how its request's parameters are read.

Owns one handler per page (:func:`~debug_sink.ui.app.create_app` puts them on their paths),
and :func:`render`. A handler parses
its query parameters (:class:`BadRequest` for a value it cannot use: the page says which,
with status 400), reads through :class:`~debug_sink.read.queries.DebugQueries` and
:mod:`debug_sink.sink.deadletters` (nothing here holds SQL), shapes the rows for its
template (:mod:`.waterfall`, :mod:`.statediff`) and renders it. Every value reaches the
page through the template's autoescaping.

Guarantees: read-only (GET handlers over the read-only pool); an unknown workflow, event or
dead letter is a 404 page; every parameter of a path or a query is checked against the type
of what it is compared with before any query runs (a uuid, a bigint id, text without NUL, a
number of rows; see :func:`_bigint`), so no request makes PostgreSQL refuse a value: a query
parameter it would refuse is a 400, a path's id it would refuse a 404; a page's size is
bounded by its ``limit`` (at most :data:`MAX_LIMIT` rows), never by the table's; a
workflow's page by :data:`WORKFLOW_EVENTS` events (the first by time; it says when there are
more), :data:`WORKFLOW_STATE_BYTES` of states read for its diffs, :data:`DIFF_ROWS` rows per
diff, :data:`MESSAGE_CHARS` characters per error message and :data:`AGENTS_SHOWN` agents
per workflow, never by the workflow's size. Not
guaranteed: that the workflow list shows a full page when a filter matches few workflows --
it says how far back it looked (see ``DebugQueries.workflow_page``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from debug_sink.read.queries import DebugQueries
from debug_sink.read.timeline import TimelineEntry
from debug_sink.read.workflows import WORKFLOW_STATUSES, cursor, parse_cursor
from debug_sink.sink import deadletters
from debug_sink.ui.formatting import link, root_path, route_path, workflow_url
from debug_sink.ui.statediff import diff_rows, json_text
from debug_sink.ui.waterfall import build_waterfall

__all__ = ["BIGINT_MAX", "MAX_LIMIT", "PERIODS", "BadRequest", "NotFound", "render"]

#: The list's time ranges: the value of ``since`` -> how far back (None: any time).
PERIODS: Final[Mapping[str, timedelta | None]] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
MAX_LIMIT: Final = 200
#: A workflow's page shows its first this many events by time (a fleet's workflow may have
#: hundreds of thousands: all of them made a page of hundreds of MB); the page says so.
WORKFLOW_EVENTS: Final = 2000
#: Bytes of agent states (canonical JSON, up to 1 MB each) read for one workflow page's
#: state diffs; an error beyond says its diff was not computed.
WORKFLOW_STATE_BYTES: Final = 16 * 1024 * 1024
#: Rows of one error's state diff on the page (two 1 MB states may differ in 100,000 keys).
DIFF_ROWS: Final = 500
#: Characters of an error's message on the page (the raw event has all of it).
MESSAGE_CHARS: Final = 4000
#: Agents named per workflow, in the list and on a workflow's page (a fleet may run one
#: workflow's steps in thousands of differently named workers); the rest are counted.
AGENTS_SHOWN: Final = 20
#: How long the list's filter choices (agent and error-type names) are reused: they change
#: rarely, and reading them on every page cost a tenth of the page.
FILTER_CHOICES_TTL_S: Final = 30.0
_DEFAULT_LIMIT: Final = 25
#: Bytes of a dead letter's value shown on its page (the list shows its first 2 KB).
_LETTER_BYTES: Final = 64 * 1024
#: The largest PostgreSQL bigint: the type of dead letters' ids.
BIGINT_MAX: Final = 2**63 - 1


class BadRequest(ValueError):
    """A parameter the page cannot use: status 400 with this message."""


class NotFound(LookupError):
    """Nothing stored by that id: status 404 with this message."""


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """The page ``template`` with ``context``, plus the request's path within the view (for
    the navigation) and the view's root path (every URL the page writes starts with it:
    :mod:`.formatting`)."""
    env = request.app.state.templates
    html = env.get_template(template).render(
        path=route_path(request.scope), root_path=root_path(request.scope), **context
    )
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8")


def _queries(request: Request) -> DebugQueries:
    queries: DebugQueries = request.app.state.queries
    return queries


def _text(request: Request, name: str, max_length: int = 255) -> str | None:
    # Exact, not stripped: a name may end with a space, and the page's own links carry it.
    value = request.query_params.get(name, "")
    if len(value) > max_length:
        raise BadRequest(f"{name}: at most {max_length} characters")
    if "\x00" in value:
        raise BadRequest(f"{name}: a NUL character matches no stored name")
    return value if value.strip() else None


def _choice(request: Request, name: str, choices: Sequence[str], default: str | None) -> str | None:
    value = _text(request, name)
    if value is None:
        return default
    if value not in choices:
        raise BadRequest(f"{name}: one of {', '.join(choices)}, not {value!r}")
    return value


def _limit(request: Request) -> int:
    value = _text(request, "limit", 6)
    if value is None:
        return _DEFAULT_LIMIT
    limit = _bigint(value)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit: a number from 1 to {MAX_LIMIT}")
    return limit


def _bigint(text: str) -> int | None:
    """``text`` as a number a PostgreSQL bigint holds (0 to :data:`BIGINT_MAX`), else
    ``None``. ASCII digits only: ``str.isdigit`` also takes a superscript two, which
    ``int`` refuses, and a full-width five, which it reads. A number longer than a bigint's
    is never converted (``int`` refuses more than 4,300 digits)."""
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(BIGINT_MAX)) or int(digits) > BIGINT_MAX:
        return None
    return int(digits)


def _uuid(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"not a {what}: {text!r}") from None


# -- workflows ----------------------------------------------------------------------------


async def workflows(request: Request) -> Response:
    """``/workflows``: the list, latest activity first, filtered, by keyset pages."""
    queries = _queries(request)
    found = _text(request, "q", 64)
    if found is not None:
        return await _find(request, found)
    agent = _text(request, "agent")
    status = _choice(request, "status", WORKFLOW_STATUSES, None)
    error_type = _text(request, "error_type")
    period = _choice(request, "since", tuple(PERIODS), "all") or "all"
    limit = _limit(request)
    before_text = _text(request, "before", 100)
    try:
        before = parse_cursor(before_text) if before_text else None
    except ValueError:
        raise BadRequest("before: not a page of this list (follow the Older link)") from None
    window = PERIODS[period]
    since = datetime.now(UTC) - window if window is not None else None
    page = await queries.workflow_page(
        since=since,
        before=before,
        agent_name=agent,
        status=status,
        error_type=error_type,
        limit=limit,
    )
    filters = {"agent": agent, "status": status, "error_type": error_type, "since": period}
    filters_on = {k: v for k, v in filters.items() if k != "since" or v != "all"}
    older = None
    if page.next_before is not None:
        older = link("/workflows", **filters_on, before=cursor(*page.next_before),
                     limit=limit if limit != _DEFAULT_LIMIT else None)  # fmt: skip
    choices = await _filter_choices(request)
    return render(
        request,
        "workflows.html",
        title="Workflows",
        rows=page.rows,
        filters=filters,
        filtered=any(v for k, v in filters_on.items()),
        statuses=WORKFLOW_STATUSES,
        periods=tuple(PERIODS),
        agents=choices["agents"],
        error_types=choices["error_types"],
        older=older,
        newest=link("/workflows", **filters_on) if before is not None else None,
        scanned_to=page.scanned_to,
        limit=limit,
        agents_shown=AGENTS_SHOWN,
    )


async def _filter_choices(request: Request) -> dict[str, list[str]]:
    """``agents`` and ``error_types`` for the list's filters, read at most every
    :data:`FILTER_CHOICES_TTL_S` seconds (one reading per app)."""
    state = request.app.state
    cached: tuple[float, dict[str, list[str]]] | None = getattr(state, "filter_choices", None)
    now = time.monotonic()
    if cached is None or now - cached[0] > FILTER_CHOICES_TTL_S:
        queries = _queries(request)
        choices = {
            "agents": await queries.agent_names(),
            "error_types": [r["error_type"] for r in await queries.error_type_names()],
        }
        cached = (now, choices)
        state.filter_choices = cached
    return cached[1]


async def _find(request: Request, text: str) -> Response:
    """The ``q`` of the list: a correlation id or a prefix of one."""
    try:
        ids = await _queries(request).workflow_ids_with_prefix(text)
    except ValueError:
        raise BadRequest(
            "search: a correlation id or the first digits of one (hex, e.g. 5f0c2a8e)"
        ) from None
    if len(ids) == 1:
        return RedirectResponse(root_path(request.scope) + workflow_url(ids[0]), status_code=303)
    return render(request, "find.html", title="Find a workflow", query=text, ids=ids)


async def workflow(request: Request) -> Response:
    """``/workflows/{id}``: summary, waterfall, errors with their recovery and state diff, LLM
    calls, hand-overs, every event."""
    queries = _queries(request)
    text = request.path_params["correlation_id"]
    try:
        correlation_id = UUID(text)
    except ValueError:
        return await _find(request, text)
    row = await queries.workflow_row(correlation_id)
    if row is None:
        raise NotFound(f"no workflow {correlation_id} is stored")
    entries, more = await queries.timeline_head(correlation_id, WORKFLOW_EVENTS)
    diffs = await queries.error_diffs(entries, max_state_bytes=WORKFLOW_STATE_BYTES)
    # The page's errors' links only: a workflow may have hundreds of thousands.
    links = await queries.error_links([e.id for e in entries if e.kind == "error"])
    errors = []
    for entry in entries:
        if entry.kind != "error":
            continue
        diff = diffs.get(entry.id)
        changes = diff.diff.changes if diff and diff.diff is not None else ()
        message = str(entry.data.get("error_message") or "")
        errors.append(
            {
                "entry": entry,
                "data": entry.data,
                "message": message[:MESSAGE_CHARS],
                "message_chars": len(message) if len(message) > MESSAGE_CHARS else None,
                "links": links.get(entry.id, []),
                "diff": diff,
                "rows": diff_rows(changes[:DIFF_ROWS]),
                "more_changes": max(len(changes) - DIFF_ROWS, 0),
            }
        )
    return render(
        request,
        "workflow.html",
        title=f"Workflow {correlation_id}",
        correlation_id=correlation_id,
        row=row,
        request_text=next(
            (e.data["user_request"] for e in entries if e.data.get("user_request")), None
        ),
        waterfall=build_waterfall(entries),
        errors=errors,
        llm_calls=[e for e in entries if e.kind == "llm_call"],
        transformations=[e for e in entries if e.kind == "transformation"],
        entries=entries,
        more_events=more,
        agents_shown=AGENTS_SHOWN,
        labels={e.id: _label(e) for e in entries},
    )


def _label(entry: TimelineEntry) -> str:
    """One line per event in the workflow's list of events."""
    d = entry.data
    if entry.kind == "step":
        where = f"{entry.step_number}.{entry.attempt or 1}"
        return f"step {where} {d.get('operation_name')} {d.get('status')}"
    if entry.kind == "error":
        return f"{d.get('error_type')}: {d.get('error_message')}"
    if entry.kind == "success":
        return f"{d.get('success_type')} {d.get('operation_name') or ''}".strip()
    if entry.kind == "snapshot":
        return f"{d.get('snapshot_type')} snapshot ({d.get('state_size_bytes')} bytes)"
    if entry.kind == "transformation":
        return (
            f"{d.get('source_agent')} -> {d.get('target_agent')} ({d.get('transformation_type')})"
        )
    return f"LLM call {d.get('tool_name')}"


async def event(request: Request) -> Response:
    """``/events/{id}``: one stored event, every column of its row."""
    found = await _event(request)
    return render(
        request,
        "event.html",
        title=f"{found['kind']} {found['data'].get('id')}",
        found=found,
        document=json_text(found["data"], indent=True, limit=1_000_000),
    )


async def event_json(request: Request) -> Response:
    """``/events/{id}/json``: the same as JSON."""
    found = await _event(request)
    body = orjson.dumps(found, option=orjson.OPT_INDENT_2, default=str)
    return Response(body, media_type="application/json")


async def _event(request: Request) -> dict[str, Any]:
    event_id = _uuid(request.path_params["event_id"], "event id")
    found = await _queries(request).raw_event(event_id)
    if found is None:
        raise NotFound(f"no event {event_id} is stored")
    return found


# -- known fixes --------------------------------------------------------------------------


async def known_fixes(request: Request) -> Response:
    """``/known-fixes``: per error type, the strategies that fixed it, ranked; with
    ``error_type``, that type's whole ranking."""
    queries = _queries(request)
    error_type = _text(request, "error_type")
    types = await queries.error_type_names()
    if error_type is not None:
        fixes = await queries.known_fixes(error_type, limit=20)
        counted = next((t for t in types if t["error_type"] == error_type), None)
        return render(
            request,
            "known_fix.html",
            title=f"Known fixes: {error_type}",
            error_type=error_type,
            fixes=fixes,
            counted=counted,
            types=types,
        )
    groups: dict[str, dict[str, Any]] = {}
    for row in await queries.known_fixes_overview(types=25, per_type=3):
        group = groups.setdefault(
            row["error_type"],
            {
                "error_type": row["error_type"],
                "occurred": row["occurred"],
                "last_occurred_at": row["last_occurred_at"],
                "fixes": [],
            },
        )
        if row.get("recovery_strategy") is not None:
            group["fixes"].append(row)
    return render(
        request, "known_fixes.html", title="Known fixes", groups=list(groups.values()), types=types
    )


# -- dead letters -------------------------------------------------------------------------


async def dead_letters(request: Request) -> Response:
    """``/dead-letters``: counts by topic and class, then the letters newest first."""
    topic = _text(request, "topic")
    error_class = _text(request, "error_class")
    limit = _limit(request)
    before_text = _text(request, "before", 20)
    before = _bigint(before_text) if before_text is not None else None
    if before_text is not None and before is None:
        raise BadRequest("before: not a page of this list (follow the Older link)")
    async with request.app.state.pool.acquire() as conn:
        groups = await deadletters.letter_groups(conn)
        letters = await deadletters.letter_page(
            conn, before_id=before, topic=topic, error_class=error_class, limit=limit + 1
        )
    older = None
    if len(letters) > limit:
        letters = letters[:limit]
        older = link("/dead-letters", topic=topic, error_class=error_class,
                     before=letters[-1]["id"])  # fmt: skip
    for letter in letters:
        letter["value_text"] = _bytes_text(letter.get("value_head"))
    return render(
        request,
        "dead_letters.html",
        title="Dead letters",
        groups=groups,
        letters=letters,
        topic=topic,
        error_class=error_class,
        older=older,
        newest=link("/dead-letters", topic=topic, error_class=error_class) if before else None,
    )


async def dead_letter(request: Request) -> Response:
    """``/dead-letters/{id}``: one letter with its key, value and headers (as stored:
    redacted when the sink stored it)."""
    text = request.path_params["letter_id"]
    letter_id = _bigint(text)
    if letter_id is None:  # no id of a letter is anything else
        raise NotFound(f"no dead letter {text[:40]!r} is stored")
    async with request.app.state.pool.acquire() as conn:
        letter = await deadletters.letter(conn, letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id} is stored")
    value: bytes = letter.get("value") or b""
    return render(
        request,
        "dead_letter.html",
        title=f"Dead letter {letter_id}",
        letter=letter,
        value_text=_bytes_text(value[:_LETTER_BYTES], pretty=True),
        value_cut=len(value) > _LETTER_BYTES,
        key_text=_bytes_text(letter.get("key")),
        headers_text=json_text(letter.get("headers"), indent=True, limit=50_000),
    )


def _bytes_text(value: bytes | None, *, pretty: bool = False) -> str:
    """Stored bytes as text: indented JSON when they are JSON and ``pretty``, else UTF-8 with
    what is not UTF-8 replaced."""
    if not value:
        return ""
    if pretty:
        try:
            return json_text(orjson.loads(value), indent=True, limit=200_000)
        except orjson.JSONDecodeError:
            pass
    return bytes(value).decode("utf-8", "replace")


# -- live ---------------------------------------------------------------------------------


async def live(request: Request) -> Response:
    """``/live``: each sink's figures from its ``/metrics`` (rates between two readings),
    and the correlator's last run and recent dead letters from the database."""
    readings = await request.app.state.scraper.read()
    queries = _queries(request)
    correlator = await queries.correlator_state()
    async with request.app.state.pool.acquire() as conn:
        recent = await deadletters.letter_groups(conn, datetime.now(UTC) - timedelta(hours=1))
    return render(
        request,
        "live.html",
        title="Live",
        readings=readings,
        correlator=correlator,
        recent_letters=sum(g["letters"] for g in recent),
        recent_groups=recent,
        now=datetime.now(UTC),
    )


async def healthz(request: Request) -> Response:
    """``/healthz``: 200 when the database answers a query, else 503."""
    try:
        await _queries(request).correlator_state()
    except Exception as exc:
        return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"ok": True})
