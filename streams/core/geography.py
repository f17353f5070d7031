"""Hartford's neighborhoods, police districts, parks, hot spots and partner sites.

Pure: the loaders take explicit paths; everything else is arithmetic on plain data.

Neighborhood polygons come from ``<shared data>/hartford/hartford_neighborhoods.geojson``
(CT Data Haven): 16 polygons for the city's 17 neighborhoods, because South End and
South Meadows share one polygon. Canonical neighborhood names are the polygon names;
``normalise_neighborhood`` maps the 17 city names and the capitalised spellings of
Hartford police data (SOUTHEND, WESTEND, CLAY-ARSENAL, SHELDON-CHARTER OAK) onto them.

Districts follow the Hartford Police Department's 2014 three-district model. The
built-in map below is an approximation from the districts' published outlines
(North = the North End, Central = downtown and the west-central neighborhoods,
South = the South End and southwest); a deployment that knows better sets
``DISPATCH_DISTRICTS_FILE`` to a JSON object ``{"neighborhood": "district", ...}``
covering every polygon (any spelling ``normalise_neighborhood`` accepts).
Beats are synthetic: district initial plus the neighborhood's index in that district.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
METERS_PER_DEGREE_LAT = 111_320.0
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_PLACES_FILE = DATA_DIR / "hartford_places.json"
DEFAULT_HOTSPOTS_FILE = DATA_DIR / "hartford_hotspots.geojson"
NEIGHBORHOODS_FILE = Path("hartford") / "hartford_neighborhoods.geojson"

DISTRICTS = ("North", "Central", "South")

NEIGHBORHOODS_17 = {
    "Asylum Hill": "Asylum Hill",
    "Barry Square": "Barry Square",
    "Behind the Rocks": "Behind the Rocks",
    "Blue Hills": "Blue Hills",
    "Clay-Arsenal": "Clay Arsenal",
    "Downtown": "Downtown Hartford",
    "Frog Hollow": "Frog Hollow",
    "North Meadows": "North Meadows",
    "Northeast": "Northeast",
    "Parkville": "Parkville",
    "Sheldon-Charter Oak": "Sheldon Charter Oak",
    "South End": "South End & South Meadows",
    "South Green": "South Green",
    "South Meadows": "South End & South Meadows",
    "Southwest": "Southwest",
    "Upper Albany": "Upper Albany",
    "West End": "West End",
}
"""The city's 17 neighborhood names -> the polygon (canonical name) each lies in."""

DEFAULT_DISTRICTS = {
    "Blue Hills": "North", "Upper Albany": "North", "Northeast": "North",
    "North Meadows": "North", "Clay Arsenal": "North",
    "Downtown Hartford": "Central", "Asylum Hill": "Central", "West End": "Central",
    "Frog Hollow": "Central", "Parkville": "Central", "Sheldon Charter Oak": "Central",
    "South End & South Meadows": "South", "South Green": "South", "Barry Square": "South",
    "Behind the Rocks": "South", "Southwest": "South",
}
"""Built-in neighborhood (polygon) -> Hartford PD 2014 district; see the module docstring."""

_ALIASES = {
    "DOWNTOWN": "Downtown Hartford",
    "SOUTHEND": "South End & South Meadows",
    "SOUTHMEADOWS": "South End & South Meadows",
    "SOUTHENDSOUTHMEADOWS": "South End & South Meadows",
    "SOUTHENDANDSOUTHMEADOWS": "South End & South Meadows",
}

Point = tuple[float, float]
"""(lat, lon) in degrees."""
Ring = tuple[tuple[float, float], ...]
"""A closed ring of (lon, lat) vertices, GeoJSON order."""


def _squash(name: str) -> str:
    return re.sub(r"[^A-Z]", "", name.upper())


_CANONICAL = {_squash(name): name for name in DEFAULT_DISTRICTS}
_CANONICAL.update({_squash(name): polygon for name, polygon in NEIGHBORHOODS_17.items()})
_CANONICAL.update(_ALIASES)


