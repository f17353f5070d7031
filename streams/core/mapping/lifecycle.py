"""Records -> lifecycle events with deterministic ids (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from streams.core.events import CallEvent, CallKind, Event, ShotAlert, UnitEvent
from streams.core.mapping.records import CallRecord, ShotRecord, UnitTimes, safe_id

# Tie-break for events at the same second: lifecycle order, call step before unit status.
_ORDER: Final = {"created": 0, "unit_assigned": 1, "dispatched": 2, "unit:dispatched": 3,
                 "en_route": 4, "unit:en_route": 5, "on_scene": 6, "unit:on_scene": 7,
                 "unit:available": 8, "cleared": 9, "cancelled": 9}


def _event_id(*parts: str) -> str:
    return safe_id(":".join(parts))


def record_events(record: CallRecord | ShotRecord) -> list[Event]:
    """Every event a record implies, in event-time order, with deterministic ids.

    A call gives ``created`` at received time; per unit ``unit_assigned`` (assigned time,
    else its first known time), ``dispatched``, ``en_route``, ``on_scene`` call events and
    ``dispatched``/``en_route``/``on_scene``/``available`` unit-status events; and
    ``cleared`` (or ``cancelled``) at the close time when the call has one.
    """
    if isinstance(record, ShotRecord):
        return [_shot_event(record)]
    keyed: list[tuple[datetime, int, int, Event]] = []
    keyed.append((record.received_time, 0, 0, _created(record)))
    for index, unit in enumerate(record.units, start=1):
        for event in _unit_events(record, unit):
            step = event.kind if isinstance(event, CallEvent) \
                else f"unit:{event.status}" if isinstance(event, UnitEvent) else ""
            keyed.append((event.event_time, _ORDER[step], index, event))
    if record.closed_time is not None:
        kind: CallKind = "cancelled" if record.cancelled else "cleared"
        keyed.append((record.closed_time, _ORDER[kind], 0, CallEvent(
            event_id=_event_id(record.source, record.call_id, kind),
            event_time=record.closed_time, source=record.source, kind=kind,
            call_id=record.call_id, disposition=record.disposition)))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def _created(record: CallRecord) -> CallEvent:
    return CallEvent(
        event_id=_event_id(record.source, record.call_id, "created"),
        event_time=record.received_time, source=record.source, kind="created",
        call_id=record.call_id, received_time=record.received_time,
        call_type_code=record.call_type_code, call_type=record.call_type,
        category=record.category, priority=record.priority,  # type: ignore[arg-type]
        address=record.address, lat=record.lat, lon=record.lon, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat)


def _unit_events(record: CallRecord, unit: UnitTimes) -> list[Event]:
    events: list[Event] = []
    known = [value for value in (unit.assigned, unit.dispatched, unit.en_route, unit.on_scene)
             if value is not None]
    assigned = unit.assigned or (known[0] if known else None)
    base = (record.source, record.call_id, unit.unit_id)
    if assigned is not None:
        events.append(CallEvent(
            event_id=_event_id(*base, "unit_assigned"), event_time=assigned,
            source=record.source, kind="unit_assigned", call_id=record.call_id,
            unit_id=unit.unit_id))
    steps: tuple[CallKind, ...] = ("dispatched", "en_route", "on_scene")
    for step in steps:
        when = getattr(unit, step)
        if when is None:
            continue
        events.append(CallEvent(
            event_id=_event_id(*base, step), event_time=when, source=record.source,
            kind=step, call_id=record.call_id, unit_id=unit.unit_id))
        events.append(_unit_status(record, unit, step, when))
    if unit.cleared is not None:
        events.append(_unit_status(record, unit, "available", unit.cleared))
    return events


def _unit_status(record: CallRecord, unit: UnitTimes, status: str, when: datetime) -> UnitEvent:
    return UnitEvent(
        event_id=_event_id(record.source, record.call_id, unit.unit_id, "unit", status),
        event_time=when, source=record.source, unit_id=unit.unit_id,
        unit_kind=unit.unit_kind, status=status,  # type: ignore[arg-type]
        call_id=None if status == "available" else record.call_id,
        district=record.district)


def _shot_event(record: ShotRecord) -> ShotAlert:
    return ShotAlert(
        event_id=_event_id(record.source, record.alert_id), event_time=record.detected_time,
        source=record.source, alert_id=record.alert_id,
        alert_type=record.alert_type, rounds=record.rounds,  # type: ignore[arg-type]
        lat=record.lat, lon=record.lon, address=record.address, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat,
        detected_time=record.detected_time, published_time=record.published_time)

