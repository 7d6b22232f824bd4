"""Agents' text made safe to show to a person: one rule for the terminal and the browser.

Owns :func:`escape_controls`. Guarantees: the result holds no C0 or C1 control character
but newline and tab (escape sequences, bells and carriage returns could move an operator's
cursor or recolour the terminal), no bidirectional override, embedding or isolate (they
reorder what follows, so ``report\\u202egpj.exe`` would read as ``reportexe.jpg``: "Trojan
Source"), no invisible zero-width space, word joiner or byte-order mark (``ad\\u200bmin``
would look like ``admin``) and no line or paragraph separator; each is shown as ``\\xNN`` or
``\\uNNNN``. Joiners that scripts and emoji need (U+200C, U+200D) and the implicit
direction marks of right-to-left text are kept. :func:`escape_json_controls` does the same
to JSON text (``--json`` output) as JSON escapes, so the document means what it meant. Not
done here: HTML escaping (the templates') and markup (the consoles print with markup off).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["escape_controls", "escape_json_controls"]

_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every character named in the module's guarantees shown escaped."""
    return _UNSAFE.sub(_escaped, text)


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def escape_json_controls(json_text: str) -> str:
    """JSON text with every character named in the module's guarantees written as a
    ``\\uNNNN`` escape: the same document, nothing a terminal acts on. (A serialiser puts
    such characters only inside strings, where the escape means the same character; it
    escapes C0 characters itself, but not DEL, C1 or the invisible and bidi ones.)"""
    return _UNSAFE.sub(_json_escaped, json_text)
