"""Status columns -> lifecycle steps, optional times, extract failures, gunshot-origin calls,
left-feed closures: the mapping, change and live-state rules without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.core.changes import diff_events, dropped_events, merge_records
from streams.core.events import CallEvent, ShotAlert, UnitEvent, decode_event, encode_event
from streams.core.livestate import BatchPlan
from streams.core.mapping import CallRecord, Mapping, Rejected, record_events
from streams.core.mapping.status import stamp_steps

T0 = datetime(2024, 6, 1, 14, 0, tzinfo=UTC)

STATUS: dict[str, Any] = {
    "dataset": {"name": "s", "source": "s", "id": "id"},
    "time": {"formats": ["%Y-%m-%d %H:%M:%S"], "timezone": "UTC"},
    "fields": {"received_time": "received", "updated_time": "updated", "status": "st",
               "call_type": "type"},
    "status": {"pending": ["P"], "dispatched": ["A"], "on_scene": ["OS"], "closed": ["C"],
               "cancelled": ["X"]},
    "priority": {"default": 3},
}


def hhmm(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def rec(mapping: Mapping, **values: str) -> CallRecord | Rejected:
    row = {"id": "C1", "received": hhmm(0), "updated": hhmm(5), "st": "P", "type": "NOISE"}
    row.update(values)
    [item] = list(mapping.records([row], "f"))
    return item


def apply(*records: CallRecord, now: datetime = T0) -> BatchPlan:
    plan = BatchPlan({})
    previous: CallRecord | None = None
    for record in records:
        for event in diff_events(previous, record, now):
            assert plan.apply(decode_event(encode_event(event))) in ("applied", "duplicate")
        previous = record
    return plan


def test_status_gives_the_step_at_the_rows_update_time() -> None:
    """A status mapped to on_scene stamps on_scene at the row's update time; closed closes."""
    mapping = Mapping.from_dict(STATUS, {})
    record = rec(mapping, st="OS")
    assert isinstance(record, CallRecord)
    assert (record.step, record.on_scene_time, record.poll_times) == \
        ("on_scene", T0 + timedelta(minutes=5), ())
    closed = rec(mapping, st="C", updated=hhmm(30))
    assert isinstance(closed, CallRecord) and closed.closed_time == T0 + timedelta(minutes=30)
    cancelled = rec(mapping, st="X")
    assert isinstance(cancelled, CallRecord) and cancelled.cancelled


def test_unmapped_status_keeps_the_call_where_it_was() -> None:
    """A status value no step lists gives no step; the raw text is kept."""
    record = rec(Mapping.from_dict(STATUS, {}), st="HOLD")
    assert isinstance(record, CallRecord) and (record.step, record.status) == (None, "HOLD")


def test_poll_clock_stamps_only_where_the_feed_has_no_time_and_says_so() -> None:
    """Without an update time the step gets the poll's clock, listed in poll_times, and the
    events carry time_source = poll; a later poll never moves it."""
    raw = {**STATUS, "fields": {k: v for k, v in STATUS["fields"].items() if k != "updated_time"}}
    mapping = Mapping.from_dict(raw, {})
    first = rec(mapping, st="A")
    assert isinstance(first, CallRecord) and first.dispatched_time is None  # not yet timed
    stamped = stamp_steps(first, T0 + timedelta(minutes=2))
    assert stamped.dispatched_time == T0 + timedelta(minutes=2)
    assert stamped.poll_times == ("dispatched_time",)
    again = stamp_steps(merge_records(stamped, first), T0 + timedelta(minutes=9))
    assert again.dispatched_time == T0 + timedelta(minutes=2)
    [step] = [e for e in record_events(again) if isinstance(e, CallEvent)
              and e.kind == "progressed"]
    assert (step.step, step.time_source) == ("dispatched", "poll")


def test_status_steps_reach_live_state_and_true_intervals() -> None:
    """pending -> dispatched -> on scene -> closed over three polls gives the call's times
    and intervals; an interval with no start is empty, never zero."""
    mapping = Mapping.from_dict(STATUS, {})
    polls = [rec(mapping, st="P", updated=hhmm(0)), rec(mapping, st="A", updated=hhmm(3)),
             rec(mapping, st="C", updated=hhmm(40))]
    merged: list[CallRecord] = []
    for record in polls:
        assert isinstance(record, CallRecord)
        merged.append(merge_records(merged[-1] if merged else None, record))
    plan = apply(*merged)
    [closed] = plan.closed_records
    assert (closed["dispatch_s"], closed["travel_s"], closed["response_s"]) == ("180.0", "", "")
    assert (closed["left_feed"], closed["times_from_poll"]) == ("0", "")


def test_updates_always_carry_a_field() -> None:
    """A status change is an update carrying the feed's status text; a change of nothing
    an event can carry (the update time only) sends no update."""
    mapping = Mapping.from_dict(STATUS, {})
    old, new = rec(mapping, st="P"), rec(mapping, st="HOLD", updated=hhmm(7))
    assert isinstance(old, CallRecord) and isinstance(new, CallRecord)
    [update] = diff_events(old, new, T0)
    assert isinstance(update, CallEvent) and update.feed_status == "HOLD"
    assert update.event_time == T0 + timedelta(minutes=7)  # the feed's own update time
    later = rec(mapping, st="P", updated=hhmm(9))
    assert isinstance(later, CallRecord) and diff_events(old, later, T0) == []


