"""The stylesheet's colours meet WCAG AA contrast (4.5:1 for text) in both schemes.

The pairs are the ones the pages draw: body text, muted text and links on the page and on
cards, each status badge's text on its background, the button's label, the diff rows' text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import pytest

CSS = (resources.files("debug_sink.ui") / "static" / "style.css").read_text()
AA = 4.5

#: (foreground, background) variable names, and where they meet.
PAIRS = [
    ("text", "bg"), ("text", "surface"), ("muted", "bg"), ("muted", "surface"),
    ("muted", "code-bg"), ("accent", "surface"), ("accent", "bg"), ("accent", "accent-bg"),
    ("ok", "ok-bg"), ("recovered", "recovered-bg"), ("failed", "failed-bg"),
    ("unrecovered", "unrecovered-bg"), ("running", "running-bg"), ("text", "added"),
    ("text", "removed"), ("text", "changed"), ("ok", "added"), ("failed", "removed"),
    ("unrecovered", "changed"), ("failed", "surface"), ("ok", "surface"),
]  # fmt: skip


def scheme(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", block))


def light() -> dict[str, str]:
    return scheme(CSS[CSS.index(":root {") : CSS.index("}", CSS.index(":root {"))])


def dark() -> dict[str, str]:
    start = CSS.index("@media (prefers-color-scheme: dark)")
    return {**light(), **scheme(CSS[start : CSS.index("}\n}", start)])}


def luminance(color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


class TestContrast:
    @pytest.mark.parametrize(("name", "colors"), [("light", light), ("dark", dark)])
    def test_text_pairs_meet_aa(self, name: str, colors: Callable[[], dict[str, str]]) -> None:
        palette = colors()
        low = {
            (fg, bg): round(contrast(palette[fg], palette[bg]), 2)
            for fg, bg in PAIRS
            if contrast(palette[fg], palette[bg]) < AA
        }
        assert low == {}, f"{name} scheme below {AA}:1"

    def test_button_label(self) -> None:
        assert contrast("#ffffff", light()["accent"]) >= AA
        assert contrast("#0c1420", dark()["accent"]) >= AA

    def test_contrast_is_computed_right(self) -> None:
        assert round(contrast("#000000", "#ffffff"), 1) == 21.0
        assert round(contrast("#767676", "#ffffff"), 2) == 4.54
