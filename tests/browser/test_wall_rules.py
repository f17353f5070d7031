"""assets/wall.js against the wall's one table of cases (tests/cases/wall_rules.json), the
same table tests/unit/test_wall_rules.py checks dashboard/wallview.py against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
