"""Pure live-state transitions: (current state, event) -> new state and Redis-neutral writes.

The consumer loads the current state of every entity a batch touches, feeds the events
through a ``BatchPlan`` and turns the plan into one MULTI/EXEC. Nothing here talks to Redis,
so every rule below is unit-tested without a server:

- an event whose ``event_id`` was already applied is a duplicate: a no-op, not an error;
- lifecycle steps out of order (a step for an unknown call, anything after a call closed,
  a second ``created``, a unit going back a step) raise ``InvalidEvent`` with a reason;
- an AVL fix older than the unit's last one is stale and ignored; a fix that would need
  the unit to move faster than ``MAX_UNIT_SPEED_KMH`` is an impossible position.

Entities never read each other's state, so applying the four feeds in any interleaving
(as consumers reclaiming each other's work do) gives the same final state.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from streams.core.events import (
    SOURCE_OF_TYPE,
    CallEvent,
    Event,
    InvalidEvent,
    ShareEvent,
    ShotAlert,
    UnitEvent,
    is_qol,
)
from streams.core.geography import haversine_m

log = logging.getLogger(__name__)

State = dict[str, Any]
Verdict = Literal["applied", "duplicate", "stale"]

CALL_STEPS: Final = ("pending", "assigned", "dispatched", "en_route", "on_scene")
TERMINAL_STATUSES: Final = frozenset({"closed", "cancelled"})
UNIT_STEP_OF_KIND: Final = {
    "unit_assigned": "assigned", "dispatched": "dispatched",
    "en_route": "en_route", "on_scene": "on_scene",
}
UNIT_STEPS: Final = ("assigned", "dispatched", "en_route", "on_scene")
FIRST_UNIT_TIME_FIELD: Final = {
    "dispatched": "dispatched_time", "en_route": "en_route_time", "on_scene": "on_scene_time",
}
CALL_UPDATABLE: Final = (
    "call_type_code", "call_type", "category", "priority", "address", "lat", "lon",
    "district", "neighborhood", "beat", "caller_name", "caller_phone", "disposition",
    "feed_status", "gunshot_origin",
)
CALL_STEP_TIME_FIELD: Final = {
    "dispatched": "dispatched_time", "en_route": "en_route_time", "on_scene": "on_scene_time",
}
"""The first-time field a call-level ``progressed`` step sets."""

MAX_UNIT_SPEED_KMH: Final = 250.0
GPS_SLACK_M: Final = 50.0
"""Two fixes this close never count as a jump: AVL receivers wander a few tens of metres."""
GEO_LAT_LIMIT: Final = 85.05112878
"""Redis GEO cannot index latitudes beyond this (Web Mercator)."""
RECENT_IDS_KEPT: Final = 8
"""Units, alerts and shares remember this many recent event ids to spot redeliveries."""

CLOSED_FIELDS: Final = (
    "call_id", "category", "qol", "priority", "district", "neighborhood", "call_type",
    "received_time", "dispatched_time", "on_scene_time", "closed_time",
    "dispatch_s", "travel_s", "response_s", "on_scene_s", "cancelled", "source",
    "left_feed", "times_from_poll", "first_time",
)
"""Fields of a closed-stream record, in order (every value a string).

An interval is empty when either of its times is unknown (never zero in its place). A feed
without a received time leaves ``received_time`` (and so ``dispatch_s`` and
``response_s``) empty; ``first_time`` is the earliest time the call states, to place it on
a time axis. ``left_feed`` is "1" for a call closed because it left an active-calls feed
(not because the feed said it closed); ``times_from_poll`` lists the times (of
``dispatched_time``, ``en_route_time``, ``on_scene_time``, ``closed_time``) that are the
poller's clock because the feed gives no time for a status change."""

# Logical index names; the consumer maps them to keys (streams.core.keys).
INDEX_OPEN: Final = "calls_open"
INDEX_CLOSED: Final = "calls_closed"
INDEX_ALERTS: Final = "alerts_active"
INDEX_SHARES: Final = "shares_active"
INDEX_SHARES_CLOSED: Final = "shares_closed"
QUEUE_PREFIX: Final = "queue:"

ENTITY_OF_TYPE: Final = {CallEvent: "call", UnitEvent: "unit", ShotAlert: "alert",
                         ShareEvent: "share"}


# --- views and records ------------------------------------------------------------------

def _number(value: float | None) -> str:
    return "" if value is None else repr(round(float(value), 3))


