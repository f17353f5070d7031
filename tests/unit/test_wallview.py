"""Unit tests of the wall display's pure logic (dashboard/wallview.py)."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard import wallview as wv

TARGETS = (60, 180, 600, 1200, 1800)
NOW = 1_750_000_000.0
HARTFORD = (41.7637, -72.6851)


def call(call_id: str, status: str = "pending", priority: int = 3, age: float = 0.0,
         **extra: object) -> dict[str, object]:
    return {"call_id": call_id, "status": status, "priority": priority,
            "received_time": NOW - age, **extra}


def unit(unit_id: str, status: str = "available", lat: float | None = None,
         lon: float | None = None) -> dict[str, object]:
    return {"unit_id": unit_id, "status": status, "lat": lat, "lon": lon}


def north_of(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat + metres / 111_195.0, lon


def test_haversine_one_degree_of_latitude_is_111_km() -> None:
    """One degree of latitude is 111,195.08 m on the 6,371,008.8 m mean-radius sphere."""
    assert wv.haversine_m(41.0, -72.0, 42.0, -72.0) == pytest.approx(111_195.08, abs=0.01)


def test_haversine_is_the_shared_geography_one() -> None:
    """The wall uses streams.core.geography's haversine and radius, not a copy of its own."""
    from streams.core import geography
    assert wv.haversine_m is geography.haversine_m
    assert wv.EARTH_RADIUS_M == geography.EARTH_RADIUS_M == 6_371_008.8


SQUARE = [[[-72.70, 41.76], [-72.68, 41.76], [-72.68, 41.78], [-72.70, 41.78], [-72.70, 41.76]]]


def test_label_point_of_a_square_is_on_its_middle_line() -> None:
    """0.02 x 0.02 degrees is taller than wide on the ground: the label is mid-way across,
    anywhere on the middle line at least half the width from the top and bottom."""
    lat, lon = wv.label_point(SQUARE)
    half_width = 0.01 * math.cos(math.radians(41.77))
    assert lon == pytest.approx(-72.69, abs=2e-4)
    assert 41.76 + half_width - 2e-4 <= lat <= 41.78 - half_width + 2e-4


def test_label_point_of_an_l_shape_is_inside_it() -> None:
    """An L's label lands inside the L (its centroid would fall in the missing corner)."""
    ell = [[[0, 0], [10, 0], [10, 2], [2, 2], [2, 10], [0, 10], [0, 0]]]
    lat, lon = wv.label_point(ell)
    assert (0 < lon < 2 and 0 < lat < 10) or (0 < lat < 2 and 0 < lon < 10)
    # The most room is by the inner corner: 1.17 from the outer edges and the corner point.
    assert lon == pytest.approx(1.17, abs=0.05) and lat == pytest.approx(1.17, abs=0.05)


def test_label_point_avoids_a_hole() -> None:
    """A hole in the middle pushes the label off the centre, into the ring around it."""
    hole = [[-72.695, 41.765], [-72.685, 41.765], [-72.685, 41.775], [-72.695, 41.775],
            [-72.695, 41.765]]
    lat, lon = wv.label_point([SQUARE[0], hole])
    assert not (41.765 < lat < 41.775 and -72.695 < lon < -72.685)


def test_label_point_rejects_a_degenerate_polygon() -> None:
    """Fewer than 3 points is not an area to label: ValueError."""
    with pytest.raises(ValueError, match="3 points"):
        wv.label_point([[[0, 0], [1, 1]]])


def test_haversine_same_point_is_zero() -> None:
    """A point is 0 m from itself."""
    assert wv.haversine_m(*HARTFORD, *HARTFORD) == 0.0


def test_eta_at_40_kmh() -> None:
    """1 km at the assumed 40 km/h takes 90 s."""
    assert wv.eta_s(1000) == pytest.approx(90.0)