def normalise_neighborhood(name: str) -> str:
    """Canonical (polygon) name for any spelling of a Hartford neighborhood.

    Case, spaces, hyphens and '&' do not matter: 'SOUTHEND', 'South End' and
    'South Meadows' all give 'South End & South Meadows'.
    """
    canonical = _CANONICAL.get(_squash(name))
    if canonical is None:
        known = ", ".join(sorted(NEIGHBORHOODS_17))
        raise ValueError(f"unknown Hartford neighborhood {name!r}; expected one of {known}")
    return canonical


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two (lat, lon) points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial compass bearing in degrees [0, 360) from point 1 towards point 2."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dlambda = math.radians(lon2 - lon1)
    x = math.sin(dlambda) * math.cos(phi2)
    y = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlambda)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset_point(lat: float, lon: float, north_m: float, east_m: float) -> Point:
    """The point ``north_m`` north and ``east_m`` east of (lat, lon) (flat-earth, city scale)."""
    meters_per_degree_lon = METERS_PER_DEGREE_LAT * math.cos(math.radians(lat))
    return lat + north_m / METERS_PER_DEGREE_LAT, lon + east_m / meters_per_degree_lon


def _ring_contains(edges: RingEdges, lon: float, lat: float) -> bool:
    # Even-odd ray casting towards +lon over every edge at once (numpy): the same
    # arithmetic, edge for edge, as the plain loop, several times faster on rings of
    # hundreds of points (the simulator places every call with it).
    x1, y1, dx, dy, y2 = edges
    crosses = (y2 > lat) != (y1 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_lon = x1 + (lat - y1) * dx / dy
    return bool(np.count_nonzero(crosses & (lon < crossing_lon)) % 2)


RingEdges = tuple[Any, Any, Any, Any, Any]
"""(x1, y1, x2 - x1, y2 - y1, y2) of each edge (x1, y1) -> (x2, y2) of a ring, as numpy
arrays (worked out once per ring)."""


def _edges(ring: Ring) -> RingEdges:
    points = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    x2, y2 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x2, 1), np.roll(y2, 1)
    return x1, y1, x2 - x1, y2 - y1, y2


@dataclass(frozen=True)
class Part:
    """One polygon of a neighborhood: outer ring and holes, with its bounding box."""

    rings: tuple[Ring, ...]
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    @cached_property
    def _ring_edges(self) -> tuple[RingEdges, ...]:
        return tuple(_edges(ring) for ring in self.rings)

    def contains(self, lat: float, lon: float) -> bool:
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            return False
        # A point inside an odd number of rings is inside the polygon (holes subtract).
        return sum(_ring_contains(edges, lon, lat) for edges in self._ring_edges) % 2 == 1


@dataclass(frozen=True)
class Neighborhood:
    """One polygon of the city with its district, synthetic beat and population weight."""

    name: str
    district: str
    beat: str
    parts: tuple[Part, ...]
    population: float

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        boxes = [part.bbox for part in self.parts]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    def contains(self, lat: float, lon: float) -> bool:
        return any(part.contains(lat, lon) for part in self.parts)

    def random_point(self, rng: random.Random) -> Point:
        """A uniformly random point inside the neighborhood (rejection sampling)."""
        return _random_inside(self.name, self.contains, self.bbox, rng)


@dataclass(frozen=True)
class Park:
    name: str
    lat: float
    lon: float
    radius_m: float
    weight: float

    def random_point(self, rng: random.Random) -> Point:
        """A uniformly random point in the park's circle."""
        radius = self.radius_m * math.sqrt(rng.random())
        angle = rng.uniform(0, 2 * math.pi)
        return offset_point(self.lat, self.lon, radius * math.cos(angle),
                            radius * math.sin(angle))


@dataclass(frozen=True)
class HotSpot:
    """A hot-spot area: a corridor (centre line, half-width ``width_m``), a circle (one point,
    radius ``width_m``) or an area (polygon ``parts``; ``points`` is its closed outline).

    ``contains`` is the one rule of what lies inside (the wall's counts; assets/wall.js
    mirrors it, both checked against tests/cases/wall_rules.json "hotspot_contains").
    """

    name: str
    street: str
    points: tuple[Point, ...]
    width_m: float
    weight: float
    parts: tuple[Part, ...] = ()
    district: str | None = None
    short: str = ""
    """A short name for the map and the wall's panel ("" : ``name``)."""

    @property
    def shape(self) -> str:
        if self.parts:
            return "area"
        return "circle" if len(self.points) == 1 else "corridor"

    def contains(self, lat: float, lon: float) -> bool:
        """Inside the polygon (even-odd, holes subtract), or within ``width_m`` of the centre
        line or point (distances on the local plane of the point: city scale)."""
        if self.parts:
            return any(part.contains(lat, lon) for part in self.parts)
        return distance_to_line_m(lat, lon, self.points) <= self.width_m

    def random_point(self, rng: random.Random) -> Point:
        """A random point along the corridor, within ``width_m`` of its centre line (in the
        circle; in the area)."""
        if self.parts:
            return _random_inside(self.name, self.contains, _bbox(self.parts), rng)
        if len(self.points) == 1:
            lat, lon = self.points[0]
            return Park(self.name, lat, lon, self.width_m, 1).random_point(rng)
        lengths = [haversine_m(*a, *b) for a, b in itertools.pairwise(self.points)]
        index = rng.choices(range(len(lengths)), weights=lengths)[0]
        (lat1, lon1), (lat2, lon2) = self.points[index], self.points[index + 1]
        t = rng.random()
        lat, lon = lat1 + t * (lat2 - lat1), lon1 + t * (lon2 - lon1)
        return offset_point(lat, lon, rng.uniform(-self.width_m, self.width_m),
                            rng.uniform(-self.width_m, self.width_m))


