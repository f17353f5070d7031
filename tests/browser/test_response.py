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

from dashboard.readapi import LiveReader
from streams.core.events import CallEvent, Event
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
    reader = LiveReader(stack.redis, stack.keys)
    ids = {call.call_id for call in calls}
    wait_until(lambda: ids <= set(reader.closed_calls(0, 2e9)["call_id"]),
               "the consumer to close every test call")
    return calls


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
    total = int(round(seconds))
    return f"{total} s" if total < 60 else f"{total // 60}:{total % 60:02d}"


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
    return list(csv.DictReader(io.StringIO(text)))


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
        sign = "+" if median - before >= 0 else "−"
        assert f"{sign}{m_ss(abs(median - before))} vs previous" in delta
    page.wait_for_selector("#response-series .main-svg")
    page.screenshot(path=str(ARTIFACTS / "response-supervisor-1440x1000.png"), full_page=True)


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
    """The slowest-calls table is slowest first; its CSV equals its rows; a click drills down."""
    page = open_july(page_for, "&metric=dispatch")
    page.wait_for_selector("#response-slowest .ag-row")
    shown = page.evaluate(
        """async () => { const api = await dash_ag_grid.getApiAsync('response-slowest');
             const rows = []; api.forEachNodeAfterFilterAndSort(n => rows.push(n.data));
             return rows; }""")
    july = in_range(closed, *JULY)
    slowest = sorted((c for c in july if c.dispatch_s is not None),
                     key=lambda c: (-c.dispatch_s, c.call_id))
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


def test_tablet_roles_are_refused(stack: Stack, page_for: Callable[..., Any]) -> None:
    """A cso opening /response gets the refusal, not the figures."""
    page = page_for("cso", viewport=(800, 1280), path="/response")
    page.wait_for_selector("#page-refused")
    assert page.locator("#response-kpis").count() == 0


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