def test_eta_rejects_zero_speed() -> None:
    """A speed of 0 raises ValueError rather than dividing by zero."""
    with pytest.raises(ValueError, match="speed"):
        wv.eta_s(100, 0)


@pytest.mark.parametrize(("priority", "age", "expected"), [
    (1, 0, "ok"), (1, 29.9, "ok"), (1, 30, "warn"), (1, 60, "warn"), (1, 60.5, "late"),
    (2, 89, "ok"), (2, 90, "warn"), (2, 181, "late"),
    (5, 899, "ok"), (5, 900, "warn"), (5, 1801, "late"),
])
def test_aging_level_by_priority_target(priority: int, age: float, expected: str) -> None:
    """A pending call is amber from half its priority's target and red past the target."""
    assert wv.aging_level(call("c", priority=priority, age=age), NOW, TARGETS) == expected


def test_aging_level_assigned_call_never_red() -> None:
    """A call with a unit is 'assigned' however long it has been open."""
    assert wv.aging_level(call("c", status="en_route", priority=1, age=9999), NOW,
                          TARGETS) == "assigned"


def test_pending_target_rejects_priority_six() -> None:
    """Priority outside 1..5 raises ValueError naming the allowed range."""
    with pytest.raises(ValueError, match="1..5"):
        wv.pending_target_s(6, TARGETS)


def test_queue_order_pending_first_then_priority_then_oldest() -> None:
    """Pending before assigned, then priority, then oldest; closed calls dropped."""
    calls = [
        call("assigned-p1", status="dispatched", priority=1, age=500),
        call("p3-new", priority=3, age=10),
        call("p3-old", priority=3, age=100),
        call("p1", priority=1, age=5),
        call("closed", status="closed", priority=1, age=1000),
        call("onscene-p2", status="on_scene", priority=2, age=50),
    ]
    order = [c["call_id"] for c in wv.queue_order(calls)]
    assert order == ["p1", "p3-old", "p3-new", "assigned-p1", "onscene-p2"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0:00"), (59.4, "0:59"), (59.9, "1:00"), (61, "1:01"), (3599, "59:59"), (3600, "1:00:00"),
    (3725, "1:02:05"), (-4, "0:00"),
])
def test_format_age(seconds: float, text: str) -> None:
    """Ages read m:ss under an hour and h:mm:ss above, to the nearest second (the shared
    formatter); negative ages read 0:00."""
    assert wv.format_age(seconds) == text


def test_live_kpis_counts() -> None:
    """KPIs count open calls, pending P1/P2, QoL backlog per district and available units."""
    calls = [
        call("a", priority=1), call("b", priority=1), call("c", priority=2),
        call("d", status="dispatched", priority=1),
        call("e", qol=True, district="North"), call("f", qol=True, district="North",
                                                     status="on_scene"),
        call("g", qol=True, district="South"), call("h", status="closed", qol=True,
                                                     district="South"),
    ]
    units = [unit("u1"), unit("u2", "dispatched"), unit("u3"), unit("u4", "out_of_service")]
    assert wv.live_kpis(calls, units, ("North", "Central", "South")) == {
        "open": 7, "pending_p1": 2, "pending_p2": 1,
        "qol_backlog": {"North": 2, "Central": 0, "South": 1}, "units_available": 2,
    }


def test_quantile_matches_linear_interpolation() -> None:
    """Median and p90 use linear interpolation, as numpy and pandas do by default."""
    values = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert wv.quantile(values, 0.5) == 30.0
    assert wv.quantile(values, 0.9) == pytest.approx(76.0)
    assert wv.quantile([7.0], 0.9) == 7.0


def test_quantile_of_nothing_raises() -> None:
    """Asking for a quantile of no values raises ValueError."""
    with pytest.raises(ValueError, match="empty"):
        wv.quantile([], 0.5)