def distance_to_line_m(lat: float, lon: float, points: Sequence[Point]) -> float:
    """Metres from (lat, lon) to the nearest point of the polyline ``points`` (one point: to
    it), on the flat plane around (lat, lon) (METERS_PER_DEGREE_LAT, longitude by cos(lat)):
    within a city it differs from the great circle by well under a metre."""
    east = METERS_PER_DEGREE_LAT * math.cos(math.radians(lat))
    xy = [((p_lon - lon) * east, (p_lat - lat) * METERS_PER_DEGREE_LAT) for p_lat, p_lon in points]
    if len(xy) == 1:
        return math.hypot(*xy[0])
    best = math.inf
    for (ax, ay), (bx, by) in itertools.pairwise(xy):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else min(1.0, max(0.0, -(ax * dx + ay * dy) / length2))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best


def _bbox(parts: Sequence[Part]) -> tuple[float, float, float, float]:
    return (min(p.bbox[0] for p in parts), min(p.bbox[1] for p in parts),
            max(p.bbox[2] for p in parts), max(p.bbox[3] for p in parts))


def _random_inside(name: str, contains: Any, bbox: tuple[float, float, float, float],
                   rng: random.Random) -> Point:
    """A uniformly random point for which ``contains`` holds (rejection sampling)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    for _ in range(10_000):
        lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
        if contains(lat, lon):
            return lat, lon
    raise ValueError(f"could not place a point inside {name}; is its polygon empty?")


@dataclass(frozen=True)
class Partner:
    """A Mutualink partner organisation and the cameras it can share."""

    partner: str
    kind: str
    lat: float
    lon: float
    address: str
    cameras: tuple[str, ...]


@dataclass(frozen=True)
class Venue:
    """A partner site that holds scheduled large events (games, concerts, dismissals)."""

    partner: str
    label: str
    days: tuple[int, ...]  # weekday numbers, Monday = 0
    months: tuple[int, ...]
    probability: float
    starts: tuple[str, ...]  # local "HH:MM"
    hours: float


@dataclass(frozen=True)
class Geography:
    """Everything the simulator and the pages need to know about the city's layout."""

    neighborhoods: tuple[Neighborhood, ...]
    parks: tuple[Park, ...]
    hotspots: tuple[HotSpot, ...]
    partners: tuple[Partner, ...]
    venues: tuple[Venue, ...]
    streets: Mapping[str, tuple[str, ...]]
    schools: tuple[Park, ...] = ()
    """School grounds as circles, like parks (the SRO school filter)."""

    def locate(self, lat: float, lon: float) -> tuple[str, str] | None:
        """(neighborhood, district) of a point, or None outside the city."""
        hood = self.neighborhood_at(lat, lon)
        return None if hood is None else (hood.name, hood.district)

    def neighborhood_at(self, lat: float, lon: float) -> Neighborhood | None:
        for hood in self.neighborhoods:
            if hood.contains(lat, lon):
                return hood
        return None

    def neighborhood(self, name: str) -> Neighborhood:
        canonical = normalise_neighborhood(name)
        return next(hood for hood in self.neighborhoods if hood.name == canonical)

    def district_at(self, lat: float, lon: float) -> str | None:
        """The district a point lies in, or None outside the city."""
        hood = self.neighborhood_at(lat, lon)
        return None if hood is None else hood.district

    def in_district(self, district: str) -> tuple[Neighborhood, ...]:
        return tuple(hood for hood in self.neighborhoods if hood.district == district)

    @property
    def districts(self) -> tuple[str, ...]:
        """The city's districts: Hartford's north to south first, any others by name (a
        DISPATCH_DISTRICTS_FILE may name its own)."""
        names = set(hood.district for hood in self.neighborhoods)
        return tuple(sorted(names, key=lambda name: (
            DISTRICTS.index(name) if name in DISTRICTS else len(DISTRICTS), name)))

    def partner(self, name: str) -> Partner:
        for partner in self.partners:
            if partner.partner == name:
                return partner
        raise ValueError(f"no partner site named {name!r}")


