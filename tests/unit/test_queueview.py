"""The QoL queue page's pure logic: filters, counts, cards, park areas."""

from __future__ import annotations

import pytest

from dashboard import queueview as qv
from streams.core.events import QOL_CATEGORIES

NOW = 1_720_000_000.0


def call(call_id: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "call_id": call_id, "status": "pending", "category": "noise", "qol": True,
        "priority": 3, "received_time": NOW - 600, "district": "North",
        "neighborhood": "Blue Hills", "address": "1 Main St", "call_type": "Loud music",
        "lat": 41.78, "lon": -72.70, "units": [], "caller_name": "Jane Roe",
        "caller_phone": "860-555-0199", "applied": ["e1"],
    }
    base.update(fields)
    return base


CALLS = [
    call("A", district="North", category="noise"),
    call("B", district="North", category="atv", priority=2),
    call("C", district="South", category="noise", neighborhood="South End"),
    call("D", district="North", category="noise", neighborhood="Northeast", priority=1),
    call("E", district="North", category="violent"),
    call("F", district="North", category="noise", status="closed"),
    call("G", district="Central", category="dumping", lat=None, lon=None),
]


def ids(calls: list) -> list[str]:
    return [c["call_id"] for c in calls]


def test_no_filter_keeps_open_qol_calls_in_queue_order() -> None:
    """Only open QoL calls remain, ordered by priority then oldest."""
    assert ids(qv.filter_calls(CALLS, qv.QueueFilter())) == ["D", "B", "A", "C", "G"]


def test_district_and_category_filter_together() -> None:
    """District and category narrow to calls matching both."""
    chosen = qv.QueueFilter(district="North", category="noise")
    assert ids(qv.filter_calls(CALLS, chosen)) == ["D", "A"]


def test_neighborhood_filter() -> None:
    """A neighborhood filter keeps that neighborhood's calls only."""
    assert ids(qv.filter_calls(CALLS, qv.QueueFilter(neighborhood="South End"))) == ["C"]


def test_counts_ignore_the_category_filter_but_not_others() -> None:
    """Counts per category reflect district filtering yet list every QoL category."""
    counts = qv.category_counts(CALLS, qv.QueueFilter(district="North", category="atv"))
    assert counts["noise"] == 2 and counts["atv"] == 1 and counts["dumping"] == 0
    assert list(counts) == list(QOL_CATEGORIES)


def test_filter_values_from_storage_ignore_junk() -> None:
    """Stored filter values of 'all', '' or an unknown category mean no filter."""
    chosen = qv.QueueFilter.from_values({"district": "all", "neighborhood": "",
                                         "category": "violent", "park": None})
    assert chosen == qv.QueueFilter()
    assert qv.QueueFilter.from_values(None) == qv.QueueFilter()
    assert qv.QueueFilter.from_values({"district": "South", "category": "atv"}) == \
        qv.QueueFilter(district="South", category="atv")


def test_card_never_carries_caller_fields() -> None:
    """A card holds no caller name or phone and no internal fields."""
    made = qv.card(CALLS[0], NOW)
    assert "caller_name" not in made and "caller_phone" not in made and "applied" not in made
    assert "Jane" not in repr(made) and "555" not in repr(made)
    assert made["age_s"] == 600 and made["age_text"] == "10 min"
    assert made["category_label"] == "Excessive noise" and made["status_label"] == "Pending"


def test_detail_never_carries_caller_fields() -> None:
    """The detail panel's fields hold no caller data but do hold unit times."""
    made = qv.detail(call("X", unit_times={"U1": {"dispatched": NOW}}), NOW)
    assert "Jane" not in repr(made) and "555" not in repr(made)
    assert made["unit_times"] == {"U1": {"dispatched": NOW}}


def test_group_by_category_follows_initiative_order() -> None:
    """Cards group into one queue per category in QOL_CATEGORIES order."""
    cards = [qv.card(c, NOW) for c in qv.filter_calls(CALLS, qv.QueueFilter())]
    grouped = qv.group_by_category(cards)
    assert [category for category, _ in grouped] == ["noise", "dumping", "atv"]
    assert [c["call_id"] for c in grouped[0][1]] == ["D", "A", "C"]


