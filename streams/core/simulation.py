"""A deterministic discrete-event simulation of Hartford's dispatch feeds.

``Simulation(seed, start, geography).events_until(t)`` yields CAD call lifecycle events,
unit AVL fixes, ShotSpotter-style alerts and Mutualink-style video shares in event-time
order, and can be called again with a later ``t`` to run forward in chunks. Everything
random comes from one ``random.Random(seed)``, so a seed and a start time fix every event
(ids included): the same run can be replayed into two Redis servers and compared.

The model, in numbers (all tunable through the constants below):
- calls: a Poisson process of about ``calls_per_day`` (500) a day, shaped by hour of day,
  day of week and season (busier summer evenings and weekends); about 40 % fall in the
  Summer Initiative quality-of-life categories, whose mix follows the clock (noise at
  night, ATVs on summer afternoons). QoL calls favour hot-spot corridors and parks.
- units: about 60 on shift (patrol by district, CSOs, SROs at schools, Conditions Teams,
  traffic, mounted, K9, supervisors, Shooting Task Force). A call waits a lognormal time
  for a unit (P1 usually under a minute, P4/P5 often tens of minutes), then the nearest
  suitable available unit drives to it in a straight line at road speed, reporting a fix
  every 10-15 s while moving and every ~60 s while parked.
- gunshots: about three incidents a day, mostly at night, with one to three alerts each
  and a chance of a follow-up incident nearby within hours; most spawn a P1 CAD call.
- shares: partner venues (XL Center, Dunkin' Park, schools) share cameras from before
  a scheduled event until after it; P1 calls near a partner site share a nearby camera.
"""

from __future__ import annotations

import heapq
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from streams.core.events import (
    QOL_CATEGORIES,
    AlertType,
    CallEvent,
    CallKind,
    Event,
    PartnerKind,
    ShareEvent,
    ShotAlert,
    UnitEvent,
    UnitKind,
    UnitStatus,
)
from streams.core.geography import (
    Geography,
    HotSpot,
    Neighborhood,
    Partner,
    Point,
    bearing_deg,
    haversine_m,
    offset_point,
)

SOURCE: Final = "sim"
DAY: Final = 86_400.0

# --- call mix ----------------------------------------------------------------------------
CallType = tuple[str, str, int]
"""(code, description, priority)."""

CALL_TYPES: Final[dict[str, tuple[CallType, ...]]] = {
    "noise": (("NOISE", "Noise complaint", 4), ("LOUDMUS", "Loud music / party", 4),
              ("FIREWK", "Fireworks complaint", 4), ("VEHSTER", "Loud vehicle stereo", 5)),
    "dumping": (("DUMP", "Illegal dumping", 5), ("LITTER", "Littering", 5),
                ("BLIGHT", "Blight / abandoned furniture", 5)),
    "loitering": (("LOIT", "Loitering", 4), ("LOITGRP", "Group loitering at storefront", 3),
                  ("TRESP", "Trespassing", 3)),
    "public_drinking": (("PUBDRNK", "Public drinking", 4), ("INTOX", "Intoxicated person", 3)),
    "atv": (("ATV", "ATV / dirt bike on street", 3), ("DIRTBK", "Dirt bikes in park", 3)),
    "speeding": (("SPEED", "Speeding complaint", 4), ("DRAG", "Motor vehicle racing", 3),
                 ("RECKL", "Reckless driver", 3)),
    "theft": (("LARC", "Larceny report", 4), ("SHOPLF", "Shoplifting", 3),
              ("THEFTMV", "Theft from motor vehicle", 4)),
    "narcotics": (("DRUGS", "Drug activity complaint", 3),
                  ("DRUGSALE", "Narcotics sales in area", 3)),
    "other_qol": (("PANHAND", "Aggressive panhandling", 4), ("UNLIC", "Unlicensed vendor", 5),
                  ("GRAFF", "Graffiti", 5), ("ABANVEH", "Abandoned vehicle", 5)),
    "violent": (("SHOTS", "Shots fired", 1), ("ASSLT", "Assault", 2), ("ROBB", "Robbery", 1),
                ("DOMV", "Domestic violence", 2), ("FIGHT", "Fight in progress", 2),
                ("WEAP", "Person with a weapon", 1), ("STAB", "Stabbing", 1)),
    "property": (("BURG", "Burglary", 2), ("MVTHEFT", "Stolen motor vehicle", 3),
                 ("VAND", "Vandalism", 4), ("BURGALRM", "Burglar alarm", 3)),
    "traffic": (("MVA", "Motor vehicle accident", 3), ("MVAINJ", "MV accident with injuries", 2),
                ("HITRUN", "Hit and run", 3), ("TRAFHAZ", "Traffic hazard", 4),
                ("PARK", "Parking complaint", 5)),
    "medical": (("MED", "Medical assist", 2), ("OD", "Overdose", 1),
                ("EDP", "Emotionally disturbed person", 2)),
    "other": (("SUSP", "Suspicious person", 3), ("CHKWELL", "Check on welfare", 3),
              ("DISTURB", "Disturbance", 3), ("MISSP", "Missing person", 2),
              ("ASSIST", "Assist other agency", 4), ("911HU", "911 hang-up", 3)),
}
SHOTSPOTTER_CALL: Final[CallType] = ("SHOTSPOT", "ShotSpotter activation", 1)