def _rings_of(coordinates: Sequence[Sequence[Sequence[float]]]) -> tuple[Ring, ...]:
    return tuple(tuple((float(x), float(y)) for x, y, *_ in ring) for ring in coordinates)


def _part(rings: tuple[Ring, ...]) -> Part:
    xs = [x for x, _ in rings[0]]
    ys = [y for _, y in rings[0]]
    return Part(rings, (min(xs), min(ys), max(xs), max(ys)))


def polygon(coordinates: Sequence[Sequence[Sequence[float]]]) -> Part:
    """A GeoJSON polygon's coordinates (outer ring first, then holes) as a Part: the one
    point-in-polygon rule for neighborhoods, park areas and any other named area."""
    if not coordinates or len(coordinates[0]) < 3:
        raise ValueError("a polygon needs an outer ring of at least 3 points")
    return _part(_rings_of(coordinates))


def load_polygons(path: Path) -> dict[str, tuple[Part, ...]]:
    """Neighborhood name -> polygon parts from a GeoJSON FeatureCollection."""
    collection = json.loads(path.read_text(encoding="utf-8"))
    polygons: dict[str, tuple[Part, ...]] = {}
    for feature in collection["features"]:
        geometry = feature["geometry"]
        if geometry["type"] == "Polygon":
            parts = (geometry["coordinates"],)
        elif geometry["type"] == "MultiPolygon":
            parts = tuple(geometry["coordinates"])
        else:
            raise ValueError(f"{path}: neighborhood geometry must be a (Multi)Polygon, "
                             f"got {geometry['type']}")
        polygons[feature["properties"]["name"]] = tuple(_part(_rings_of(p)) for p in parts)
    return polygons


def district_map(overrides: Mapping[str, str] | None, polygon_names: Sequence[str],
                 ) -> dict[str, str]:
    """Canonical neighborhood -> district, checked to cover every polygon."""
    raw = DEFAULT_DISTRICTS if overrides is None else overrides
    mapping: dict[str, str] = {}
    for name, district in raw.items():
        if not isinstance(district, str) or not district.strip():
            raise ValueError(f"district of {name!r} must be a non-empty string")
        mapping[normalise_neighborhood(name)] = district.strip()
    missing = [name for name in polygon_names if name not in mapping]
    if missing:
        raise ValueError("the neighborhood->district map has no district for "
                         f"{', '.join(missing)}; add them to the districts file")
    return mapping


