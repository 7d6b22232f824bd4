"""The error type of a failed tool call: a small, documented classifier.

Owns :func:`classify`: from the tool's name and Claude Code's error text to an error type such
as ``Bash: exit 1``, ``Edit: old_string not found`` or ``WebFetch: timeout`` -- the key under
which the correlator counts what recovered it and ``known_fixes()`` ranks the fixes, so it
must group failures that the same fix cures, never carry the raw message (paths, line numbers
and command output would make every failure its own type).

Rules, first match wins (case-insensitive; ``<tool_use_error>`` tags are ignored):

==============================  ==========================================================
interrupted by the user         ``<Tool>: interrupted`` (category user, severity low)
Bash                            ``timeout`` (Claude Code's "Command timed out");
                                ``command not found``; ``exit N`` (``Exit code N``,
                                ``exited with status N``, ...); ``permission denied``
Edit, MultiEdit, NotebookEdit,  ``old_string not found``; ``old_string not unique``;
Write                           ``file not read first``; ``file changed since read``;
                                ``no change``
Read                            ``file too large``; ``is a directory``
WebFetch, WebSearch             ``HTTP NNN``; ``TLS error``; ``DNS failure``; ``redirect``
any tool (also after the rows   ``timeout``; ``permission denied``; ``rate limited``;
above found nothing)            ``connection failed``; ``invalid input``; ``not found``;
                                ``HTTP NNN``; else ``error``
==============================  ==========================================================

Categories: the agent's own input (``agent``), the outside world (``external``), the user
(``user``), or unknown (``framework``). Pure; the patterns compile on first use, so the hook
command pays for them only when a tool failed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["Classified", "classify"]

#: The longest error type (the error_type column is VARCHAR(255)).
_MAX_TYPE: Final = 255
#: How much of the error text the rules read.
_SCAN_CHARS: Final = 8192

_FILE_EDITORS: Final = frozenset({"Edit", "MultiEdit", "NotebookEdit", "Write"})
_WEB: Final = frozenset({"WebFetch", "WebSearch"})

#: (pattern, label, category); a label may use the pattern's first group as ``{0}``.
_Rule = tuple[str, str, str]

_BASH_RULES: Final[Sequence[_Rule]] = (
    (r"command timed out|timed out after", "timeout", "external"),
    (r"command not found", "command not found", "agent"),
    (
        r"exit(?:ed)?(?: with)?(?: a)?(?: non-?zero)?(?: exit)?(?: status| code)*\s*[:=]?\s*"
        r"(\d{1,3})\b",
        "exit {0}",
        "external",
    ),
    (r"permission denied|\beacces\b|operation not permitted", "permission denied", "external"),
)
_EDITOR_RULES: Final[Sequence[_Rule]] = (
    (
        r"string to replace not found|old_string not found|not found in (?:the )?file",
        "old_string not found",
        "agent",
    ),
    (
        r"found \d+ matches|multiple matches|not unique|appears \d+ times|more than once",
        "old_string not unique",
        "agent",
    ),
    (
        r"has not been read|read it first|must read|before (?:editing|writing)",
        "file not read first",
        "agent",
    ),
    (
        r"modified since(?: it was)? read|changed since(?: it was)? read|has been modified",
        "file changed since read",
        "agent",
    ),
    (r"no changes to make|exactly the same|are identical", "no change", "agent"),
)
_READ_RULES: Final[Sequence[_Rule]] = (
    (r"exceeds? (?:the )?maximum|too large|too many tokens|too long", "file too large", "agent"),
    (r"is a directory|\beisdir\b|illegal operation on a directory", "is a directory", "agent"),
)
_HTTP: Final = r"(?:status(?: code)?|http(?:/[\d.]+)?)[ :]*([1-5]\d\d)\b"
_WEB_RULES: Final[Sequence[_Rule]] = (
    (_HTTP, "HTTP {0}", "external"),
    (r"certificate|\bssl\b|\btls\b", "TLS error", "external"),
    (
        r"enotfound|getaddrinfo|resolve host|\bdns\b|name or service not known",
        "DNS failure",
        "external",
    ),
    (r"redirect", "redirect", "external"),
)
_ANY_RULES: Final[Sequence[_Rule]] = (
    (r"timed?[ -]?out|timeout|deadline exceeded", "timeout", "external"),
    (
        r"permission denied|\beacces\b|\beperm\b|not permitted|forbidden",
        "permission denied",
        "external",
    ),
    (r"rate.?limit|\b429\b|too many requests|overloaded", "rate limited", "external"),
    (
        r"econnrefused|econnreset|connection (?:refused|reset|closed)|network",
        "connection failed",
        "external",
    ),
    (
        r"inputvalidationerror|invalid (?:input|parameter|argument)|required parameter"
        r"|missing (?:required )?(?:parameter|argument)",
        "invalid input",
        "agent",
    ),
    (r"\benoent\b|no such file|does not exist|not found", "not found", "agent"),
    (_HTTP, "HTTP {0}", "external"),
)

_Compiled = tuple[tuple[re.Pattern[str], str, str], ...]
_compiled: dict[int, _Compiled] = {}


def _rules(rules: Sequence[_Rule]) -> _Compiled:
    key = id(rules)
    found = _compiled.get(key)
    if found is None:
        found = _compiled[key] = tuple(
            (re.compile(pattern, re.IGNORECASE), label, category)
            for pattern, label, category in rules
        )
    return found


class Classified:
    """What :func:`classify` says about one failure."""

    __slots__ = ("category", "code", "error_type", "severity")

    def __init__(self, error_type: str, category: str, severity: str, code: str | None) -> None:
        #: ``<Tool>: <kind>``, at most 255 characters.
        self.error_type = error_type
        #: agent, external, user or framework (the error_category column's values).
        self.category = category
        #: low for an interrupt, else medium.
        self.severity = severity
        #: The number in the type, when it has one (an exit status, an HTTP status).
        self.code = code

    def __repr__(self) -> str:
        return f"Classified({self.error_type!r}, {self.category!r})"


def classify(tool: str, error: str, *, interrupted: bool = False) -> Classified:
    """The error type of ``tool`` failing with ``error`` (see the module's table)."""
    tool = tool or "tool"
    if interrupted:
        return Classified(_type(tool, "interrupted"), "user", "low", None)
    text = error[:_SCAN_CHARS].replace("<tool_use_error>", "").replace("</tool_use_error>", "")
    groups: list[Sequence[_Rule]] = []
    if tool == "Bash":
        groups.append(_BASH_RULES)
    elif tool in _FILE_EDITORS:
        groups.append(_EDITOR_RULES)
    elif tool == "Read":
        groups.append(_READ_RULES)
    elif tool in _WEB:
        groups.append(_WEB_RULES)
    groups.append(_ANY_RULES)
    for rules in groups:
        for pattern, label, category in _rules(rules):
            match = pattern.search(text)
            if match is not None:
                code = match.group(1) if match.groups() else None
                return Classified(_type(tool, label.format(code)), category, "medium", code)
    return Classified(_type(tool, "error"), "framework", "medium", None)


def _type(tool: str, kind: str) -> str:
    suffix = f": {kind}"
    return tool[: _MAX_TYPE - len(suffix)] + suffix