CATEGORY_WEIGHTS: Final[dict[str, float]] = {
    "noise": 0.10, "dumping": 0.03, "loitering": 0.05, "public_drinking": 0.03, "atv": 0.03,
    "speeding": 0.04, "theft": 0.05, "narcotics": 0.04, "other_qol": 0.03,
    "violent": 0.11, "property": 0.10, "traffic": 0.14, "medical": 0.10, "other": 0.15,
}
"""Share of calls per category before the clock and season reshape it (QoL sums to 0.40)."""

ON_SCENE_MEDIAN_MIN: Final[dict[str, float]] = {
    "noise": 12, "dumping": 15, "loitering": 10, "public_drinking": 12, "atv": 15,
    "speeding": 20, "theft": 30, "narcotics": 25, "other_qol": 12, "violent": 55,
    "property": 40, "traffic": 35, "medical": 30, "other": 22,
}

HOURLY: Final = (1.15, 0.95, 0.8, 0.6, 0.45, 0.4, 0.5, 0.7, 0.9, 1.0, 1.05, 1.1,
                 1.1, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.35, 1.35, 1.3, 1.25, 1.2)
"""Relative call volume by local hour (CAD data everywhere shows this pre-dawn trough)."""
WEEKLY: Final = (0.96, 0.95, 0.96, 0.98, 1.05, 1.1, 1.0)
"""Relative call volume by weekday, Monday first."""
SEASON_AMPLITUDE: Final = 0.06
SUMMER_EVENING_BOOST: Final = 0.12

PENDING_MEDIAN_S: Final = (35.0, 110.0, 300.0, 720.0, 1200.0)
PENDING_SIGMA: Final = (0.6, 0.7, 0.8, 0.9, 0.9)
DRIVE_KMH: Final = ((40.0, 65.0), (35.0, 55.0), (25.0, 50.0), (25.0, 45.0), (25.0, 40.0))
ROAD_FACTOR: Final = 1.4
"""Road distance over straight-line distance: units move in a straight line, as slowly as
the street grid would let them make progress, while reporting their road speed."""
RETURN_KMH: Final = (20.0, 35.0)
MOVING_FIX_S: Final = (10.0, 15.0)
IDLE_FIX_S: Final = (55.0, 65.0)
RETRY_ASSIGN_S: Final = (45.0, 120.0)
CANCEL_SHARE: Final = 0.05
UPDATE_SHARE: Final = 0.07
CALLER_SHARE: Final = 0.65

SHOT_INCIDENTS_PER_DAY: Final = 3.0
SHOT_HOURLY: Final = (2.2, 2.2, 1.8, 1.2, 0.6, 0.3, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5,
                      0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.3, 1.5, 1.8, 2.0, 2.2, 2.3)
SHOT_VIOLENCE_WEIGHT: Final = {
    "Northeast": 3.0, "Upper Albany": 2.5, "Clay Arsenal": 2.0, "Blue Hills": 1.5,
    "Frog Hollow": 1.8, "Barry Square": 1.5, "South End & South Meadows": 1.2,
    "Asylum Hill": 1.0, "Parkville": 0.8,
}

# --- units ---------------------------------------------------------------------------------
SUITABLE: Final[dict[str, tuple[UnitKind, ...]]] = {
    "noise": ("cso", "patrol", "conditions"), "dumping": ("cso", "patrol"),
    "loitering": ("cso", "conditions", "sro", "mounted", "patrol"),
    "public_drinking": ("cso", "conditions", "mounted", "patrol"),
    "atv": ("conditions", "traffic", "patrol"), "speeding": ("traffic", "patrol"),
    "theft": ("cso", "patrol"), "narcotics": ("conditions", "patrol", "k9"),
    "other_qol": ("cso", "patrol", "sro"), "violent": ("patrol", "task_force", "k9"),
    "property": ("patrol", "k9"), "traffic": ("traffic", "patrol"), "medical": ("patrol",),
    "other": ("patrol", "cso", "sro"),
}
"""Unit kinds that take a call's first slot, most suitable first."""
BACKUP_KINDS: Final[tuple[UnitKind, ...]] = ("patrol", "supervisor", "task_force", "k9")
TETHER_M: Final[dict[str, float]] = {"sro": 1500.0, "mounted": 2500.0}
"""SROs stay near their school and mounted units near downtown."""

FIRST_NAMES: Final = (
    "Maria", "Jose", "Luis", "Carmen", "Ana", "Angel", "Jasmine", "Tyrone", "Keisha", "Andre",
    "Marcus", "Latoya", "James", "Mary", "Robert", "Patricia", "Michael", "Linda", "Kevin",
    "Denise", "Carlos", "Yolanda", "Darnell", "Shanice", "Hector", "Gloria", "Brian", "Donna",
    "Wilfredo", "Nilda",
)
LAST_NAMES: Final = (
    "Rodriguez", "Rivera", "Santiago", "Torres", "Ortiz", "Perez", "Cruz", "Gonzalez",
    "Johnson", "Williams", "Brown", "Jones", "Davis", "Smith", "Jackson", "Thomas", "Harris",
    "Robinson", "Walker", "Campbell", "Murphy", "Sullivan", "Kelly", "Reyes", "Morales",
    "Colon", "Vega", "Brown-Williams", "Grant", "Francis",
)
DISPOSITIONS: Final = (
    ("Report taken", 0.25), ("Advised / warned", 0.25), ("Gone on arrival", 0.15),
    ("Unfounded", 0.08), ("Arrest made", 0.07), ("Summons issued", 0.08),
    ("Assistance rendered", 0.12),
)


