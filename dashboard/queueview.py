"""What the quality-of-life queue page shows, as plain functions over plain call dicts.

The page (layouts/queues.py) hands the open calls from the read API to these functions and
renders what they return. Nothing here imports dash or redis. Cards are built field by
field from an allow-list, so a caller's name or phone number can never reach a tablet
through a card, whatever the call dict holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.events import CATEGORY_LABELS, QOL_CATEGORIES
from streams.core.geography import haversine_m

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

STATUS_LABELS = {
    "pending": "Pending", "assigned": "Assigned", "dispatched": "Dispatched",
    "en_route": "En route", "on_scene": "On scene", "closed": "Closed", "cancelled": "Cancelled",
}

AreaTest = Callable[[float, float], bool]
"""``contains(lat, lon)`` of a park area."""


@dataclass(frozen=True)
class QueueFilter:
    """The filters a tablet user picked; None means 'any'."""

    district: str | None = None
    neighborhood: str | None = None
    category: str | None = None
    park: str | None = None

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
        return cls(pick("district"), pick("neighborhood"), category, pick("park"))


def enforce_scope(chosen: QueueFilter, locked: str | None) -> QueueFilter:
    """``chosen`` with its district forced to ``locked``, whatever the browser sent."""
    return chosen if locked is None else dataclasses.replace(chosen, district=locked)


def is_open_qol(call: Mapping[str, Any]) -> bool:
    """True for a call that belongs on the QoL queues: open and of a QoL category."""
    return call.get("category") in QOL_CATEGORIES and call.get("status") in OPEN_STATUSES


def matches(call: Mapping[str, Any], chosen: QueueFilter, area: AreaTest | None = None,
            ignore_category: bool = False) -> bool:
    """True when ``call`` passes every chosen filter (``area`` tests the chosen park)."""
    if not is_open_qol(call):
        return False
    if chosen.district and call.get("district") != chosen.district:
        return False
    if chosen.neighborhood and call.get("neighborhood") != chosen.neighborhood:
        return False
    if chosen.category and not ignore_category and call.get("category") != chosen.category:
        return False
    if chosen.park:
        lat, lon = call.get("lat"), call.get("lon")
        if area is None or lat is None or lon is None or not area(float(lat), float(lon)):
            return False
    return True


def queue_order(call: Mapping[str, Any]) -> tuple[int, float, str]:
    """Sort key of the queues: priority, then oldest first (as the live-state zsets)."""
    return (int(call.get("priority") or 5), float(call.get("received_time") or 0.0),
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


def group_by_category(cards: Sequence[Mapping[str, Any]]) -> list[tuple[str, Queue]]:
    """Cards in one queue per category, categories in the Summer Initiative order."""
    queues: dict[str, Queue] = {category: [] for category in QOL_CATEGORIES}
    for card in cards:
        queues[str(card["category"])].append(card)
    return [(category, queue) for category, queue in queues.items() if queue]


def card(call: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The fields one queue card shows; built from an allow-list, never from the call."""
    fields = {name: call.get(name) for name in CARD_FIELDS}
    fields["units"] = list(call.get("units") or [])
    fields["category_label"] = CATEGORY_LABELS.get(str(call.get("category")), "QoL")
    fields["status_label"] = STATUS_LABELS.get(str(call.get("status")), str(call.get("status")))
    received = call.get("received_time")
    fields["age_s"] = max(0.0, now - float(received)) if received is not None else None
    fields["age_text"] = age_text(fields["age_s"])
    return fields


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


def age_text(age_s: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min', '2 d 4 h': short enough for a card corner."""
    if age_s is None or math.isnan(age_s):
        return "—"
    seconds = int(age_s)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


# --- park areas -----------------------------------------------------------------------

distance_m = haversine_m


def in_ring(lat: float, lon: float, ring: Sequence[Sequence[float]]) -> bool:
    """Even-odd point-in-polygon test; ``ring`` is GeoJSON [lon, lat] pairs."""
    inside = False
    count = len(ring)
    for index in range(count):
        x1, y1 = ring[index][0], ring[index][1]
        x2, y2 = ring[index - 1][0], ring[index - 1][1]
        if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def circle_test(center_lat: float, center_lon: float, radius_m: float) -> AreaTest:
    """An area test for 'within radius_m of a point'."""
    if radius_m <= 0:
        raise ValueError(f"a park radius must be above 0 m, got {radius_m}")
    return lambda lat, lon: distance_m(center_lat, center_lon, lat, lon) <= radius_m


def polygon_test(rings: Sequence[Sequence[Sequence[float]]]) -> AreaTest:
    """An area test for a GeoJSON polygon (outer ring first, then holes)."""
    if not rings or len(rings[0]) < 3:
        raise ValueError("a park polygon needs an outer ring of at least 3 points")
    outer, holes = rings[0], rings[1:]
    return lambda lat, lon: in_ring(lat, lon, outer) and not any(
        in_ring(lat, lon, hole) for hole in holes)
