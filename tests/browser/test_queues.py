"""/queues on a tablet: filters show exactly the matching calls, never a caller's details."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from streams.core.events import CallEvent, Event
from streams.core.geography import NEIGHBORHOODS_FILE, load_geography
from tests.browser.conftest import UI_TIMEOUT_MS, Stack, reader_of, wait_until
from tests.conftest import ARTIFACTS

TABLET = (800, 1280)
PLACES = {
    # neighborhood: (district, lat, lon) -- points inside each polygon
    "Blue Hills": ("North", 41.7930, -72.7010),
    "Northeast": ("North", 41.7890, -72.6740),
    "Asylum Hill": ("Central", 41.7710, -72.6930),
    "Barry Square": ("South", 41.7450, -72.6850),
}


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def created(call_id: str, category: str, neighborhood: str, priority: int, age_s: float,
            number: int) -> CallEvent:
    district, lat, lon = PLACES[neighborhood]
    received = time.time() - age_s
    return CallEvent(
        event_id=f"{call_id}-c", event_time=at(received), source="test", kind="created",
        call_id=call_id, received_time=at(received), category=category, priority=priority,
        call_type=f"{category.title()} complaint", address=f"{100 + number} Test Street",
        lat=lat, lon=lon, district=district, neighborhood=neighborhood,
        caller_name=f"Zebulon Callerton{number}", caller_phone=f"860-555-{1000 + number}")


def cleared(call_id: str) -> CallEvent:
    return CallEvent(event_id=f"{call_id}-x", event_time=at(time.time()), source="test",
                     kind="cleared", call_id=call_id, disposition="Gone on arrival")


def publish_events(stack: Stack, events: Sequence[Event]) -> None:
    """XADD the events to their raw streams; the stack's consumer applies them."""
    stack.publish(events)


def expected_ids(stack: Stack, district: str, category: str) -> set[str]:
    """Open calls in Redis of that district and category (other tests' calls included)."""
    return {call["call_id"] for call in reader_of(stack).open_calls()
            if call["district"] == district and call["category"] == category
            and call["status"] not in ("closed", "cancelled")}


def visible_ids(page: Any) -> set[str]:
    return set(page.eval_on_selector_all(
        "#queues-cards [data-call-id]", "cards => cards.map(c => c.dataset.callId)"))


def wait_for_ids(page: Any, wanted: set[str]) -> None:
    page.wait_for_function(
        """wanted => { const got = [...document.querySelectorAll('#queues-cards [data-call-id]')]
             .map(c => c.dataset.callId).sort();
           return JSON.stringify(got) === JSON.stringify(wanted); }""",
        arg=sorted(wanted), timeout=UI_TIMEOUT_MS)


LOADED: list[str] = []
"""Calls load_calls opened in the running test; cleared after it, so the pages of later
tests (the wall's queue shows only the oldest dozen) do not fill up with them."""


@pytest.fixture(autouse=True)
def clear_loaded_calls(stack: Stack) -> Iterator[None]:
    yield
    if LOADED:
        publish_events(stack, [cleared(call_id) for call_id in LOADED])
        LOADED.clear()


def load_calls(stack: Stack) -> tuple[dict[str, CallEvent], str]:
    tag = uuid.uuid4().hex[:6]
    calls = {
        "north_noise_old": created(f"Q{tag}-1", "noise", "Blue Hills", 3, 1800, 1),
        "north_noise_p2": created(f"Q{tag}-2", "noise", "Northeast", 2, 120, 2),
        "north_atv": created(f"Q{tag}-3", "atv", "Blue Hills", 3, 600, 3),
        "central_noise": created(f"Q{tag}-4", "noise", "Asylum Hill", 3, 300, 4),
        "south_noise": created(f"Q{tag}-5", "noise", "Barry Square", 4, 60, 5),
        "north_violent": created(f"Q{tag}-6", "violent", "Blue Hills", 1, 30, 6),
        "north_noise_closed": created(f"Q{tag}-7", "noise", "Blue Hills", 3, 900, 7),
    }
    publish_events(stack, [*calls.values(), cleared(calls["north_noise_closed"].call_id)])
    LOADED.extend(call.call_id for call in calls.values())
    reader = reader_of(stack)
    wait_until(lambda: all(reader.call(c.call_id) is not None for c in calls.values())
               and reader.call(calls["north_noise_closed"].call_id)["status"] == "closed",
               "the consumer to apply the test calls")
    return calls, tag


def unit_step(call_id: str, kind: str, unit_id: str, step: int) -> CallEvent:
    return CallEvent(event_id=f"{call_id}-{kind}-{unit_id}", event_time=at(time.time() + step),
                     source="test", kind=kind, call_id=call_id, unit_id=unit_id)


