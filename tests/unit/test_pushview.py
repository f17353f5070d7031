"""Who gets which change from push: view groups, district scoping, stream ids (pure)."""

from __future__ import annotations

import json

import pytest

from streams.core import pushview
from streams.core.changefeed import Change

CALL = {"call_id": "C1", "status": "pending", "caller_name": "Jo", "caller_phone": "555",
        "address": "1 Main St"}


def change(call_id: str, district: str | None, op: str = "upsert") -> Change:
    data = {**CALL, "call_id": call_id, "district": district}
    return Change("call", "remove" if op == "remove" else "upsert", call_id, data)


UNIT = Change("unit", "upsert", "U1", {"unit_id": "U1", "district": "South"})


@pytest.mark.parametrize(("role", "district", "group"), [
    ("cso", "North", ("tablet", "North")),
    ("sro", "South", ("tablet", "South")),
    ("cso", None, ("tablet", None)),
    ("commander", "North", ("full", None)),
    ("supervisor", None, ("full", None)),
    ("admin", "Central", ("full", None)),
])
def test_view_group_scopes_only_tablets_with_a_district(
        role: str, district: str | None, group: pushview.ViewGroup) -> None:
    """Only a cso/sro with a district is scoped to it; everyone else sees every district."""
    assert pushview.view_group(role, district) == group


def test_districts_reports_where_each_member_was_before_each_change() -> None:
    """advance() gives the district before each change (NOWHERE for new members, "" for
    kinds that are not district-scoped) and learns as it goes."""
    known = pushview.Districts({("call", "A"): "North", ("call", "B"): None})
    previous = known.advance([change("A", "South"), UNIT, change("A", "Central"),
                              change("N", "North"), change("B", "South", op="remove"),
                              change("B", "South")])
    assert previous == ["North", "", "South", pushview.NOWHERE, "", pushview.NOWHERE]
    assert known.advance([change("A", "North"), change("N", "North")]) == ["Central", "North"]
    assert len(known) == 3


def work(call_id: str, claimed_by: str = "cso-north", op: str = "upsert") -> Change:
    return Change("work", "remove" if op == "remove" else "upsert", call_id,
                  {"call_id": call_id, "claimed_by": claimed_by, "district": "North"})


def test_a_call_moving_district_brings_its_work_record_to_the_new_districts_tablets() -> None:
    """South's tablets never got the work record of a call that was in North: when the call
    moves, its newest record follows it (learned from the stream or seeded at start), for
    South only; a call that stays, or a new one, brings nothing; a removed record is not
    carried, and a closed call forgets its records."""
    seeded = pushview.Districts({("call", "A"): "North", ("call", "B"): "North"},
                                [work("A", "seeded")])
    changes, previous = seeded.place([
        work("B", "first"), work("B", "newest"), change("B", "North"), change("N", "North"),
        change("A", "South"), change("B", "Central")])
    assert [(c.entity, c.id, c.data.get("claimed_by")) for c in changes] == [
        ("work", "B", "first"), ("work", "B", "newest"), ("call", "B", None),
        ("call", "N", None), ("call", "A", None), ("work", "A", "seeded"),
        ("call", "B", None), ("work", "B", "newest")]
    assert previous == ["North", "North", "North", pushview.NOWHERE, "North", "South",
                        "North", "Central"]
    south = pushview.scope_changes(changes, previous, ("tablet", "South"))
    north = pushview.scope_changes(changes, previous, ("tablet", "North"))
    assert [(c.entity, c.id) for c in south] == [("call", "A"), ("work", "A")]
    assert ("work", "A") not in [(c.entity, c.id) for c in north]
    unscoped = seeded.place([work("A", op="remove"), change("A", "North"),
                             change("B", "North", op="remove"), change("B", "South")])[0]
    assert [(c.entity, c.id, c.op) for c in unscoped] == [
        ("work", "A", "remove"), ("call", "A", "upsert"), ("call", "B", "remove"),
        ("call", "B", "upsert")]


def test_scope_changes_keeps_the_district_and_removes_calls_that_leave_it() -> None:
    """A North group gets North calls (no caller), units, and a bare removal for a call
    that moved away; other districts' calls never appear."""
    changes = [change("A", "North"), change("B", "South"), UNIT, change("C", "South"),
               change("D", "South", op="remove"), change("E", "North", op="remove")]
    previous = ["North", pushview.NOWHERE, "", "North", "North", "North"]
    scoped = pushview.scope_changes(changes, previous, ("tablet", "North"))
    assert [(c.id, c.op) for c in scoped] == [
        ("A", "upsert"), ("U1", "upsert"), ("C", "remove"), ("D", "remove"), ("E", "remove")]
    assert scoped[0].data == {"call_id": "A", "status": "pending", "address": "1 Main St",
                              "district": "North"}
    assert scoped[2].data == {} and scoped[3].data == {}
    assert scoped[4].data["district"] == "North" and "caller_name" not in scoped[4].data
    assert scoped[1] is UNIT
    assert "South" not in json.dumps([c.data for c in scoped if c.entity == "call"])


@pytest.mark.parametrize(("group", "caller"), [(("full", None), "Jo"), (("tablet", None), None)])
def test_scope_changes_without_a_district_passes_every_call(
        group: pushview.ViewGroup, caller: str | None) -> None:
    """Unscoped groups get every call; tablets still without caller details."""
    scoped = pushview.scope_changes([change("A", "North"), change("B", "South")], None, group)
    assert [c.id for c in scoped] == ["A", "B"]
    assert scoped[0].data.get("caller_name") == caller


def test_scope_changes_never_forwards_unknown_kinds() -> None:
    """A kind nobody registered is dropped (nobody said who may see it); feed clocks pass."""
    clock = Change("freshness", "upsert", "cad", {"source": "cad"})
    stranger = Change("secret", "upsert", "X", {"anything": 1})
    for group in (("full", None), ("tablet", "North")):
        previous = pushview.Districts().advance([clock, stranger])
        assert pushview.scope_changes([clock, stranger], previous, group) == [clock]


def test_scope_changes_needs_one_previous_district_per_change() -> None:
    """Mismatched lengths, or no previous districts for a scoped group, are programming
    errors, not a silent truncation."""
    with pytest.raises(ValueError):
        pushview.scope_changes([change("A", "North")], [], ("tablet", "North"))
    with pytest.raises(ValueError):
        pushview.scope_changes([change("A", "North")], None, ("tablet", "North"))


@pytest.mark.parametrize(("since", "first", "last", "expected"), [
    (None, "1-0", "9-0", False),
    ("5-0", "1-0", "9-0", True),
    ("1-0", "1-0", "9-0", True),
    ("9-0", "1-0", "9-0", True),
    ("0-5", "1-0", "9-0", False),  # trimmed past it: a gap is possible
    ("10-0", "1-0", "9-0", False),  # from the future: the stream was reset
    ("0-0", None, None, True),
    ("5-0", None, None, False),
    ("nonsense", "1-0", "9-0", False),
    ("5", "1-0", "9-0", True),
])
def test_can_resync(since: str | None, first: str | None, last: str | None,
                    expected: bool) -> None:
    """Resync only when every entry after since is still retained."""
    assert pushview.can_resync(since, first, last) is expected


def test_stream_ids_parse_and_order_numerically() -> None:
    """Stream ids compare as numbers, not text."""
    assert pushview.parse_stream_id("10-0") > pushview.parse_stream_id("9-5")
    assert pushview.format_stream_id(pushview.parse_stream_id("17-3")) == "17-3"
    with pytest.raises(ValueError, match="not a stream id"):
        pushview.parse_stream_id("x-1")
