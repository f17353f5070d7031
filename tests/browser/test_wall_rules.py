"""assets/wall.js against the wall's one table of cases (tests/cases/wall_rules.json), the
same table tests/unit/test_wall_rules.py checks dashboard/wallview.py against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboard import wallview
from streams.core import geography
from tests.browser.conftest import Stack
from tests.browser.test_wall import open_wall
from tests.unit.test_wall_rules import CASES


def test_wall_js_follows_the_rule_table(stack: Stack, page_for: Callable[..., Any]) -> None:
    page = open_wall(page_for)
    wall = "window.dash_clientside.wall"
    targets = CASES["pending_targets"]
    levels = page.evaluate(
        f"([cases, t]) => cases.map(([c, now]) => {wall}.agingLevel(c, now, t))",
        [CASES["aging_level"], targets])
    assert levels == [case[2] for case in CASES["aging_level"]]
    orders = page.evaluate(
        f"cases => cases.map(k => {wall}.queueOrder(k.calls).map(c => c.call_id))",
        CASES["queue_order"])
    assert orders == [case["order"] for case in CASES["queue_order"]]
    rows = page.evaluate(
        f"cases => cases.map(k => {{ const v = {wall}.queueRows(k.calls, k.fit);"
        " return [v.shown.map(c => c.call_id), v.hidden]; })", CASES["queue_rows"])
    assert rows == [[case["shown"], case["hidden"]] for case in CASES["queue_rows"]]
    health = page.evaluate(
        f"cases => cases.map(k => {wall}.feedHealth(k.freshness, k.expect.map(r => r[0]),"
        " k.now, k.limits, k.alive).map(h => [h.source, h.state, h.text]))",
        CASES["feed_health"])
    assert health == [case["expect"] for case in CASES["feed_health"]]
    opacity = page.evaluate(
        f"cases => cases.map(([age, active]) => {wall}.alertOpacity(age, active))",
        CASES["alert_opacity"])
    assert opacity == [case[2] for case in CASES["alert_opacity"]]
    nearest = page.evaluate(
        f"cases => cases.map(k => {wall}.nearestUnits(k.lat, k.lon, k.units, k.limit, 40,"
        " k.tiers).map(u => u.unit_id))", CASES["nearest_units"])
    assert nearest == [case["expect"] for case in CASES["nearest_units"]]


def test_wall_js_hotspots_follow_the_rule_table(stack: Stack,
                                               page_for: Callable[..., Any]) -> None:
    """wall.js's hot-spot containment and counts equal HotSpot.contains and
    wallview.hotspot_counts on the table's corridors, circles, holes and unknowns."""
    page = open_wall(page_for)
    wall = "window.dash_clientside.wall"

    def configs(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [wallview.hotspot_config(geography.hotspot_from_feature(f, n))
                for n, f in enumerate(features, 1)]

    table = CASES["hotspot_contains"]
    inside = page.evaluate(
        f"([areas, points]) => points.map(([lat, lon]) => areas.map(a => "
        f"{wall}.hotspotContains(a, lat, lon)))", [configs(table["areas"]), table["points"]])
    assert inside == [row[2] for row in table["points"]]
    counts = page.evaluate(
        f"cases => cases.map(k => {wall}.hotspotCounts(k.areas, k.calls, k.alerts, k.now,"
        " k.active_s, k.known))",
        [{**case, "areas": configs(case["areas"])} for case in CASES["hotspot_counts"]])
    assert counts == [case["expect"] for case in CASES["hotspot_counts"]]
    known = page.evaluate(f"cases => cases.map(([s, c]) => {wall}.countsKnown(s, c))",
                          CASES["counts_known"])
    assert known == [case[2] for case in CASES["counts_known"]]