def load_district_file(path: Path) -> dict[str, str]:
    """Read a districts JSON object {neighborhood: district}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object {{neighborhood: district}}")
    return {str(name): district for name, district in data.items()}


def load_hotspots(path: Path) -> tuple[HotSpot, ...]:
    """Hot-spot areas from GeoJSON (see ``hotspot_from_feature``), names unique."""
    collection = json.loads(path.read_text(encoding="utf-8"))
    hotspots = []
    for number, feature in enumerate(collection.get("features", []), 1):
        try:
            hotspots.append(hotspot_from_feature(feature, number))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ValueError(f"{path}: feature {number}: {error}") from None
    if not hotspots:
        raise ValueError(f"{path} holds no hot-spot features")
    names = [spot.name for spot in hotspots]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{path}: hot-spot names must be unique; repeated: {', '.join(twice)}")
    return tuple(hotspots)


def hotspot_from_feature(feature: Mapping[str, Any], number: int = 1) -> HotSpot:
    """One GeoJSON feature: a Polygon or MultiPolygon area, a LineString corridor
    (``width_m`` either side, default 60) or a Point circle (``radius_m``, default 150);
    properties ``name``, ``short`` (for the map), ``street``, ``district`` and ``weight``
    (simulated calls' share)."""
    props: Mapping[str, Any] = feature.get("properties") or {}
    geometry = feature["geometry"]
    name = str(props.get("name") or f"Hot spot {number}")
    kind = geometry["type"]
    parts: tuple[Part, ...] = ()
    width = 0.0
    if kind in {"Polygon", "MultiPolygon"}:
        polygons = [geometry["coordinates"]] if kind == "Polygon" else geometry["coordinates"]
        parts = tuple(_part(_rings_of(polygon)) for polygon in polygons)
        if not parts or any(len(part.rings[0]) < 4 for part in parts):
            raise ValueError(f"hot spot {name!r}: a polygon needs a closed ring of 3+ points")
        points = tuple((y, x) for x, y in parts[0].rings[0])
    elif kind == "LineString":
        points = tuple((float(y), float(x)) for x, y, *_ in geometry["coordinates"])
        width = float(props.get("width_m", 60))
    elif kind == "Point":
        x, y = geometry["coordinates"][:2]
        points = ((float(y), float(x)),)
        width = float(props.get("radius_m", 150))
    else:
        raise ValueError(f"hot spot {name!r} must be a Polygon, MultiPolygon, LineString or "
                         f"Point, got {kind}")
    if not points or (not parts and width <= 0):
        raise ValueError(f"hot spot {name!r} needs coordinates and a width or radius above 0")
    district = props.get("district")
    return HotSpot(name, str(props.get("street", name)), points, width,
                   float(props.get("weight", 1)), parts,
                   str(district) if district else None, str(props.get("short") or name))


def _beats(districts: Mapping[str, str]) -> dict[str, str]:
    beats: dict[str, str] = {}
    for district in dict.fromkeys(districts.values()):
        members = sorted(name for name, d in districts.items() if d == district)
        for index, name in enumerate(members, 1):
            beats[name] = f"{district[0].upper()}{index:02d}"
    return beats


def _places(data: Mapping[str, Any]) -> tuple[tuple[Park, ...], tuple[Partner, ...],
                                               tuple[Venue, ...]]:
    parks = tuple(Park(p["name"], p["lat"], p["lon"], p["radius_m"], p.get("weight", 1))
                  for p in data["parks"])
    partners = tuple(Partner(p["partner"], p["kind"], p["lat"], p["lon"], p["address"],
                             tuple(p["cameras"])) for p in data["partners"])
    venues = tuple(Venue(v["partner"], v["label"], tuple(v["days"]),
                         tuple(v.get("months", range(1, 13))), v["probability"],
                         tuple(v["starts"]), v["hours"]) for v in data["venues"])
    return parks, partners, venues


def load_geography(shared_data_dir: Path, districts_file: Path | None = None,
                   hotspots_file: Path | None = None,
                   places_file: Path = DEFAULT_PLACES_FILE) -> Geography:
    """Build the city from the shared polygons, the districts map and the places files."""
    polygons = load_polygons(shared_data_dir / NEIGHBORHOODS_FILE)
    overrides = None if districts_file is None else load_district_file(districts_file)
    districts = district_map(overrides, list(polygons))
    beats = _beats({name: districts[name] for name in polygons})
    places = json.loads(places_file.read_text(encoding="utf-8"))
    population = places.get("population", {})
    neighborhoods = tuple(
        Neighborhood(name, districts[name], beats[name], parts,
                     float(population.get(name, 5000)))
        for name, parts in polygons.items())
    parks, partners, venues = _places(places)
    streets = {normalise_neighborhood(name): tuple(names)
               for name, names in places.get("streets", {}).items()}
    hotspots = load_hotspots(hotspots_file or DEFAULT_HOTSPOTS_FILE)
    schools = tuple(Park(p["name"], p["lat"], p["lon"], p["radius_m"], p.get("weight", 1))
                    for p in places.get("schools", []))
    return Geography(neighborhoods, parks, hotspots, partners, venues, streets, schools)


def geography_from_settings(settings: Any) -> Geography:
    """``load_geography`` with the paths a ``Settings`` names."""
    return load_geography(settings.shared_data_dir, settings.districts_file,
                          settings.hotspots_file)


def city_of(settings: Any) -> Geography:
    """The city a ``Settings`` names, read once per process (pages and seeding ask often)."""
    return _read_once(settings.shared_data_dir, settings.districts_file, settings.hotspots_file)


@lru_cache(maxsize=4)
def _read_once(shared_data_dir: Path, districts_file: Path | None,
               hotspots_file: Path | None) -> Geography:
    return load_geography(shared_data_dir, districts_file, hotspots_file)