def test_park_filter_uses_the_area_test() -> None:
    """With a park chosen, only calls the area contains remain; calls without a fix drop."""
    area = qv.circle_test(41.78, -72.70, 50)
    calls = [call("IN", lat=41.7802, lon=-72.7001), call("OUT", lat=41.79, lon=-72.70),
             call("NOFIX", lat=None, lon=None)]
    assert ids(qv.filter_calls(calls, qv.QueueFilter(place="Keney"), area)) == ["IN"]
    assert ids(qv.filter_calls(calls, qv.QueueFilter(place="Keney"), None)) == []


def test_distance_of_one_degree_of_latitude() -> None:
    """Haversine gives about 111.2 km per degree of latitude."""
    assert qv.distance_m(41.0, -72.0, 42.0, -72.0) == pytest.approx(111_195, rel=1e-3)


def test_polygon_with_hole() -> None:
    """The polygon test honours the outer ring and excludes holes."""
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    test = qv.polygon_test([outer, hole])
    assert test(1, 1) and not test(5, 5) and not test(11, 5)


def test_bad_areas_are_refused() -> None:
    """A zero radius or a degenerate polygon raises ValueError."""
    with pytest.raises(ValueError, match="radius"):
        qv.circle_test(0, 0, 0)
    with pytest.raises(ValueError, match="outer ring"):
        qv.polygon_test([[[0, 0], [1, 1]]])


# --- district lock and unit lines -------------------------------------------------------
def test_enforce_scope_overrides_whatever_district_the_browser_sent() -> None:
    """A locked user's filter always carries their district; an unlocked one is untouched."""
    forged = qv.QueueFilter.from_values({"district": "South", "category": "noise"})
    scoped = qv.enforce_scope(forged, "North")
    assert scoped == qv.QueueFilter("North", None, "noise", None)
    assert ids(qv.filter_calls(CALLS, scoped)) == ["D", "A"]
    assert qv.enforce_scope(forged, None) is forged
    assert qv.enforce_scope(qv.QueueFilter(), "North").district == "North"


def test_unit_lines_list_each_unit_once_with_its_steps() -> None:
    """Each unit gets one line with the steps it reached; a unit without times still shows."""
    shown = {"units": ["S-PAT-06", "S-CSO-1"],
             "unit_times": {"S-PAT-06": {"assigned": NOW, "dispatched": NOW + 60,
                                         "en_route": None}}}
    lines = qv.unit_lines(shown, lambda epoch: f"t{int(epoch - NOW)}")
    assert lines == ["S-PAT-06: assigned t0, dispatched t60", "S-CSO-1"]
    assert qv.unit_lines({"units": [], "unit_times": {}}, str) == []
    assert qv.unit_lines({"unit_times": {"A": {"on_scene": NOW}}},
                         lambda epoch: "x") == ["A: on scene x"]


# --- the tablet view: sections, clocks, overdue, actions on cards (issue 11 item 3) ----------

TARGETS = qv.Targets(pending=(60, 180, 600, 1200, 1800), response=(420, 720, 1200, 1800, 3600))


def test_waiting_calls_come_first_then_assigned_then_on_scene() -> None:
    """Sections before priority: a P1 on scene sorts after a P4 still waiting."""
    calls = [call("S", status="on_scene", priority=1), call("A", status="en_route", priority=2),
             call("W", priority=4), call("D", status="dispatched", priority=1)]
    assert ids(qv.filter_calls(calls, qv.QueueFilter())) == ["W", "D", "A", "S"]
    cards = [qv.card(c, NOW) for c in qv.filter_calls(calls, qv.QueueFilter())]
    assert [(section, [c["call_id"] for c in queue])
            for section, _, queue in qv.group_by_section(cards)] == [
        ("pending", ["W"]), ("assigned", ["D", "A"]), ("on_scene", ["S"])]


