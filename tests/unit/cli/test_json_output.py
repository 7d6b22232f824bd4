"""``--json`` output: agents' text reaches no terminal as control sequences."""

from __future__ import annotations

import orjson
import pytest

from debug_sink.cli.common import print_json

#: An 8-bit CSI (clear screen), DEL, a bidi override, a zero-width space, a line separator
#: and a byte-order mark: orjson writes them raw (it escapes only C0 characters).
HOSTILE = "a\u009b2Jb\x7fc\u202egpj.exe\u200bd\u2028e\ufefff"


def test_unsafe_characters_are_json_escapes(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    print_json({"key" + HOSTILE: [HOSTILE, {"ok": "é — 日本 👍\u200d"}]})
    out = capsysbinary.readouterr().out
    for raw in ("\u009b", "\x7f", "\u202e", "\u200b", "\u2028", "\ufeff"):
        assert raw.encode() not in out, raw
    assert b"\\u009b" in out
    assert b"\\u202e" in out
    # The same document: the escapes decode to the same text.
    assert orjson.loads(out) == {"key" + HOSTILE: [HOSTILE, {"ok": "é — 日本 👍\u200d"}]}
