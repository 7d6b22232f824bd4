"""One hook invocation, start to end: input in, events spooled, the answer out.

Owns :func:`handle`, shared by the ``debug-sink-hook`` command and the Claude Agent SDK
helper (:mod:`debug_sink.hooks.agent_sdk`):

1. parse Claude Code's JSON (an input over :data:`MAX_PARSED_BYTES`, or one that is not
   JSON, is salvaged: its session, event and tool are read from its start, and the rest
   replaced by a marker);
2. lock the session's state, map the input to events
   (:func:`~debug_sink.hooks.mapping.map_hook`), append them to the spool, save the state;
   an input identical to the session's last one is a re-run and adds nothing;
3. wake the shipper (start it if none runs); for a ``PostToolUseFailure``, find the known
   fixes of its error type within the time budget -- from the cache, else by asking the
   shipper -- and return the JSON that shows them to the model.

Guarantees: returns within about the context budget plus the lock timeouts, never raises for
anything the input, the disk or the shipper does (the caller still guards against the
unforeseen), never writes to standard output. Not guaranteed: that the events are shipped
-- the spool and the shipper own that.
"""

from __future__ import annotations

import json
import re
import time

from debug_sink.hooks import control, problems
from debug_sink.hooks.config import HookConfig
from debug_sink.hooks.fixes import hook_output, read_cache, render
from debug_sink.hooks.mapping import input_digest, map_hook
from debug_sink.hooks.spool import Spool
from debug_sink.hooks.state import SessionStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["MAX_PARSED_BYTES", "handle"]

#: Larger inputs are not parsed (it would take longer than the hook's bound): salvaged.
MAX_PARSED_BYTES: Final = 4 * 1024 * 1024
#: How long an invocation waits for its session's lock before going on without state.
STATE_LOCK_TIMEOUT: Final = 0.2
#: How long waking the shipper may take when no known fixes are asked for.
_WAKE_TIMEOUT: Final = 0.02
_SALVAGE_CHARS: Final = 64 * 1024
_FIELD: Final = '"{}"\\s*:\\s*"((?:[^"\\\\]|\\\\.){{1,512}})"'
_SALVAGED: Final = ("session_id", "hook_event_name", "tool_name", "tool_use_id", "agent_id")
#: A surrogate written as a JSON escape (a pair decodes to one character; half of one -- a
#: tool output cut in the middle of an emoji -- stays a lone surrogate, which no UTF-8
#: encoder takes), or as the bytes Python's "surrogatepass" writes (the Agent SDK's path).
_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def without_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD."""
    text = json.dumps(value, ensure_ascii=False)
    clean = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value if clean == text else json.loads(clean)


def handle(
    raw: bytes,
    config: HookConfig,
    *,
    now: float | None = None,
    in_process: bool = False,
    settled: Callable[[], object] | None = None,
) -> dict[str, Any] | None:
    """Process one hook input (the bytes Claude Code wrote to stdin); the JSON to print, or
    ``None`` to print nothing. ``in_process``: the caller lives on after (the SDK helper), so
    a shipper it starts is reaped when it ends. ``settled`` is called once the input's events
    are in the spool or counted as dropped (from then on, giving up loses nothing)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    directory = config.directory
    for problem in config.problems:
        problems.notice(directory, "config-" + input_digest(problem.encode())[:12], problem)
        problems.log(directory, "hook_setting_ignored", problem=problem)
    hook = _parse(raw, directory)
    if hook is None:
        if settled is not None:
            settled()  # unreadable: counted
        return None
    session_id = str(hook.get("session_id") or "unknown")
    digest = input_digest(raw)
    store = SessionStore(directory)
    session = store.open(session_id, STATE_LOCK_TIMEOUT)
    spool = Spool(directory, config.spool_max_bytes)
    try:
        if session is None:
            spool.count("state_busy")
            problems.log(directory, "hook_state_busy", session_id=session_id)
            state: dict[str, Any] = {}
        else:
            state = session.data
        if state.get("last") == digest:
            # The same input again: its events are spooled already; answer as before.
            if settled is not None:
                settled()
            mapped = map_hook(hook, json.loads(json.dumps(state)), now)
        else:
            mapped = map_hook(hook, state, now, stateless_key=digest if session is None else None)
            if not spool.append(mapped.records):
                _spool_refused(directory, spool, len(mapped.records))
            if settled is not None:
                settled()  # spooled, or counted as dropped
            if session is not None:
                state["last"] = digest
                session.save()
    finally:
        if session is not None:
            session.close()
    output = None
    if mapped.lookup is not None and config.context:
        error_type, tool = mapped.lookup
        deadline = started + config.context_budget_ms / 1000
        rows = _known_fixes(
            config, error_type, tool, now=now, deadline=deadline, in_process=in_process
        )
        text = render(error_type, rows) if rows else None
        if text is not None:
            output = hook_output(str(hook.get("hook_event_name")), text)
    else:
        _wake(directory, _WAKE_TIMEOUT, in_process)
    _status_notices(directory)
    return output