def test_feed_without_received_time_has_no_received_intervals() -> None:
    """A mapping without received_time: the call is created at its first stated time,
    marked estimated, and its closed record has no received time or received intervals."""
    raw = {"dataset": {"name": "h", "id": "id"}, "priority": {"default": 3},
           "time": {"formats": ["%Y-%m-%d %H:%M:%S"]},
           "fields": {"on_scene_time": "os", "closed_time": "cl"}}
    mapping = Mapping.from_dict(raw, {})
    [record] = list(mapping.records([{"id": "H1", "os": hhmm(10), "cl": hhmm(40)}], "f"))
    assert isinstance(record, CallRecord) and record.received_time is None
    created = record_events(record)[0]
    assert isinstance(created, CallEvent) and created.received_estimated
    [closed] = apply(record).closed_records
    assert (closed["received_time"], closed["dispatch_s"], closed["response_s"]) == ("", "", "")
    assert closed["on_scene_s"] == "1800.0"
    assert mapping.feed_times == ("on_scene", "closed")


def test_failed_extract_leaves_the_field_empty_by_default() -> None:
    """A failing extract keeps the row (field empty, a warning); keep keeps the raw value;
    reject rejects the row as bad_code."""
    def mapping(policy: str | None) -> Mapping:
        field: dict[str, Any] = {"column": "area", "extract": "^D(\\d)$"}
        if policy:
            field["on_mismatch"] = policy
        return Mapping.from_dict({**STATUS, "fields": {**STATUS["fields"], "district": field}},
                                 {})
    record = rec(mapping(None), area="Zone 9")
    assert isinstance(record, CallRecord) and record.district is None
    assert record.warnings and record.warnings[0].startswith("bad_code:")
    kept = rec(mapping("keep"), area="Zone 9")
    assert isinstance(kept, CallRecord) and kept.district == "Zone 9"
    rejected = rec(mapping("reject"), area="Zone 9")
    assert isinstance(rejected, Rejected) and rejected.code == "bad_code"


def test_gunshot_origin_calls_are_marked_and_can_make_an_alert() -> None:
    """A call type the gunshot system opens is marked; with create_alert it also makes a
    gunshot alert from CAD at the call's place and time."""
    raw = {**STATUS, "fields": {**STATUS["fields"], "call_type_code": "code"},
           "location": {"format": "latlon", "lat": "y", "lon": "x"},
           "gunshot": {"codes": ["SST"], "pattern": "shotspotter", "create_alert": True}}
    mapping = Mapping.from_dict(raw, {})
    record = rec(mapping, code="SST", y="41.76", x="-72.68")
    assert isinstance(record, CallRecord) and record.gunshot
    events = record_events(record)
    created = events[0]
    assert isinstance(created, CallEvent) and created.gunshot_origin
    [alert] = [event for event in events if isinstance(event, ShotAlert)]
    assert (alert.from_cad, alert.call_id, alert.alert_type, alert.lat) == \
        (True, "C1", "multiple", 41.76)
    plain = rec(mapping, code="NOIS", type="NOISE", y="41.76", x="-72.68")
    assert isinstance(plain, CallRecord) and not plain.gunshot


def test_left_feed_closes_at_the_last_time_shown() -> None:
    """A call that left an active feed closes at the last poll that showed it, marked
    left_feed, disposition saying so, units freed."""
    mapping = Mapping.from_dict(STATUS, {})
    record = rec(mapping, st="A")
    assert isinstance(record, CallRecord)
    shown = T0 + timedelta(minutes=20)
    events = dropped_events(record, shown)
    close = events[0]
    assert isinstance(close, CallEvent)
    assert (close.kind, close.event_time, close.left_feed, close.disposition) == \
        ("cleared", shown, True, "left the active-calls feed")
    plan = apply(record)
    for event in events:
        plan.apply(decode_event(encode_event(event)))
    [closed] = plan.closed_records
    assert (closed["left_feed"], closed["times_from_poll"]) == ("1", "closed_time")
    assert not [event for event in events if isinstance(event, UnitEvent)]


def test_backfill_admits_by_history_window_and_the_mappings_area() -> None:
    """Backfill dead-letters a call timed ahead of now (time_out_of_range) or placed outside
    the mapping's own service area (outside_service_area); the rest passes."""
    from streams.backfill import admitted
    from streams.core.settings import Settings
    from streams.mapping_files import admission_for

    raw = {**STATUS, "location": {"format": "latlon", "lat": "y", "lon": "x",
                                  "bounds": [-123, 37, -122, 38]},
           "service_area": {"bounds": [-122.6, 37.6, -122.3, 37.9]}}
    mapping = Mapping.from_dict(raw, {})
    admission = admission_for(Settings(), mapping)
    now = (T0 + timedelta(hours=1)).timestamp()
    inside = rec(mapping, y="37.77", x="-122.42")
    outside = rec(mapping, y="37.2", x="-122.9")
    ahead = rec(mapping, y="37.77", x="-122.42", received=hhmm(600), updated=hhmm(601))
    assert isinstance(admitted(inside, admission, now), CallRecord)
    assert [admitted(item, admission, now).code for item in (outside, ahead)] == \
        ["outside_service_area", "time_out_of_range"]  # type: ignore[union-attr]