def test_city_day_bounds_in_new_york() -> None:
    """Today in the city runs from local midnight to the next local midnight."""
    zone = ZoneInfo("America/New_York")
    now = datetime(2014, 7, 4, 1, 30, tzinfo=zone).timestamp()
    start, end = wv.city_day_bounds(now, "America/New_York")
    assert start == datetime(2014, 7, 4, tzinfo=zone).timestamp()
    assert end - start == 24 * 3600


def test_city_day_bounds_on_dst_change_day_is_23_hours() -> None:
    """The spring-forward day in New York is 23 hours long."""
    now = datetime(2014, 3, 9, 12, tzinfo=ZoneInfo("America/New_York")).timestamp()
    start, end = wv.city_day_bounds(now, "America/New_York")
    assert end - start == 23 * 3600


def test_response_summary_per_priority_and_overall() -> None:
    """Median/p90 per priority with target verdicts, then an untargeted 'All' row."""
    rows = [(1, 300.0), (1, 400.0), (1, 500.0), (2, 800.0), (2, math.nan), (3, 100.0)]
    summary = wv.response_summary(rows, (420, 720, 1200, 1800, 3600))
    assert [r["label"] for r in summary] == ["P1", "P2", "P3", "All"]
    p1 = summary[0]
    assert (p1["count"], p1["median_s"], p1["p90_s"]) == (3, 400.0, pytest.approx(480.0))
    assert (p1["median_ok"], p1["p90_ok"]) == (True, False)
    assert summary[1]["count"] == 1 and summary[1]["median_ok"] is False
    assert summary[3]["count"] == 5 and summary[3]["target_s"] is None


def test_response_summary_empty_day() -> None:
    """No closed calls today gives no rows."""
    assert wv.response_summary([], TARGETS) == []


def test_nearest_units_only_available_with_position_sorted() -> None:
    """Nearest units are available ones with a position, closest first, with distance/ETA."""
    units = [
        unit("far", lat=north_of(*HARTFORD, 2000)[0], lon=HARTFORD[1]),
        unit("busy", "dispatched", *north_of(*HARTFORD, 10)),
        unit("near", lat=north_of(*HARTFORD, 400)[0], lon=HARTFORD[1]),
        unit("nofix"),
        unit("mid", lat=north_of(*HARTFORD, 1000)[0], lon=HARTFORD[1]),
        unit("farther", lat=north_of(*HARTFORD, 3000)[0], lon=HARTFORD[1]),
    ]
    found = wv.nearest_units(*HARTFORD, units, limit=3)
    assert [u["unit_id"] for u in found] == ["near", "mid", "far"]
    assert found[0]["distance_m"] == pytest.approx(400, abs=1)
    assert found[0]["eta_s"] == pytest.approx(36, abs=0.2)


def test_linked_calls_within_500_m_and_10_min() -> None:
    """Calls within 500 m and 10 min either side of the alert are linked; others are not."""
    alert = {"alert_id": "s1", "lat": HARTFORD[0], "lon": HARTFORD[1], "detected_time": NOW}
    lat_400, _ = north_of(*HARTFORD, 400)
    lat_600, _ = north_of(*HARTFORD, 600)
    calls = [
        {"call_id": "near-after", "lat": lat_400, "lon": HARTFORD[1], "received_time": NOW + 300},
        {"call_id": "near-before", "lat": HARTFORD[0], "lon": HARTFORD[1],
         "received_time": NOW - 599},
        {"call_id": "too-far", "lat": lat_600, "lon": HARTFORD[1], "received_time": NOW},
        {"call_id": "too-late", "lat": HARTFORD[0], "lon": HARTFORD[1],
         "received_time": NOW + 601},
        {"call_id": "no-fix", "lat": None, "lon": None, "received_time": NOW},
    ]
    assert [c["call_id"] for c in wv.linked_calls(alert, calls)] == ["near-before", "near-after"]


