"""The shared display rules (streams/core/display.py): formatters and the priority palette."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streams.core import display

CASES_FILE = Path(__file__).resolve().parents[1] / "cases" / "display.json"
SPECIAL = {"NaN", "Infinity", "-Infinity"}
FORMATTERS = ("duration", "signed_duration", "short_duration", "count", "distance",
              "percent", "clock")


def load_cases() -> dict[str, list[Any]]:
    """The shared table (also run in the browser by tests/browser/test_display.py)."""
    table: dict[str, list[Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return {name: rows for name, rows in table.items() if not name.startswith("_")}


def value(raw: Any) -> Any:
    return float(raw) if raw in SPECIAL else raw


def case_ids() -> list[tuple[str, Any, str]]:
    return [(name, arg, want) for name, rows in load_cases().items() for arg, want in rows]


def test_the_table_covers_every_formatter() -> None:
    """Each formatter has cases, and the table names no function that does not exist."""
    assert sorted(load_cases()) == sorted(FORMATTERS)


@pytest.mark.parametrize(("name", "arg", "want"), case_ids())
def test_formatter_matches_the_shared_table(name: str, arg: Any, want: str) -> None:
    """Python's formatters give exactly the shared table's text."""
    function = getattr(display, name)
    got = function(*[value(a) for a in arg]) if isinstance(arg, list) else function(value(arg))
    assert got == want


def test_the_same_90th_percentile_reads_the_same_everywhere() -> None:
    """1446.5 s is 24:07 (half up), not 24:06 (cut): the wall/response mismatch of issue 10."""
    assert display.duration(1446.5) == "24:07"
    assert display.signed_duration(1446.5) == "+24:07"


# --- palette ------------------------------------------------------------------------------

CVD = {
    # Machado, Oliveira and Fernandes (2009), severity 1, on linear RGB.
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                        [0.004733, 0.691367, 0.303900]]),
}
MIN_DELTA_E = 12.0
"""Smallest CIE76 distance allowed between two priorities under any vision (about 2.3 is
'just noticeable'; the priority digit is always drawn as well)."""
MIN_HUE_GAP_DEG = 20.0
"""Smallest hue angle (CIELAB) between two coloured priorities: vermillion and orange are
22 degrees apart, the sky blue and blue /response used for P1 and P5 were 15."""


def linear(hex_colour: str) -> np.ndarray:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def lab(rgb_linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ rgb_linear / np.array([0.95047, 1, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def luminance(hex_colour: str) -> float:
    return float(np.array([0.2126, 0.7152, 0.0722]) @ linear(hex_colour))


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("palette", display.PALETTES)
@pytest.mark.parametrize("vision", sorted(CVD))
def test_priorities_stay_apart_for_colour_blind_vision(palette: str, vision: str) -> None:
    """Every two priorities differ by at least MIN_DELTA_E under simulated protan, deutan
    and tritan vision as well as normal vision."""
    colours = {p: lab(np.clip(CVD[vision] @ linear(display.priority_colour(p, palette)), 0, 1))
               for p in display.PRIORITIES}
    closest = min((float(np.linalg.norm(colours[a] - colours[b])), a, b)
                  for a, b in itertools.combinations(display.PRIORITIES, 2))
    assert closest[0] >= MIN_DELTA_E, f"P{closest[1]} and P{closest[2]}: {closest[0]:.1f}"


@pytest.mark.parametrize("palette", display.PALETTES)
def test_no_two_priorities_share_a_hue(palette: str) -> None:
    """No two coloured priorities share a hue family (P1 and P5 both blue was the bug);
    a grey (no chroma) has no hue to share."""
    hues = {}
    for p in display.PRIORITIES:
        _, a, b = lab(linear(display.priority_colour(p, palette)))
        if math.hypot(a, b) >= 10:
            hues[p] = math.degrees(math.atan2(b, a)) % 360
    for x, y in itertools.combinations(hues, 2):
        gap = abs(hues[x] - hues[y])
        assert min(gap, 360 - gap) >= MIN_HUE_GAP_DEG, (x, y, hues[x], hues[y])


@pytest.mark.parametrize("palette", display.PALETTES)
def test_priority_ink_is_readable_on_its_fill(palette: str) -> None:
    """Text on each priority fill has at least 4.5:1 contrast (WCAG AA)."""
    for p in display.PRIORITIES:
        fill, ink = display.priority_colour(p, palette), display.priority_ink(p, palette)
        assert contrast(fill, ink) >= 4.5, (p, fill, ink)


def test_night_is_darker_than_day() -> None:
    """The night palette gives off less light than the day one for every priority."""
    for p in display.PRIORITIES:
        assert luminance(display.priority_colour(p, "night")) < \
            luminance(display.priority_colour(p, "day"))


def test_the_old_response_palette_fails_the_hue_rule() -> None:
    """The palette /response used (P1 sky blue ... P5 blue) is what the hue test catches."""
    old = ["#56b4e9", "#e69f00", "#009e73", "#f0e442", "#0072b2"]
    p1, p5 = (lab(linear(c.upper())) for c in (old[0], old[4]))
    gap = abs(math.degrees(math.atan2(p1[2], p1[1]) - math.atan2(p5[2], p5[1])))
    assert min(gap, 360 - gap) < MIN_HUE_GAP_DEG


def test_parse_palettes_reads_night_over_day() -> None:
    """Night inherits what it does not override; comments are ignored."""
    day = "".join(f"--prio-{p}: #00000{p}; --prio-{p}-ink: #FFFFFF;" for p in range(1, 6))
    css = f"/* :root {{ --prio-1: #bad; }} */ :root {{ {day} }}\n" \
          '[data-palette="night"] { --prio-1: #123456; }'
    parsed = display.parse_palettes(css)
    assert parsed["day"]["prio-1"] == "#000001"
    assert parsed["night"]["prio-1"] == "#123456"
    assert parsed["night"]["prio-2"] == "#000002"


@pytest.mark.parametrize(("css", "message"), [
    ("body { color: red; }", "no :root rule"),
    (":root { --prio-1: #fff; }", "lacks --prio-1-ink"),
])
def test_parse_palettes_says_what_is_missing(css: str, message: str) -> None:
    """A palette file without every priority's fill and ink is a clear error."""
    with pytest.raises(ValueError, match=message):
        display.parse_palettes(css)


def test_priority_lookups_refuse_unknown_values() -> None:
    """Priorities outside 1..5 and unknown palettes are ValueErrors, not KeyErrors."""
    with pytest.raises(ValueError, match="1..5"):
        display.priority_colour(6)
    with pytest.raises(ValueError, match="palette"):
        display.priority_ink(1, "dusk")