@dataclass
class SimUnit:
    """A unit's mutable state; movement is a straight leg from ``origin`` to ``target``."""

    unit_id: str
    kind: UnitKind
    callsign: str
    district: str
    home: Point
    origin: Point
    target: Point
    leg_start: float = 0.0
    leg_end: float = 0.0
    speed_kmh: float = 0.0
    heading: float = 0.0
    status: UnitStatus = "available"
    call_id: str | None = None
    token: int = 0  # bumped on every assignment change; stale scheduled steps are dropped
    fix_token: int = 0  # bumped when the AVL reporting chain restarts

    def position(self, now: float) -> Point:
        if now >= self.leg_end or self.leg_end <= self.leg_start:
            return self.target
        share = (now - self.leg_start) / (self.leg_end - self.leg_start)
        return (self.origin[0] + share * (self.target[0] - self.origin[0]),
                self.origin[1] + share * (self.target[1] - self.origin[1]))

    def moving(self, now: float) -> bool:
        return now < self.leg_end


@dataclass
class SimCall:
    call_id: str
    category: str
    priority: int
    lat: float
    lon: float
    received: float
    slots: int
    district: str
    units: list[str] = field(default_factory=list)
    on_scene: float | None = None
    closed: bool = False
    share_ids: list[tuple[str, Partner, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    address: str
    neighborhood: str
    district: str
    beat: str


Action = Callable[[float], None]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, remainder = divmod(number, 36)
        text = digits[remainder] + text
        if number == 0:
            return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 3), UTC)


def build_roster(geography: Geography, rng: random.Random) -> list[SimUnit]:
    """About 60 units on shift, each with a post to return to between calls."""
    roster: list[tuple[UnitKind, str, str, str, Point]] = []
    patrol_per_district = {"North": 11, "Central": 11, "South": 10}
    for district in geography.districts:
        hoods = geography.in_district(district)
        letter = district[0].upper()
        for number in range(1, patrol_per_district.get(district, 10) + 1):
            hood = hoods[(number - 1) % len(hoods)]
            roster.append(("patrol", f"{letter}-PAT-{number:02d}", f"{district} {number:02d}",
                           district, hood.random_point(rng)))
        district_hotspots = [h for h in geography.hotspots
                             if _district_of(geography, h.points[0]) == district]
        for number in range(1, 4):
            post = (district_hotspots[(number - 1) % len(district_hotspots)].random_point(rng)
                    if district_hotspots else hoods[number % len(hoods)].random_point(rng))
            roster.append(("cso", f"{letter}-CSO-{number}", f"CSO {district} {number}",
                           district, post))
        roster.append(("conditions", f"{letter}-CT", f"Conditions {district}", district,
                       district_hotspots[0].points[0] if district_hotspots
                       else hoods[0].random_point(rng)))
        roster.append(("supervisor", f"{letter}-SGT", f"Sergeant {district}", district,
                       hoods[0].random_point(rng)))
    schools = [p for p in geography.partners if p.kind == "school"][:4]
    for number, school in enumerate(schools, 1):
        located = geography.locate(school.lat, school.lon)
        roster.append(("sro", f"SRO-{number}", f"SRO {school.partner}"[:40],
                       located[1] if located else geography.districts[0],
                       (school.lat, school.lon)))
    downtown = geography.neighborhood("Downtown")
    for number in range(1, 4):
        roster.append(("traffic", f"TRF-{number}", f"Traffic {number}", "Citywide",
                       geography.neighborhoods[number * 4 % len(geography.neighborhoods)]
                       .random_point(rng)))
    for number in range(1, 3):
        roster.append(("mounted", f"MTD-{number}", f"Mounted {number}", "Central",
                       downtown.random_point(rng)))
        roster.append(("k9", f"K9-{number}", f"K-9 {number}", "Citywide",
                       geography.neighborhoods[number * 7 % len(geography.neighborhoods)]
                       .random_point(rng)))
        roster.append(("task_force", f"STF-{number}", f"Shooting Task Force {number}",
                       "Citywide", geography.neighborhood("Northeast" if number == 1
                                                          else "Frog Hollow").random_point(rng)))
    posts = [(round(lat, 6), round(lon, 6)) for *_, (lat, lon) in roster]
    return [SimUnit(unit_id, kind, callsign, district, post, post, post)
            for (kind, unit_id, callsign, district, _), post in zip(roster, posts, strict=True)]


def _district_of(geography: Geography, point: Point) -> str | None:
    located = geography.locate(*point)
    return None if located is None else located[1]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _distance_fast(a: Point, b: Point) -> float:
    # Equirectangular metres: accurate to well under 1 % across a city, and cheap.
    dy = (a[0] - b[0]) * 111_320.0
    dx = (a[1] - b[1]) * 111_320.0 * 0.7466  # cos(41.76 deg)
    return math.hypot(dx, dy)


