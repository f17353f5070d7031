"""Shared display rules: the priority palette and the number/duration formatters.

One home for what every page shows the same way. The palette's source is
``assets/display.css`` (custom properties the pages style with; read here for plotly
figures and tests). The formatters have a JavaScript twin in ``assets/display.js``; both
are checked against one table of cases (``tests/cases/display.json``), so the same 90th
percentile reads the same on the wall, the tablets and /response.

Rounding: every number is rounded half up (``floor(x + 0.5)``) to the unit shown, which
JavaScript's double arithmetic reproduces exactly (Python's ``round`` halves to even and
``toFixed`` rounds binary fractions, so neither is used).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TypeGuard
from zoneinfo import ZoneInfo

from streams.core.settings import PROJECT_ROOT

PALETTE_FILE = PROJECT_ROOT / "assets" / "display.css"
PALETTE_SELECTORS = {":root": "day", '[data-palette="night"]': "night"}
"""CSS rule -> palette name: the day palette is the page default, night an override."""
PALETTES = ("day", "night")
PRIORITIES = (1, 2, 3, 4, 5)
MISSING = "—"
"""What a number that is not known shows (never a zero standing in for it)."""
MINUS = "−"

_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_PROPERTY = re.compile(r"--([a-z0-9-]+)\s*:\s*([^;]+);")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


# --- palette ----------------------------------------------------------------------------

def parse_palettes(css: str) -> dict[str, dict[str, str]]:
    """{"day": {"prio-1": "#D55E00", "prio-1-ink": "#000000", ...}, "night": {...}} from
    the custom properties of the palette rules in ``css``; night inherits what it does
    not override, as it does in the browser."""
    found: dict[str, dict[str, str]] = {}
    for selector, body in _RULE.findall(_COMMENT.sub("", css)):
        name = PALETTE_SELECTORS.get(selector.strip())
        if name is not None:
            found.setdefault(name, {}).update(
                (prop, value.strip()) for prop, value in _PROPERTY.findall(body))
    if "day" not in found:
        raise ValueError("the palette file has no :root rule with the day palette")
    palettes = {"day": found["day"], "night": {**found["day"], **found.get("night", {})}}
    for name, values in palettes.items():
        missing = [f"--prio-{p}{part}" for p in PRIORITIES for part in ("", "-ink")
                   if f"prio-{p}{part}" not in values]
        if missing:
            raise ValueError(f"the {name} palette lacks {', '.join(missing)}")
    return palettes


@lru_cache(maxsize=4)
def palettes(path: Path = PALETTE_FILE) -> dict[str, dict[str, str]]:
    """The palettes of ``assets/display.css``, read once per process."""
    return parse_palettes(path.read_text(encoding="utf-8"))


def _palette(name: str) -> dict[str, str]:
    if name not in PALETTES:
        raise ValueError(f"palette must be one of {', '.join(PALETTES)}, got {name!r}")
    return palettes()[name]


def priority_colour(priority: int, palette: str = "day") -> str:
    """The fill colour of priority 1..5 (hex), e.g. for a plotly trace."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be 1..5, got {priority}")
    return _palette(palette)[f"prio-{priority}"]


def priority_ink(priority: int, palette: str = "day") -> str:
    """The text colour on priority 1..5's fill."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be 1..5, got {priority}")
    return _palette(palette)[f"prio-{priority}-ink"]


# --- numbers ----------------------------------------------------------------------------

def _known(value: float | None) -> TypeGuard[float]:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def duration(seconds: float | None) -> str:
    """'m:ss' under an hour, 'h:mm:ss' from an hour, to the nearest second; '—' when not
    known. Negative durations (clock skew) show as 0:00."""
    if not _known(seconds):
        return MISSING
    whole = max(0, _half_up(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def signed_duration(seconds: float | None) -> str:
    """A difference: '+1:05', '−0:30', '±0:00' (after rounding), '' when not known."""
    if not _known(seconds):
        return ""
    whole = _half_up(seconds)
    if whole == 0:
        return "±0:00"
    return ("+" if whole > 0 else MINUS) + duration(abs(whole))


def short_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min', '2 d 4 h': a card corner's age; '—' when not known.
    Rounded to the second first, then cut to the unit shown (12 min until 13:00)."""
    if not _known(seconds):
        return MISSING
    whole = max(0, _half_up(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def count(value: float | None) -> str:
    """A whole count with thousands separators ('1,234'); '—' when not known."""
    if not _known(value):
        return MISSING
    whole = _half_up(value)
    return (MINUS if whole < 0 else "") + f"{abs(whole):,}"


def distance(metres: float | None) -> str:
    """'300 m' under a kilometre (to the metre), '1.2 km' from there (to 100 m)."""
    if not _known(metres):
        return MISSING
    whole = max(0, _half_up(metres))
    if whole < 1000:
        return f"{whole} m"
    tenths = _half_up(metres / 100)
    return f"{tenths // 10}.{tenths % 10} km"


def percent(fraction: float | None) -> str:
    """A share as a whole percentage ('87%'); '—' when not known (e.g. no calls)."""
    if not _known(fraction):
        return MISSING
    return f"{_half_up(fraction * 100)}%"


def clock(epoch: float | None, timezone: str, seconds: bool = True) -> str:
    """Time of day in the city's zone, 24-hour: '14:02:10' (or '14:02'); '—' if unknown.
    Cut, not rounded, to the unit shown: a clock reads 14:02:10 until 14:02:11."""
    if not _known(epoch):
        return MISSING
    local = datetime.fromtimestamp(math.floor(epoch), ZoneInfo(timezone))
    return local.strftime("%H:%M:%S" if seconds else "%H:%M")
