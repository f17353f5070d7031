"""What the quality-of-life queue page shows, as plain functions over plain call dicts.

The page (layouts/queues.py) hands the open calls from the read API to these functions and
renders what they return. Nothing here imports dash or redis. Cards are built field by
field from an allow-list, so a caller's name or phone number can never reach a tablet
through a card, whatever the call dict holds.

A card's clock and overdue colour are worked out here as epochs (``since``, ``warn_at``,
``late_at``); ``assets/queues.js`` only compares them with the time each second, so the
rule lives in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from streams.core import display
from streams.core.actions import OUTCOMES
from streams.core.events import CATEGORY_LABELS, QOL_CATEGORIES
from streams.core.geography import bearing_deg, haversine_m, polygon

OPEN_STATUSES = frozenset({"pending", "assigned", "dispatched", "en_route", "on_scene"})
CARD_FIELDS = (
    "call_id", "category", "priority", "status", "address", "call_type", "received_time",
    "district", "neighborhood", "lat", "lon", "units",
)
"""The only call fields a card carries (no caller_name, no caller_phone)."""

DETAIL_FIELDS = CARD_FIELDS + (
    "beat", "dispatched_time", "en_route_time", "on_scene_time", "unit_times", "updated_time",
)
"""The only call fields the detail panel carries."""

WARN_FRACTION = 0.5
"""A call turns amber at half its priority's target, red past it (as on the wall)."""

SECTIONS = (
    ("pending", "Waiting for a unit"),
    ("assigned", "Assigned or en route"),
    ("on_scene", "On scene"),
)
"""The tablet queue's sections, in the order an officer picks calls from."""
SECTION_OF_STATUS = {"pending": "pending", "assigned": "assigned", "dispatched": "assigned",
                     "en_route": "assigned", "on_scene": "on_scene"}

CLOCK_LABELS = {"pending": "Waiting", "assigned": "Assigned", "dispatched": "Dispatched",
                "en_route": "En route", "on_scene": "On scene"}
"""What a card's clock counts: time waiting, or time since the call reached its status."""

STATUS_LABELS = {
    "pending": "Pending", "assigned": "Assigned", "dispatched": "Dispatched",
    "en_route": "En route", "on_scene": "On scene", "closed": "Closed", "cancelled": "Cancelled",
}

AreaTest = Callable[[float, float], bool]
"""``contains(lat, lon)`` of a place's area (a park or school)."""


@dataclass(frozen=True)
class QueueFilter:
    """The filters a tablet user picked; None means 'any'."""

    district: str | None = None
    neighborhood: str | None = None
    category: str | None = None
    place: str | None = None
    """A park or school (its name): calls within its circle."""

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> QueueFilter:
        """Build from the page's stored filter dict, ignoring unknown or empty values."""
        values = values or {}

        def pick(name: str) -> str | None:
            value = values.get(name)
            return str(value) if value not in (None, "", "all") else None

        category = pick("category")
        if category is not None and category not in QOL_CATEGORIES:
            category = None
        # "park": what the place filter was called before schools joined it.
        return cls(pick("district"), pick("neighborhood"), category,
                   pick("place") or pick("park"))


def enforce_scope(chosen: QueueFilter, locked: str | None) -> QueueFilter:
    """``chosen`` with its district forced to ``locked``, whatever the browser sent."""
    return chosen if locked is None else dataclasses.replace(chosen, district=locked)


def is_open_qol(call: Mapping[str, Any]) -> bool:
    """True for a call that belongs on the QoL queues: open and of a QoL category."""
    return call.get("category") in QOL_CATEGORIES and call.get("status") in OPEN_STATUSES


def matches(call: Mapping[str, Any], chosen: QueueFilter, area: AreaTest | None = None,
            ignore_category: bool = False) -> bool:
    """True when ``call`` passes every chosen filter (``area`` tests the chosen place)."""
    if not is_open_qol(call):
        return False
    if chosen.district and call.get("district") != chosen.district:
        return False
    if chosen.neighborhood and call.get("neighborhood") != chosen.neighborhood:
        return False
    if chosen.category and not ignore_category and call.get("category") != chosen.category:
        return False
    if chosen.place:
        lat, lon = call.get("lat"), call.get("lon")
        if area is None or lat is None or lon is None or not area(float(lat), float(lon)):
            return False
    return True


def queue_order(call: Mapping[str, Any]) -> tuple[int, int, float, str]:
    """Sort key of the queues: waiting calls first, then assigned, then on scene; within
    each, priority, then oldest first."""
    section = [name for name, _ in SECTIONS].index(
        SECTION_OF_STATUS.get(str(call.get("status")), "pending"))
    return (section, int(call.get("priority") or 5), float(call.get("received_time") or 0.0),
            str(call.get("call_id")))


def filter_calls(calls: Iterable[Mapping[str, Any]], chosen: QueueFilter,
                 area: AreaTest | None = None) -> list[Mapping[str, Any]]:
    """The open QoL calls passing the filters, in queue order."""
    return sorted((call for call in calls if matches(call, chosen, area)), key=queue_order)