@pytest.mark.parametrize(("fields", "label", "since"), [
    ({}, "Waiting", NOW - 600),
    ({"status": "assigned", "unit_times": {"U1": {"assigned": NOW - 100},
                                           "U2": {"assigned": NOW - 50}}}, "Assigned", NOW - 100),
    ({"status": "dispatched", "dispatched_time": NOW - 90}, "Dispatched", NOW - 90),
    ({"status": "en_route", "en_route_time": NOW - 60}, "En route", NOW - 60),
    ({"status": "on_scene", "on_scene_time": NOW - 30}, "On scene", NOW - 30),
    ({"status": "on_scene", "updated_time": NOW - 5}, "On scene", NOW - 5),
])
def test_the_clock_counts_what_the_status_says(fields: dict[str, object], label: str,
                                               since: float) -> None:
    """"Waiting" only while pending; otherwise the time since the call reached its status
    (never "Waiting 7 min" for a call already on scene)."""
    assert qv.clock(call("X", **fields)) == (label, since)
    made = qv.card(call("X", **fields), NOW)
    assert made["clock_text"].startswith(label + " ")


@pytest.mark.parametrize(("fields", "now", "level"), [
    ({"priority": 3}, NOW - 600 + 299, "ok"),
    ({"priority": 3}, NOW - 600 + 300, "warn"),
    ({"priority": 3}, NOW + 1, "late"),
    ({"priority": 1, "received_time": NOW - 61}, NOW, "late"),
    ({"priority": 3, "status": "en_route"}, NOW - 600 + 1199, "warn"),
    ({"priority": 3, "status": "en_route"}, NOW - 600 + 1201, "late"),
    ({"priority": 1, "status": "on_scene", "received_time": NOW - 9999}, NOW, "ok"),
    ({"priority": 3, "received_time": None}, NOW, "ok"),
])
def test_overdue_colour_follows_the_priority_target(fields: dict[str, object], now: float,
                                                    level: str) -> None:
    """Pending calls against the pending target, assigned ones against the response target
    (received -> on scene), on scene never; amber from half the target."""
    warn_at, late_at = qv.overdue_at(call("X", **fields), TARGETS)
    assert qv.level(warn_at, late_at, now) == level


def test_cards_name_units_by_callsign_and_carry_only_allowed_work_fields() -> None:
    made = qv.card(call("X", units=["U1", "U2"]), NOW, TARGETS, {"U1": "N-CSO-01"},
                   {"call_id": "X", "claimed_by": "cso-north", "claimed_at": NOW,
                    "secret": "x", "notes": [{"by": "a", "at": NOW, "text": "t", "x": 1}],
                    "handled": None})
    assert made["callsigns"] == ["N-CSO-01", "U2"]
    assert "secret" not in made["work"] and made["work"]["notes"] == [
        {"by": "a", "role": None, "at": NOW, "text": "t", "action_id": None}]


def test_claim_line_says_who_has_the_call() -> None:
    work = {"claimed_by": "cso-north", "claimed_at": NOW}
    assert qv.claim_line(work, "cso-north", lambda _: "10:42") == (
        "mine", "You have this call since 10:42")
    assert qv.claim_line(work, "other", lambda _: "10:42") == (
        "taken", "Taken by cso-north at 10:42")
    assert qv.claim_line({"claimed_by": None}, "x", str) is None
    assert qv.is_handled({"handled": {"outcome": "cited"}}) and not qv.is_handled(None)


def test_geo_uri_carries_the_coordinates_and_the_address() -> None:
    assert qv.geo_uri(41.7930, -72.701, "12 Main St") == \
        "geo:41.793000,-72.701000?q=41.793000,-72.701000(12%20Main%20St)"
    assert qv.geo_uri(None, -72.7, "x") is None


def test_nearest_place_gives_distance_and_compass_point() -> None:
    places = [("Keney Park", 41.7955, -72.6880), ("Bushnell Park", 41.7646, -72.6810)]
    name, metres, compass = qv.nearest_place(41.7955, -72.6960, places) or ("", 0.0, "")
    assert name == "Keney Park" and 600 < metres < 700 and compass == "W"
    assert qv.distance_text(643) == "643 m" and qv.distance_text(1234) == "1.2 km"
    assert qv.nearest_place(41.0, -72.0, []) is None


def test_the_place_filter_reads_the_old_park_key() -> None:
    assert qv.QueueFilter.from_values({"park": "Keney Park"}).place == "Keney Park"
