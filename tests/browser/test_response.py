"""/response: the numbers shown equal numpy's over the same closed calls; export = shown."""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from streams.core import display
from streams.core.events import CallEvent, Event
from streams.core.livestate import closed_record
from tests.browser.conftest import Stack
from tests.browser.test_queues import wait_until
from tests.conftest import ARTIFACTS

CITY = ZoneInfo("America/New_York")
DISTRICT_AT = {"North": ("Blue Hills", 41.7930, -72.7010),
               "Central": ("Asylum Hill", 41.7710, -72.6930),
               "South": ("Barry Square", 41.7450, -72.6850)}
JULY = ("2014-07-01", "2014-07-31")
"""The custom range the test views; its previous period is the 31 days before it."""


@dataclass(frozen=True)
class Lifecycle:
    call_id: str
    district: str
    priority: int
    category: str
    received: float
    dispatch_s: float | None
    travel_s: float | None
    cancelled: bool


def lifecycles(tag: str) -> list[Lifecycle]:
    """Known calls: 60 in July 2014 (the viewed range), 30 in June (the previous period)."""
    rng = random.Random(2014)
    calls = []
    for number in range(90):
        month, last_day = (7, 31) if number < 60 else (6, 30)
        local = datetime(2014, month, rng.randint(1, last_day), rng.randint(0, 23),
                         rng.randint(0, 59), tzinfo=CITY)
        kind = rng.random()
        dispatch = float(rng.randint(20, 900))
        travel = float(rng.randint(60, 1500))
        calls.append(Lifecycle(
            f"R{tag}-{number:03d}", rng.choice(list(DISTRICT_AT)), rng.randint(1, 5),
            rng.choice(["noise", "atv", "violent", "traffic"]), local.timestamp(),
            None if kind < 0.05 else dispatch,
            None if kind < 0.15 else travel, cancelled=kind < 0.05))
    return calls


def events_of(call: Lifecycle) -> list[Event]:
    """created -> dispatched -> on scene -> cleared (or cancelled), as CAD would send."""
    neighborhood, lat, lon = DISTRICT_AT[call.district]

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(call.received + seconds, UTC)

    base = {"source": "test", "call_id": call.call_id}
    events: list[Event] = [CallEvent(
        event_id=f"{call.call_id}-c", event_time=at(0), kind="created", received_time=at(0),
        category=call.category, priority=call.priority, call_type="Test call",
        address="1 Main St", lat=lat, lon=lon, district=call.district,
        neighborhood=neighborhood, caller_name="Zed Testcaller", **base)]
    clock = 0.0
    if call.dispatch_s is not None:
        clock = call.dispatch_s
        events.append(CallEvent(event_id=f"{call.call_id}-d", event_time=at(clock),
                                kind="dispatched", unit_id="T1", **base))
        if call.travel_s is not None:
            clock += call.travel_s
            events.append(CallEvent(event_id=f"{call.call_id}-s", event_time=at(clock),
                                    kind="on_scene", unit_id="T1", **base))
    events.append(CallEvent(event_id=f"{call.call_id}-x", event_time=at(clock + 600),
                            kind="cancelled" if call.cancelled else "cleared", **base))
    return events


@pytest.fixture(scope="module")
def closed(stack: Stack) -> list[Lifecycle]:
    """The known calls, published through the real consumer and closed by it."""
    calls = lifecycles(uuid.uuid4().hex[:6])
    # July 2014 is history: published as a replay of old data would be (history window).
    stack.publish([event for call in calls for event in events_of(call)], history=True)
    ids = {call.call_id for call in calls}
    wait_until(lambda: ids <= closed_ids(stack), "the consumer to close every test call")
    return calls


def closed_ids(stack: Stack) -> set[str]:
    """Call ids on the closed-calls stream (what the history is built from)."""
    return {fields[b"call_id"].decode() for _, fields in stack.redis.xrange(stack.keys.closed)}


PENDING = (60, 180, 600, 1200, 1800)
RESPONSE = (420, 720, 1200, 1800, 3600)
"""The default targets the stack runs with (P1..P5 seconds)."""


def in_range(calls: list[Lifecycle], first: str, last: str) -> list[Lifecycle]:
    start = datetime.fromisoformat(first).replace(tzinfo=CITY).timestamp()
    end = (pd.Timestamp(last, tz=CITY) + pd.Timedelta(days=1)).timestamp()
    return [c for c in calls if start <= c.received < end and not c.cancelled]


