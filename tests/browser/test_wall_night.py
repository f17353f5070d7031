"""Night palette on /wall (issue 10 item 5): by parameter or by the city's clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.browser.conftest import Stack
from tests.browser.test_wall import FULL_HD, open_wall
from tests.conftest import ARTIFACTS

PALETTE_JS = """() => {
  const root = document.getElementById('wall-root'), cs = getComputedStyle(root);
  return {palette: root.dataset.palette, prio1: cs.getPropertyValue('--prio-1').trim(),
          background: cs.backgroundColor, text: cs.color};
}"""


def test_night_parameter_dims_the_wall_and_uses_the_night_priorities(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    day, night = open_wall(page_for), open_wall(page_for)
    for page, palette in ((day, "day"), (night, "night")):
        page.goto(f"{stack.base_url}/wall?palette={palette}")
        page.wait_for_function("() => window.wallFirstRenderAt !== undefined && "
                               "document.getElementById('wall-root').dataset.palette")
    lit, dark = day.evaluate(PALETTE_JS), night.evaluate(PALETTE_JS)
    assert lit["palette"] == "day" and dark["palette"] == "night"
    assert lit["prio1"].upper() == "#D55E00" and dark["prio1"].upper() == "#A94900"
    assert dark["background"] == "rgb(0, 0, 0)" and dark["text"] != lit["text"]
    # The canvas markers are drawn in the night colours too (measured from the CSS). The
    # markers' canvas comes with the map's boundaries, which may load after the first board.
    night.wait_for_function("() => window.dash_clientside.wall._state.marks !== null")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    night.screenshot(path=str(ARTIFACTS / f"wall-night-{FULL_HD[0]}x{FULL_HD[1]}.png"))


def test_night_follows_the_configured_hours(stack: Stack,
                                             page_for: Callable[..., Any]) -> None:
    page = open_wall(page_for)
    assert stack.settings.wall_night_hours == (20, 6)
    hours = list(stack.settings.wall_night_hours)
    cases = {0: True, 5: True, 6: False, 12: False, 19: False, 20: True, 23: True}
    assert page.evaluate("([hs, h]) => hs.map(x => window.dash_clientside.wall.nightAt(x, h))",
                         [list(cases), hours]) == list(cases.values())
    assert page.evaluate("() => window.dash_clientside.wall.nightAt(3, [8, 17])") is False
    assert page.evaluate("() => window.dash_clientside.wall.nightAt(3, [])") is False
    hour = page.evaluate("() => Number(new Intl.DateTimeFormat('en-GB', {timeZone: "
                         f"'{stack.settings.timezone}', hour: '2-digit', hourCycle: 'h23'}})"
                         ".format(new Date()))")
    page.wait_for_function("() => document.getElementById('wall-root').dataset.palette")
    expected = "night" if cases.get(hour, 6 > hour or hour >= 20) else "day"
    assert page.evaluate(PALETTE_JS)["palette"] == expected
