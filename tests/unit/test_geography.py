"""Hartford geography: polygons, districts, spellings, places and point lookup."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from streams.core.geography import (
    DEFAULT_DISTRICTS,
    DISTRICTS,
    NEIGHBORHOODS_17,
    Geography,
    haversine_m,
    load_geography,
    normalise_neighborhood,
)
from streams.core.settings import Settings
from tests.conftest import SHARED_DATA

POLYGON_NAMES = {
    "Asylum Hill", "Barry Square", "Behind the Rocks", "Blue Hills", "Clay Arsenal",
    "Downtown Hartford", "Frog Hollow", "North Meadows", "Northeast", "Parkville",
    "Sheldon Charter Oak", "South End & South Meadows", "South Green", "Southwest",
    "Upper Albany", "West End",
}


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography(SHARED_DATA)


def test_sixteen_polygons_each_with_a_known_district(geo: Geography) -> None:
    """The shared GeoJSON gives 16 neighborhoods, each in North, Central or South."""
    assert {hood.name for hood in geo.neighborhoods} == POLYGON_NAMES
    assert all(hood.district in DISTRICTS for hood in geo.neighborhoods)
    assert set(geo.districts) == set(DISTRICTS)


def test_beats_are_unique_and_start_with_the_district_letter(geo: Geography) -> None:
    """Each neighborhood gets its own beat code prefixed by its district's initial."""
    beats = [hood.beat for hood in geo.neighborhoods]
    assert len(set(beats)) == 16
    assert all(hood.beat[0] == hood.district[0] for hood in geo.neighborhoods)


@pytest.mark.parametrize(("lat", "lon", "expected"), [
    (41.7640, -72.6822, ("Downtown Hartford", "Central")),  # State Capitol
    (41.7955, -72.6880, ("Northeast", "North")),  # Keney Park
    (41.7681, -72.6770, ("Downtown Hartford", "Central")),  # XL Center
    (41.7548, -72.6800, ("South Green", "South")),  # Hartford Hospital
    (41.7555, -72.6950, ("Frog Hollow", "Central")),  # Pope Park
    (41.7290, -72.6860, ("South End & South Meadows", "South")),  # Goodwin Park
])
def test_known_places_land_in_their_neighborhood(geo: Geography, lat: float, lon: float,
                                                 expected: tuple[str, str]) -> None:
    """locate() puts landmarks in the neighborhood whose polygon contains them."""
    assert geo.locate(lat, lon) == expected


@pytest.mark.parametrize(("lat", "lon"), [
    (41.7620, -72.7420),  # West Hartford centre
    (41.7640, -72.6400),  # East Hartford, across the river
    (41.8520, -72.6430),  # Windsor
    (40.7128, -74.0060),  # New York
])
def test_points_outside_the_city_locate_to_none(geo: Geography, lat: float,
                                                lon: float) -> None:
    """Points outside Hartford's polygons have no neighborhood."""
    assert geo.locate(lat, lon) is None


@pytest.mark.parametrize(("spelling", "canonical"), [
    ("SOUTHEND", "South End & South Meadows"),
    ("South Meadows", "South End & South Meadows"),
    ("WESTEND", "West End"),
    ("CLAY-ARSENAL", "Clay Arsenal"),
    ("SHELDON-CHARTER OAK", "Sheldon Charter Oak"),
    ("Downtown", "Downtown Hartford"),
    ("NORTH EAST", "Northeast"),
    ("behind the rocks", "Behind the Rocks"),
    ("South End & South Meadows", "South End & South Meadows"),
])
def test_hartford_spellings_normalise_to_polygon_names(spelling: str, canonical: str) -> None:
    """Police-data capitals and the city's 17 names map onto the 16 polygon names."""
    assert normalise_neighborhood(spelling) == canonical


def test_seventeen_neighborhood_names_cover_the_sixteen_polygons() -> None:
    """The 17 city neighborhoods map onto exactly the 16 polygons."""
    assert len(NEIGHBORHOODS_17) == 17
    assert {normalise_neighborhood(name) for name in NEIGHBORHOODS_17} == POLYGON_NAMES


def test_unknown_neighborhood_raises_naming_it() -> None:
    """An unknown name is a ValueError that names it and lists the real ones."""
    with pytest.raises(ValueError, match="'Narnia'.*Asylum Hill"):
        normalise_neighborhood("Narnia")


