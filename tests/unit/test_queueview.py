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


@pytest.mark.parametrize(("age", "text"), [
    (None, "—"), (5.9, "5 s"), (60, "1 min"), (3599, "59 min"), (3600 + 5 * 60, "1 h 05 min"),
    (2 * 86400 + 4 * 3600, "2 d 4 h"),
])
def test_age_text(age: float | None, text: str) -> None:
    """Ages read short: seconds, minutes, hours and minutes, days and hours."""
    assert qv.age_text(age) == text


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