def metric_values(calls: list[Lifecycle], metric: str) -> np.ndarray:
    values = []
    for call in calls:
        value = {"dispatch": call.dispatch_s, "travel": call.travel_s,
                 "response": None if call.dispatch_s is None or call.travel_s is None
                 else call.dispatch_s + call.travel_s}[metric]
        if value is not None and (metric == "dispatch" or call.dispatch_s is not None):
            values.append(value)
    return np.array(values, dtype=float)


def m_ss(seconds: float) -> str:
    """What the page shows for a duration: the shared formatter's text."""
    return display.duration(seconds)


def open_july(page_for: Callable[..., Any], extra: str = "") -> Any:
    page = page_for("supervisor", viewport=(1440, 1000), path="/response")
    # The harness signs in to a bare path; the view's query string is applied after.
    page.goto(f"{stack_url(page)}/response?start={JULY[0]}&end={JULY[1]}{extra}")
    page.wait_for_function(
        "() => (document.getElementById('response-kpi-response-median') || {}).dataset"
        " && document.getElementById('response-kpi-response-median').dataset.seconds")
    return page


def stack_url(page: Any) -> str:
    parts = urlsplit(page.url)
    return f"{parts.scheme}://{parts.netloc}"


def download(page: Any, button: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click(button)
    text = Path(info.value.path()).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(
        "\n".join(line for line in text.splitlines() if not line.startswith("#")))))


def download_head(page: Any, button: str) -> dict[str, str]:
    """The '# name,value' lines an export starts with, by name."""
    with page.expect_download() as info:
        page.click(button)
    text = Path(info.value.path()).read_text(encoding="utf-8")
    head = csv.reader(line for line in text.splitlines() if line.startswith("# "))
    return {name[2:]: value for name, value in head}


def test_medians_and_p90s_equal_numpy_over_the_same_calls(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """Each interval's median and p90 on screen equal numpy's over the July calls."""
    page = open_july(page_for)
    july = in_range(closed, *JULY)
    june = [c for c in closed if not c.cancelled and c not in july]
    for metric in ("dispatch", "travel", "response"):
        values = metric_values(july, metric)
        median, p90 = np.median(values), np.percentile(values, 90)
        for name, expected in (("median", median), ("p90", p90)):
            element = page.locator(f"#response-kpi-{metric}-{name}")
            assert float(element.get_attribute("data-seconds")) == pytest.approx(expected,
                                                                                  abs=1e-3)
            assert element.inner_text() == m_ss(expected)
        assert page.get_attribute(f"#response-kpi-{metric}-n", "data-n") == str(values.size)
        before = np.median(metric_values(june, metric))
        delta = page.inner_text(f"#response-kpi-{metric}-median-delta")
        assert f"{display.signed_duration(median - before)} vs previous" in delta
    page.wait_for_selector("#response-series .main-svg")
    page.screenshot(path=str(ARTIFACTS / "response-supervisor-1440x1000.png"), full_page=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "response-supervisor-1920x1080.png"), full_page=True)


def test_series_export_equals_pandas_groupby(stack: Stack, closed: list[Lifecycle],
                                             page_for: Callable[..., Any]) -> None:
    """The series CSV (what the chart draws) equals a pandas groupby by district and week."""
    page = open_july(page_for, "&split=district&bucket=week&metric=response")
    page.wait_for_selector("#response-series .main-svg")
    rows = [row for row in download(page, "#response-export-series")
            if row["period"] == "current"]
    july = [c for c in in_range(closed, *JULY) if c.dispatch_s is not None
            and c.travel_s is not None]
    frame = pd.DataFrame({
        "district": [c.district for c in july],
        "day": [datetime.fromtimestamp(c.received, CITY).date() for c in july],
        "value": [c.dispatch_s + c.travel_s for c in july]})
    frame["week"] = [d.toordinal() - d.weekday() for d in frame["day"]]
    expected = {}
    for (district, week), group in frame.groupby(["district", "week"]):
        monday = datetime.fromordinal(int(week)).date().isoformat()
        expected[(district, monday)] = (len(group), np.median(group["value"]),
                                        np.percentile(group["value"], 90))
    shown = {(row["group"], row["bucket"][:10]): (int(row["n"]), float(row["median_seconds"]),
                                                  float(row["p90_seconds"])) for row in rows}
    assert shown.keys() == expected.keys()
    for key, (n, median, p90) in expected.items():
        assert shown[key][0] == n
        assert shown[key][1] == pytest.approx(median, abs=1e-3)
        assert shown[key][2] == pytest.approx(p90, abs=1e-3)


