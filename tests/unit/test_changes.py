"""Poll diffs: only what changed between two sightings of a call becomes events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from streams.core.changes import (
    DROPPED_DISPOSITION,
    changed_fields,
    closed_record,
    diff_events,
    dropped_events,
    dump_record,
    fingerprint,
    load_record,
    merge_records,
)
from streams.core.events import CallEvent, Event, UnitEvent, decode_event, encode_event
from streams.core.mapping import CallRecord, ShotRecord, UnitTimes

T0 = datetime(2019, 10, 18, 7, 3, 52, tzinfo=UTC)  # SF Fire call 192910017, received
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call(*units: UnitTimes, **changes: object) -> CallRecord:
    base = CallRecord(
        call_id="192910017", received_time=T0, call_type_code="Alarms", call_type="Alarms",
        category="other", priority=3, address="24TH ST/VALENCIA ST", lat=37.7521,
        lon=-122.4207, district="B06", neighborhood="Mission", beat=None, status=None,
        disposition=None, closed_time=None, units=tuple(units), source="sf-fire",
        file="http://feed/1", row=7)
    return replace(base, **changes)  # type: ignore[arg-type]


E11 = UnitTimes("E11", "patrol", dispatched=at(193))


def kinds(events: list[Event]) -> list[str]:
    return [event.kind if isinstance(event, CallEvent) else f"unit:{event.status}"
            for event in events if isinstance(event, CallEvent | UnitEvent)]


def test_new_call_gives_created_and_its_unit_steps() -> None:
    """A call seen for the first time emits created plus the unit steps already done."""
    events = diff_events(None, call(E11), NOW)
    assert kinds(events) == ["created", "unit_assigned", "dispatched", "unit:dispatched"]
    assert events[0].event_id == "sf-fire:192910017:created"


def test_unchanged_call_gives_nothing() -> None:
    """Seeing the same call again (even from another row/page) emits nothing."""
    assert diff_events(call(E11), call(E11, row=99, file="other"), NOW) == []


def test_new_unit_times_give_only_those_steps() -> None:
    """En route and on scene times appearing later emit just those steps, in time order."""
    later = replace(E11, en_route=at(276), on_scene=at(438))
    events = diff_events(call(E11), call(later), NOW)
    assert kinds(events) == ["en_route", "unit:en_route", "on_scene", "unit:on_scene"]
    assert [event.event_time for event in events] == [at(276), at(276), at(438), at(438)]


def test_second_unit_gets_its_own_steps() -> None:
    """A unit joining the call emits unit_assigned and its steps with its unit id."""
    b10 = UnitTimes("B10", "supervisor", dispatched=at(300))
    events = diff_events(call(E11), call(E11, b10), NOW)
    assert kinds(events) == ["unit_assigned", "dispatched", "unit:dispatched"]
    assert {event.unit_id for event in events} == {"B10"}  # type: ignore[union-attr]


def test_field_changes_give_one_updated_event() -> None:
    """Priority, type and location changes emit one updated event carrying the new values."""
    new = call(E11, priority=1, call_type="Structure Fire", lat=37.76, lon=-122.42)
    [event] = diff_events(call(E11), new, NOW)
    assert isinstance(event, CallEvent) and event.kind == "updated"
    assert (event.priority, event.call_type, event.lat, event.lon) == (
        1, "Structure Fire", 37.76, -122.42)
    assert event.category is None and event.address is None  # unchanged fields stay out
    assert event.event_time == NOW
    decode_event(encode_event(event))  # valid on the wire


def test_updated_id_is_stable_per_change_and_differs_between_changes() -> None:
    """Re-emitting the same change reuses its id; another change gets another id."""
    first = diff_events(call(), call(priority=1), NOW)[0].event_id
    again = diff_events(call(), call(priority=1), NOW + timedelta(minutes=5))[0].event_id
    other = diff_events(call(), call(priority=2), NOW)[0].event_id
    assert first == again != other


def test_status_change_alone_is_an_update() -> None:
    """A feed status change (no unit times) is an updated event with the disposition."""
    [event] = diff_events(call(status="Open"), call(status="Closed", disposition="Fire"), NOW)
    assert isinstance(event, CallEvent) and event.kind == "updated"
    assert event.disposition == "Fire"


def test_location_change_of_one_coordinate_carries_the_pair() -> None:
    """Only lon changed, but the event carries lat and lon together (the model needs both)."""
    [event] = diff_events(call(), call(lon=-122.5), NOW)
    assert (event.lat, event.lon) == (37.7521, -122.5)  # type: ignore[union-attr]


def test_closing_gives_cleared_once() -> None:
    """A close time appearing emits cleared; seeing it closed again emits nothing more."""
    done = replace(E11, en_route=at(276), on_scene=at(438), cleared=at(2165))
    closed = call(done, closed_time=at(2165), disposition="Fire")
    events = diff_events(call(E11), closed, NOW)
    assert kinds(events) == ["en_route", "unit:en_route", "on_scene", "unit:on_scene",
                             "unit:available", "cleared"]
    assert diff_events(closed, closed, NOW) == []


def test_cancel_after_clear_is_not_a_second_close() -> None:
    """A closed call later marked cancelled does not emit a second closing event."""
    closed = call(closed_time=at(600))
    assert diff_events(closed, replace(closed, cancelled=True), NOW) == []


def test_updated_event_never_precedes_the_record() -> None:
    """If the wall clock is behind the record's last time, the update takes that time."""
    [event] = diff_events(call(E11), call(E11, priority=1), at(10))
    assert event.event_time == at(193)