def test_districts_file_overrides_the_built_in_map(tmp_path: Path) -> None:
    """A complete districts file (any spelling) replaces the built-in assignment."""
    mapping = dict(DEFAULT_DISTRICTS)
    mapping.pop("Downtown Hartford")
    mapping["DOWNTOWN"] = "North"
    path = tmp_path / "districts.json"
    path.write_text(json.dumps(mapping))
    geo = load_geography(SHARED_DATA, districts_file=path)
    assert geo.locate(41.7640, -72.6822) == ("Downtown Hartford", "North")


def test_districts_file_missing_neighborhoods_raises_naming_them(tmp_path: Path) -> None:
    """A districts file that leaves polygons out fails, naming each missing one."""
    mapping = {name: d for name, d in DEFAULT_DISTRICTS.items()
               if name not in {"Parkville", "Southwest"}}
    path = tmp_path / "districts.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match="no district for Parkville, Southwest"):
        load_geography(SHARED_DATA, districts_file=path)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"Parkville": ""}',
                                  '{"Gotham": "North"}'])
def test_bad_districts_file_raises_value_error(tmp_path: Path, body: str) -> None:
    """Non-JSON, non-objects, blank districts and unknown names are ValueErrors."""
    path = tmp_path / "districts.json"
    path.write_text(body)
    with pytest.raises(ValueError):
        load_geography(SHARED_DATA, districts_file=path)


def test_hotspots_file_replaces_built_in_hot_spots(tmp_path: Path) -> None:
    """A GeoJSON hot-spot file with a Point and a LineString is used as given."""
    path = tmp_path / "hot.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Capitol lawn", "radius_m": 50},
         "geometry": {"type": "Point", "coordinates": [-72.6822, 41.7640]}},
        {"type": "Feature", "properties": {"name": "Broad St", "width_m": 30, "weight": 2},
         "geometry": {"type": "LineString",
                      "coordinates": [[-72.6880, 41.7600], [-72.6885, 41.7560]]}},
    ]}))
    geo = load_geography(SHARED_DATA, hotspots_file=path)
    assert [(h.name, h.width_m, h.weight) for h in geo.hotspots] == [
        ("Capitol lawn", 50.0, 1.0), ("Broad St", 30.0, 2.0)]
    rng = random.Random(5)
    points = [geo.hotspots[0].random_point(rng) for _ in range(200)]
    assert max(haversine_m(41.7640, -72.6822, *p) for p in points) <= 50.5


def test_hotspots_file_takes_polygon_areas(tmp_path: Path) -> None:
    """A commander's enforcement area drawn as a Polygon (with a hole) or MultiPolygon is an
    area: inside means inside its outline and outside its holes; points sampled in it stay
    in it."""
    outline = [[-72.70, 41.75], [-72.68, 41.75], [-72.68, 41.77], [-72.70, 41.77], [-72.70, 41.75]]
    hole = [[-72.695, 41.755], [-72.685, 41.755], [-72.685, 41.765], [-72.695, 41.765],
            [-72.695, 41.755]]
    path = tmp_path / "hot.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Ring", "district": "Central"},
         "geometry": {"type": "Polygon", "coordinates": [outline, hole]}},
        {"type": "Feature", "properties": {"name": "Two blocks"},
         "geometry": {"type": "MultiPolygon", "coordinates": [[outline]]}}]}))
    ring, blocks = load_geography(SHARED_DATA, hotspots_file=path).hotspots
    assert (ring.shape, ring.district, blocks.shape) == ("area", "Central", "area")
    assert ring.contains(41.752, -72.69) and not ring.contains(41.76, -72.69)
    assert blocks.contains(41.76, -72.69) and not blocks.contains(41.78, -72.69)
    rng = random.Random(3)
    assert all(ring.contains(*ring.random_point(rng)) for _ in range(100))


@pytest.mark.parametrize(("feature", "reason"), [
    ({"properties": {"name": "Blob"},
      "geometry": {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]]]}},
     "'Blob' must be a Polygon, MultiPolygon, LineString or Point"),
    ({"properties": {"name": "Flat"},
      "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}},
     "'Flat': a polygon needs a closed ring"),
    ({"properties": {"name": "Thin", "width_m": 0},
      "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
     "'Thin' needs coordinates and a width"),
    ({"properties": {"name": "Nowhere"}}, "feature 1: 'geometry'"),
])
def test_bad_hotspot_features_raise(tmp_path: Path, feature: dict[str, object],
                                    reason: str) -> None:
    """Hot spots the wall cannot draw or count are refused with the feature and a reason."""
    path = tmp_path / "hot.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "features": [{"type": "Feature", **feature}]}))
    with pytest.raises(ValueError, match=re.escape(reason)):
        load_geography(SHARED_DATA, hotspots_file=path)


