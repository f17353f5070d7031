"""dashboard/wallview.py against the wall's one table of cases (tests/cases/wall_rules.json).

assets/wall.js is checked against the same table in tests/browser/test_wall_rules.py, so
the two sides of each rule (ageing, queue order, feed health, alert fading) cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboard import wallview
from streams.core import geography

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "cases" / "wall_rules.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("call", "now", "level"), CASES["aging_level"])
def test_aging_level(call: dict[str, Any], now: float, level: str) -> None:
    assert wallview.aging_level(call, now, CASES["pending_targets"]) == level


@pytest.mark.parametrize("case", CASES["queue_order"])
def test_queue_order(case: dict[str, Any]) -> None:
    assert [c["call_id"] for c in wallview.queue_order(case["calls"])] == case["order"]


@pytest.mark.parametrize("case", CASES["queue_rows"])
def test_queue_rows(case: dict[str, Any]) -> None:
    """A short queue keeps every P1/P2 and the pending calls, and counts what it hid."""
    view = wallview.queue_rows(case["calls"], case["fit"])
    assert [c["call_id"] for c in view["shown"]] == case["shown"]
    assert view["hidden"] == case["hidden"]


@pytest.mark.parametrize("case", CASES["feed_health"])
def test_feed_health(case: dict[str, Any]) -> None:
    health = wallview.feed_health(case["freshness"], [row[0] for row in case["expect"]],
                                  case["now"], case["limits"], case["alive"])
    assert [[h["source"], h["state"], h["text"]] for h in health] == case["expect"]


@pytest.mark.parametrize(("age", "active", "opacity"), CASES["alert_opacity"])
def test_alert_opacity(age: float, active: float, opacity: float) -> None:
    assert wallview.alert_opacity(age, active) == opacity


@pytest.mark.parametrize("case", CASES["nearest_units"])
def test_nearest_units(case: dict[str, Any]) -> None:
    found = wallview.nearest_units(case["lat"], case["lon"], case["units"], case["limit"],
                                   case["tiers"])
    assert [u["unit_id"] for u in found] == case["expect"]


def test_table_covers_every_feed_state() -> None:
    """Each state of FEED_STATES has a case, so none is left to one side's reading."""
    states = {row[1] for case in CASES["feed_health"] for row in case["expect"]}
    assert states == set(wallview.FEED_STATES)


@pytest.mark.parametrize(("process", "payload", "sources"), [
    ("simulator", {"seen": 5.0}, ("cad", "avl", "shotspotter", "mutualink")),
    ("webhook", {"time": 5.0}, ("shotspotter",)),
    ("poll:hartford-cad", {"time": 5.0, "state": "ok", "source": "cad"}, ("cad",)),
    ("poll:hartford-cad", {"time": 5.0, "state": "error", "source": "cad"}, ()),
    ("poll:old-version", {"time": 5.0, "state": "ok"}, ()),
    ("browser-consumer", {"time": 5.0}, ()),
])
def test_vouched_sources(process: str, payload: dict[str, Any],
                         sources: tuple[str, ...]) -> None:
    """A heartbeat keeps alive only the feeds its process delivers (a failing poll: none)."""
    assert wallview.vouched_sources(process, payload) == sources


def test_source_heartbeats_keep_the_newest_and_longest() -> None:
    beats = [("webhook", {"time": 990.0}, 20.0), ("simulator", {"seen": 995.0}, 5.0),
             ("push-1", {"time": 999.0}, 30.0)]
    alive = wallview.source_heartbeats(beats, now=1000.0)
    assert alive["shotspotter"] == {"heard": 995.0, "until": 1020.0}
    assert alive["cad"] == {"heard": 995.0, "until": 1005.0}
    assert set(alive) == {"cad", "avl", "shotspotter", "mutualink"}


HOTSPOTS = [geography.hotspot_from_feature(feature, n)
            for n, feature in enumerate(CASES["hotspot_contains"]["areas"], 1)]


@pytest.mark.parametrize(("lat", "lon", "inside"), CASES["hotspot_contains"]["points"])
def test_hotspot_contains(lat: float, lon: float, inside: list[bool]) -> None:
    """A corridor's round ends and bends, a circle's edge, a polygon's hole, a
    MultiPolygon's parts."""
    assert [spot.contains(lat, lon) for spot in HOTSPOTS] == inside


@pytest.mark.parametrize("case", CASES["hotspot_counts"])
def test_hotspot_counts(case: dict[str, Any]) -> None:
    """Open calls and the last hour's alerts per area; unknown is None, never 0."""
    spots = [geography.hotspot_from_feature(f, n) for n, f in enumerate(case["areas"], 1)]
    assert wallview.hotspot_counts(spots, case["calls"], case["alerts"], case["now"],
                                   case["active_s"], case["known"]) == case["expect"]


@pytest.mark.parametrize(("states", "connected", "known"), CASES["counts_known"])
def test_counts_known(states: dict[str, str], connected: bool, known: dict[str, bool]) -> None:
    assert wallview.counts_known(states, connected) == known


def test_default_hotspots_are_labelled_examples() -> None:
    """The shipped hot spots say they are examples a department replaces (its setting)."""
    text = geography.DEFAULT_HOTSPOTS_FILE.read_text(encoding="utf-8")
    assert "EXAMPLES, not Hartford PD data" in text and "DISPATCH_HOTSPOTS_FILE" in text