def category_counts(calls: Iterable[Mapping[str, Any]], chosen: QueueFilter,
                    area: AreaTest | None = None) -> dict[str, int]:
    """Open calls per QoL category under every filter except the category itself."""
    counts = dict.fromkeys(QOL_CATEGORIES, 0)
    for call in calls:
        if matches(call, chosen, area, ignore_category=True):
            counts[str(call["category"])] += 1
    return counts


Queue = list[Mapping[str, Any]]


def group_by_section(cards: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, Queue]]:
    """(section, heading, cards) for each non-empty section, in SECTIONS order."""
    queues: dict[str, Queue] = {name: [] for name, _ in SECTIONS}
    for card in cards:
        queues[SECTION_OF_STATUS.get(str(card.get("status")), "pending")].append(card)
    return [(name, heading, queues[name]) for name, heading in SECTIONS if queues[name]]


def group_by_category(cards: Sequence[Mapping[str, Any]]) -> list[tuple[str, Queue]]:
    """Cards in one queue per category, categories in the Summer Initiative order."""
    queues: dict[str, Queue] = {category: [] for category in QOL_CATEGORIES}
    for card in cards:
        queues[str(card["category"])].append(card)
    return [(category, queue) for category, queue in queues.items() if queue]


@dataclass(frozen=True)
class Targets:
    """Seconds P1..P5 may wait for a unit (pending) and take to reach the scene."""

    pending: tuple[int, ...] = (60, 180, 600, 1200, 1800)
    response: tuple[int, ...] = (420, 720, 1200, 1800, 3600)


def clock(call: Mapping[str, Any]) -> tuple[str, float | None]:
    """(label, epoch it counts from): "Waiting" since received while pending, else the
    status since the call reached it (the first unit's time of that step)."""
    status = str(call.get("status"))
    label = CLOCK_LABELS.get(status, STATUS_LABELS.get(status, status))
    if status == "pending":
        return label, _epoch(call.get("received_time"))
    field = {"dispatched": "dispatched_time", "en_route": "en_route_time",
             "on_scene": "on_scene_time"}.get(status)
    since = _epoch(call.get(field)) if field else None
    if since is None:
        steps = [step.get(status) for step in (call.get("unit_times") or {}).values()
                 if isinstance(step, Mapping) and step.get(status) is not None]
        since = min((float(step) for step in steps), default=None)
    if since is None:
        since = _epoch(call.get("updated_time"))
    return label, since


def overdue_at(call: Mapping[str, Any], targets: Targets) -> tuple[float | None, float | None]:
    """(warn_at, late_at) epochs: a pending call against its priority's pending target, an
    assigned or en-route one against its response target (received -> on scene); a call on
    scene is never overdue. (None, None) when the times to judge by are missing."""
    status, received = str(call.get("status")), _epoch(call.get("received_time"))
    priority = int(call.get("priority") or 5)
    if received is None or status == "on_scene" or not 1 <= priority <= 5:
        return None, None
    table = targets.pending if status == "pending" else targets.response
    target = float(table[priority - 1])
    return received + WARN_FRACTION * target, received + target


def level(warn_at: float | None, late_at: float | None, now: float) -> str:
    """"late", "warn" or "ok" at ``now`` ("ok" when there is nothing to judge by)."""
    if late_at is not None and now > late_at:
        return "late"
    if warn_at is not None and now >= warn_at:
        return "warn"
    return "ok"


