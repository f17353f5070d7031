"""Records -> lifecycle events with deterministic ids (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from streams.core.events import CallEvent, CallKind, Event, ShotAlert, TimeSource, UnitEvent
from streams.core.mapping.records import CallRecord, ShotRecord, UnitTimes, safe_id
from streams.core.mapping.status import unit_clock_key

# Tie-break for events at the same second: lifecycle order, call step before unit status.
_ORDER: Final = {"created": 0, "unit_assigned": 1, "dispatched": 2, "unit:dispatched": 3,
                 "en_route": 4, "unit:en_route": 5, "on_scene": 6, "unit:on_scene": 7,
                 "unit:available": 8, "cleared": 9, "cancelled": 9}


def _event_id(*parts: str) -> str:
    return safe_id(":".join(parts))


def record_events(record: CallRecord | ShotRecord, now: datetime | None = None,
                  ) -> list[Event]:
    """Every event a record implies, in event-time order, with deterministic ids.

    A call gives ``created`` at received time; ``progressed`` at each call-level step
    time (a feed without units: a time column or a status step); per unit
    ``unit_assigned`` (assigned time, else its first known time), ``dispatched``,
    ``en_route``, ``on_scene`` call events and ``dispatched``/``en_route``/``on_scene``/
    ``available`` unit-status events; ``cleared`` (or ``cancelled``) at the close time when
    the call has one; and a ``from_cad`` gunshot alert when the mapping makes one.

    A call without a received time is created at the first time it states (else its
    update time, else ``now``) and says so (``received_estimated``); with no time at all
    it raises ValueError.
    """
    if isinstance(record, ShotRecord):
        return [_shot_event(record)]
    received, estimated = received_of(record, now)
    keyed: list[tuple[datetime, int, int, Event]] = []
    keyed.append((received, 0, 0, _created(record, received, estimated)))
    for name in ("dispatched", "en_route", "on_scene"):
        when = getattr(record, f"{name}_time")
        if when is not None:
            keyed.append((when, _ORDER[name], 0, CallEvent(
                event_id=_event_id(record.source, record.call_id, name), event_time=when,
                source=record.source, kind="progressed", call_id=record.call_id,
                step=name, time_source=_clock(record, f"{name}_time"))))
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
            call_id=record.call_id, disposition=record.disposition,
            time_source=_clock(record, "closed_time"))))
    if record.gunshot_alert and record.lat is not None and record.lon is not None:
        keyed.append((received, 1, 0, _cad_alert(record, received)))
    # created leads even when a stated time precedes it (a wrong time zone, a stamp from
    # the poll's clock): nothing can be applied to a call before it exists.
    keyed.sort(key=lambda item: (item[1] != 0 or item[2] != 0, item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def received_of(record: CallRecord, now: datetime | None = None) -> tuple[datetime, bool]:
    """(when the call was received, whether that is an estimate; see record_events)."""
    if record.received_time is not None:
        return record.received_time, False
    known = [time for time in (record.dispatched_time, record.en_route_time,
                               record.on_scene_time, record.closed_time) if time is not None]
    for unit in record.units:
        known += [time for time in (unit.assigned, unit.dispatched, unit.en_route,
                                    unit.on_scene, unit.cleared) if time is not None]
    if known:
        return min(known), True
    if record.updated_time is not None or now is not None:
        return record.updated_time or now, True  # type: ignore[return-value]
    raise ValueError(f"call {record.call_id} has no time at all (no received, step, close "
                     f"or update time)")


def _clock(record: CallRecord, name: str) -> TimeSource | None:
    return "poll" if name in record.poll_times else None


def _created(record: CallRecord, received: datetime, estimated: bool) -> CallEvent:
    return CallEvent(
        event_id=_event_id(record.source, record.call_id, "created"),
        event_time=received, source=record.source, kind="created",
        call_id=record.call_id, received_time=received,
        call_type_code=record.call_type_code, call_type=record.call_type,
        category=record.category, priority=record.priority,  # type: ignore[arg-type]
        address=record.address, lat=record.lat, lon=record.lon, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat,
        feed_status=record.status, gunshot_origin=True if record.gunshot else None,
        received_estimated=True if estimated else None)


def _cad_alert(record: CallRecord, received: datetime) -> ShotAlert:
    """The gunshot alert a CAD call opened by the gunshot system stands for."""
    assert record.lat is not None and record.lon is not None
    return ShotAlert(
        event_id=_event_id(record.source, record.call_id, "gunshot"), event_time=received,
        source=record.source, alert_id=safe_id(f"cad-{record.call_id}"),
        alert_type=record.gunshot_alert,  # type: ignore[arg-type]
        lat=record.lat, lon=record.lon, address=record.address, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat, detected_time=received,
        from_cad=True, call_id=record.call_id)


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
        clock = "poll" if unit_clock_key(unit.unit_id, step) in record.poll_times else None
        events.append(CallEvent(
            event_id=_event_id(*base, step), event_time=when, source=record.source,
            kind=step, call_id=record.call_id, unit_id=unit.unit_id,
            time_source=clock))  # type: ignore[arg-type]
        events.append(_unit_status(record, unit, step, when, clock))
    if unit.cleared is not None:
        clock = "poll" if unit_clock_key(unit.unit_id, "cleared") in record.poll_times \
            else None
        events.append(_unit_status(record, unit, "available", unit.cleared, clock))
    return events


def _unit_status(record: CallRecord, unit: UnitTimes, status: str, when: datetime,
                 clock: str | None = None) -> UnitEvent:
    return UnitEvent(
        event_id=_event_id(record.source, record.call_id, unit.unit_id, "unit", status),
        event_time=when, source=record.source, unit_id=unit.unit_id,
        unit_kind=unit.unit_kind, status=status,  # type: ignore[arg-type]
        call_id=None if status == "available" else record.call_id,
        district=record.district, time_source=clock,  # type: ignore[arg-type]
        lat=unit.lat if unit.lon is not None else None, lon=unit.lon)


def _shot_event(record: ShotRecord) -> ShotAlert:
    return ShotAlert(
        event_id=_event_id(record.source, record.alert_id), event_time=record.detected_time,
        source=record.source, alert_id=record.alert_id,
        alert_type=record.alert_type, rounds=record.rounds,  # type: ignore[arg-type]
        lat=record.lat, lon=record.lon, address=record.address, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat,
        detected_time=record.detected_time, published_time=record.published_time)