def _interval(call: dict[str, Any], start: str, end: str, name: str) -> str:
    begin, finish = call.get(start), call.get(end)
    if begin is None or finish is None:
        return ""
    seconds = float(finish) - float(begin)
    if seconds < 0:
        # Times are UTC, so this is bad source data, not DST; blank beats a wrong number.
        log.warning("call %s: %s is negative (%s %.0f > %s %.0f); left blank",
                    call.get("call_id"), name, start, begin, end, finish)
        return ""
    return _number(seconds)


def closed_record(call: dict[str, Any]) -> dict[str, str]:
    """The closed-stream record of a closed or cancelled CallState (all values strings)."""
    category = str(call.get("category") or "")
    first = _first_time(call)
    if call.get("received_estimated"):
        call = {**call, "received_time": None}
    return {
        "call_id": str(call["call_id"]),
        "category": category,
        "qol": "1" if call.get("qol", is_qol(category)) else "0",
        "priority": str(call.get("priority") or ""),
        "district": str(call.get("district") or ""),
        "neighborhood": str(call.get("neighborhood") or ""),
        "call_type": str(call.get("call_type") or ""),
        "received_time": _number(call.get("received_time")),
        "dispatched_time": _number(call.get("dispatched_time")),
        "on_scene_time": _number(call.get("on_scene_time")),
        "closed_time": _number(call.get("closed_time")),
        "dispatch_s": _interval(call, "received_time", "dispatched_time", "dispatch_s"),
        "travel_s": _interval(call, "dispatched_time", "on_scene_time", "travel_s"),
        "response_s": _interval(call, "received_time", "on_scene_time", "response_s"),
        "on_scene_s": _interval(call, "on_scene_time", "closed_time", "on_scene_s"),
        "cancelled": "1" if call.get("status") == "cancelled" else "0",
        "source": str(call.get("source") or ""),
        "left_feed": "1" if call.get("left_feed") else "0",
        "times_from_poll": ",".join(call.get("poll_times") or ()),
        "first_time": _number(first),
    }


def _first_time(call: dict[str, Any]) -> float | None:
    if call.get("received_time") is not None:
        return float(call["received_time"])
    known = [float(call[name]) for name in ("dispatched_time", "en_route_time",
                                            "on_scene_time", "closed_time")
             if call.get(name) is not None]
    return min(known) if known else None


def queue_score(priority: int, received_time: float) -> float:
    """Sorted-set score giving priority first, then oldest first."""
    return priority * 1e11 + received_time


# --- outcomes ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IndexWrite:
    """Add ``member`` to a logical index with ``score``, or remove it (score None)."""

    index: str
    member: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event does: verdict, the entity's new state and the index writes."""

    verdict: Verdict
    state: State | None = None
    indexes: tuple[IndexWrite, ...] = ()
    geo: tuple[float, float] | None = None  # (lon, lat) of a unit
    closed: dict[str, str] | None = None
    removed: bool = False  # the entity leaves the live view (call closed, share closed)


DUPLICATE: Final = Outcome("duplicate")
STALE: Final = Outcome("stale")


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _remember(applied: list[str], event_id: str, keep: int | None) -> list[str]:
    recent = [*applied, event_id]
    return recent[-keep:] if keep else recent


# --- calls ------------------------------------------------------------------------------

def apply_call(state: State | None, event: CallEvent, closed_before: bool = False) -> Outcome:
    """Apply one CAD lifecycle event to a call's state (None if unknown)."""
    if state is not None and event.event_id in state["applied"]:
        return DUPLICATE
    if event.kind == "created":
        return _create_call(state, event, closed_before)
    if state is None:
        if closed_before:
            raise InvalidEvent(f"call {event.call_id} is already closed; "
                               f"a {event.kind} event cannot follow", "out_of_order")
        raise InvalidEvent(f"call {event.call_id} has no created event yet; "
                           f"{event.kind} is out of order", "out_of_order")
    if state["status"] in TERMINAL_STATUSES:
        raise InvalidEvent(f"call {event.call_id} is {state['status']}; "
                           f"a {event.kind} event cannot follow", "out_of_order")
    new = dict(state)
    new["applied"] = _remember(state["applied"], event.event_id, None)
    new["updated_time"] = _epoch(event.event_time)
    new["source"] = event.source
    if event.kind == "updated":
        _copy_call_fields(new, event)
        if event.received_time is not None:  # a correction (the mapping was fixed)
            new["received_time"] = _epoch(event.received_time)
            new["received_estimated"] = bool(event.received_estimated)
    elif event.kind in UNIT_STEP_OF_KIND:
        _unit_step(new, event)
    elif event.kind == "progressed":
        _call_step(new, event)
    elif event.kind in ("cleared", "cancelled"):
        return _close_call(state, new, event)
    return Outcome("applied", new, _queue_writes(state, new))


