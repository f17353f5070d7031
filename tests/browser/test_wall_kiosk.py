"""/wall as a kiosk: ?rotate=...&every=... rotates views on a timer in the page."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import Stack
from tests.browser.test_wall import (
    CLIPPED_JS,
    clear_board,
    new_call,
    open_wall,
    publish_events,
    wait_for_rows,
)
from tests.conftest import ARTIFACTS, TIMEOUT_SCALE

VIEW_JS = """() => { const s = window.dash_clientside.wall._state;
  const panel = document.getElementById('wall-view-panel');
  return {view: document.getElementById('wall-root').dataset.view,
          chip: document.getElementById('wall-view').textContent,
          title: document.getElementById('wall-view').title, zoom: s.map.getZoom(),
          panel: panel.hidden ? null : panel.innerText}; }"""
CENTRAL_IN_VIEW_JS = """names => { const map = document.getElementById('wall-map')
  .getBoundingClientRect();
  return [...document.querySelectorAll('.wall-hood-label')].filter(n =>
    names.includes(n.textContent.replace(/\\s+/g, ' ').trim())).every(n => {
      const b = n.getBoundingClientRect(), x = (b.left + b.right) / 2, y = (b.top + b.bottom) / 2;
      return x > map.left && x < map.right && y > map.top && y < map.bottom; }); }"""
CENTRAL = ["Downtown Hartford", "Asylum Hill", "West End", "Frog Hollow", "Parkville",
           "Sheldon Charter Oak"]


def wait_view(page: Any, view: str, seconds: float = 10) -> dict[str, Any]:
    """The page's state at the first moment ``view`` is up (read in the same task)."""
    handle = page.wait_for_function(
        f"v => {{ const s = ({VIEW_JS})(); return s.view === v ? s : null; }}", arg=view,
        timeout=int(seconds * 1000 * TIMEOUT_SCALE))
    result: dict[str, Any] = handle.json_value()
    return result


def test_kiosk_rotates_views_without_reload(stack: Stack,
                                            page_for: Callable[..., Any]) -> None:
    """The wall shows the city, a district fitted to the map, today's response times and
    the video shares in turn, every 3 s here, with no reload; live data keeps arriving and
    the connection-lost banner shows over any view."""
    page = open_wall(page_for)
    page.goto(f"{stack.base_url}/wall?rotate=city,central,response,shares,nowhere&every=3")
    page.wait_for_function("() => window.wallFirstRenderAt !== undefined && "
                           "document.querySelectorAll('.wall-hood-label').length === 16")
    page_for.allow_errors(page, r"WebSocket|ERR_CONNECTION_REFUSED|net::")
    page.evaluate("() => { window.__noReload = true; }")
    city = wait_view(page, "city")
    assert city["chip"] == "Whole city · 1/4" and "nowhere" in city["title"]
    assert city["panel"] is None
    central = wait_view(page, "central")
    assert central["chip"] == "Central district · 2/4"
    assert central["zoom"] > city["zoom"]  # the district fills the map
    assert page.evaluate(CENTRAL_IN_VIEW_JS, CENTRAL)
    response = wait_view(page, "response")
    assert response["panel"] is not None and "Response today" in response["panel"]
    assert response["zoom"] == city["zoom"]  # the map under it is the city again
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wall-kiosk-response.png"))
    shares = wait_view(page, "shares")
    assert shares["panel"] is not None and "Video shares" in shares["panel"]
    # Live data keeps flowing while it rotates.
    call = new_call(f"R{uuid.uuid4().hex[:6]}", priority=1, age_s=90_000)
    publish_events(stack, [call])
    try:
        wait_for_rows(page, [call.call_id])
        # The lost banner is on top of whatever view is up.
        stack.stop("push")
        page.wait_for_selector("#live-lost-banner", state="visible",
                               timeout=int(10_000 * TIMEOUT_SCALE))
        for view in ("response", "shares", "city"):
            wait_view(page, view)
            on_top = page.evaluate("""() => { const b = document.getElementById(
              'live-lost-banner').getBoundingClientRect();
              const hit = document.elementFromPoint((b.left + b.right) / 2, (b.top + b.bottom) / 2);
              return Boolean(hit && hit.closest('#live-lost-banner')); }""")
            assert on_top, view
        page.screenshot(path=str(ARTIFACTS / "wall-kiosk-lost.png"))
        stack.start("push")
        page.wait_for_selector("#live-lost-banner", state="hidden",
                               timeout=int(15_000 * TIMEOUT_SCALE))
        assert page.evaluate("() => window.__noReload === true")
    finally:
        if not stack.running("push"):
            stack.start("push")
        clear_board(stack, [call.call_id])


def test_no_rotation_by_default(stack: Stack, page_for: Callable[..., Any]) -> None:
    """Without ?rotate= or DISPATCH_WALL_ROTATE the wall stays on the whole city."""
    page = open_wall(page_for)
    page.wait_for_timeout(2500)
    state = page.evaluate("""() => [document.getElementById('wall-root').dataset.view || null,
      document.getElementById('wall-view').hidden,
      document.getElementById('wall-view-panel').hidden]""")
    assert state == [None, True, True]


def test_district_views_keep_the_hot_spot_panel_whole(stack: Stack,
                                                      page_for: Callable[..., Any]) -> None:
    """A district fitted to the map leaves the hot-spot panel no free width beside it: the
    panel then lies over the map's corner at its own width, never squeezed until its
    names are cut to a letter each (as North was on a 1920x1080 wall)."""
    page = open_wall(page_for)
    page.goto(f"{stack.base_url}/wall?rotate=north,central,south&every=2")
    page.wait_for_function("() => window.wallFirstRenderAt !== undefined && "
                           "document.querySelectorAll('#wall-hotspots .whs-row').length > 0")
    for view in ("north", "central", "south"):
        wait_view(page, view)
        page.wait_for_timeout(300)  # the fit after the view change has run
        assert page.evaluate(CLIPPED_JS) == [], view
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"wall-kiosk-{view}.png"))
