"""What changed between two polls of a live feed, as lifecycle events (pure).

A poller keeps the last record it saw of every call (``dump_record``/``load_record``) and,
on each poll, emits ``diff_events(old, new, now)``: a new call gives its whole lifecycle so
far (``created`` plus steps already done); a known call gives only the steps it took since
(new unit or call times, status steps, ``cleared``) plus one ``updated`` event when its
type, priority, location or status text changed (an update carrying no field is never
sent). Event ids are deterministic (the same as ``record_events``), so re-emitting after a
crash is harmless: the consumer skips ids it already applied.

Times: an ``updated`` event is stamped with the feed's own update time when the record has
one, else with the poll's clock and ``time_source = "poll"``. After the mapping changed
(``corrections=True``) a call's new received time is sent as a correction.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import msgspec

from streams.core.events import CallEvent, Event, UnitEvent
from streams.core.mapping import CallRecord, ShotRecord, UnitTimes, record_events, safe_id
from streams.core.mapping.lifecycle import received_of

UPDATE_FIELDS: Final = ("call_type_code", "call_type", "category", "priority", "address",
                        "lat", "lon", "district", "neighborhood", "beat", "status",
                        "disposition")
"""Call fields whose change is worth an ``updated`` event."""

_EVENT_FIELD_OF: Final = {name: "feed_status" if name == "status" else name
                          for name in UPDATE_FIELDS}
"""Record field -> the CallEvent field carrying it."""
DROPPED_DISPOSITION: Final = "left the active-calls feed"

Record = CallRecord | ShotRecord


def record_key(record: Record) -> str:
    """The id a record is remembered under."""
    return record.alert_id if isinstance(record, ShotRecord) else record.call_id


# --- the seen-store -----------------------------------------------------------------------
def _state(record: Record) -> Record:
    """The record without where it was read (row numbers move between polls)."""
    return replace(record, file="", row=0)


def dump_record(record: Record) -> bytes:
    """Compact JSON of what matters about a record (not its file or row)."""
    return msgspec.json.encode(_state(record))


def load_record(data: bytes | str, shot: bool = False) -> Record:
    """Inverse of ``dump_record``; ValueError if the stored bytes are not a record."""
    try:
        if shot:
            return msgspec.json.decode(data, type=ShotRecord)
        return msgspec.json.decode(data, type=CallRecord)
    except msgspec.MsgspecError as error:
        raise ValueError(f"stored poll record is unreadable ({error}); "
                         f"delete the poll's seen key to start over") from None


def fingerprint(record: Record) -> str:
    """16 hex digits that change whenever anything but the file/row of the record does."""
    return hashlib.blake2b(dump_record(record), digest_size=8).hexdigest()


# --- merging partial records ----------------------------------------------------------------
def merge_records(old: CallRecord | None, new: CallRecord,
                  closed_from_units: bool = False) -> CallRecord:
    """``new`` completed by ``old``: units missing from ``new`` are kept, times the feed no
    longer gives are kept (a unit is never un-dispatched, a step never un-reached), and
    the times stamped from statuses by an earlier poll stay as they were.

    Incremental feeds return only the rows updated since the last poll, so a call's record
    from one poll may hold only some of its units. With ``closed_from_units`` (a feed with
    no close-time column) the call is closed when every unit has cleared.
    """
    if old is None:
        return new
    units = {unit.unit_id: unit for unit in old.units}
    for unit in new.units:
        units[unit.unit_id] = _merge_unit(units.get(unit.unit_id), unit)
    merged_units = tuple(units.values())
    closed = new.closed_time or old.closed_time
    if closed_from_units and new.step not in ("closed", "cancelled"):
        cleared = [unit.cleared for unit in merged_units]
        closed = max(c for c in cleared if c) if cleared and all(cleared) else old.closed_time
    return replace(new, units=merged_units, closed_time=closed,
                   cancelled=new.cancelled or (old.cancelled and closed is not None),
                   dispatched_time=new.dispatched_time or old.dispatched_time,
                   en_route_time=new.en_route_time or old.en_route_time,
                   on_scene_time=new.on_scene_time or old.on_scene_time,
                   poll_times=tuple(dict.fromkeys(old.poll_times + new.poll_times)))


def close_from_units(record: CallRecord) -> CallRecord:
    """The call closed at its last unit's clear time once every unit has cleared (a feed
    with no close-time column), unless it is closed already."""
    cleared = [unit.cleared for unit in record.units]
    if record.closed_time is not None or not cleared or not all(cleared):
        return record
    last = max(time for time in cleared if time is not None)
    poll_times = record.poll_times
    if any(key.startswith("unit:") and key.endswith(":cleared") for key in poll_times):
        poll_times = (*poll_times, "closed_time")
    return replace(record, closed_time=last, poll_times=poll_times)


def _merge_unit(old: UnitTimes | None, new: UnitTimes) -> UnitTimes:
    if old is None:
        return new
    times = {name: getattr(new, name) or getattr(old, name)
             for name in ("assigned", "dispatched", "en_route", "on_scene", "cleared")}
    return replace(new, **times)


# --- events ---------------------------------------------------------------------------------
def diff_events(old: Record | None, new: Record, now: datetime,
                corrections: bool = False) -> list[Event]:
    """Only the lifecycle events for what changed from ``old`` to ``new``.

    ``now`` (UTC, the poll's clock) stamps what the feed gives no time for. With
    ``corrections`` (the mapping changed since ``old`` was derived) a changed received
    time is sent too.
    """
    if old is None:
        return record_events(new, now)
    if isinstance(new, ShotRecord) or isinstance(old, ShotRecord):
        return []  # an alert is a single event; later edits are not re-published
    already = {event.event_id for event in record_events(old, now)}
    steps = [event for event in record_events(new, now) if event.event_id not in already
             and not (old.closed_time is not None and _is_close(event))]
    update = _updated(old, new, now, corrections)
    return ([update] if update else []) + steps


def _is_close(event: Event) -> bool:
    return isinstance(event, CallEvent) and event.kind in ("cleared", "cancelled")


def changed_fields(old: CallRecord, new: CallRecord) -> list[str]:
    """Names of UPDATE_FIELDS that differ."""
    return [name for name in UPDATE_FIELDS if getattr(old, name) != getattr(new, name)]


def _updated(old: CallRecord, new: CallRecord, now: datetime,
             corrections: bool = False) -> CallEvent | None:
    changed = changed_fields(old, new)
    if old.closed_time is None and new.closed_time is not None:
        # the cleared event carries the final disposition; no separate update for it
        changed = [name for name in changed if name not in ("status", "disposition")]
    values: dict[str, Any] = {_EVENT_FIELD_OF[name]: getattr(new, name) for name in changed
                              if getattr(new, name) is not None}
    if ("lat" in values) != ("lon" in values):  # the model needs the pair
        values.update(lat=new.lat, lon=new.lon)
    if "feed_status" in values and new.disposition is not None:
        values["disposition"] = new.disposition
    received, estimated = received_of(new, now)
    if corrections and received != received_of(old, now)[0]:
        values.update(received_time=received, received_estimated=estimated or None)
    if not values:
        return None  # nothing an event could carry (e.g. a field became empty)
    digest = hashlib.blake2b(repr(sorted(values.items())).encode(),
                             digest_size=6).hexdigest()
    when = new.updated_time or now
    return CallEvent(event_id=safe_id(f"{new.source}:{new.call_id}:updated:{digest}"),
                     event_time=max(when, received, _latest_time(new)), source=new.source,
                     kind="updated",
                     call_id=new.call_id,
                     time_source=None if new.updated_time else "poll", **values)


def _latest_time(record: CallRecord) -> datetime:
    """The latest lifecycle time the record states (a close cannot precede it)."""
    times = [record.received_time, record.closed_time, record.dispatched_time,
             record.en_route_time, record.on_scene_time]
    for unit in record.units:
        times.extend((unit.assigned, unit.dispatched, unit.en_route, unit.on_scene,
                      unit.cleared))
    known = [time for time in times if time is not None]
    return max(known) if known else received_of(record)[0]


def dropped_events(old: Record, last_shown: datetime) -> list[Event]:
    """A call that left an active-calls feed is over: ``cleared`` at the last time the feed
    showed it (the poller's clock), marked ``left_feed``, plus its units freed."""
    if isinstance(old, ShotRecord) or old.closed_time is not None:
        return []
    when = max(last_shown, _latest_time(old))
    events: list[Event] = [CallEvent(
        event_id=safe_id(f"{old.source}:{old.call_id}:cleared"), event_time=when,
        source=old.source, kind="cleared", call_id=old.call_id,
        disposition=DROPPED_DISPOSITION, left_feed=True, time_source="poll")]
    for unit in old.units:
        if unit.cleared is None:
            events.append(UnitEvent(
                event_id=safe_id(f"{old.source}:{old.call_id}:{unit.unit_id}:unit:available"),
                event_time=when, source=old.source, unit_id=unit.unit_id,
                unit_kind=unit.unit_kind, status="available",  # type: ignore[arg-type]
                district=old.district, time_source="poll"))
    return events


def closed_record(old: CallRecord, last_shown: datetime) -> CallRecord:
    """What to remember of a call after ``dropped_events``: closed, units cleared."""
    when = max(last_shown, _latest_time(old))
    units = tuple(replace(unit, cleared=unit.cleared or when) for unit in old.units)
    return replace(old, closed_time=when, units=units, disposition=DROPPED_DISPOSITION,
                   poll_times=(*old.poll_times, "closed_time"))


class _Seen(msgspec.Struct, array_like=True):
    time: float
    record: msgspec.Raw


def dump_seen(record: Record, seen_time: float) -> bytes:
    """Seen-store value: when the record last changed (epoch s) and the record."""
    return msgspec.json.encode(_Seen(seen_time, msgspec.Raw(dump_record(record))))


def load_seen(data: bytes | str, shot: bool = False) -> tuple[float, Record]:
    """Inverse of ``dump_seen``; ValueError if unreadable."""
    try:
        seen = msgspec.json.decode(data, type=_Seen)
    except msgspec.MsgspecError as error:
        raise ValueError(f"stored poll record is unreadable ({error}); "
                         f"delete the poll's seen key to start over") from None
    return seen.time, load_record(bytes(seen.record), shot)