def _create_call(state: State | None, event: CallEvent, closed_before: bool) -> Outcome:
    if state is not None:
        raise InvalidEvent(f"call {event.call_id} was already created by another event; "
                           f"created {event.event_id} is a conflicting duplicate", "conflict")
    if closed_before:
        raise InvalidEvent(f"call {event.call_id} is already closed; it cannot be created again",
                           "out_of_order")
    assert event.category is not None and event.priority is not None  # created checks these
    new: State = {
        "call_id": event.call_id, "status": "pending",
        "received_time": _epoch(event.received_time),
        "call_type_code": None, "call_type": None, "category": event.category,
        "qol": is_qol(event.category), "priority": event.priority,
        "address": None, "lat": None, "lon": None, "district": None,
        "neighborhood": None, "beat": None, "units": [], "unit_times": {},
        "dispatched_time": None, "en_route_time": None, "on_scene_time": None,
        "closed_time": None, "updated_time": _epoch(event.event_time),
        "caller_name": None, "caller_phone": None, "disposition": None,
        "source": event.source, "applied": [event.event_id],
        "feed_status": None, "gunshot_origin": None, "left_feed": False, "poll_times": [],
        "received_estimated": bool(event.received_estimated),
    }
    _copy_call_fields(new, event)
    if event.units:
        new["units"] = list(dict.fromkeys(event.units))
        new["unit_times"] = {unit: {"assigned": new["updated_time"]} for unit in new["units"]}
        new["status"] = "assigned"
    return Outcome("applied", new, _queue_writes(None, new))


def _copy_call_fields(new: State, event: CallEvent) -> None:
    for name in CALL_UPDATABLE:
        value = getattr(event, name)
        if value is not None:
            new[name] = value
    new["qol"] = is_qol(new["category"])


def _unit_step(new: State, event: CallEvent) -> None:
    unit = event.unit_id
    assert unit is not None  # CallEvent checks unit-level kinds carry unit_id
    step = UNIT_STEP_OF_KIND[event.kind]
    when = _epoch(event.event_time)
    times = dict(new["unit_times"].get(unit, {}))
    reached = [name for name in UNIT_STEPS if times.get(name) is not None]
    if reached and UNIT_STEPS.index(reached[-1]) >= UNIT_STEPS.index(step):
        raise InvalidEvent(f"unit {unit} already reached {reached[-1]} on call "
                           f"{event.call_id}; {event.kind} is out of order", "out_of_order")
    times[step] = when
    new["unit_times"] = {**new["unit_times"], unit: times}
    if unit not in new["units"]:
        new["units"] = [*new["units"], unit]
    first_field = FIRST_UNIT_TIME_FIELD.get(step)
    if first_field and new.get(first_field) is None:
        new[first_field] = when
        _note_clock(new, event, first_field)
    if CALL_STEPS.index(step) > CALL_STEPS.index(new["status"]):
        new["status"] = step


def _call_step(new: State, event: CallEvent) -> None:
    """A step of the call itself (a status feed naming no unit): the first time the call
    reached it, and its status if that is further along."""
    assert event.step is not None  # CallEvent checks progressed carries step
    field_name = CALL_STEP_TIME_FIELD[event.step]
    if new.get(field_name) is None:
        new[field_name] = _epoch(event.event_time)
        _note_clock(new, event, field_name)
    if CALL_STEPS.index(event.step) > CALL_STEPS.index(new["status"]):
        new["status"] = event.step


def _note_clock(new: State, event: CallEvent, field_name: str) -> None:
    if event.time_source == "poll":
        new["poll_times"] = [*(new.get("poll_times") or []), field_name]