def shown_district(page: Any) -> str:
    return str(page.inner_text("#queues-district .dash-dropdown-value")).strip()


def wait_for_district(page: Any, district: str) -> None:
    page.wait_for_function(
        """d => { const v = document.querySelector('#queues-district .dash-dropdown-value');
                  return v && v.textContent.trim() === d; }""", arg=district,
        timeout=UI_TIMEOUT_MS)


def choose(page: Any, dropdown_id: str, label: str) -> None:
    """Pick ``label`` in a dcc.Dropdown the way a finger does: open it, tap the option."""
    page.click(f"#{dropdown_id}")
    page.click(f".dash-dropdown-option:has-text('{label}')")
    page.wait_for_function(
        """([id, label]) => { const v = document.querySelector('#' + id +
               ' .dash-dropdown-value'); return v && v.textContent.includes(label); }""",
        arg=[dropdown_id, label], timeout=UI_TIMEOUT_MS)


def caller_details(calls: dict[str, CallEvent]) -> list[str]:
    return [text for call in calls.values() for text in (call.caller_name, call.caller_phone)
            if text]


def test_district_and_category_filter_shows_exactly_the_matching_calls(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """A North cso on an 800x1280 tablet, filtered to noise, sees exactly North noise calls."""
    calls, _tag = load_calls(stack)
    page = page_for("cso", viewport=TABLET, path="/queues")
    # A cso is locked to their own district.
    wait_for_district(page, "North")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")

    page.click("#queues-category label:has-text('Excessive noise')")
    wanted = expected_ids(stack, "North", "noise")
    assert calls["north_noise_old"].call_id in wanted
    assert calls["north_noise_p2"].call_id in wanted
    wait_for_ids(page, wanted)
    shown = visible_ids(page)
    assert shown == wanted
    assert calls["north_atv"].call_id not in shown
    assert calls["central_noise"].call_id not in shown
    assert calls["north_noise_closed"].call_id not in shown
    assert calls["north_violent"].call_id not in shown

    # Priority first: the P2 call heads the noise queue among the test's calls.
    order = page.eval_on_selector_all("#queues-cards [data-call-id]",
                                      "cards => cards.map(c => c.dataset.callId)")
    assert order.index(calls["north_noise_p2"].call_id) < \
        order.index(calls["north_noise_old"].call_id)

    page.screenshot(path=str(ARTIFACTS / "queues-cso-800x1280.png"), full_page=True)

    html = page.content()
    live = page.evaluate("() => JSON.stringify(window.dispatchLive || null) + "
                         "JSON.stringify(localStorage)")
    for secret in caller_details(calls):
        assert secret not in html, f"caller detail {secret!r} reached the page"
        assert secret not in live, f"caller detail {secret!r} reached the browser's state"


def test_filters_are_remembered_and_cards_update_live(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """The chosen filters survive a reload; a new matching call appears, a cleared one goes."""
    calls, tag = load_calls(stack)
    page = page_for("cso", viewport=TABLET, path="/queues")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    page.click("#queues-category label:has-text('ATVs / dirt bikes')")
    wait_for_ids(page, expected_ids(stack, "North", "atv"))

    page.reload()
    page.wait_for_function(
        "() => { const c = document.querySelector('#queues-category input:checked');"
        " return c && c.value === 'atv'; }")
    wait_for_ids(page, expected_ids(stack, "North", "atv"))

    late = created(f"Q{tag}-8", "atv", "Northeast", 2, 5, 8)
    publish_events(stack, [late])
    page.wait_for_selector(f"[data-call-id='{late.call_id}']")
    publish_events(stack, [cleared(calls["north_atv"].call_id)])
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']", state="detached")
    wait_for_ids(page, expected_ids(stack, "North", "atv"))


def test_only_quality_of_life_changes_re_render_the_cards(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """A change to a call that is not a QoL call (it can change nothing on a tablet) sends
    no cards request; a new QoL call in the district does, and its card appears."""
    calls, tag = load_calls(stack)
    page = page_for("cso", viewport=TABLET, path="/queues")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    renders: list[float] = []
    page.on("request", lambda request: renders.append(time.monotonic())
            if "_dash-update-component" in request.url
            and "queues-cards" in (request.post_data or "") else None)
    # The first render may come before push's snapshot, which re-renders once more: start
    # counting when the snapshot is in and the cards have been quiet for a while.
    page.wait_for_function(
        "id => window.dispatchLive && window.dispatchLive.calls && window.dispatchLive.calls[id]",
        arg=calls["north_atv"].call_id, timeout=UI_TIMEOUT_MS)
    # The snapshot reaches Dash's store (and its re-render) up to a flush later.
    quiet_from, give_up = time.monotonic(), time.monotonic() + UI_TIMEOUT_MS / 1000
    while time.monotonic() - max([quiet_from, *renders]) < 1.5 < give_up - time.monotonic():
        page.wait_for_timeout(250)  # Playwright delivers request events while it waits
    renders.clear()
    violent = created(f"Q{tag}-9", "violent", "Northeast", 1, 5, 9)
    LOADED.append(violent.call_id)
    publish_events(stack, [violent])
    page.wait_for_function(
        "id => window.dispatchLive && window.dispatchLive.calls && window.dispatchLive.calls[id]",
        arg=violent.call_id, timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1000)  # the live store's flush and any callback it would fire
    assert not renders, "a non-QoL call's change re-rendered the cards"
    noise = created(f"Q{tag}-10", "noise", "Northeast", 3, 5, 10)
    LOADED.append(noise.call_id)
    publish_events(stack, [noise])
    page.wait_for_selector(f"[data-call-id='{noise.call_id}']")
    assert renders


def test_card_detail_shows_status_units_and_map_without_caller(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """Tapping a card opens its detail with address, status and a map, and no caller data."""
    calls, _tag = load_calls(stack)
    page = page_for("sro", viewport=(1280, 800), path="/queues")
    target = calls["south_noise"]
    publish_events(stack, [unit_step(target.call_id, "unit_assigned", "S-PAT-06", 1),
                           unit_step(target.call_id, "dispatched", "S-PAT-06", 2)])
    reader = reader_of(stack)
    wait_until(lambda: (reader.call(target.call_id) or {}).get("status") == "dispatched",
               "the unit to be dispatched")
    wait_for_district(page, "South")
    page.click(f"[data-call-id='{target.call_id}']")
    page.wait_for_selector("#queues-detail-fields")
    fields = page.inner_text("#queues-detail-fields")
    assert target.address in fields and "Dispatched" in fields and "Barry Square" in fields
    # Each unit is listed once, with the steps it reached.
    assert fields.count("S-PAT-06") == 1, fields
    assert "S-PAT-06: assigned" in fields and "dispatched" in fields
    page.wait_for_selector("#queues-detail-map .leaflet-interactive")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "queues-sro-detail-1280x800.png"))
    html = page.content()
    for secret in caller_details(calls):
        assert secret not in html
    page.click("#queues-detail-close")
    page.wait_for_selector("#queues-detail-fields", state="detached")


def test_detail_map_outlines_come_from_one_file_not_with_each_tap(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """The detail map draws every neighborhood's outline, the call's highlighted, from the
    outlines file the browser fetches; the tap's reply carries no outline (it was 150 kB)."""
    calls, _tag = load_calls(stack)
    page = page_for("sro", viewport=(1280, 800), path="/queues")
    taps: list[int] = []
    page.on("response", lambda response: taps.append(len(response.body()))
            if "_dash-update-component" in response.url
            and "queues-detail-static" in (response.request.post_data or "") else None)
    wait_for_district(page, "South")
    page.click(f"[data-call-id='{calls['south_noise'].call_id}']")
    page.wait_for_selector("#queues-detail-fields")
    assert taps and max(taps) < 40_000, taps
    outlines = len(msgspec.json.decode((stack.settings.shared_data_dir / NEIGHBORHOODS_FILE)
                                       .read_bytes())["features"])
    dashed = "#queues-detail-map path[stroke-dasharray='4 4']"
    page.wait_for_function("([selector, n]) => document.querySelectorAll(selector).length >= n",
                           arg=[dashed, outlines], timeout=UI_TIMEOUT_MS)
    assert page.locator("#queues-detail-map path[stroke='#1f78b4']").count() == 1
    assert page.locator(".queues-map-label.here").inner_text() == "Barry Square"
    page.click("#queues-detail-close")


def test_enter_on_a_focused_card_opens_its_detail(stack: Stack,
                                                  page_for: Callable[..., Any]) -> None:
    """A card is a button for the keyboard too: Enter on it opens the same detail."""
    calls, _tag = load_calls(stack)
    page = page_for("sro", viewport=(1280, 800), path="/queues")
    target = calls["south_noise"]
    wait_for_district(page, "South")
    page.focus(f"[data-call-id='{target.call_id}']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queues-detail-fields")
    assert target.address in page.inner_text("#queues-detail-fields")
    page.click("#queues-detail-close")
    page.wait_for_selector("#queues-detail-fields", state="detached")


def test_focus_stays_on_its_call_when_the_queue_redraws(stack: Stack,
                                                      page_for: Callable[..., Any]) -> None:
    """A live update that puts a new card above the focused one leaves keyboard focus on
    the same call (each card keeps its element): Enter opens that call, not whichever card
    now sits in its place, and not nothing because its element was replaced."""
    calls, tag = load_calls(stack)
    page = page_for("sro", viewport=(1280, 800), path="/queues")
    target = calls["south_noise"]
    wait_for_district(page, "South")
    page.focus(f"[data-call-id='{target.call_id}']")
    urgent = created(f"Q{tag}-8", "noise", "Barry Square", 1, 5, 8)  # South, P1: sorts first
    LOADED.append(urgent.call_id)
    publish_events(stack, [urgent])
    page.wait_for_selector(f"#queues-cards [data-call-id='{urgent.call_id}']",
                           timeout=UI_TIMEOUT_MS)
    focused = "() => document.activeElement && document.activeElement.dataset.callId"
    assert page.evaluate(focused) == target.call_id
    page.keyboard.press("Enter")
    page.wait_for_selector("#queues-detail-fields")
    assert target.address in page.inner_text("#queues-detail-fields")


TARGETS_JS = """selector => [...document.querySelectorAll(selector)]
    .filter(e => e.offsetParent !== null)
    .map(e => { const box = e.getBoundingClientRect();
                return [e.id || e.textContent.trim().slice(0, 30), box.width, box.height]; })"""


def small_targets(page: Any, selector: str) -> tuple[int, list[Any]]:
    """(how many visible elements match, those under 44 px tall or wide)."""
    found = page.evaluate(TARGETS_JS, selector)
    return len(found), [item for item in found if item[1] < 44 or item[2] < 44]


def test_touch_targets_are_at_least_44_px(stack: Stack, page_for: Callable[..., Any]) -> None:
    """Dropdowns, their options, chips, cards and the navbar (menu, links, sign out) are
    all at least 44 px on a 768 px tablet, and nothing scrolls sideways."""
    calls, _tag = load_calls(stack)
    page = page_for("cso", viewport=(768, 1024), path="/queues")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    count, small = small_targets(
        page, ".queues-filters .dash-dropdown, #queues-category label, "
              "#queues-cards [data-call-id]")
    assert count >= 3 + 10 + 1
    assert not small, f"touch targets under 44 px: {small}"
    choose(page, "queues-place", "Keney Park")
    page.click("#queues-place")
    count, small = small_targets(page, ".dash-dropdown-option")
    assert count >= 2 and not small, f"dropdown options under 44 px: {small}"
    page.keyboard.press("Escape")

    # The navbar folds into a menu on a tablet, but sign-out stays one tap away; the
    # toggler and every item are 44 px.
    assert page.locator("#nav-signout").is_visible()
    count, small = small_targets(page, "#nav-toggler, #nav-signout")
    assert count == 2 and not small, small
    page.click("#nav-toggler")
    page.wait_for_selector("#nav-user", state="visible")
    count, small = small_targets(page, ".app-navbar .nav-link")
    assert count >= 3 and not small, f"navbar targets under 44 px: {small}"
    page.wait_for_timeout(500)  # the menu slides open
    page.screenshot(path=str(ARTIFACTS / "queues-cso-menu-768x1024.png"))
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 768, f"the page scrolls sideways ({width} px wide)"


def test_district_lock_cannot_be_forced_from_the_browser(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """A North cso never sees a South call: the selector is disabled and offers only North,
    and neither a forged localStorage entry nor a forced dropdown value gets past the
    server; the push service sends no South call either."""
    calls, _tag = load_calls(stack)
    south = calls["south_noise"].call_id
    page = page_for("cso", viewport=TABLET, path="/queues")
    wait_for_district(page, "North")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    assert page.locator("#queues-district").is_disabled()

    # A forged remembered filter: South district, all categories.
    page.evaluate("""() => { const key = 'queues-filters';
        localStorage.setItem(key, JSON.stringify({'cso-north': {district: 'South',
            neighborhood: 'Barry Square', park: 'all', category: 'all'}})); }""")
    page.reload()
    wait_for_district(page, "North")
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    wait_for_ids(page, expected_ids_all(stack, "North"))

    # A forced value straight into Dash: the server still answers with North's calls.
    page.evaluate("""() => dash_clientside.set_props('queues-district', {value: 'South'})""")
    page.wait_for_timeout(1000)
    wait_for_ids(page, expected_ids_all(stack, "North"))
    assert south not in visible_ids(page)
    live = page.evaluate("() => JSON.stringify(window.dispatchLive || null)")
    assert calls["north_atv"].call_id in live
    assert south not in live and calls["central_noise"].call_id not in live


def test_supervisor_picks_any_district_and_the_navbar_stays_one_line(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """A supervisor (no district lock) switches districts freely; at 800 px the navbar is
    one 44+ px row with a menu toggler, not two wrapped lines."""
    calls, _tag = load_calls(stack)
    page = page_for("supervisor", viewport=TABLET, path="/queues")
    assert not page.locator("#queues-district").is_disabled()
    wait_for_district(page, "All districts")
    page.wait_for_selector(f"[data-call-id='{calls['south_noise'].call_id}']")
    choose(page, "queues-district", "Central")
    wait_for_ids(page, expected_ids_all(stack, "Central"))
    assert calls["central_noise"].call_id in visible_ids(page)
    choose(page, "queues-district", "South")
    wait_for_ids(page, expected_ids_all(stack, "South"))
    nav_height = page.evaluate(
        "() => document.querySelector('.app-navbar').getBoundingClientRect().height")
    assert 44 <= nav_height <= 70, f"navbar is {nav_height} px tall"
    page.screenshot(path=str(ARTIFACTS / "queues-supervisor-800x1280.png"), full_page=True)


def expected_ids_all(stack: Stack, district: str) -> set[str]:
    """Open QoL calls of one district, every category."""
    return {call["call_id"] for call in reader_of(stack).open_calls(qol_only=True)
            if call["district"] == district}


def test_park_filter_shows_the_calls_inside_the_park(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """Choosing a park shows exactly the open QoL calls within its radius (in the district)."""
    park = next(p for p in load_geography(stack.settings.shared_data_dir).parks
                if p.name == "Keney Park")
    tag = uuid.uuid4().hex[:6]
    inside = created(f"P{tag}-1", "loitering", "Blue Hills", 3, 300, 21)
    inside = msgspec.structs.replace(inside, lat=park.lat + 0.001, lon=park.lon)
    outside = created(f"P{tag}-2", "loitering", "Blue Hills", 3, 300, 22)
    publish_events(stack, [inside, outside])
    reader = reader_of(stack)
    wait_until(lambda: reader.call(outside.call_id) is not None
               and reader.call(inside.call_id) is not None, "the park test calls")

    page = page_for("cso", viewport=TABLET, path="/queues")
    page.wait_for_selector(f"[data-call-id='{outside.call_id}']")
    choose(page, "queues-place", park.name)
    wanted = {call["call_id"] for call in reader.open_calls(qol_only=True)
              if call["district"] == "North" and call.get("lat") is not None
              and metres(call["lat"], call["lon"], park.lat, park.lon) <= park.radius_m}
    assert inside.call_id in wanted and outside.call_id not in wanted
    wait_for_ids(page, wanted)
    choose(page, "queues-place", "Any place")
    page.wait_for_selector(f"[data-call-id='{outside.call_id}']")


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: plenty accurate within a park, and independent of the app."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6_371_000 * math.hypot(x, math.radians(lat2 - lat1))


def test_counts_are_unknown_not_zero_until_the_first_answer(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """Before the server's first cards answer (slow on a busy server) the chips' counts read
    '…' and the grid says it is loading: not 0 and a blank grid, which read as 'no calls'."""
    calls, _tag = load_calls(stack)
    page = page_for("cso", viewport=TABLET, path="/")
    updates = re.compile(r"/_dash-update-component")

    def hold(route: Any) -> None:
        if "queues-cards.children" in (route.request.post_data or ""):
            route.fulfill(status=204)  # Dash: no update, as if the answer were still coming
        else:
            route.fallback()

    page.route(updates, hold)
    page.goto(page.url.rsplit("/", 1)[0] + "/queues")
    page.wait_for_selector(".queues-loading")
    counts = page.eval_on_selector_all("#queues-category .queues-count",
                                       "ns => ns.map(n => n.textContent)")
    assert counts and set(counts) == {"…"}, counts
    page.unroute(updates, hold)
    page.click("#queues-category label:has-text('ATVs / dirt bikes')")  # asks again
    page.wait_for_selector(f"[data-call-id='{calls['north_atv'].call_id}']")
    assert page.locator(".queues-loading").count() == 0
    counts = page.eval_on_selector_all("#queues-category .queues-count",
                                       "ns => ns.map(n => n.textContent)")
    assert "…" not in counts and all(count.isdigit() for count in counts), counts
