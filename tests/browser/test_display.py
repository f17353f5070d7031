"""assets/display.js and display.css in a real browser: the shared table, the one palette."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.core import display
from tests.browser.conftest import Stack
from tests.unit.test_display import SPECIAL, load_cases

JS_NAMES = {"duration": "duration", "signed_duration": "signedDuration",
            "short_duration": "shortDuration", "count": "count", "distance": "distance",
            "percent": "percent", "clock": "clock"}

RUN_CASES_JS = """([cases, special, names]) => {
    const value = x => special.includes(x) ? Number(x) : x;
    const out = {};
    for (const [name, rows] of Object.entries(cases)) {
        const fn = window.dispatchDisplay[names[name]];
        out[name] = rows.map(([arg, _]) => Array.isArray(arg) ? fn(...arg.map(value))
                                                              : fn(value(arg)));
    }
    return out;
}"""


@pytest.mark.parametrize("role", ["commander", "cso"])
def test_browser_formatters_match_the_shared_table(stack: Stack, page_for: Callable[..., Any],
                                                   role: str) -> None:
    """Every page loads display.js, and it gives exactly the table's text (as Python does)."""
    page = page_for(role, path="/")
    page.wait_for_function("() => window.dispatchDisplay !== undefined")
    cases = load_cases()
    got = page.evaluate(RUN_CASES_JS, [cases, sorted(SPECIAL), JS_NAMES])
    for name, rows in cases.items():
        assert got[name] == [want for _, want in rows], name


def test_browser_palette_is_the_python_palette(stack: Stack, page_for: Callable[..., Any],
                                               ) -> None:
    """The colours the browser applies (day, and night under data-palette) are the ones
    Python reads from display.css for plotly."""
    page = page_for("supervisor", path="/")
    page.wait_for_function("() => window.dispatchDisplay !== undefined")
    shown = page.evaluate("""() => {
        const night = document.createElement('div');
        night.setAttribute('data-palette', 'night');
        document.body.appendChild(night);
        const rgb = c => { const d = document.createElement('span'); d.style.color = c;
            document.body.appendChild(d); const v = getComputedStyle(d).color; d.remove();
            return v; };
        const read = node => Object.fromEntries(Object.entries(
            window.dispatchDisplay.palette(node)).map(([p, v]) => [p, [rgb(v.fill),
            rgb(v.ink)]]));
        return {day: read(document.documentElement), night: read(night)};
    }""")

    def rgb(hex_colour: str) -> str:
        r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return f"rgb({r}, {g}, {b})"

    for palette in display.PALETTES:
        assert shown[palette] == {str(p): [rgb(display.priority_colour(p, palette)),
                                           rgb(display.priority_ink(p, palette))]
                                  for p in display.PRIORITIES}