def _close_call(old: State, new: State, event: CallEvent) -> Outcome:
    new["status"] = "closed" if event.kind == "cleared" else "cancelled"
    new["closed_time"] = _epoch(event.event_time)
    _note_clock(new, event, "closed_time")
    if event.left_feed:
        new["left_feed"] = True
    if event.disposition is not None:
        new["disposition"] = event.disposition
    writes = (
        IndexWrite(INDEX_OPEN, new["call_id"], None),
        IndexWrite(QUEUE_PREFIX + old["category"], new["call_id"], None),
        IndexWrite(INDEX_CLOSED, new["call_id"], new["closed_time"]),
    )
    return Outcome("applied", new, writes, closed=closed_record(new), removed=True)


def _queue_writes(old: State | None, new: State) -> tuple[IndexWrite, ...]:
    score = queue_score(new["priority"], new["received_time"])
    if old is not None and old["category"] == new["category"] \
            and old["priority"] == new["priority"] \
            and old["received_time"] == new["received_time"]:
        return ()
    writes = [IndexWrite(INDEX_OPEN, new["call_id"], score),
              IndexWrite(QUEUE_PREFIX + new["category"], new["call_id"], score)]
    if old is not None and old["category"] != new["category"]:
        writes.append(IndexWrite(QUEUE_PREFIX + old["category"], new["call_id"], None))
    return tuple(writes)


# --- units ------------------------------------------------------------------------------

distance_m = haversine_m


def apply_unit(state: State | None, event: UnitEvent) -> Outcome:
    """Apply a unit status/AVL event; older fixes are stale, jumps are impossible."""
    when = float(event.event_time.timestamp())
    if event.lat is not None and abs(event.lat) > GEO_LAT_LIMIT:
        raise InvalidEvent(f"unit {event.unit_id} latitude {event.lat} cannot be mapped "
                           f"(beyond ±{GEO_LAT_LIMIT})", "impossible_position")
    if state is not None:
        if event.event_id in state["applied"]:
            return DUPLICATE
        if when < state["time"]:
            return STALE
        if event.lat is not None and event.lon is not None and state["lat"] is not None:
            _check_speed(state, event, when)
    new: State = {
        "unit_id": event.unit_id, "unit_kind": event.unit_kind,
        "callsign": event.callsign, "status": event.status,
        "lat": event.lat, "lon": event.lon, "heading": event.heading,
        "speed_kmh": event.speed_kmh, "call_id": event.call_id,
        "district": event.district, "time": when,
        "applied": _remember(state["applied"] if state else [], event.event_id,
                             RECENT_IDS_KEPT),
    }
    if state is not None:
        for name in ("callsign", "district", "lat", "lon", "heading", "speed_kmh"):
            if new[name] is None:
                new[name] = state[name]
    geo = (new["lon"], new["lat"]) if new["lat"] is not None else None
    return Outcome("applied", new, geo=geo)


def _check_speed(state: State, event: UnitEvent, when: float) -> None:
    assert event.lat is not None and event.lon is not None
    metres = distance_m(state["lat"], state["lon"], event.lat, event.lon)
    allowed = MAX_UNIT_SPEED_KMH / 3.6 * (when - state["time"]) + GPS_SLACK_M
    if metres > allowed:
        seconds = when - state["time"]
        raise InvalidEvent(
            f"impossible position for unit {event.unit_id}: {metres:.0f} m in {seconds:.0f} s "
            f"since its last fix (limit {MAX_UNIT_SPEED_KMH:.0f} km/h)", "impossible_position")


# --- alerts and shares ------------------------------------------------------------------

def apply_alert(state: State | None, event: ShotAlert) -> Outcome:
    """Apply a gunshot alert; a later event for the same alert revises it."""
    when = float(event.event_time.timestamp())
    if state is not None:
        if event.event_id in state["applied"]:
            return DUPLICATE
        if when < state["updated_time"]:
            return STALE
    detected = float(event.detected_time.timestamp())
    new: State = {
        "alert_id": event.alert_id, "alert_type": event.alert_type, "rounds": event.rounds,
        "lat": event.lat, "lon": event.lon, "address": event.address,
        "district": event.district, "neighborhood": event.neighborhood, "beat": event.beat,
        "detected_time": detected, "published_time": _epoch(event.published_time),
        "from_cad": bool(event.from_cad), "call_id": event.call_id, "updated_time": when,
        "applied": _remember(state["applied"] if state else [], event.event_id,
                             RECENT_IDS_KEPT),
    }
    return Outcome("applied", new, (IndexWrite(INDEX_ALERTS, event.alert_id, detected),))


