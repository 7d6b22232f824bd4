"""read.text.escape_controls: what a terminal or a browser would act on, or hide, is shown
escaped; the text people write, in any script, is kept."""

from __future__ import annotations

import pytest

from debug_sink.cli.common import printable as cli_printable
from debug_sink.read.text import escape_controls
from debug_sink.ui.formatting import printable as ui_printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),  # C0: an escape sequence
        ("a\x9bb", "a\\x9bb"),  # C1: the 8-bit escape introducer
        ("report\u202egpj.exe", "report\\u202egpj.exe"),  # right-to-left override
        ("x\u2066y\u2069", "x\\u2066y\\u2069"),  # an isolate and its end
        ("\u202aa\u202c", "\\u202aa\\u202c"),  # an embedding and its pop
        ("ad\u200bmin", "ad\\u200bmin"),  # zero-width space
        ("\ufeffagent", "\\ufeffagent"),  # byte-order mark
        ("a\u2060b", "a\\u2060b"),  # word joiner
        ("line\u2028next\u2029", "line\\u2028next\\u2029"),
    ],
)
def test_escaped(text: str, shown: str) -> None:
    assert escape_controls(text) == shown
    assert cli_printable({"agent": [text]}) == {"agent": [shown]}
    assert ui_printable(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "ok\n\ttab",
        "مرحبا\u200fworld",  # a right-to-left mark in Arabic text
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # zero-width non-joiner: Persian
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family emoji (zero-width joiners)
        "naïve café 東京",
    ],
)
def test_kept(text: str) -> None:
    assert escape_controls(text) == text