def test_table_export_is_the_table_shown_and_rows_drill_down(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """The slowest-calls table ranks calls by how far they went past their own priority's
    target; its CSV equals its rows; a click drills down."""
    page = open_july(page_for, "&metric=dispatch")
    page.wait_for_selector("#response-slowest .ag-row")
    shown = page.evaluate(
        """async () => { const api = await dash_ag_grid.getApiAsync('response-slowest');
             const rows = []; api.forEachNodeAfterFilterAndSort(n => rows.push(n.data));
             return rows; }""")
    july = in_range(closed, *JULY)
    slowest = sorted((c for c in july if c.dispatch_s is not None),
                     key=lambda c: (-(c.dispatch_s - PENDING[c.priority - 1]), -c.dispatch_s,
                                    c.call_id))
    assert [row["past_target_seconds"] for row in shown] == [
        c.dispatch_s - PENDING[c.priority - 1] for c in slowest]
    assert [row["call_id"] for row in shown] == [c.call_id for c in slowest]
    first = page.locator(f"#response-slowest .ag-row[row-id='{slowest[0].call_id}'] "
                         "[col-id='dispatch_seconds']")
    assert first.inner_text() == m_ss(slowest[0].dispatch_s)
    exported = download(page, "#response-export-table")
    assert [row["call_id"] for row in exported] == [row["call_id"] for row in shown]
    assert [float(row["dispatch_seconds"]) for row in exported] == \
        [float(row["dispatch_seconds"]) for row in shown]
    assert [row["priority"] for row in exported] == [f"P{c.priority}" for c in slowest]
    assert all("Testcaller" not in str(row) for row in exported)

    page.click(f"#response-slowest .ag-row[row-id='{slowest[0].call_id}'] .ag-cell")
    page.wait_for_selector("#response-detail-fields")
    assert m_ss(slowest[0].dispatch_s) in page.inner_text("#response-detail-fields")
    page.wait_for_timeout(500)  # let the modal finish fading in
    page.screenshot(path=str(ARTIFACTS / "response-drilldown.png"))


def test_tablet_roles_are_refused_and_commanders_may_view(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """A cso opening /response gets the refusal; a commander gets the figures."""
    page = page_for("cso", viewport=(800, 1280), path="/response")
    page.wait_for_selector("#page-refused")
    assert page.locator("#response-kpis").count() == 0
    commander = page_for("commander", viewport=(1440, 1000), path="/response")
    commander.goto(f"{stack_url(commander)}/response?start={JULY[0]}&end={JULY[1]}")
    commander.wait_for_selector("#response-kpi-response-median[data-seconds]")
    assert commander.locator("#page-refused").count() == 0


def test_cards_give_share_within_target_per_priority(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """One card per priority: the share within its own target (numpy over the same calls),
    PASS at 90 % or more, FAIL below, in words and colour; the intervals are defined."""
    page = open_july(page_for)
    page.wait_for_selector("#response-compliance .response-comp")
    july = in_range(closed, *JULY)
    for priority in range(1, 6):
        mine = [c for c in july if c.priority == priority]
        values = metric_values(mine, "response")
        card = page.locator(f"#response-comp-p{priority}")
        if not values.size:
            assert card.count() == 0
            continue
        share = float(np.mean(values <= RESPONSE[priority - 1]))
        assert float(card.get_attribute("data-share")) == pytest.approx(share, abs=1e-6)
        verdict = "pass" if share >= 0.9 else "fail"
        assert card.get_attribute("data-verdict") == verdict
        assert ("PASS" if verdict == "pass" else "FAIL") in card.inner_text()
    definitions = page.inner_text("#response-definitions")
    for words in ("Received → dispatched", "Dispatched → on scene", "Received → on scene",
                  "Time on scene", "Cancelled calls"):
        assert words in definitions
    page.screenshot(path=str(ARTIFACTS / "response-compliance-1440x1000.png"), full_page=True)


def test_cancelled_calls_are_a_visible_filter(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """Cancelled calls are left out by default (counted in the notes) and can be included:
    the filter changes n and the figures, and the report says which was chosen."""
    base = datetime(2011, 5, 10, 9, tzinfo=CITY).timestamp()
    tag = uuid.uuid4().hex[:6]
    add_closed(stack, [closed_record({
        "call_id": f"K{tag}-{n}", "category": "noise", "priority": 3,
        "received_time": base + 600 * n, "dispatched_time": base + 600 * n + 60 + n,
        "closed_time": base + 600 * n + 900, "source": "cad",
        "status": "cancelled" if n < 2 else "closed"}) for n in range(6)])
    page = page_for("supervisor", viewport=(1440, 1000), path="/response")
    page.goto(f"{stack_url(page)}/response?start=2011-05-10&end=2011-05-10&metric=dispatch")
    page.wait_for_selector("#response-kpi-dispatch-median[data-seconds]")
    assert page.get_attribute("#response-kpi-dispatch-n", "data-n") == "4"
    notes = page.inner_text("#response-left-out")
    assert "6 closed calls in the period, 4 counted" in notes and "Cancelled: 2" in notes
    page.click("#response-cancelled")
    page.get_by_role("option", name="Included").click()
    page.wait_for_function(
        "() => document.getElementById('response-kpi-dispatch-n').dataset.n === '6'")
    assert float(page.get_attribute("#response-kpi-dispatch-median", "data-seconds")) == \
        pytest.approx(np.median([60.0 + n for n in range(6)]), abs=1e-3)
    assert "cancelled calls included" in page.inner_text("#response-print-header")


def lifecycles_in_july(calls: list[Lifecycle]) -> list[Lifecycle]:
    start = datetime.fromisoformat(JULY[0]).replace(tzinfo=CITY).timestamp()
    end = (pd.Timestamp(JULY[1], tz=CITY) + pd.Timedelta(days=1)).timestamp()
    return [c for c in calls if start <= c.received < end]


def add_closed(stack: Stack, records: list[dict[str, str]]) -> None:
    for record in records:
        stack.redis.xadd(stack.keys.closed, record)


def test_a_feed_without_received_times_and_left_feed_closures(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """A history export with on-scene and cleared times only: time on scene is measured,
    the intervals it cannot give say 'not in this feed' (n absent, never 0 s); calls that
    left an active feed are counted and kept out."""
    base = datetime(2012, 3, 14, 12, tzinfo=CITY).timestamp()
    tag = uuid.uuid4().hex[:6]
    export = [closed_record({"call_id": f"X{tag}-{n}", "category": "noise", "priority": 3,
                             "on_scene_time": base + 3600 * n,
                             "closed_time": base + 3600 * n + 600 + 60 * n,
                             "status": "closed", "source": "export"}) for n in range(5)]
    left = [{**closed_record({"call_id": f"L{tag}-{n}", "category": "noise", "priority": 2,
                              "received_time": base + 100 * n,
                              "dispatched_time": base + 100 * n + 50,
                              "on_scene_time": base + 100 * n + 400,
                              "closed_time": base + 100 * n + 999, "status": "closed",
                              "source": "activefeed"}), "left_feed": "1"} for n in range(3)]
    add_closed(stack, export + left)
    page = page_for("supervisor", viewport=(1440, 1000), path="/response")
    page.goto(f"{stack_url(page)}/response?start=2012-03-14&end=2012-03-14&metric=on_scene")
    page.wait_for_selector("#response-kpi-on_scene-median[data-seconds]")
    values = np.array([600 + 60 * n for n in range(5)], dtype=float)
    assert float(page.get_attribute("#response-kpi-on_scene-median", "data-seconds")) == \
        pytest.approx(np.median(values), abs=1e-3)
    assert page.get_attribute("#response-kpi-on_scene-n", "data-n") == "5"
    absent = page.inner_text("#response-kpi-response")
    assert "not in this feed" in absent and "export" in absent and "0 s" not in absent
    notes = page.inner_text("#response-left-out")
    assert "(the feed never said they closed): 3" in notes
    page.screenshot(path=str(ARTIFACTS / "response-not-in-feed.png"), full_page=True)


PRINTED_TABLE_JS = """() => {
  const box = document.getElementById('response-slowest-print');
  const cells = [...box.querySelectorAll('th, td')].map(n => getComputedStyle(n));
  const table = box.querySelector('table');
  return {ink: [...new Set(cells.map(s => s.color))],
          paper: [...new Set(cells.map(s => s.backgroundColor))],
          heads: [...box.querySelectorAll('th')].map(n => n.textContent),
          rows: box.querySelectorAll('tbody tr').length,
          fits: table.getBoundingClientRect().right <= document.documentElement.clientWidth,
          cut: [...box.querySelectorAll('th, td')].filter(n => n.scrollWidth > n.clientWidth + 1)
               .map(n => n.textContent)};
}"""
"""The printed slowest-calls table: its colours, heads, rows and whether anything is cut."""


def closed_rows(page: Any) -> list[Any]:
    """The slowest-calls table's rows as the server sent them (the grid's rowData)."""
    rows: list[Any] = page.evaluate(
        "() => { const grid = window.dash_ag_grid && window.dash_ag_grid.getApi"
        " && window.dash_ag_grid.getApi('response-slowest'); const out = [];"
        " if (grid) { grid.forEachNode(n => out.push(n.data.call_id)); } return out; }")
    return rows


def test_csv_exports_state_what_they_hold_and_the_page_prints(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """Both CSVs start with period, filters, interval, time zone and when they were made,
    and each export is in the audit trail; the print stylesheet puts the report on white
    paper without the controls."""
    page = open_july(page_for, "&metric=travel&split=district")
    page.wait_for_selector("#response-series .main-svg")
    for button in ("#response-export-series", "#response-export-table"):
        head = download_head(page, button)
        assert head["Interval"].startswith("Dispatched → on scene")
        assert head["Period"].startswith("Custom range: 2014-07-01 – 2014-07-31")
        assert "all districts" in head["Filters"] and "cancelled calls left out" in \
            head["Filters"]
        assert head["Time zone"].startswith("America/New_York")
        made = datetime.strptime(head["Made"][:19], "%Y-%m-%d %H:%M:%S")
        assert abs((datetime.now(CITY).replace(tzinfo=None) - made).total_seconds()) < 600
    exports = [fields for _, fields in stack.redis.xrevrange(stack.keys.audit, count=50)
               if fields.get(b"action") == b"csv_export"
               and b"Dispatched" in fields.get(b"detail", b"")]
    assert len(exports) >= 2 and {f[b"user"] for f in exports} == {b"supervisor"}
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 1123, "height": 794})  # A4 landscape at 96 dpi
    assert page.locator("#response-print-header").is_visible()
    assert not page.locator("#response-filters, .response-filters").first.is_visible()
    assert not page.locator(".app-navbar").is_visible()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
    # The table too, every row and column: the grid drew only the rows in its viewport and
    # cut the columns past the page, and its light text came out white on white paper.
    assert not page.locator("#response-slowest").is_visible()
    page.wait_for_selector("#response-slowest-print tbody tr")
    printed = page.evaluate(PRINTED_TABLE_JS)
    assert printed["rows"] == len(closed_rows(page)) > 0, printed["rows"]
    assert printed["heads"][:2] == ["Call", "Received"] and "Past target" in printed["heads"]
    assert "On scene" in printed["heads"] and "Type" in printed["heads"], printed["heads"]
    assert printed["ink"] == ["rgb(0, 0, 0)"], printed
    assert set(printed["paper"]) <= {"rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"}, printed
    assert printed["fits"] and printed["cut"] == [], printed
    page.screenshot(path=str(ARTIFACTS / "response-print-a4.png"), full_page=True)
    pdf = page.pdf(format="A4", landscape=True, print_background=True)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    (ARTIFACTS / "response-report.pdf").write_bytes(pdf)


def test_presets_fill_the_date_picker_and_priority_split_draws_targets(
        stack: Stack, closed: list[Lifecycle], page_for: Callable[..., Any]) -> None:
    """A preset puts its local dates in the picker; editing a date switches to Custom; a
    priority split draws one labelled target per priority shown."""
    page = open_july(page_for, "&split=priority&metric=dispatch")
    page.wait_for_selector("#response-series .main-svg")
    labels = page.locator("#response-series .annotation-text").all_text_contents()
    assert any(text.startswith("P1 target 1:00") for text in labels), labels
    page.screenshot(path=str(ARTIFACTS / "response-priority-split.png"), full_page=True)

    page.click("label:has-text('30 days')")
    today = datetime.now(CITY).date()
    first = (pd.Timestamp(today) - pd.Timedelta(days=29)).date().isoformat()
    page.wait_for_function(
        "(first) => document.getElementById('response-range').value === first", arg=first)
    assert page.input_value("#response-range-end-date") == today.isoformat()
    page.wait_for_function("() => /Last 30 days \\(whole calendar days/.test("
                           "document.getElementById('response-period-label').innerText)")

    page.fill("input#response-range", "2014-07-02")
    page.press("input#response-range", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#response-preset input[value=custom]').checked")
    page.wait_for_function("() => document.getElementById('response-period-label')"
                           ".innerText.startsWith('Custom range: 2014-07-02')")


def test_slowest_calls_headers_are_not_cut(stack: Stack, closed: list[Lifecycle],
                                           page_for: Callable[..., Any]) -> None:
    """Every column head of the slowest calls reads whole beside its sort and filter icons:
    "Past target", the column the table is ranked by, was cut to "Past tar..."."""
    page = open_july(page_for)
    page.wait_for_selector("#response-slowest .ag-row .ag-cell")
    cut = page.eval_on_selector_all(
        "#response-slowest .ag-header-cell-text",
        "ns => ns.filter(n => n.scrollWidth > n.clientWidth + 1).map(n => n.textContent)")
    assert cut == []