class Simulation:
    """Hartford's four feeds as one deterministic, time-ordered event generator."""

    def __init__(self, seed: int, start: datetime, geography: Geography,
                 timezone: str = "America/New_York", calls_per_day: float = 500.0,
                 positions: bool = True) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulation start must be timezone-aware (use UTC)")
        self.rng = random.Random(seed)
        self.geo = geography
        self.zone = ZoneInfo(timezone)
        self.start = start.astimezone(UTC).timestamp()
        self.now = self.start
        self.calls_per_day = calls_per_day
        self.positions = positions
        """False: no periodic position fixes (seeding weeks of call history needs none, and
        they are nine in ten of all events)."""
        # Ids carry the seed and start second, so a restarted run never reuses old ids.
        self.tag = _base36(abs(seed) % 1296) + _base36(int(self.start))
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = 0
        self._event_seq = 0
        self._call_seq = 0
        self._alert_seq = 0
        self._share_seq = 0
        self._open_shares: dict[str, float] = {}
        self._out: list[Event] = []
        self.calls: dict[str, SimCall] = {}
        self.units = build_roster(geography, self.rng)
        self._unit_by_id = {unit.unit_id: unit for unit in self.units}
        self._hood_weights = [h.population * (2.0 if h.name == "Downtown Hartford" else 1.0)
                              for h in geography.neighborhoods]
        self._shot_weights = [h.population * SHOT_VIOLENCE_WEIGHT.get(h.name, 0.5)
                              for h in geography.neighborhoods]
        self._rate_max = calls_per_day / DAY * max(HOURLY) / (sum(HOURLY) / 24) * 1.6
        self._start_processes()

    # --- scheduling ------------------------------------------------------------------
    def _at(self, when: float, action: Action) -> None:
        # Times live on a millisecond grid, the resolution events are published with.
        self._seq += 1
        heapq.heappush(self._heap, (round(max(when, self.now), 3), self._seq, action))

    def events_until(self, until: datetime) -> Iterator[Event]:
        """Yield every event with event_time <= ``until``, in time order, then stop.

        Calling again with a later time carries on where the last call stopped.
        """
        limit = until.timestamp() + 0.0005  # half a grid step absorbs float error
        heap = self._heap
        while heap and heap[0][0] <= limit:
            when, _, action = heapq.heappop(heap)
            self.now = when
            action(when)
            if self._out:
                yield from self._out
                self._out.clear()

    def _event_id(self) -> str:
        self._event_seq += 1
        return f"sim-{self.tag}-{self._event_seq}"

    def _start_processes(self) -> None:
        for unit in self.units if self.positions else ():
            self._at(self.start + self.rng.uniform(0, 60), self._fix_action(unit, 0))
        self._at(self._next_arrival(self.start), self._call_arrival)
        self._at(self._next_shot(self.start), self._shot_incident)
        self._plan_day(self.start)

    # --- clock shapes ----------------------------------------------------------------
    def _local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.zone)

    def _summer(self, local: datetime) -> float:
        """1 at mid-July, -1 at mid-January."""
        return math.cos(2 * math.pi * (local.timetuple().tm_yday - 196) / 365.25)

    def call_rate(self, epoch: float) -> float:
        """Expected calls per second at ``epoch``."""
        local = self._local(epoch)
        summer = self._summer(local)
        hourly = HOURLY[local.hour] / (sum(HOURLY) / 24)
        if local.hour >= 18:
            hourly *= 1 + SUMMER_EVENING_BOOST * max(0.0, summer)
        season = 1 + SEASON_AMPLITUDE * summer
        return self.calls_per_day / DAY * hourly * WEEKLY[local.weekday()] * season

    def _next_arrival(self, after: float) -> float:
        # Thinning (Lewis-Shedler) of a Poisson process with the time-varying rate above.
        when = after
        while True:
            when += self.rng.expovariate(self._rate_max)
            if self.rng.random() * self._rate_max <= self.call_rate(when):
                return when

    def category_weights(self, epoch: float) -> dict[str, float]:
        """Category mix at ``epoch``: noise at night, ATVs and drinking on summer days."""
        local = self._local(epoch)
        hour, summer = local.hour, self._summer(local)
        weights = dict(CATEGORY_WEIGHTS)
        weights["noise"] *= 2.2 if hour >= 20 or hour < 2 else (0.5 if 6 <= hour < 15 else 1.0)
        warm = max(0.0, summer)
        weights["atv"] *= (0.3 + 2.5 * warm) if 11 <= hour < 21 else 0.3
        weights["public_drinking"] *= 1 + warm if 12 <= hour < 23 else 0.6
        weights["loitering"] *= 1.4 if 16 <= hour < 24 else 0.8
        weights["violent"] *= 1.4 if hour >= 22 or hour < 3 else 1.0
        weights["traffic"] *= 1.3 if 7 <= hour < 10 or 15 <= hour < 19 else 0.9
        return weights

    # --- locations -------------------------------------------------------------------
    def _location(self, category: str) -> Location:
        qol = category in QOL_CATEGORIES
        draw = self.rng.random()
        if draw < (0.35 if qol else 0.10):
            hotspot = self.rng.choices(self.geo.hotspots,
                                       [h.weight for h in self.geo.hotspots])[0]
            return self._place(hotspot.random_point, lambda: self._number(hotspot.street))
        if draw < (0.50 if qol else 0.13):
            park = self.rng.choices(self.geo.parks, [p.weight for p in self.geo.parks])[0]
            return self._place(park.random_point, lambda: park.name)
        hood = self.rng.choices(self.geo.neighborhoods, self._hood_weights)[0]
        return self._in_hood(hood)

    def _place(self, pick: Callable[[random.Random], Point],
               address: Callable[[], str]) -> Location:
        for _ in range(20):
            lat, lon = pick(self.rng)
            hood = self.geo.neighborhood_at(lat, lon)
            if hood is not None:
                return Location(round(lat, 6), round(lon, 6), address(), hood.name,
                                hood.district, hood.beat)
        return self._in_hood(self.rng.choices(self.geo.neighborhoods, self._hood_weights)[0])

    def _in_hood(self, hood: Neighborhood) -> Location:
        lat, lon = hood.random_point(self.rng)
        streets = self.geo.streets.get(hood.name) or ("Main St",)
        return Location(round(lat, 6), round(lon, 6), self._number(self.rng.choice(streets)),
                        hood.name, hood.district, hood.beat)

    def _near(self, lat: float, lon: float, radius_m: float, street: str) -> Location:
        def pick(rng: random.Random) -> Point:
            return offset_point(lat, lon, rng.uniform(-radius_m, radius_m),
                                rng.uniform(-radius_m, radius_m))
        return self._place(pick, lambda: street)

    def _number(self, street: str) -> str:
        return f"{self.rng.randrange(10, 2000)} {street}"

    def _street_near(self, lat: float, lon: float) -> str:
        """A plausible block address for a point: a hot-spot street or a neighborhood one."""
        for hotspot in self.geo.hotspots:
            if min(_distance_fast((lat, lon), p) for p in hotspot.points) < 400:
                return f"{self.rng.randrange(1, 20) * 100} block {hotspot.street}"
        hood = self.geo.neighborhood_at(lat, lon)
        streets = self.geo.streets.get(hood.name, ("Main St",)) if hood else ("Main St",)
        return f"{self.rng.randrange(1, 20) * 100} block {self.rng.choice(streets)}"

    # --- calls -------------------------------------------------------------------------
    def _call_arrival(self, now: float) -> None:
        weights = self.category_weights(now)
        category = self.rng.choices(list(weights), list(weights.values()))[0]
        call_type = self.rng.choice(CALL_TYPES[category])
        if call_type[0] == "SHOTS" and self.rng.random() < 0.7:
            call_type = self.rng.choice(CALL_TYPES[category][1:])
        self._create_call(now, category, call_type, self._location(category), caller=True)
        self._at(self._next_arrival(now), self._call_arrival)

    def _create_call(self, now: float, category: str, call_type: CallType,
                     where: Location, caller: bool) -> SimCall:
        self._call_seq += 1
        local = self._local(now)
        call_id = f"H{local:%y%m%d}-{self._call_seq:05d}-{self.tag}"
        code, description, priority = call_type
        slots = self._slots(priority, code)
        call = SimCall(call_id, category, priority, where.lat, where.lon, now, slots,
                       where.district)
        self.calls[call_id] = call
        name = phone = None
        if caller and self.rng.random() < CALLER_SHARE:
            name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
            phone = f"(860) 555-01{self.rng.randrange(100):02d}"
        self._emit_call(now, call, "created", received_time=_time(now), call_type_code=code,
                        call_type=description, category=category, priority=priority,
                        address=where.address, lat=where.lat, lon=where.lon,
                        district=where.district, neighborhood=where.neighborhood,
                        beat=where.beat, caller_name=name, caller_phone=phone)
        pending = _lognormal(self.rng, PENDING_MEDIAN_S[priority - 1],
                             PENDING_SIGMA[priority - 1])
        self._at(now + pending, self._assign_action(call, 0))
        for slot in range(1, slots):
            self._at(now + pending + self.rng.uniform(15, 120), self._assign_action(call, slot))
        if self.rng.random() < CANCEL_SHARE and priority > 1:
            self._at(now + self.rng.uniform(60, 1500), self._cancel_action(call))
        elif self.rng.random() < UPDATE_SHARE:
            self._at(now + self.rng.uniform(30, 600), self._update_action(call, call_type))
        return call

    def _slots(self, priority: int, code: str) -> int:
        if code in {"SHOTS", "SHOTSPOT"}:
            return self.rng.choice((2, 3, 3, 4))
        if priority == 1:
            return self.rng.choice((2, 2, 3))
        if priority == 2:
            return self.rng.choice((1, 1, 2))
        return 1

    def _emit_call(self, now: float, call: SimCall, kind: CallKind, **fields: object) -> None:
        values = {name: value for name, value in fields.items() if value is not None}
        self._out.append(CallEvent(event_id=self._event_id(), event_time=_time(now),
                                   source=SOURCE, kind=kind, call_id=call.call_id,
                                   **values))  # type: ignore[arg-type]

    def _assign_action(self, call: SimCall, slot: int) -> Action:
        def assign(now: float) -> None:
            if call.closed or (slot > 0 and call.on_scene is not None
                               and now - call.on_scene > 600):
                return
            unit = self._pick_unit(call, slot)
            if unit is None:
                if slot == 0 or call.on_scene is None:
                    self._at(now + self.rng.uniform(*RETRY_ASSIGN_S), assign)
                return
            self._assign(now, call, unit)
        return assign

    def _pick_unit(self, call: SimCall, slot: int) -> SimUnit | None:
        kinds = SUITABLE[call.category] if slot == 0 else BACKUP_KINDS
        shooting = call.category == "violent" and call.priority == 1
        best: tuple[float, SimUnit] | None = None
        for unit in self.units:
            if unit.status != "available" or unit.kind not in kinds:
                continue
            if unit.kind == "supervisor" and call.priority > 1:
                continue
            if unit.kind == "task_force" and not shooting:
                continue
            distance = _distance_fast(unit.position(self.now), (call.lat, call.lon))
            tether = TETHER_M.get(unit.kind)
            if tether is not None and _distance_fast(unit.home, (call.lat, call.lon)) > tether:
                continue
            score = distance * (1 + 0.3 * kinds.index(unit.kind))
            if unit.district not in {call.district, "Citywide"}:
                score *= 1.5
            if best is None or score < best[0]:
                best = (score, unit)
        return None if best is None else best[1]

    def _assign(self, now: float, call: SimCall, unit: SimUnit) -> None:
        unit.token += 1
        token = unit.token
        unit.call_id = call.call_id
        call.units.append(unit.unit_id)
        self._stop(unit, now)
        self._emit_call(now, call, "unit_assigned", unit_id=unit.unit_id)
        self._set_status(now, unit, "dispatched")
        dispatched = now + self.rng.uniform(3, 20)
        en_route = dispatched + (self.rng.uniform(10, 45) if call.priority == 1
                                 else self.rng.uniform(20, 120))

        def dispatch(at: float) -> None:
            if unit.token == token and not call.closed:
                self._emit_call(at, call, "dispatched", unit_id=unit.unit_id)

        def roll(at: float) -> None:
            if unit.token != token or call.closed:
                return
            self._emit_call(at, call, "en_route", unit_id=unit.unit_id)
            low, high = DRIVE_KMH[call.priority - 1]
            arrival = self._drive(at, unit, (call.lat, call.lon), self.rng.uniform(low, high),
                                  "en_route")
            self._at(arrival, arrive)

        def arrive(at: float) -> None:
            if unit.token != token or call.closed:
                return
            self._emit_call(at, call, "on_scene", unit_id=unit.unit_id)
            self._set_status(at, unit, "on_scene")
            self._restart_fixes(at, unit)
            if call.on_scene is None:
                call.on_scene = at
                minutes = _lognormal(self.rng, ON_SCENE_MEDIAN_MIN[call.category], 0.6)
                self._at(at + minutes * 60, self._clear_action(call))

        self._at(dispatched, dispatch)
        self._at(en_route, roll)

    def _clear_action(self, call: SimCall) -> Action:
        def clear(now: float) -> None:
            if call.closed:
                return
            dispositions, weights = zip(*DISPOSITIONS, strict=True)
            disposition = self.rng.choices(dispositions, weights)[0]
            self._close(now, call, "cleared", disposition)
        return clear

    def _cancel_action(self, call: SimCall) -> Action:
        def cancel(now: float) -> None:
            if not call.closed and call.on_scene is None:
                self._close(now, call, "cancelled", "Cancelled by caller")
        return cancel

    def _close(self, now: float, call: SimCall, kind: CallKind, disposition: str) -> None:
        call.closed = True
        self._emit_call(now, call, kind, disposition=disposition)
        for unit_id in call.units:
            unit = self._unit_by_id[unit_id]
            if unit.call_id == call.call_id:
                self._release(now, unit)
        for share in call.share_ids:
            self._close_share(now, *share)
        del self.calls[call.call_id]

    def _update_action(self, call: SimCall, call_type: CallType) -> Action:
        def update(now: float) -> None:
            if call.closed:
                return
            new_priority = min(5, max(1, call.priority + self.rng.choice((-1, 1))))
            if new_priority == call.priority:
                return
            call.priority = new_priority
            self._emit_call(now, call, "updated", priority=new_priority,
                            call_type_code=call_type[0], call_type=call_type[1])
        return update

    # --- units ---------------------------------------------------------------------------
    def _unit_event(self, now: float, unit: SimUnit) -> None:
        # Parked units sit on an already rounded point, so only moving ones need rounding.
        if now < unit.leg_end:
            lat, lon = unit.position(now)
            lat, lon, speed = round(lat, 6), round(lon, 6), unit.speed_kmh
        else:
            (lat, lon), speed = unit.target, 0.0
        self._out.append(UnitEvent(
            event_id=self._event_id(), event_time=_time(now), source=SOURCE,
            unit_id=unit.unit_id, unit_kind=unit.kind, status=unit.status,
            lat=lat, lon=lon, heading=unit.heading, speed_kmh=speed, call_id=unit.call_id,
            district=unit.district, callsign=unit.callsign))

    def _set_status(self, now: float, unit: SimUnit, status: UnitStatus) -> None:
        unit.status = status
        self._unit_event(now, unit)

    def _stop(self, unit: SimUnit, now: float) -> None:
        lat, lon = unit.position(now)
        unit.origin = unit.target = (round(lat, 6), round(lon, 6))
        unit.leg_start = unit.leg_end = now

    def _drive(self, now: float, unit: SimUnit, target: Point, speed_kmh: float,
               status: UnitStatus) -> float:
        """Start a straight leg to ``target``; return the arrival time."""
        here = unit.position(now)
        distance = haversine_m(*here, *target)
        unit.origin, unit.target = here, target
        unit.leg_start = now
        unit.leg_end = now + max(1.0, distance * ROAD_FACTOR / (speed_kmh / 3.6))
        unit.speed_kmh = round(speed_kmh, 1)
        if distance > 1:
            unit.heading = round(bearing_deg(*here, *target), 1) % 360.0
        unit.status = status
        self._unit_event(now, unit)
        self._restart_fixes(now, unit)
        return unit.leg_end

    def _release(self, now: float, unit: SimUnit) -> None:
        unit.token += 1
        unit.call_id = None
        self._stop(unit, now)
        self._drive(now, unit, unit.home, self.rng.uniform(*RETURN_KMH), "available")

    def _restart_fixes(self, now: float, unit: SimUnit) -> None:
        unit.fix_token += 1
        if not self.positions:
            return
        interval = MOVING_FIX_S if unit.moving(now) else IDLE_FIX_S
        self._at(now + self.rng.uniform(*interval), self._fix_action(unit, unit.fix_token))

    def _fix_action(self, unit: SimUnit, fix_token: int) -> Action:
        def fix(now: float) -> None:
            if unit.fix_token != fix_token:
                return
            self._unit_event(now, unit)
            interval = MOVING_FIX_S if unit.moving(now) else IDLE_FIX_S
            step = self.rng.uniform(*interval)
            if unit.moving(now):
                step = min(step, max(1.0, unit.leg_end - now))  # report the arrival itself
            self._at(now + step, fix)
        return fix

    # --- gunshots ----------------------------------------------------------------------
    def _next_shot(self, after: float) -> float:
        rate_max = SHOT_INCIDENTS_PER_DAY / DAY * max(SHOT_HOURLY) / (sum(SHOT_HOURLY) / 24)
        when = after
        while True:
            when += self.rng.expovariate(rate_max)
            hourly = SHOT_HOURLY[self._local(when).hour] / (sum(SHOT_HOURLY) / 24)
            if self.rng.random() * rate_max <= SHOT_INCIDENTS_PER_DAY / DAY * hourly:
                return when

    def _shot_incident(self, now: float) -> None:
        self._shots_at(now, self._shot_location())
        self._at(self._next_shot(now), self._shot_incident)

    def _shot_location(self) -> Point:
        if self.rng.random() < 0.5:
            hotspot: HotSpot = self.rng.choices(self.geo.hotspots,
                                                [h.weight for h in self.geo.hotspots])[0]
            where = self._place(hotspot.random_point, lambda: hotspot.street)
            return where.lat, where.lon
        hood = self.rng.choices(self.geo.neighborhoods, self._shot_weights)[0]
        return hood.random_point(self.rng)

    def _shots_at(self, now: float, centre: Point) -> None:
        """One incident: 1-3 alerts around ``centre``, maybe a CAD call and a retaliation."""
        alerts = self.rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]
        detected = now
        first_published = None
        for _ in range(alerts):
            where = self._near(*centre, 80, "")
            delay = min(240.0, _lognormal(self.rng, 40, 0.4))
            published = detected + delay
            first_published = first_published or published
            self._at(published, self._alert_action(where, detected, published))
            detected += self.rng.uniform(20, 240)
        assert first_published is not None
        if self.rng.random() < 0.75:
            self._at(first_published + self.rng.uniform(10, 45),
                     self._shotspotter_call_action(centre))
        if self.rng.random() < 0.25:
            north, east = self.rng.uniform(-800, 800), self.rng.uniform(-800, 800)
            later = offset_point(*centre, north, east)
            if self.geo.locate(*later) is not None:
                self._at(now + self.rng.uniform(1800, 8 * 3600),
                         lambda at: self._shots_at(at, later))

    def _alert_action(self, where: Location, detected: float, published: float) -> Action:
        def alert(now: float) -> None:
            alert_type: AlertType = self.rng.choices(("multiple", "single", "probable"),
                                                     (0.55, 0.30, 0.15))[0]
            rounds = {"single": 1, "probable": self.rng.randint(1, 4),
                      "multiple": self.rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 15, 22))}
            self._alert_seq += 1
            self._out.append(ShotAlert(
                event_id=self._event_id(), event_time=_time(now), source=SOURCE,
                alert_id=f"SST-{self.tag}-{self._alert_seq:05d}", alert_type=alert_type,
                rounds=rounds[alert_type], lat=where.lat, lon=where.lon,
                address=self._street_near(where.lat, where.lon), district=where.district,
                neighborhood=where.neighborhood, beat=where.beat,
                detected_time=_time(detected), published_time=_time(published)))
        return alert

    def _shotspotter_call_action(self, centre: Point) -> Action:
        def create(now: float) -> None:
            where = self._near(*centre, 30, self._street_near(*centre))
            call = self._create_call(now, "violent", SHOTSPOTTER_CALL, where, caller=False)
            self._maybe_share_for_call(now, call)
            if self.rng.random() < 0.3:
                self._hospital_share(now)
        return create

    # --- shares --------------------------------------------------------------------------
    def _plan_day(self, now: float) -> None:
        """At each local midnight, schedule the day's events at partner venues."""
        local = self._local(now)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for venue in self.geo.venues:
            if local.weekday() not in venue.days or local.month not in venue.months:
                continue
            if self.rng.random() >= venue.probability:
                continue
            hour, minute = map(int, self.rng.choice(venue.starts).split(":"))
            begins = midnight.replace(hour=hour, minute=minute).timestamp()
            ends = begins + venue.hours * 3600
            partner = self.geo.partner(venue.partner)
            opens = begins - self.rng.uniform(45, 90) * 60
            if ends < now:
                continue
            cameras = self.rng.sample(partner.cameras, k=min(len(partner.cameras),
                                                             self.rng.randint(1, 3)))
            for camera in cameras:
                self._at(opens, self._event_share_action(partner, camera,
                                                          ends + self.rng.uniform(20, 60) * 60))
            self._event_calls(partner, begins, ends)
        # Wall-clock arithmetic on an aware datetime: the next local midnight, DST or not.
        self._at((midnight + timedelta(days=1)).timestamp(), self._plan_day)

    def _event_calls(self, partner: Partner, begins: float, ends: float) -> None:
        """Large events bring traffic, parking and drinking calls near the venue."""
        for _ in range(self.rng.randint(1, 4)):
            category = self.rng.choice(("traffic", "public_drinking", "loitering", "traffic"))
            when = self.rng.uniform(begins - 3600, ends + 1800)
            if when < self.now:
                continue

            def create(now: float, category: str = category) -> None:
                call_type = self.rng.choice(CALL_TYPES[category])
                where = self._near(partner.lat, partner.lon, 250, f"near {partner.address}")
                self._create_call(now, category, call_type, where, caller=True)
            self._at(when, create)

    def _event_share_action(self, partner: Partner, camera: str, closes: float) -> Action:
        def open_share(now: float) -> None:
            share = self._open_share(now, partner, camera, None)
            self._at(closes, lambda at: self._close_share(at, *share))
        return open_share

    def _maybe_share_for_call(self, now: float, call: SimCall) -> None:
        near = [p for p in self.geo.partners
                if _distance_fast((p.lat, p.lon), (call.lat, call.lon)) < 600]
        if near and self.rng.random() < 0.6:
            partner = self.rng.choice(near)
            call.share_ids.append(self._open_share(now, partner, partner.cameras[0],
                                                   call.call_id))

    def _hospital_share(self, now: float) -> None:
        hospitals = [p for p in self.geo.partners if p.kind == "hospital"]
        if hospitals:
            partner = self.rng.choice(hospitals)
            share = self._open_share(now, partner, partner.cameras[0], None)
            self._at(now + self.rng.uniform(3600, 3 * 3600),
                     lambda at: self._close_share(at, *share))

    def _open_share(self, now: float, partner: Partner, camera: str, call_id: str | None,
                    ) -> tuple[str, Partner, str, int]:
        self._share_seq += 1
        share_id = f"MLK-{self.tag}-{self._share_seq:05d}"
        index = partner.cameras.index(camera) + 1
        self._share_event(now, "opened", share_id, partner, camera, index, call_id,
                          start=now, end=None)
        self._open_shares[share_id] = now
        return share_id, partner, camera, index

    def _close_share(self, now: float, share_id: str, partner: Partner, camera: str,
                     index: int) -> None:
        start = self._open_shares.pop(share_id, None)
        if start is None:
            return
        self._share_event(now, "closed", share_id, partner, camera, index, None,
                          start=start, end=now)

    def _share_event(self, now: float, kind: str, share_id: str, partner: Partner,
                     camera: str, index: int, call_id: str | None, start: float,
                     end: float | None) -> None:
        slug = _slug(partner.partner)
        partner_kind: PartnerKind = partner.kind  # type: ignore[assignment]
        self._out.append(ShareEvent(
            event_id=self._event_id(), event_time=_time(now), source=SOURCE,
            kind=kind,  # type: ignore[arg-type]
            share_id=share_id, partner=partner.partner, partner_kind=partner_kind,
            resource_kind="camera", resource_id=f"{slug}-cam{index}",
            resource_name=f"{partner.partner}: {camera}", lat=partner.lat, lon=partner.lon,
            stream_url=f"https://video.example.invalid/mutualink/{slug}/cam{index}/"
                       f"{share_id}.m3u8",
            call_id=call_id, start_time=_time(start),
            end_time=None if end is None else _time(end)))