def test_gunshot_origin_calls_link_farther_and_first() -> None:
    """A call the gunshot system opened links 800 m away and before a nearer plain call;
    an alert made from a CAD call always links that call."""
    alert = {"alert_id": "s1", "lat": HARTFORD[0], "lon": HARTFORD[1], "detected_time": NOW}
    lat_800, _ = north_of(*HARTFORD, 800)
    lat_100, _ = north_of(*HARTFORD, 100)
    calls = [
        {"call_id": "plain", "lat": lat_100, "lon": HARTFORD[1], "received_time": NOW},
        {"call_id": "shots", "lat": lat_800, "lon": HARTFORD[1], "received_time": NOW,
         "gunshot_origin": True},
        {"call_id": "plain-800", "lat": lat_800, "lon": HARTFORD[1], "received_time": NOW},
    ]
    assert [c["call_id"] for c in wv.linked_calls(alert, calls)] == ["shots", "plain"]
    from_cad = {**alert, "from_cad": True, "call_id": "plain-800"}
    assert [c["call_id"] for c in wv.linked_calls(from_cad, calls)] == \
        ["shots", "plain", "plain-800"]


def test_gunshot_banner_combines_units_and_calls() -> None:
    """The banner carries the alert, its nearest units and linked calls."""
    alert = {"alert_id": "s1", "lat": HARTFORD[0], "lon": HARTFORD[1], "detected_time": NOW,
             "rounds": 4}
    banner = wv.gunshot_banner(alert, [unit("u", lat=HARTFORD[0], lon=HARTFORD[1])],
                               [{"call_id": "c", "lat": HARTFORD[0], "lon": HARTFORD[1],
                                 "received_time": NOW + 60}])
    assert banner["alert"]["rounds"] == 4
    assert [u["unit_id"] for u in banner["units"]] == ["u"]
    assert [c["call_id"] for c in banner["calls"]] == ["c"]


@pytest.mark.parametrize(("age", "opacity"), [(0, 1.0), (900, 0.813), (1800, 0.625),
                                              (3600, 0.25),
                                              (99999, 0.25), (-5, 1.0)])
def test_alert_opacity_fades_with_age(age: float, opacity: float) -> None:
    """Alerts fade linearly from opaque to 0.25 over the active hour."""
    assert wv.alert_opacity(age) == opacity


def test_feed_health_live_stale_none() -> None:
    """Feeds are live under the threshold, 'STALE N min' past it, 'no data' when unseen."""
    freshness = {
        "cad": {"event_time": NOW - 9999, "seen": NOW - 10},
        "avl": {"event_time": NOW - 420, "seen": None},
        "shotspotter": {"event_time": None, "seen": None},
    }
    health = wv.feed_health(freshness, ("cad", "avl", "shotspotter", "mutualink"), NOW,
                            dict.fromkeys(("cad", "avl", "shotspotter", "mutualink"), 300))
    assert [(h["source"], h["state"], h["text"]) for h in health] == [
        ("cad", "live", "live"), ("avl", "stale", "STALE 7 min"),
        ("shotspotter", "none", "no data"), ("mutualink", "none", "no data"),
    ]


def test_rotation_views_names_and_districts() -> None:
    """?rotate= names the views in order; districts in any case; unknown names reported."""
    views, unknown = wv.rotation_views(["city", "NORTH", " central", "response", "shares",
                                        "moon", ""], ["North", "Central", "South"])
    assert [(v["id"], v["kind"], v.get("district")) for v in views] == [
        ("city", "city", None), ("north", "district", "North"),
        ("central", "district", "Central"), ("response", "response", None),
        ("shares", "shares", None)]
    assert views[1]["label"] == "North district" and unknown == ["moon"]


@pytest.mark.parametrize(("text", "seconds"), [
    (None, 30), ("", 30), ("45", 45), ("0", 2), ("-5", 2), ("soon", 30), ("7.9", 7)])
def test_rotation_seconds(text: str | None, seconds: int) -> None:
    assert wv.rotation_seconds(text, 30) == seconds
