"""Whether an event may enter the system: a sane time window and the service area (pure).

Every path in checks here, with the receiving clock (``now``, epoch seconds) of the
process that judges: the consumer for what reaches the raw streams, the webhook before it
answers, the pollers, replay and backfill before they publish. Two windows, because two
needs pull apart:

- **live** (consumer, webhook, pollers): an event's own time may be at most
  ``max_event_age_seconds`` before ``now``; a feed that sends a call from 2001 as news is
  wrong, and such an event would sit in live state for ever;
- **history** (backfill, and replays of old files): years-old times are the point, so the
  bound is ``history_max_age_days``.

The future bound is the same for both: no time may be more than ``max_event_ahead_seconds``
after ``now``. A far-future event is what once moved a feed's clock to 2099 and pruned all
real data; with it refused, no clock downstream can be dragged ahead by one event.

The service area is the city's bounds from the geography (or ``DISPATCH_SERVICE_AREA``)
widened by ``service_area_margin_km``; an event with a position outside it is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.core.events import Event, InvalidEvent, event_times

ANYWHERE = "anywhere"
KM_PER_DEGREE_LAT = 111.32


@dataclass(frozen=True)
class Area:
    """A latitude/longitude box (degrees)."""

    south: float
    west: float
    north: float
    east: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lon <= self.east

    def widened(self, margin_km: float) -> Area:
        """The box grown by ``margin_km`` on every side."""
        middle = math.radians((self.south + self.north) / 2)
        dlat = margin_km / KM_PER_DEGREE_LAT
        dlon = margin_km / (KM_PER_DEGREE_LAT * max(math.cos(middle), 0.01))
        return Area(max(-90.0, self.south - dlat), max(-180.0, self.west - dlon),
                    min(90.0, self.north + dlat), min(180.0, self.east + dlon))

    def describe(self) -> str:
        return f"{self.south:.4f},{self.west:.4f},{self.north:.4f},{self.east:.4f}"

    @classmethod
    def parse(cls, text: str) -> Area:
        """``south,west,north,east`` in degrees; ValueError saying what is wrong."""
        try:
            south, west, north, east = (float(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"service area {text!r}: expected south,west,north,east "
                             f"in degrees, or {ANYWHERE!r}") from None
        if not (-90 <= south < north <= 90 and -180 <= west < east <= 180):
            raise ValueError(f"service area {text!r}: south must be below north and west "
                             f"left of east, within -90..90 and -180..180")
        return cls(south, west, north, east)

    @classmethod
    def around(cls, boxes: Iterable[tuple[float, float, float, float]]) -> Area:
        """The box holding every (min lon, min lat, max lon, max lat) box."""
        west, south, east, north = zip(*boxes, strict=True)
        return cls(min(south), min(west), max(north), max(east))


def service_area(setting: str, margin_km: float, city: Area | None) -> Area | None:
    """The widened box events must fall in, or None (``anywhere``: no check)."""
    text = setting.strip()
    if text.lower() == ANYWHERE:
        return None
    box = Area.parse(text) if text else city
    if box is None:
        raise ValueError("no service area: the geography has no neighborhoods; set "
                         "DISPATCH_SERVICE_AREA")
    return box.widened(margin_km)


@dataclass(frozen=True)
class Admission:
    """The window and area one process judges events by."""

    max_age_s: float
    history_max_age_s: float
    max_ahead_s: float
    area: Area | None

    @classmethod
    def from_settings(cls, settings: Any, city: Area | None) -> Admission:
        """Admission for ``settings``; ``city`` is the geography's bounds (``city_area``)."""
        return cls(settings.max_event_age_seconds, settings.history_max_age_days * 86400.0,
                   settings.max_event_ahead_seconds,
                   service_area(settings.service_area, settings.service_area_margin_km, city))

    def check(self, event: Event, now: float, history: bool = False) -> None:
        """Raise InvalidEvent (time_out_of_range, outside_service_area) or return."""
        self.check_times(event_times(event), now, history)
        lat, lon = getattr(event, "lat", None), getattr(event, "lon", None)
        if lat is not None and lon is not None:
            self.check_place(lat, lon)

    def check_times(self, times: dict[str, datetime], now: float, history: bool) -> None:
        """Every time at most max_ahead_s after ``now``; the event's own time (or, with
        no event_time, each time) not older than the window allows."""
        latest = now + self.max_ahead_s
        earliest = now - (self.history_max_age_s if history else self.max_age_s)
        oldest_any = now - max(self.history_max_age_s, self.max_age_s)
        for name, value in times.items():
            when = value.timestamp()
            if when > latest:
                raise InvalidEvent(
                    f"{name} {value.isoformat()} is {_span(when - now)} after the receiving "
                    f"clock (at most {_span(self.max_ahead_s)} ahead is accepted)",
                    "time_out_of_range")
            bound = earliest if name == "event_time" or "event_time" not in times \
                else oldest_any
            if when < bound:
                raise InvalidEvent(
                    f"{name} {value.isoformat()} is {_span(now - when)} before the receiving "
                    f"clock (the {'history' if history else 'live'} window is "
                    f"{_span(now - bound)})", "time_out_of_range")

    def check_place(self, lat: float, lon: float) -> None:
        if self.area is not None and not self.area.contains(lat, lon):
            raise InvalidEvent(f"position {lat:.5f},{lon:.5f} is outside the service area "
                               f"({self.area.describe()})", "outside_service_area")


def admission_from_settings(settings: Any) -> Admission:
    """The Admission a process uses, the city's bounds read from the geography files only
    when ``DISPATCH_SERVICE_AREA`` does not name the area."""
    from streams.core.geography import geography_from_settings  # noqa: PLC0415 - file I/O

    city = None if settings.service_area.strip() else city_area(
        geography_from_settings(settings))
    return Admission.from_settings(settings, city)


def city_area(geography: Any) -> Area | None:
    """The bounds of a geography's neighborhoods (None when it has none)."""
    boxes = [hood.bbox for hood in geography.neighborhoods]
    return Area.around(boxes) if boxes else None


def _span(seconds: float) -> str:
    """A readable length of time for a refusal ("3 days", "2 h", "40 s")."""
    seconds = abs(seconds)
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600),
                       ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