def apply_share(state: State | None, event: ShareEvent) -> Outcome:
    """Apply a share opened/closed event; closing an unknown or closed share is rejected."""
    when = float(event.event_time.timestamp())
    if state is not None and event.event_id in state["applied"]:
        return DUPLICATE
    if state is not None and state["status"] == "closed":
        raise InvalidEvent(f"share {event.share_id} is closed; a {event.kind} event "
                           f"cannot follow", "out_of_order")
    if state is None and event.kind == "closed":
        raise InvalidEvent(f"share {event.share_id} was never opened; closed is out of order",
                           "out_of_order")
    start = _epoch(event.start_time) or (state["start_time"] if state else when)
    new: State = {
        "share_id": event.share_id, "status": "open", "partner": event.partner,
        "partner_kind": event.partner_kind, "resource_kind": event.resource_kind,
        "resource_id": event.resource_id, "resource_name": event.resource_name,
        "lat": event.lat, "lon": event.lon, "stream_url": event.stream_url,
        "call_id": event.call_id, "start_time": start, "end_time": None,
        "updated_time": when,
        "applied": _remember(state["applied"] if state else [], event.event_id,
                             RECENT_IDS_KEPT),
    }
    if state is not None:
        for name in ("lat", "lon", "stream_url", "call_id"):
            if new[name] is None:
                new[name] = state[name]
    if event.kind == "opened":
        return Outcome("applied", new, (IndexWrite(INDEX_SHARES, event.share_id, start),))
    new["status"] = "closed"
    new["end_time"] = _epoch(event.end_time) or when
    writes = (IndexWrite(INDEX_SHARES, event.share_id, None),
              IndexWrite(INDEX_SHARES_CLOSED, event.share_id, new["end_time"]))
    return Outcome("applied", new, writes, removed=True)


# --- a batch ----------------------------------------------------------------------------

@dataclass
class BatchPlan:
    """Apply a batch of events over loaded states; collect the final, coalesced writes.

    ``states`` maps entity kind ("call", "unit", "alert", "share") to {id: state} for every
    entity the batch touches (absent = unknown). ``closed_calls`` holds ids of calls that
    closed earlier and whose bodies may be gone.
    """

    states: dict[str, dict[str, State]]
    closed_calls: set[str] = field(default_factory=set)
    upserts: dict[str, dict[str, State]] = field(default_factory=dict)
    indexes: dict[str, dict[str, float | None]] = field(default_factory=dict)
    geo: dict[str, tuple[float, float]] = field(default_factory=dict)
    closed_records: list[dict[str, str]] = field(default_factory=list)
    removed: dict[tuple[str, str], bool] = field(default_factory=dict)
    freshness: dict[str, float] = field(default_factory=dict)

    def apply(self, event: Event) -> Verdict:
        """Apply one event (raises InvalidEvent, leaving the plan untouched)."""
        entity = ENTITY_OF_TYPE[type(event)]
        entity_id = entity_id_of(event)
        current = self.states.setdefault(entity, {}).get(entity_id)
        outcome = _apply_one(current, event, entity_id in self.closed_calls)
        if outcome.verdict != "applied":
            return outcome.verdict
        state = outcome.state
        assert state is not None
        self.states[entity][entity_id] = state
        self.upserts.setdefault(entity, {})[entity_id] = state
        for write in outcome.indexes:
            self.indexes.setdefault(write.index, {})[write.member] = write.score
        if outcome.geo is not None:
            self.geo[entity_id] = outcome.geo
        if outcome.closed is not None:
            self.closed_records.append(outcome.closed)
            self.closed_calls.add(entity_id)
        self.removed[(entity, entity_id)] = outcome.removed
        feed = SOURCE_OF_TYPE[type(event)]
        when = float(event.event_time.timestamp())
        if when > self.freshness.get(feed, -math.inf):
            self.freshness[feed] = when
        return "applied"


def _apply_one(current: State | None, event: Event, closed_before: bool) -> Outcome:
    if isinstance(event, CallEvent):
        return apply_call(current, event, closed_before)
    if isinstance(event, UnitEvent):
        return apply_unit(current, event)
    if isinstance(event, ShotAlert):
        return apply_alert(current, event)
    return apply_share(current, event)


def entity_id_of(event: Event) -> str:
    """The id of the entity an event changes."""
    if isinstance(event, CallEvent):
        return event.call_id
    if isinstance(event, UnitEvent):
        return event.unit_id
    if isinstance(event, ShotAlert):
        return event.alert_id
    return event.share_id