def test_hotspot_names_are_unique(tmp_path: Path) -> None:
    """Counts are shown per name: two areas of one name are refused."""
    spot = {"type": "Feature", "properties": {"name": "Park St"},
            "geometry": {"type": "Point", "coordinates": [-72.69, 41.76]}}
    path = tmp_path / "hot.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [spot, spot]}))
    with pytest.raises(ValueError, match="repeated: Park St"):
        load_geography(SHARED_DATA, hotspots_file=path)


def test_settings_paths_are_used(tmp_path: Path) -> None:
    """geography_from_settings reads the shared data dir and the districts file setting."""
    from streams.core.geography import geography_from_settings

    path = tmp_path / "d.json"
    path.write_text(json.dumps({**DEFAULT_DISTRICTS, "Parkville": "South"}))
    geo = geography_from_settings(Settings(shared_data_dir=SHARED_DATA, districts_file=path))
    assert geo.neighborhood("PARKVILLE").district == "South"


def test_random_points_fall_inside_their_neighborhood(geo: Geography) -> None:
    """random_point() of every neighborhood lands back in that neighborhood."""
    rng = random.Random(7)
    for hood in geo.neighborhoods:
        for _ in range(50):
            assert geo.locate(*hood.random_point(rng)) == (hood.name, hood.district)


def test_places_lie_inside_the_city(geo: Geography) -> None:
    """Every park centre, partner site and hot-spot vertex is inside Hartford."""
    points = [(p.lat, p.lon) for p in geo.parks] + [(p.lat, p.lon) for p in geo.partners]
    points += [point for hotspot in geo.hotspots for point in hotspot.points]
    outside = [point for point in points if geo.locate(*point) is None]
    assert outside == []
    assert {"Bushnell Park", "Keney Park", "Goodwin Park", "Colt Park"} <= \
        {p.name for p in geo.parks}
    assert {p.kind for p in geo.partners} == {"school", "hospital", "arena", "business"}


def test_every_neighborhood_has_streets(geo: Geography) -> None:
    """Addresses can be made anywhere: each polygon has a street list."""
    assert set(geo.streets) == POLYGON_NAMES


@pytest.mark.parametrize(("a", "b", "metres"), [
    ((0.0, 0.0), (1.0, 0.0), 111_195.0),  # one degree of latitude
    ((41.7640, -72.6822), (41.7640, -72.6822), 0.0),
    ((0.0, 0.0), (0.0, 90.0), 10_007_543.0),  # a quarter of the equator
])
def test_haversine_distances(a: tuple[float, float], b: tuple[float, float],
                             metres: float) -> None:
    """haversine_m matches known great-circle distances to within 0.5 %."""
    assert haversine_m(*a, *b) == pytest.approx(metres, rel=0.005, abs=0.01)


def _plain_ray_cast(ring: tuple[tuple[float, float], ...], lon: float, lat: float) -> bool:
    """Even-odd ray casting edge by edge: the reference for the vectorised test."""
    inside = False
    x1, y1 = ring[-1]
    for x2, y2 in ring:
        if (y2 > lat) != (y1 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
        x1, y1 = x2, y2
    return inside


def test_point_in_polygon_equals_plain_ray_casting_everywhere(geo: Geography) -> None:
    """Every neighborhood answers 'contains' exactly as plain even-odd ray casting does,
    for random points across its bounding box and for each of its own vertices."""
    rng = random.Random(5)
    for hood in geo.neighborhoods:
        min_lon, min_lat, max_lon, max_lat = hood.bbox
        points = [(rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon))
                  for _ in range(200)]
        points += [(lat, lon) for part in hood.parts for lon, lat in part.rings[0][::25]]
        for lat, lon in points:
            expected = any(
                part.bbox[0] <= lon <= part.bbox[2] and part.bbox[1] <= lat <= part.bbox[3]
                and sum(_plain_ray_cast(ring, lon, lat) for ring in part.rings) % 2 == 1
                for part in hood.parts)
            assert hood.contains(lat, lon) == expected, (hood.name, lat, lon)
