"""What the wall display shows, as plain functions over live-state dicts.

No Dash, Redis or I/O here. ``assets/wall.js`` mirrors the functions the browser needs
every second (aging colour, queue order, feed health, gunshot banner); the browser tests
run both on the same inputs so the two cannot drift apart.

Distances are great-circle (``streams.core.geography.haversine_m``). ETAs assume an urban
driving speed of ``ASSUMED_SPEED_KMH`` (40 km/h) in a straight line: a rough "who is
closest" guide for a commander, not a routing engine.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from streams.core import display

# Re-exported (explicitly, for mypy): feed health (one rule, shared with `python -m streams
# status`), the banner's distances, and the radius wall.js mirrors.
from streams.core.feedhealth import FEED_STATES as FEED_STATES
from streams.core.feedhealth import feed_health as feed_health
from streams.core.feedhealth import source_heartbeats as source_heartbeats
from streams.core.feedhealth import vouched_sources as vouched_sources
from streams.core.geography import EARTH_RADIUS_M as EARTH_RADIUS_M
from streams.core.geography import HotSpot, Part
from streams.core.geography import haversine_m as haversine_m

ASSUMED_SPEED_KMH = 40.0
"""Straight-line urban speed used for ETAs (stated on screen next to every ETA)."""

LINK_RADIUS_M = 500.0
LINK_WINDOW_S = 600.0
GUNSHOT_ORIGIN_REACH = 2.0
"""A call the gunshot system opened links this many link radii away (sensor fix vs the
CAD's geocoded address)."""
"""CAD calls within 500 m and 10 min of a gunshot alert are linked to it."""

WARN_FRACTION = 0.5
"""A pending call turns amber at half its priority's target and red past the target."""

OPEN_STATUSES = frozenset({"pending", "assigned", "dispatched", "en_route", "on_scene"})

UNIT_STATUS_LABELS = {
    "available": ("A", "Available"), "dispatched": ("D", "Dispatched"),
    "en_route": ("E", "En route"), "on_scene": ("S", "On scene"),
    "out_of_service": ("X", "Out of service"),
}
"""Letter on the map marker and legend text: status is never shown by colour alone."""

CATEGORY_ABBREV = {
    "noise": "NOI", "dumping": "DMP", "loitering": "LOI", "public_drinking": "DRK",
    "atv": "ATV", "speeding": "SPD", "theft": "THF", "narcotics": "NAR", "other_qol": "QOL",
}
"""Short category marks for quality-of-life calls on the map and in the queue."""


# --- geometry -----------------------------------------------------------------------------

def label_point(polygon: Sequence[Sequence[Sequence[float]]],
                steps: int = 24) -> tuple[float, float]:
    """(lat, lon) of a polygon's pole of inaccessibility: the inside point farthest from
    its edges, where a name has the most room (a centroid can fall near a border, or
    outside a bent shape). ``polygon`` is GeoJSON rings of [lon, lat]; the first is the
    outline, the rest holes. A grid search refined three times around the best point:
    ample for a label, a few milliseconds per neighborhood."""
    outline = polygon[0] if polygon else []
    if len(outline) < 3:
        raise ValueError("a label needs a polygon with at least 3 points in its outline")
    # A local plane where a degree of longitude is as long as it is at this latitude.
    squeeze = math.cos(math.radians(sum(p[1] for p in outline) / len(outline)))
    starts, ends = [], []
    for ring in polygon:
        points = np.asarray(ring, dtype=float)[:, :2] * (squeeze, 1.0)
        starts.append(points)
        ends.append(np.roll(points, -1, axis=0))
    a, b = np.concatenate(starts), np.concatenate(ends)
    low, high = starts[0].min(axis=0), starts[0].max(axis=0)
    best_room, best = -1.0, (low + high) / 2
    for _ in range(4):
        grid = np.stack(np.meshgrid(np.linspace(low[0], high[0], steps + 1),
                                    np.linspace(low[1], high[1], steps + 1)), -1).reshape(-1, 2)
        room = _room(grid, a, b)
        if room.max() > best_room:
            best_room, best = float(room.max()), grid[int(room.argmax())]
        half = (high - low) / 4
        low, high = best - half, best + half
    return float(best[1]), float(best[0] / squeeze)


def _room(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per point, the distance to the nearest edge a[i]->b[i] if inside (even-odd), else -1."""
    px, py = points[:, :1], points[:, 1:]
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    dx, dy = bx - ax, by - ay
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = ((ay > py) != (by > py)) & (px < ax + (py - ay) * dx / (by - ay))
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    t = np.nan_to_num(t)
    nearest = np.hypot(px - ax - t * dx, py - ay - t * dy).min(axis=1)
    inside = crossing.sum(axis=1) % 2 == 1
    return np.where(inside, nearest, -1.0)


def eta_s(distance_m: float, speed_kmh: float = ASSUMED_SPEED_KMH) -> float:
    """Seconds to cover ``distance_m`` at ``speed_kmh``."""
    if speed_kmh <= 0:
        raise ValueError(f"speed must be above 0 km/h, got {speed_kmh}")
    return distance_m / (speed_kmh / 3.6)


def _has_position(item: Mapping[str, Any]) -> bool:
    return item.get("lat") is not None and item.get("lon") is not None


# --- call queue ---------------------------------------------------------------------------

def pending_target_s(priority: int, pending_targets: Sequence[int]) -> int:
    """The pending target in seconds for priority 1..5."""
    if not 1 <= priority <= len(pending_targets):
        raise ValueError(f"priority must be 1..{len(pending_targets)}, got {priority}")
    return pending_targets[priority - 1]


def aging_level(call: Mapping[str, Any], now: float, pending_targets: Sequence[int]) -> str:
    """'late', 'warn' or 'ok' for a pending call by its wait vs target; 'assigned' otherwise."""
    if call.get("status") != "pending":
        return "assigned"
    target = pending_target_s(int(call["priority"]), pending_targets)
    waited = now - float(call["received_time"])
    if waited > target:
        return "late"
    if waited >= target * WARN_FRACTION:
        return "warn"
    return "ok"


def queue_sort_key(call: Mapping[str, Any]) -> tuple[int, int, float, str]:
    """Pending before assigned, then priority, then oldest first (then id, for stability)."""
    return (0 if call.get("status") == "pending" else 1, int(call.get("priority") or 5),
            float(call.get("received_time") or 0.0), str(call.get("call_id", "")))


def queue_order(calls: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Open calls in the order the wall queue lists them."""
    return sorted((c for c in calls if c.get("status") in OPEN_STATUSES), key=queue_sort_key)


def keep_rank(call: Mapping[str, Any]) -> int:
    """Which rows a queue too short for every call keeps: P1/P2 in any state, then the
    other pending calls, then the rest."""
    if int(call.get("priority") or 5) <= 2:
        return 0
    return 1 if call.get("status") == "pending" else 2


def queue_rows(calls: Iterable[Mapping[str, Any]], fit: int) -> dict[str, Any]:
    """The ``fit`` rows the wall queue shows (chosen by keep_rank, listed in queue order)
    and how many it could not show per priority ("P3": 2, ...), for its "not shown" line."""
    ordered = queue_order(calls)
    kept = sorted(range(len(ordered)), key=lambda i: (keep_rank(ordered[i]), i))[:max(0, fit)]
    shown = set(kept)
    hidden: dict[str, int] = {}
    for i, call in enumerate(ordered):
        if i not in shown:
            label = f"P{int(call.get('priority') or 5)}"
            hidden[label] = hidden.get(label, 0) + 1
    return {"shown": [ordered[i] for i in sorted(shown)],
            "hidden": dict(sorted(hidden.items()))}


format_age = display.duration
"""Ages and durations: the shared formatter of every page (streams.core.display)."""


# --- KPI tiles ----------------------------------------------------------------------------

def live_kpis(calls: Iterable[Mapping[str, Any]], units: Iterable[Mapping[str, Any]],
              districts: Sequence[str]) -> dict[str, Any]:
    """Open calls, pending P1/P2, QoL backlog per district (``districts``: the geography's,
    each shown even at 0) and available units."""
    open_calls = [c for c in calls if c.get("status") in OPEN_STATUSES]
    backlog = {district: 0 for district in districts}
    for call in open_calls:
        if call.get("qol"):
            district = call.get("district") or "Unknown"
            backlog[district] = backlog.get(district, 0) + 1
    pending = [c for c in open_calls if c.get("status") == "pending"]
    return {
        "open": len(open_calls),
        "pending_p1": sum(1 for c in pending if c.get("priority") == 1),
        "pending_p2": sum(1 for c in pending if c.get("priority") == 2),
        "qol_backlog": backlog,
        "units_available": sum(1 for u in units if u.get("status") == "available"),
    }


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's and pandas' default) of a non-empty sample."""
    if not values:
        raise ValueError("quantile of no values; check for an empty period first")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def city_day_bounds(now: float, timezone: str) -> tuple[float, float]:
    """Epoch seconds of the start of today and of tomorrow in the city's time zone."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    start = datetime.combine(today, time(0), zone)
    end = datetime.combine(today + timedelta(days=1), time(0), zone)
    return start.timestamp(), end.timestamp()


def response_summary(rows: Iterable[tuple[int, float]],
                     response_targets: Sequence[int]) -> list[dict[str, Any]]:
    """Per priority with data, plus 'all': count, median, p90, target and whether each is met.

    ``rows`` are (priority, response seconds) of today's closed calls; NaN/None responses
    (cancelled, never arrived) are skipped. 'all' is judged against the P1 target only when
    every row is P1, otherwise it carries no target (priorities have different targets).
    """
    by_priority: dict[int, list[float]] = {}
    for priority, seconds in rows:
        if seconds is None or math.isnan(seconds) or not 1 <= int(priority) <= 5:
            continue
        by_priority.setdefault(int(priority), []).append(float(seconds))
    summary = [_summary_row(f"P{p}", by_priority[p], response_targets[p - 1])
               for p in sorted(by_priority)]
    everything = [s for values in by_priority.values() for s in values]
    if everything:
        summary.append(_summary_row("All", everything, None))
    return summary


def _summary_row(label: str, values: list[float], target: float | None) -> dict[str, Any]:
    median, p90 = quantile(values, 0.5), quantile(values, 0.9)
    return {"label": label, "count": len(values), "median_s": median, "p90_s": p90,
            "target_s": target,
            "median_ok": None if target is None else median <= target,
            "p90_ok": None if target is None else p90 <= target}


# --- gunshot banner -----------------------------------------------------------------------

def unit_tier(kind: str | None, tiers: Sequence[Sequence[str]] | None) -> int | None:
    """Index of the first tier listing ``kind`` (0 when ``tiers`` is None: any kind), or
    None when the kind may not be suggested (streams.core.suggestions)."""
    if tiers is None:
        return 0
    return next((n for n, tier in enumerate(tiers) if kind in tier), None)


def nearest_units(lat: float, lon: float, units: Iterable[Mapping[str, Any]],
                  limit: int = 3, tiers: Sequence[Sequence[str]] | None = None,
                  ) -> list[dict[str, Any]]:
    """The ``limit`` closest available units with positions of a kind ``tiers`` allows,
    the first tier's by distance, then the next tiers' to fill; with distance_m and eta_s."""
    found = []
    for unit in units:
        if unit.get("status") != "available" or not _has_position(unit):
            continue
        tier = unit_tier(unit.get("unit_kind"), tiers)
        if tier is None:
            continue
        distance = haversine_m(lat, lon, float(unit["lat"]), float(unit["lon"]))
        found.append((tier, {**unit, "distance_m": distance, "eta_s": eta_s(distance)}))
    found.sort(key=lambda pair: (pair[0], pair[1]["distance_m"], str(pair[1].get("unit_id", ""))))
    return [unit for _, unit in found[:limit]]


def linked_calls(alert: Mapping[str, Any], calls: Iterable[Mapping[str, Any]],
                 radius_m: float = LINK_RADIUS_M,
                 window_s: float = LINK_WINDOW_S) -> list[dict[str, Any]]:
    """CAD calls received within ``window_s`` (either side) and ``radius_m`` of an alert.

    A call the gunshot system opened (``gunshot_origin``) links within twice the radius and
    comes first; an alert made from a CAD call (``from_cad``) always links its own call."""
    detected = float(alert["detected_time"])
    found = []
    for call in calls:
        own = alert.get("from_cad") and call.get("call_id") == alert.get("call_id")
        if not _has_position(call) or call.get("received_time") is None:
            continue
        if abs(float(call["received_time"]) - detected) > window_s and not own:
            continue
        distance = haversine_m(float(alert["lat"]), float(alert["lon"]),
                               float(call["lat"]), float(call["lon"]))
        reach = radius_m * (GUNSHOT_ORIGIN_REACH if call.get("gunshot_origin") else 1)
        if distance <= reach or own:
            found.append({**call, "distance_m": distance})
    found.sort(key=lambda c: (not c.get("gunshot_origin"), c["distance_m"],
                              str(c.get("call_id", ""))))
    return found


def gunshot_banner(alert: Mapping[str, Any], units: Iterable[Mapping[str, Any]],
                   calls: Iterable[Mapping[str, Any]], limit: int = 3,
                   tiers: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Everything the banner of one alert shows: the alert, nearest units of the kinds
    ``tiers`` allows for gunfire (Settings.suggest_units "gunshot"), linked calls."""
    return {"alert": dict(alert),
            "units": nearest_units(float(alert["lat"]), float(alert["lon"]), units, limit,
                                   tiers),
            "calls": linked_calls(alert, calls)}


def alert_opacity(age_s: float, active_s: float = 3600.0) -> float:
    """Marker opacity: 1 when new, fading linearly to 0.25 at the end of the active hour."""
    if active_s <= 0:
        raise ValueError(f"active period must be above 0 s, got {active_s}")
    fraction = min(1.0, max(0.0, age_s / active_s))
    # Half up, as JavaScript's Math.round does (Python's round() halves to even).
    return math.floor((1.0 - 0.75 * fraction) * 1000 + 0.5) / 1000


# --- hot spots ----------------------------------------------------------------------------

COUNT_FEEDS = {"calls": "cad", "alerts": "shotspotter"}
"""The feed each hot-spot count comes from."""
KNOWN_FEED_STATES = frozenset({"live", "quiet"})
"""A count is known only while its feed is live or quiet (source alive, nothing new): with
no data, a stale feed or the live connection lost it is unknown, never 0."""


def counts_known(feed_states: Mapping[str, str], connected: bool) -> dict[str, bool]:
    """Which hot-spot counts ("calls", "alerts") are known, from feed_health states."""
    return {kind: connected and feed_states.get(source) in KNOWN_FEED_STATES
            for kind, source in COUNT_FEEDS.items()}


def hotspot_counts(spots: Sequence[HotSpot], calls: Iterable[Mapping[str, Any]],
                   alerts: Iterable[Mapping[str, Any]], now: float, active_s: float,
                   known: Mapping[str, bool]) -> list[dict[str, Any]]:
    """Per hot spot, the open calls and the gunshot alerts of the last ``active_s`` inside
    it (HotSpot.contains): None when that count is unknown (``counts_known``); "floor" when
    some of them have no position, so the true count may be higher ("≥ N")."""
    kinds = {"calls": [c for c in calls if c.get("status") in OPEN_STATUSES],
             "alerts": [a for a in alerts if a.get("detected_time") is not None
                        and now - float(a["detected_time"]) <= active_s]}
    unplaced = {kind: any(not _has_position(x) for x in items) for kind, items in kinds.items()}
    counts = []
    for spot in spots:
        row: dict[str, Any] = {"name": spot.name}
        for kind, items in kinds.items():
            inside = sum(1 for x in items if _has_position(x)
                         and spot.contains(float(x["lat"]), float(x["lon"])))
            row[kind] = inside if known.get(kind) else None
            row[f"{kind}_floor"] = bool(known.get(kind)) and unplaced[kind]
        counts.append(row)
    return counts


def hotspot_config(spot: HotSpot) -> dict[str, Any]:
    """What wall.js draws and tests containment on (its mirror of HotSpot.contains): the
    shape, [lat, lon] points, width, polygon rings ([lon, lat], GeoJSON order) and where
    its name goes."""
    return {"name": spot.name, "short": spot.short or spot.name, "shape": spot.shape,
            "district": spot.district,
            "points": [list(p) for p in spot.points], "width_m": spot.width_m,
            "parts": [[[list(v) for v in ring] for ring in part.rings] for part in spot.parts],
            "label": list(hotspot_label_point(spot))}


def hotspot_label_point(spot: HotSpot) -> tuple[float, float]:
    """(lat, lon) for a hot spot's name: an area's pole of inaccessibility (largest part),
    a corridor's middle (half its length along the line), a circle's centre."""
    if spot.parts:
        largest: Part = max(spot.parts, key=lambda part: (part.bbox[2] - part.bbox[0]) *
                            (part.bbox[3] - part.bbox[1]))
        return label_point([list(ring) for ring in largest.rings])
    if len(spot.points) == 1:
        return spot.points[0]
    pairs = list(itertools.pairwise(spot.points))
    legs = [haversine_m(*a, *b) for a, b in pairs]
    left = sum(legs) / 2
    for (a, b), leg in zip(pairs, legs, strict=True):
        if left <= leg and leg > 0:
            t = left / leg
            return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        left -= leg
    return spot.points[-1]


# --- kiosk rotation -----------------------------------------------------------------------

MIN_ROTATE_SECONDS = 2
VIEW_LABELS = {"city": "Whole city", "response": "Response times today",
               "shares": "Video shares"}
"""The views a rotating wall can show besides one per district."""


def rotation_views(names: Iterable[str], districts: Sequence[str],
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """The views a ``?rotate=`` list (or DISPATCH_WALL_ROTATE) names, in order, and the
    names it could not use: 'city', 'response', 'shares' or a district's name (any case)."""
    by_name = {district.lower(): district for district in districts}
    views: list[dict[str, Any]] = []
    unknown: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if name in VIEW_LABELS:
            views.append({"id": name, "kind": name, "label": VIEW_LABELS[name]})
        elif name in by_name:
            views.append({"id": name, "kind": "district", "district": by_name[name],
                          "label": f"{by_name[name]} district"})
        elif name:
            unknown.append(raw.strip())
    return views, unknown


def rotation_seconds(text: str | None, default: int) -> int:
    """Seconds per view from ``?every=`` (else ``default``), at least MIN_ROTATE_SECONDS."""
    try:
        seconds = int(float(text)) if text not in (None, "") else int(default)
    except ValueError:
        seconds = int(default)
    return max(MIN_ROTATE_SECONDS, seconds)
