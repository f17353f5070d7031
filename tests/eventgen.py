"""Deterministic, valid mixed event sequences for consumer tests and the consumer benchmark.

Not the simulator (that one is realistic); this one is small, fast and seeded, and every
event it makes is valid and in lifecycle order, so the expected live state is known.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from streams.core.events import (
    CATEGORIES,
    UNIT_KINDS,
    CallEvent,
    Event,
    ShareEvent,
    ShotAlert,
    UnitEvent,
)

START = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
"""Three days back, on the hour: inside the consumer's live window (admission.py), and the
same for every test of one run."""
HARTFORD = (41.7637, -72.6851)
DISTRICTS = ("North", "Central", "South")
NEIGHBORHOODS = ("Asylum Hill", "Blue Hills", "Frog Hollow", "Downtown", "South End")


def _at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def generate_events(seed: int, calls: int = 50, units: int = 10, fixes_per_unit: int = 20,
                    alerts: int = 5, shares: int = 3, span_s: float | None = None,
                    ) -> list[Event]:
    """A valid mixed sequence sorted by event time (stable), reproducible from ``seed``."""
    rng = random.Random(seed)
    span = span_s or max(3600.0, calls * 170.0)
    timed: list[tuple[float, int, Event]] = []

    def add(when: float, event: Event) -> None:
        timed.append((when, len(timed), event))

    for number in range(calls):
        _call_lifecycle(rng, number, rng.uniform(0, span), units, add)
    for number in range(units):
        _unit_track(rng, number, span, fixes_per_unit, add)
    for number in range(alerts):
        when = rng.uniform(0, span)
        lat, lon = _near(rng, 3000)
        add(when + 20, ShotAlert(
            event_id=f"shot-{number}", event_time=_at(when + 20), source="gen",
            alert_id=f"SS{number:05d}", alert_type=rng.choice(("single", "multiple")),
            rounds=rng.randint(1, 12), lat=lat, lon=lon, district=rng.choice(DISTRICTS),
            detected_time=_at(when), published_time=_at(when + 20)))
    for number in range(shares):
        when = rng.uniform(0, span)
        for kind, at in (("opened", when), ("closed", when + rng.uniform(600, 7200))):
            add(at, ShareEvent(
                event_id=f"share-{number}-{kind}", event_time=_at(at), source="gen",
                kind=kind, share_id=f"SH{number}", partner="XL Center", partner_kind="arena",
                resource_kind="camera", resource_id=f"cam-{number}",
                resource_name=f"Gate {number}", lat=HARTFORD[0], lon=HARTFORD[1],
                stream_url=f"https://video.example/{number}"))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]


def _near(rng: random.Random, metres: float) -> tuple[float, float]:
    lat = HARTFORD[0] + rng.uniform(-metres, metres) / 111_000
    lon = HARTFORD[1] + rng.uniform(-metres, metres) / 83_000
    return round(lat, 6), round(lon, 6)


def _call_lifecycle(rng: random.Random, number: int, received: float, units: int,
                    add: object) -> None:
    call_id = f"C{number:06d}"
    category = rng.choice(CATEGORIES)
    lat, lon = _near(rng, 4000)
    base = dict(call_id=call_id, source="gen")
    steps: list[tuple[float, dict[str, object]]] = [(received + rng.uniform(5, 60), dict(
        kind="created", received_time=_at(received), category=category,
        priority=rng.randint(1, 5), call_type=category.replace("_", " "),
        call_type_code=category[:4].upper(), address=f"{number} Main St", lat=lat, lon=lon,
        district=rng.choice(DISTRICTS), neighborhood=rng.choice(NEIGHBORHOODS),
        caller_name="Pat Doe", caller_phone="860-555-0100"))]
    when = steps[0][0]
    if rng.random() < 0.15:
        when += rng.uniform(10, 120)
        steps.append((when, dict(kind="updated", priority=rng.randint(1, 5),
                                 category=rng.choice(CATEGORIES))))
    if rng.random() < 0.1:
        steps.append((when + rng.uniform(30, 600), dict(kind="cancelled")))
    else:
        outcome = rng.random()
        unit = f"U{rng.randrange(max(units, 1)):03d}"
        for kind in ("unit_assigned", "dispatched", "en_route", "on_scene"):
            if kind == "on_scene" and outcome < 0.1:
                break  # dispatched, never arrived
            when += rng.uniform(5, 400)
            steps.append((when, dict(kind=kind, unit_id=unit)))
        if outcome < 0.85:
            steps.append((when + rng.uniform(60, 3600), dict(kind="cleared",
                                                             disposition="handled")))
    for index, (at, fields) in enumerate(steps):
        add(at, CallEvent(event_id=f"{call_id}-{index}", event_time=_at(at),  # type: ignore[operator]
                          **base, **fields))  # type: ignore[arg-type]


def _unit_track(rng: random.Random, number: int, span: float, fixes: int,
                add: object) -> None:
    unit_id = f"U{number:03d}"
    kind = UNIT_KINDS[number % len(UNIT_KINDS)]
    lat, lon = _near(rng, 4000)
    interval = span / max(fixes, 1)
    for index in range(fixes):
        at = index * interval + rng.uniform(0, interval / 4)
        heading = rng.uniform(0, 359)
        # at most 60 km/h between fixes: always a possible move
        step_m = min(60 / 3.6 * interval, 2000) * rng.random()
        north = step_m * math.cos(math.radians(heading)) / 111_000
        east = step_m * math.sin(math.radians(heading)) / 83_000
        if abs(lat + north - HARTFORD[0]) * 111_000 > 5000 \
                or abs(lon + east - HARTFORD[1]) * 83_000 > 5000:
            north, east = -north, -east  # turn back: stay inside the service area
        lat, lon = round(lat + north, 6), round(lon + east, 6)
        add(at, UnitEvent(  # type: ignore[operator]
            event_id=f"{unit_id}-{index}", event_time=_at(at), source="gen", unit_id=unit_id,
            unit_kind=kind, status=rng.choice(("available", "en_route", "on_scene")),
            lat=lat, lon=lon, heading=round(heading, 1), speed_kmh=round(rng.uniform(0, 60), 1),
            district=DISTRICTS[number % 3], callsign=f"{kind[:2].upper()}{number}"))