def test_changed_fields_lists_names() -> None:
    """changed_fields names exactly the fields that differ."""
    assert changed_fields(call(), call(beat="6", address="x")) == ["address", "beat"]


def test_merge_keeps_units_and_times_from_earlier_polls() -> None:
    """A partial poll (one unit row) keeps the other unit and never un-dispatches."""
    b10 = UnitTimes("B10", "supervisor", dispatched=at(300))
    old = call(E11, b10)
    partial = call(UnitTimes("E11", "patrol", on_scene=at(438)))
    merged = merge_records(old, partial)
    assert [unit.unit_id for unit in merged.units] == ["E11", "B10"]
    assert (merged.units[0].dispatched, merged.units[0].on_scene) == (at(193), at(438))
    assert merge_records(None, partial) is partial


def test_merge_closes_from_units_only_when_all_cleared() -> None:
    """With closed_from_units, the call closes at the last unit clear once all have cleared."""
    e11 = replace(E11, cleared=at(900))
    b10 = UnitTimes("B10", "supervisor", dispatched=at(300))
    one_cleared = merge_records(call(b10), call(e11, closed_time=at(900)),
                                closed_from_units=True)
    assert one_cleared.closed_time is None
    both = merge_records(one_cleared, call(replace(b10, cleared=at(1000))),
                         closed_from_units=True)
    assert both.closed_time == at(1000)


def test_dropped_call_is_cleared_and_units_freed() -> None:
    """A call leaving an active feed emits cleared and frees its uncleared units."""
    events = dropped_events(call(E11), NOW)
    assert kinds(events) == ["cleared", "unit:available"]
    cleared, freed = events
    assert cleared.event_id == "sf-fire:192910017:cleared"
    assert cleared.disposition == DROPPED_DISPOSITION  # type: ignore[union-attr]
    assert freed.event_id == "sf-fire:192910017:E11:unit:available"
    assert all(event.event_time == NOW for event in events)


def test_dropped_closed_call_gives_nothing() -> None:
    """A call already closed emits nothing when it leaves the feed."""
    assert dropped_events(call(closed_time=at(50)), NOW) == []


def test_closed_record_after_drop_diffs_to_nothing() -> None:
    """Remembering the dropped call as closed means a later diff emits no second clear."""
    old = call(E11)
    remembered = closed_record(old, NOW)
    assert remembered.closed_time == NOW and remembered.units[0].cleared == NOW
    assert dropped_events(remembered, NOW) == []


def test_dump_and_load_round_trip_without_file_and_row() -> None:
    """The seen-store form drops file/row and loads back equal; the fingerprint ignores them."""
    record = call(E11, closed_time=at(2000))
    loaded = load_record(dump_record(record))
    assert loaded == replace(record, file="", row=0)
    assert fingerprint(record) == fingerprint(replace(record, row=1, file="x"))
    assert fingerprint(record) != fingerprint(replace(record, priority=2))
    assert len(fingerprint(record)) == 16


def test_load_record_refuses_garbage() -> None:
    """Unreadable stored bytes raise a ValueError saying how to recover."""
    with pytest.raises(ValueError, match="delete the poll's seen key"):
        load_record(b'{"call_id": 1}')


def test_shot_records_are_new_once() -> None:
    """A gunshot record is published when first seen and never again."""
    shot = ShotRecord("DC1", "single", 1, 38.9, -77.0, None, None, None, None, T0, None,
                      "dc", "f", 2)
    [alert] = diff_events(None, shot, NOW)
    assert alert.event_id == "dc:DC1"
    assert diff_events(shot, replace(shot, rounds=3), NOW) == []
    assert load_record(dump_record(shot), shot=True) == replace(shot, file="", row=0)