def card(call: Mapping[str, Any], now: float, targets: Targets | None = None,
         callsigns: Mapping[str, str] | None = None,
         work: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields one queue card shows; built from an allow-list, never from the call.
    ``callsigns``: unit id -> callsign; ``work``: the call's work record (actions)."""
    fields = {name: call.get(name) for name in CARD_FIELDS}
    fields["units"] = list(call.get("units") or [])
    fields["callsigns"] = [(callsigns or {}).get(unit) or unit for unit in fields["units"]]
    fields["category_label"] = CATEGORY_LABELS.get(str(call.get("category")), "QoL")
    fields["status_label"] = STATUS_LABELS.get(str(call.get("status")), str(call.get("status")))
    received = call.get("received_time")
    fields["age_s"] = max(0.0, now - float(received)) if received is not None else None
    fields["age_text"] = display.short_duration(fields["age_s"])
    fields["clock_label"], fields["since"] = clock(call)
    since = fields["since"]
    running_s = None if since is None else max(0.0, now - since)
    fields["clock_text"] = f"{fields['clock_label']} {display.short_duration(running_s)}"
    fields["warn_at"], fields["late_at"] = overdue_at(call, targets or Targets())
    fields["level"] = level(fields["warn_at"], fields["late_at"], now)
    fields["work"] = work_view(work)
    return fields


def _epoch(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


# --- actions on a card ----------------------------------------------------------------------

WORK_FIELDS = ("claimed_by", "claimed_role", "claimed_at", "notes", "handled", "updated_at")
NOTE_FIELDS = ("by", "role", "at", "text", "action_id")
HANDLED_FIELDS = ("by", "role", "at", "outcome", "text")


def work_view(work: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A work record as pages show it (an allow-list of its fields), or None."""
    if not work:
        return None
    view = {name: work.get(name) for name in WORK_FIELDS}
    view["notes"] = [{name: note.get(name) for name in NOTE_FIELDS}
                     for note in work.get("notes") or [] if isinstance(note, Mapping)]
    handled = work.get("handled")
    view["handled"] = ({name: handled.get(name) for name in HANDLED_FIELDS}
                       if isinstance(handled, Mapping) else None)
    if view["handled"]:
        view["handled"]["label"] = OUTCOMES.get(str(handled.get("outcome")),  # type: ignore[union-attr]
                                                str(handled.get("outcome")))  # type: ignore[union-attr]
    return view


def is_handled(work: Mapping[str, Any] | None) -> bool:
    """True when the dashboard has marked the call handled (it leaves the tablet queue)."""
    return bool(work and work.get("handled"))


WORK_WORDS = {
    "mine": "You have this call since {at}",
    "taken": "Taken by {by} at {at}",
    "handled": "Handled: {outcome} — {by} at {at}",
    "free": "Nobody has taken this call.",
}
"""How a card and the detail say who has a call; assets/queues.js paints a pushed change
with the same table (the page hands it over) before the server's re-render lands."""


def claim_line(work: Mapping[str, Any] | None, me: str,
               clock_text: Callable[[float], str]) -> tuple[str, str] | None:
    """(css kind, words) of who has a call: ("mine", "You have this call since 10:42"),
    ("taken", "Taken by cso-north at 10:42"), or None when nobody has it."""
    if not work or not work.get("claimed_by"):
        return None
    at = work.get("claimed_at")
    kind = "mine" if work["claimed_by"] == me else "taken"
    return kind, WORK_WORDS[kind].format(by=work["claimed_by"],
                                         at=clock_text(float(at)) if at is not None else "—")


def geo_uri(lat: float | None, lon: float | None, label: str | None) -> str | None:
    """A ``geo:`` URI opening the device's maps app at the call (RFC 5870, with the
    common ``q=lat,lon(label)`` so the pin carries the address), or None without a
    position."""
    if lat is None or lon is None:
        return None
    point = f"{float(lat):.6f},{float(lon):.6f}"
    text = f"({quote(label, safe='')})" if label else ""
    return f"geo:{point}?q={point}{text}"


COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> str:
    """Compass point (8-wind) from the first point to the second."""
    return COMPASS[int((bearing_deg(lat1, lon1, lat2, lon2) + 22.5) // 45) % 8]


def nearest_place(lat: float, lon: float, places: Iterable[tuple[str, float, float]],
                  ) -> tuple[str, float, str] | None:
    """(name, metres, compass point from the place to the call) of the nearest named place:
    a way to say where a call is when the map has no streets."""
    best: tuple[str, float, str] | None = None
    for name, place_lat, place_lon in places:
        metres = distance_m(place_lat, place_lon, lat, lon)
        if best is None or metres < best[1]:
            best = (name, metres, bearing(place_lat, place_lon, lat, lon))
    return best


def distance_text(metres: float) -> str:
    """'80 m', '450 m', '1.2 km' (the shared formatter)."""
    return display.distance(metres)


def detail(call: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The fields the detail panel shows (card fields plus unit times), no caller data."""
    fields = card(call, now)
    fields.update({name: call.get(name) for name in DETAIL_FIELDS if name not in fields})
    return fields


UNIT_STEPS = ("assigned", "dispatched", "en_route", "on_scene")


def unit_lines(shown: Mapping[str, Any], clock: Callable[[float], str]) -> list[str]:
    """One line per unit: its id and the times it reached each step ("S-PAT-06: assigned
    10:02:11, on scene 10:09:40"); ``clock`` formats an epoch. Units the call lists without
    times still get a line, so each unit appears exactly once."""
    times = shown.get("unit_times") or {}
    units = list(dict.fromkeys([*(shown.get("units") or []), *sorted(times)]))
    lines = []
    for unit in units:
        steps = times.get(unit) or {}
        reached = [f"{step.replace('_', ' ')} {clock(float(steps[step]))}"
                   for step in UNIT_STEPS if steps.get(step)]
        lines.append(f"{unit}: {', '.join(reached)}" if reached else str(unit))
    return lines


# --- park areas -----------------------------------------------------------------------

distance_m = haversine_m


def circle_test(center_lat: float, center_lon: float, radius_m: float) -> AreaTest:
    """An area test for 'within radius_m of a point'."""
    if radius_m <= 0:
        raise ValueError(f"a park radius must be above 0 m, got {radius_m}")
    return lambda lat, lon: distance_m(center_lat, center_lon, lat, lon) <= radius_m


def polygon_test(rings: Sequence[Sequence[Sequence[float]]]) -> AreaTest:
    """An area test for a GeoJSON polygon (outer ring first, then holes)."""
    return polygon(rings).contains
