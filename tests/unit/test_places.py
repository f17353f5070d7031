"""Schools as places like parks, each in a district (the SRO school filter)."""

from __future__ import annotations

from streams.core.geography import load_geography
from tests.conftest import SHARED_DATA


def test_schools_load_as_circles_inside_the_city() -> None:
    """The places file's schools load with a radius, and every one lies in a district."""
    city = load_geography(SHARED_DATA)
    assert len(city.schools) >= 10
    for school in city.schools:
        assert school.radius_m > 0
        assert city.district_at(school.lat, school.lon) in city.districts, school.name
    assert {city.district_at(s.lat, s.lon) for s in city.schools} == set(city.districts)


def test_district_at_is_none_outside_the_city() -> None:
    city = load_geography(SHARED_DATA)
    assert city.district_at(40.0, -70.0) is None
    keney = next(park for park in city.parks if park.name == "Keney Park")
    assert city.district_at(keney.lat, keney.lon) == "North"