def _parse(raw: bytes, directory: str) -> dict[str, Any] | None:
    reason = None
    if len(raw) > MAX_PARSED_BYTES:
        reason = f"input of {len(raw)} bytes, over {MAX_PARSED_BYTES}: not parsed"
    else:
        try:
            hook = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            reason = f"not JSON ({type(exc).__name__})"
        else:
            if isinstance(hook, dict):
                return without_lone_surrogates(hook) if _SURROGATE.search(raw) else hook
            reason = f"a JSON {type(hook).__name__}, not an object"
    salvaged = _salvage(raw)
    problems.log(directory, "hook_input_unreadable", reason=reason, salvaged=bool(salvaged))
    if not salvaged:
        Spool(directory, 1).count("unreadable_input")
        problems.notice(directory, "unreadable-input", f"a hook input could not be read ({reason})")
        return None
    salvaged["debug_sink"] = {"unreadable_input": reason, "input_bytes": len(raw)}
    return salvaged


def _salvage(raw: bytes) -> dict[str, Any]:
    """The identifying fields of an input that could not be parsed, read from its start and
    its end (Claude Code writes ``tool_use_id`` after a large ``tool_response``)."""
    head = raw[:_SALVAGE_CHARS].decode("utf-8", "replace")
    tail = raw[-_SALVAGE_CHARS:].decode("utf-8", "replace") if len(raw) > _SALVAGE_CHARS else ""
    found: dict[str, Any] = {}
    for name in _SALVAGED:
        pattern = re.compile(_FIELD.format(name))
        match = pattern.search(head) or (pattern.search(tail) if tail else None)
        if match is not None:
            try:
                found[name] = json.loads(f'"{match.group(1)}"')
            except ValueError:
                continue
    return found if "session_id" in found and "hook_event_name" in found else {}


def _spool_refused(directory: str, spool: Spool, events: int) -> None:
    problems.log(
        directory,
        "hook_events_dropped",
        events=events,
        unshipped_bytes=spool.unshipped_bytes(),
        max_bytes=spool.max_bytes,
        counters=spool.counters(),
    )
    problems.notice(
        directory,
        "spool-full",
        f"the spool is full ({spool.max_bytes} bytes unshipped): new events are dropped and "
        "counted until the shipper reaches the broker",
    )


def _wake(directory: str, timeout: float, in_process: bool) -> None:
    if control.request(directory, {"op": "wake"}, timeout) is None:
        control.spawn(directory, reap=in_process)


def _known_fixes(
    config: HookConfig,
    error_type: str,
    tool: str,
    *,
    now: float,
    deadline: float,
    in_process: bool,
) -> list[dict[str, Any]] | None:
    """The rows of known_fixes for the failure: the cache when fresh, else the shipper's
    answer within the deadline, else a stale cached answer, else none."""
    directory = config.directory
    cached = read_cache(directory, error_type, tool, now, config.context_ttl_seconds)
    if cached is not None and cached[1]:
        _wake(directory, _WAKE_TIMEOUT, in_process)
        return cached[0]
    answer = control.request(
        directory,
        {"op": "fixes", "error_type": error_type, "tool": tool},
        deadline - time.monotonic(),
    )
    if answer is None:
        if not control.running(directory):
            control.spawn(directory, reap=in_process)
        rows = cached[0] if cached is not None else None
    else:
        found = answer.get("rows")
        rows = found if isinstance(found, list) else (cached[0] if cached else None)
    return rows


def _status_notices(directory: str) -> None:
    """Say once what the shipper found wrong (an unreachable broker, a bad setting)."""
    status = control.read_status(directory)
    problem = status.get("problem")
    if isinstance(problem, str) and problem:
        problems.notice(
            directory, f"shipper-{status.get('problem_kind') or 'problem'}", f"shipper: {problem}"
        )
