"""The mapping engine: formats, times, lookups, rules, grouping, rejections, events."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streams.core.events import CallEvent, ShotAlert, UnitEvent, decode_event, encode_event
from streams.core.livestate import BatchPlan
from streams.core.mapping import (
    CallRecord,
    Mapping,
    Rejected,
    ShotRecord,
    TimeParser,
    record_events,
    safe_id,
)
from streams.mapping_files import load_lookup, load_mapping, read_csv_rows, read_text_table
from tests.conftest import SHARED_DATA

MAPPINGS = Path(__file__).resolve().parents[2] / "streams" / "mappings"

BASE: dict[str, Any] = {
    "dataset": {"name": "t", "kind": "calls", "source": "t", "id": "id"},
    "time": {"formats": ["%Y-%m-%d %H:%M:%S"], "timezone": "America/New_York"},
    "fields": {"received_time": "received", "call_type": "type"},
    "priority": {"column": "prio", "map": {"A": 1, "B": 2}, "default": 3},
}


def make(overrides: dict[str, Any] | None = None, lookups: dict[str, Any] | None = None,
         ) -> Mapping:
    raw = {name: dict(value) if isinstance(value, dict) else value
           for name, value in BASE.items()}
    for section, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **value}
        else:
            raw[section] = value
    return Mapping.from_dict(raw, lookups or {})


def row(**values: str) -> dict[str, str]:
    base = {"id": "C1", "received": "2024-06-01 10:00:00", "type": "NOISE", "prio": "A"}
    base.update(values)
    return base


def one(mapping: Mapping, *rows: dict[str, Any]) -> list[CallRecord | ShotRecord | Rejected]:
    return list(mapping.records(rows, "f.csv"))


def reason_of(mapping: Mapping, data: dict[str, Any]) -> str:
    [item] = one(mapping, data)
    assert isinstance(item, Rejected), item
    return item.reason


# --- locations ------------------------------------------------------------------------------

@pytest.mark.parametrize(("location", "value"), [
    ({"format": "wkt", "column": "loc"}, "POINT (-72.68 41.76)"),
    ({"format": "wkt", "column": "loc"}, "point(-72.68   41.76)"),
    ({"format": "lonlat", "column": "loc"}, "[-72.68, 41.76]"),
    ({"format": "lonlat", "column": "loc"}, "-72.68 41.76"),
    ({"format": "geojson", "column": "loc"}, '{"type": "Point", "coordinates": [-72.68, 41.76]}'),
    ({"format": "geojson", "column": "loc"},
     '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-72.68, 41.76]}}'),
    ({"format": "geojson", "column": "loc"}, '{"latitude": "41.76", "longitude": "-72.68"}'),
])
def test_location_formats_give_lat_lon(location: dict[str, Any], value: str) -> None:
    """WKT, [lon, lat], GeoJSON geometry/Feature and Socrata locations all give lat 41.76."""
    [record] = one(make({"location": location}), row(loc=value))
    assert isinstance(record, CallRecord)
    assert (record.lat, record.lon) == (41.76, -72.68)


def test_geojson_object_value_from_a_json_feed() -> None:
    """A JSON feed's location object (a dict, not a string) is read as GeoJSON."""
    mapping = make({"location": {"format": "geojson", "column": "loc"}})
    [record] = one(mapping, {**row(), "loc": {"type": "Point", "coordinates": [-72.6, 41.7]}})
    assert isinstance(record, CallRecord) and (record.lat, record.lon) == (41.7, -72.6)


def test_lat_lon_columns() -> None:
    """Separate lat/lon columns are read as numbers."""
    mapping = make({"location": {"format": "latlon", "lat": "y", "lon": "x"}})
    [record] = one(mapping, row(y="41.5", x="-72.5"))
    assert isinstance(record, CallRecord) and (record.lat, record.lon) == (41.5, -72.5)


def test_centroid_lookup_goes_beat_to_neighborhood_to_centroid(tmp_path: Path) -> None:
    """An address-only call gets its neighborhood from its beat and the neighborhood's centroid."""
    (tmp_path / "beats.csv").write_text("beat,neighborhood\n101,Asylum Hill\n")
    (tmp_path / "cent.csv").write_text("name,lat,lon\nAsylum Hill,41.77,-72.69\n")
    lookups = {"beats": load_lookup("beats", {"key": "beat", "value": "neighborhood"},
                                    tmp_path / "beats.csv"),
               "cent": load_lookup("cent", {"key": "name", "lat": "lat", "lon": "lon"},
                                   tmp_path / "cent.csv")}
    mapping = make({"fields": {"beat": "beat", "neighborhood": {
        "column": "beat", "lookup": "beats", "unknown": "null"}},
        "location": {"format": "centroid", "lookup": "cent", "by": ["neighborhood"]}},
        lookups)
    placed, unplaced = one(mapping, row(beat="101"), row(id="C2", beat="999"))
    assert isinstance(placed, CallRecord) and isinstance(unplaced, CallRecord)
    assert (placed.neighborhood, placed.lat, placed.lon) == ("Asylum Hill", 41.77, -72.69)
    assert (unplaced.neighborhood, unplaced.lat) == (None, None)


def test_location_none_leaves_position_empty() -> None:
    """format none (San Diego) keeps lat/lon None."""
    [record] = one(make({"location": {"format": "none"}}), row())
    assert isinstance(record, CallRecord) and (record.lat, record.lon) == (None, None)


@pytest.mark.parametrize(("value", "code"), [
    ("", "missing_location"),
    ("POINT (0 0)", "missing_location"),
    ("POINT (-72.68)", "bad_location"),
    ("POINT (-200 41)", "bad_location"),
    ("POINT (-122.4 37.7)", "out_of_bounds"),
    ("{not json", "bad_location"),
])
def test_bad_locations_are_rejected(value: str, code: str) -> None:
    """Missing, 0,0, malformed, off-Earth and out-of-bounds positions are rejected."""
    mapping = make({"location": {"format": "wkt", "column": "loc", "required": True,
                                 "bounds": [-73, 41, -72, 42]}})
    if code == "bad_location" and value.startswith("{"):
        mapping = make({"location": {"format": "geojson", "column": "loc"}})
    assert reason_of(mapping, row(loc=value)).startswith(code + ":")


def test_missing_location_hints_at_the_pollers_geometry_columns() -> None:
    """A required location missing from its column names the geometry columns a poller
    provides, and says to use them when the row has them."""
    mapping = make({"location": {"format": "latlon", "lat": "COORDS_Y", "lon": "COORDS_X",
                                 "required": True}})
    reason = reason_of(mapping, row(geometry_lat="41.76", geometry_lon="-72.68"))
    assert reason.startswith("missing_location: no location in COORDS_Y, COORDS_X")
    assert 'lat = "geometry_lat", lon = "geometry_lon"' in reason
    assert "geometry_lat and geometry_lon" in reason_of(mapping, row())


# --- times ----------------------------------------------------------------------------------

def parser(*formats: str, zone: str = "America/New_York", local_as_utc: bool = False,
           ) -> TimeParser:
    return TimeParser(formats, ZoneInfo(zone), local_as_utc)


def test_twelve_hour_clock_with_am_pm() -> None:
    """12:03 AM is just after midnight, 12:03 PM just after noon, in Pacific time."""
    times = parser("%m/%d/%Y %I:%M:%S %p", zone="America/Los_Angeles")
    assert times.parse("10/18/2019 12:03:52 AM") == datetime(2019, 10, 18, 7, 3, 52, tzinfo=UTC)
    assert times.parse("10/18/2019 12:03:52 PM") == datetime(2019, 10, 18, 19, 3, 52, tzinfo=UTC)
    assert times.parse("10/18/2019 01:00:00 PM") == datetime(2019, 10, 18, 20, 0, tzinfo=UTC)


def test_fractional_seconds_and_iso_offsets() -> None:
    """Microseconds are kept; an explicit offset wins over the zone."""
    times = parser("%Y-%m-%d %H:%M:%S.%f", "iso")
    assert times.parse("2006-01-27 03:35:11.313000") == \
        datetime(2006, 1, 27, 8, 35, 11, 313000, tzinfo=UTC)
    assert times.parse("2024-06-01T10:00:00-05:00") == datetime(2024, 6, 1, 15, tzinfo=UTC)
    assert times.parse("2024-06-01T10:00:00Z") == datetime(2024, 6, 1, 10, tzinfo=UTC)


def test_epoch_formats() -> None:
    """epoch and epoch_ms are UTC instants."""
    assert parser("epoch").parse("1717236000") == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert parser("epoch_ms").parse("1717236000500") == \
        datetime(2024, 6, 1, 10, 0, 0, 500000, tzinfo=UTC)


def test_local_time_stamped_as_utc_is_read_in_the_city_zone() -> None:
    """A feed writing local 10:00 as '10:00Z' means 14:00 UTC in June in New York."""
    honest, lying = parser("iso"), parser("iso", local_as_utc=True)
    assert honest.parse("2024-06-01T10:00:00Z") == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert lying.parse("2024-06-01T10:00:00Z") == datetime(2024, 6, 1, 14, tzinfo=UTC)
    assert parser("epoch", local_as_utc=True).parse("1717236000") == \
        datetime(2024, 6, 1, 14, tzinfo=UTC)


def test_dst_change_never_gives_negative_intervals() -> None:
    """Local times across the November fall-back stay ordered and an hour apart in UTC."""
    times = parser("%Y-%m-%d %H:%M:%S")
    before = times.parse("2024-11-03 00:30:00")
    after = times.parse("2024-11-03 03:30:00")
    assert after - before == timedelta(hours=4)
    spring = times.parse("2024-03-10 03:30:00") - times.parse("2024-03-10 01:30:00")
    assert spring == timedelta(hours=1)


def test_unparseable_time_names_the_expected_format() -> None:
    """A time in the wrong format is rejected as bad_time with the format in the reason."""
    reason = reason_of(make(), row(received="13/45/2024 99:00"))
    assert reason.startswith("bad_time: received") and "%Y-%m-%d %H:%M:%S" in reason


def test_impossible_calendar_date_is_bad_time() -> None:
    """February 30th matches the pattern but is not a date: bad_time."""
    assert reason_of(make(), row(received="2024-02-30 10:00:00")).startswith("bad_time:")


# --- lookups --------------------------------------------------------------------------------

def test_lookup_with_utf8_bom(tmp_path: Path) -> None:
    """A BOM before the header does not hide the first column's name."""
    path = tmp_path / "codes.csv"
    path.write_bytes(b"\xef\xbb\xbfcode,description\nNOIS,NOISE COMPLAINT\n")
    lookup = load_lookup("codes", {"key": "code", "value": "description"}, path)
    assert lookup.values == {"NOIS": "NOISE COMPLAINT"}


def test_lookup_in_latin1_falls_back(tmp_path: Path) -> None:
    """A Latin-1 table (é as one byte) is read as Latin-1."""
    path = tmp_path / "hoods.csv"
    path.write_bytes("beat,neighborhood\n7,Caf\xe9 District\n".encode("latin-1"))
    assert read_text_table(path) == [{"beat": "7", "neighborhood": "Café District"}]


def test_lookup_conflicts_keep_the_first(tmp_path: Path) -> None:
    """A key listed twice with different values keeps the first and records the conflict."""
    path = tmp_path / "t.csv"
    path.write_text("k,v\nFP,FOOT PURSUIT\nFP,WARRANT\nX,Y\nX,Y\n")
    lookup = load_lookup("t", {"key": "k", "value": "v"}, path)
    assert lookup.values == {"FP": "FOOT PURSUIT", "X": "Y"}
    assert len(lookup.conflicts) == 1


def test_lookup_resolves_codes_and_rejects_unknown(tmp_path: Path) -> None:
    """A coded call type becomes its description; an unknown code is unknown_code."""
    path = tmp_path / "t.csv"
    path.write_text("code,desc\n415N,DISTURBING PEACE NOISE ONLY\n")
    lookups = {"types": load_lookup("types", {"key": "code", "value": "desc"}, path)}
    mapping = make({"fields": {"call_type_code": "type",
                               "call_type": {"column": "type", "lookup": "types"}},
                    "rules": [{"category": "noise", "pattern": "noise"}]}, lookups)
    good, bad = one(mapping, row(type="415N"), row(id="C2", type="ZZZ"))
    assert isinstance(good, CallRecord)
    assert (good.call_type_code, good.call_type, good.category) == \
        ("415N", "DISTURBING PEACE NOISE ONLY", "noise")
    assert isinstance(bad, Rejected) and bad.code == "unknown_code"


def test_mapping_file_resolves_lookups_against_shared_data(tmp_path: Path) -> None:
    """Lookup paths resolve against the shared data dir first (the shipped San Diego file)."""
    mapping = load_mapping(MAPPINGS / "sandiego_cfs.toml", SHARED_DATA)
    assert mapping.lookups["beats"].values["523"]
    assert mapping.lookups["call_types"].values["415N"] == "DISTURBING PEACE NOISE ONLY"


def test_missing_lookup_file_is_an_actionable_error(tmp_path: Path) -> None:
    """A lookup file that is nowhere raises ValueError naming both places looked in."""
    path = tmp_path / "m.toml"
    path.write_text('[dataset]\nname="x"\nid="id"\n[lookups.t]\nfile="nope.csv"\nkey="k"\n'
                    '[fields]\nreceived_time="r"\n')
    with pytest.raises(ValueError, match="nope.csv is neither in"):
        load_mapping(path, tmp_path / "shared")


# --- rules and priority ---------------------------------------------------------------------

def test_category_rules_first_match_wins_then_default() -> None:
    """Codes, exact types and regexes map call types; the first match wins."""
    mapping = make({"rules": [
        {"category": "noise", "codes": ["415N"]},
        {"category": "violent", "pattern": "w/violence|assault"},
        {"category": "other_qol", "pattern": "disturbing peace"},
        {"category": "medical", "types": ["Medical Incident"]},
    ]})
    assert mapping.category_of("415N", "DISTURBING PEACE NOISE ONLY") == "noise"
    assert mapping.category_of("415V", "DISTURBING PEACE W/VIOLENCE") == "violent"
    assert mapping.category_of("415", "DISTURBING PEACE") == "other_qol"
    assert mapping.category_of(None, "Medical Incident") == "medical"
    assert mapping.category_of(None, "medical incident") == "other"


def test_unknown_category_in_a_rule_is_refused() -> None:
    """A rule naming a category that does not exist fails at load with the valid list."""
    with pytest.raises(ValueError, match=r"\[rules\] 0.category: Input should be 'noise'.*'loud'"):
        make({"rules": [{"category": "loud", "codes": ["X"]}]})


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ({"map": {"E": 1, "3": 2, "2": 3}}, "E", 1),
    ({"map": {"E": 1, "3": 2, "2": 3}}, "2", 3),
    ({"ranges": [{"min": 0, "max": 1, "priority": 1}, {"min": 2, "max": 9, "priority": 4}]},
     "7", 4),
    ({"numeric": True, "offset": 1}, "0", 1),
    ({"numeric": True, "offset": 1}, "4", 5),
    ({"numeric": True, "offset": 1}, "9", 5),
    ({"numeric": True, "offset": 0}, "-3", 1),
    ({"map": {"A": 1}, "default": 4}, "", 4),
])
def test_priority_map_ranges_offset_clamp_default(spec: dict[str, Any], value: str,
                                                  expected: int) -> None:
    """Exact values, ranges and number+offset all land in 1-5 (clamped); empty -> default."""
    mapping = make({"priority": {"column": "prio", **spec}})
    mapping = Mapping.from_dict({**mapping.raw, "priority": {"column": "prio", **spec}}, {})
    [record] = one(mapping, row(prio=value))
    assert isinstance(record, CallRecord) and record.priority == expected


def test_priority_junk_and_missing_are_rejected() -> None:
    """A priority outside the map is bad_priority; an empty one without default is missing."""
    mapping = Mapping.from_dict({**BASE, "priority": {"column": "prio", "map": {"A": 1}}}, {})
    assert reason_of(mapping, row(prio="ZZ")).startswith("bad_priority:")
    assert reason_of(mapping, row(prio="")).startswith("missing_field:")


def test_priority_map_outside_one_to_five_is_refused() -> None:
    """Mapping a value to priority 7 fails at load."""
    with pytest.raises(ValueError, match=r"\[priority\] map.A: .*less than or equal to 5"):
        make({"priority": {"column": "prio", "map": {"A": 7}}})


# --- fields ---------------------------------------------------------------------------------

def test_joined_address_and_cross_street() -> None:
    """Address parts are joined (skipping '0' and empties) and the cross street appended."""
    mapping = make({"fields": {
        "address": {"column": ["n", "dir", "road", "sfx"], "skip": ["0"]},
        "cross_street": {"column": ["xroad", "xsfx"]}}})
    first, second = one(mapping, row(n="600", dir="", road="FERGUS", sfx="ST", xroad="",
                                     xsfx=""),
                        row(id="C2", n="0", dir="", road="05TH", sfx="AVE", xroad="G",
                            xsfx="ST"))
    assert isinstance(first, CallRecord) and first.address == "600 FERGUS ST"
    assert isinstance(second, CallRecord) and second.address == "05TH AVE & G ST"


def test_extract_and_field_nulls() -> None:
    """extract keeps the regex group; a field's own null literal (-1) means no value."""
    mapping = make({"fields": {"district": {"column": "area", "extract": "DC(\\dD)$"},
                               "beat": {"column": "beat", "nulls": ["-1"]}}})
    [record] = one(mapping, row(area="WashingtonDC7D", beat="-1"))
    assert isinstance(record, CallRecord) and (record.district, record.beat) == ("7D", None)


def test_safe_ids_fit_the_event_model() -> None:
    """Ids with spaces or slashes become '_' and long ids are shortened with a hash."""
    assert safe_id("RESCUE 1/A") == "RESCUE_1_A"
    long = safe_id("x" * 100)
    assert len(long) == 64 and re.fullmatch(r"[A-Za-z0-9_.:\-]+", long)
    assert safe_id("x" * 100) != safe_id("x" * 99 + "y")


# --- grouping -------------------------------------------------------------------------------

UNITS: dict[str, Any] = {
    "units": {"id": "unit", "kind": "utype", "kind_map": {"CHIEF": "supervisor"},
              "dispatched": "disp", "en_route": "resp", "on_scene": "onsc",
              "cleared": "avail"},
    "grouping": {"window_rows": 3},
}


def unit_row(call: str, unit: str, **times: str) -> dict[str, str]:
    base = {"disp": "2024-06-01 10:01:00", "resp": "2024-06-01 10:02:00",
            "onsc": "2024-06-01 10:05:00", "avail": "2024-06-01 10:30:00", "utype": "ENGINE"}
    return {**row(id=call), "unit": unit, **base, **times}


def test_unit_rows_group_into_calls_even_when_not_adjacent() -> None:
    """Rows of one call two rows apart form one call with both units, in window order."""
    items = one(make(UNITS), unit_row("A", "E1"), unit_row("B", "E2"),
                unit_row("A", "T1", utype="CHIEF", avail="2024-06-01 10:40:00"))
    calls = {item.call_id: item for item in items if isinstance(item, CallRecord)}
    assert [unit.unit_id for unit in calls["A"].units] == ["E1", "T1"]
    assert [unit.unit_kind for unit in calls["A"].units] == ["patrol", "supervisor"]
    assert calls["A"].closed_time == datetime(2024, 6, 1, 14, 40, tzinfo=UTC)
    assert len(calls["B"].units) == 1


def test_call_stays_open_while_a_unit_has_not_cleared() -> None:
    """A call whose units have not all cleared has no close time."""
    [record] = one(make(UNITS), unit_row("A", "E1"), unit_row("A", "E2", avail=""))
    assert isinstance(record, CallRecord) and record.closed_time is None


def test_rows_beyond_the_window_are_late() -> None:
    """A row of a call completed more than window_rows rows ago is rejected as late_row."""
    items = one(make(UNITS), unit_row("A", "E1"), unit_row("B", "E1"), unit_row("C", "E1"),
                unit_row("D", "E1"), unit_row("A", "E2"))
    late = [item for item in items if isinstance(item, Rejected)]
    assert [(item.row, item.code) for item in late] == [(6, "late_row")]
    assert sum(isinstance(item, CallRecord) for item in items) == 4


def test_memory_is_bounded_by_the_window() -> None:
    """Grouping 10,000 distinct calls never holds more than the window's calls at once."""
    mapping = make(UNITS)
    grouper_rows = (unit_row(f"C{index}", "E1") for index in range(10_000))
    count = 0
    iterator = mapping.records(grouper_rows, "f")
    for _ in iterator:
        count += 1
        frame = iterator.gi_frame  # type: ignore[attr-defined]
        if frame is not None and "grouper" in frame.f_locals:
            assert len(frame.f_locals["grouper"].open) <= 4
    assert count == 10_000


# --- every rejection reason -----------------------------------------------------------------

@pytest.mark.parametrize(("data", "code"), [
    ({"id": "C1", "received": "", "type": "", "prio": ""}, "only_id"),
    ({"id": "", "received": "2024-06-01 10:00:00", "type": "X", "prio": "A"}, "missing_id"),
    (row(received=""), "missing_field"),
    (row(received="yesterday"), "bad_time"),
    (row(prio="Q"), "bad_priority"),
    ({**row(), "bad": "caf\udce9"}, "encoding"),
    ({**row(), "bad": "\ufeffx"}, "encoding"),
    ({**row(), "prio": None}, "truncated"),
    ({**row(), None: ["extra"]}, "malformed"),
])
def test_each_rejection_reason(data: dict[Any, Any], code: str) -> None:
    """Each kind of bad row is rejected with its reason code and the raw row kept."""
    [item] = one(make(), data)
    assert isinstance(item, Rejected)
    assert item.code == code and item.file == "f.csv" and item.row == 2
    assert item.raw.startswith(str(data["id"]))


def test_impossible_unit_times_are_rejected() -> None:
    """On scene before received, or before dispatch, is impossible_time."""
    mapping = make(UNITS)
    assert reason_of(mapping, unit_row("A", "E1", onsc="2024-06-01 09:00:00")).startswith(
        "impossible_time: unit E1 on_scene")
    reason = reason_of(mapping, unit_row("A", "E1", disp="2024-06-01 10:20:00"))
    assert reason.startswith("impossible_time: unit E1 en_route")


def test_closed_before_received_is_impossible() -> None:
    """A close time before the call was received is impossible_time."""
    mapping = make({"fields": {"closed_time": "closed"}})
    assert reason_of(mapping, row(closed="2024-06-01 09:00:00")).startswith("impossible_time:")


def test_junk_in_a_coded_field_is_bad_code_when_asked_to_reject() -> None:
    """A value failing the field's pattern is bad_code with on_mismatch = "reject"."""
    mapping = make({"fields": {"beat": {"column": "beat", "pattern": "\\d{3}",
                                        "on_mismatch": "reject"}}})
    assert reason_of(mapping, row(beat="#@!")).startswith("bad_code: beat '#@!'")


def test_duplicates_are_rejected() -> None:
    """The same unit of a call twice, or the same single-row call twice, is a duplicate."""
    grouped = one(make(UNITS), unit_row("A", "E1"), unit_row("A", "E1"))
    assert [item.code for item in grouped if isinstance(item, Rejected)] == ["duplicate"]
    single = one(make(), row(), row())
    assert [type(item).__name__ for item in single] == ["CallRecord", "Rejected"]


def test_latin1_row_is_repaired_with_encoding_fallback() -> None:
    """With encoding_fallback = latin-1 a non-UTF-8 byte is read as Latin-1, not rejected."""
    mapping = make({"dataset": {"encoding_fallback": "latin-1"},
                    "fields": {"address": "addr"}})
    [record] = one(mapping, row(addr="CAF\udcc9 ST"))
    assert isinstance(record, CallRecord) and record.address == "CAFÉ ST"


# --- reading files --------------------------------------------------------------------------

def test_csv_reader_drops_bom_keeps_bad_bytes_and_survives_truncation(tmp_path: Path) -> None:
    """A leading BOM is dropped, Latin-1 bytes survive as surrogates, a cut last line is short."""
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbfid,received,type,prio\n"
                     b"C1,2024-06-01 10:00:00,NOISE,A\n"
                     b"C2,2024-06-01 10:00:00,CAF\xc9,A\n"
                     b"C3,2024-06-01 10:0")
    rows = list(read_csv_rows(path))
    assert list(rows[0]) == ["id", "received", "type", "prio"]
    items = one(make(), *rows)
    assert [getattr(item, "code", "ok") for item in items] == ["ok", "encoding", "truncated"]


def test_unterminated_quote_is_rejected_not_fatal(tmp_path: Path) -> None:
    """A last line cut inside a quoted field becomes one rejected row."""
    path = tmp_path / "d.csv"
    path.write_bytes(b"id,received,type,prio\nC1,2024-06-01 10:00:00,NOISE,A\n"
                     b'C2,2024-06-01 10:00:00,"NOI')
    items = one(make(), *read_csv_rows(path))
    assert isinstance(items[0], CallRecord)
    assert isinstance(items[1], Rejected) and items[1].code in ("truncated", "malformed")


# --- events ---------------------------------------------------------------------------------

def test_record_events_lifecycle_order_and_ids() -> None:
    """A two-unit call gives created, per-unit steps and statuses, then cleared, in time order."""
    [record] = one(make(UNITS), unit_row("A", "E1"),
                   unit_row("A", "T1", disp="2024-06-01 10:03:00", resp="", onsc="",
                            avail="2024-06-01 10:10:00"))
    assert isinstance(record, CallRecord)
    events = record_events(record)
    steps = [(e.kind, e.unit_id) if isinstance(e, CallEvent) else (f"unit:{e.status}",
                                                                    e.unit_id)
             for e in events]
    assert steps == [
        ("created", None), ("unit_assigned", "E1"), ("dispatched", "E1"),
        ("unit:dispatched", "E1"), ("en_route", "E1"), ("unit:en_route", "E1"),
        ("unit_assigned", "T1"), ("dispatched", "T1"), ("unit:dispatched", "T1"),
        ("on_scene", "E1"), ("unit:on_scene", "E1"), ("unit:available", "T1"),
        ("unit:available", "E1"), ("cleared", None)]
    times = [event.event_time for event in events]
    assert times == sorted(times)
    assert events[0].event_id == "t:A:created"
    assert [e.event_id for e in record_events(record)] == [e.event_id for e in events]
    assert len({event.event_id for event in events}) == len(events)


def test_cancelled_disposition_gives_cancelled_event() -> None:
    """A disposition listed in cancel_values closes the call as cancelled."""
    mapping = make({**UNITS, "fields": {"disposition": "dispo"},
                    "call": {"cancel_values": ["Cancelled"]}})
    [record] = one(mapping, {**unit_row("A", "E1"), "dispo": "Cancelled"})
    assert isinstance(record, CallRecord) and record.cancelled
    last = record_events(record)[-1]
    assert isinstance(last, CallEvent) and (last.kind, last.disposition) == \
        ("cancelled", "Cancelled")


def test_events_validate_and_apply_to_live_state() -> None:
    """Events of a grouped call pass the event model and the live-state rules."""
    [record] = one(make(UNITS), unit_row("A", "E1"), unit_row("A", "E2"))
    assert isinstance(record, CallRecord)
    plan = BatchPlan({})
    for event in record_events(record):
        assert plan.apply(decode_event(encode_event(event))) == "applied"
    [closed] = plan.closed_records
    assert (closed["dispatch_s"], closed["response_s"]) == ("60.0", "300.0")


def test_shot_rows_become_alerts() -> None:
    """Gunshot rows map type names and default rounds (single 1, multiple 3)."""
    mapping = load_mapping(MAPPINGS / "dc_shotspotter.toml", SHARED_DATA)
    rows = [{"Coverage Area": "WashingtonDC7D", "Incident ID": "53-3",
             "Date Time": "2006-01-27 03:35:11.313000", "Type": "Multiple Gunshots",
             "Longitude-100meter": "-77.001", "Latitude-100meter": "38.861"},
            {"Coverage Area": "WashingtonDC7D", "Incident ID": "53-4",
             "Date Time": "2006-01-27 03:36:00.000000", "Type": "Probable Fireworks",
             "Longitude-100meter": "-77.001", "Latitude-100meter": "38.861"}]
    shot, junk = one(mapping, *rows)
    assert isinstance(shot, ShotRecord)
    assert (shot.alert_type, shot.rounds, shot.district) == ("multiple", 3, "7D")
    [alert] = record_events(shot)
    assert isinstance(alert, ShotAlert) and alert.event_id == "dc_shotspotter:53-3"
    assert isinstance(junk, Rejected) and junk.code == "unknown_code"


# --- shipped mappings and the README --------------------------------------------------------

@pytest.mark.parametrize(("name", "data", "records", "rejected"), [
    ("sf_fire_calls", "sf_fire_calls/data_sample.csv", 2406, {"impossible_time": 1}),
    ("sandiego_cfs", "sandiego_cfs/pd_calls_for_service_2023_datasd.csv", 26573,
     {"missing_field": 19, "unknown_code": 3}),
    ("dc_shotspotter", "dc_shotspotter/shotspotter.csv", 39065, {"out_of_bounds": 1}),
])
def test_shipped_mappings_map_the_real_files(name: str, data: str, records: int,
                                             rejected: dict[str, int]) -> None:
    """Each shipped mapping reads its real file with only the known bad rows rejected,
    and every event it makes passes the event model."""
    mapping = load_mapping(MAPPINGS / f"{name}.toml", SHARED_DATA)
    good, bad = 0, {}
    for item in mapping.records(read_csv_rows(SHARED_DATA / data), data):
        if isinstance(item, Rejected):
            bad[item.code] = bad.get(item.code, 0) + 1
            continue
        good += 1
        for event in record_events(item):
            decode_event(encode_event(event))
    assert (good, bad) == (records, rejected)


def test_readme_worked_example_loads_and_maps(tmp_path: Path) -> None:
    """The worked example in streams/mappings/README.md is a working mapping."""
    text = (MAPPINGS / "README.md").read_text()
    toml_text = text.split("```toml\n", 1)[1].split("```", 1)[0]
    csv_text = text.split("```csv\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_city").mkdir()
    (tmp_path / "my_city" / "call_types.csv").write_text("code,description\nNOIS,NOISE\n")
    (tmp_path / "m.toml").write_text(toml_text)
    (tmp_path / "d.csv").write_text(csv_text)
    assert tomllib.loads(toml_text)["dataset"]["name"] == "my_city_cad"
    mapping = load_mapping(tmp_path / "m.toml", tmp_path)
    [record] = one(mapping, *read_csv_rows(tmp_path / "d.csv"))
    assert isinstance(record, CallRecord)
    assert (record.call_id, record.category, record.priority, record.district) == \
        ("24-000123", "noise", 3, "N")
    assert (record.lat, record.lon, record.received_time) == \
        (41.76, -72.68, datetime(2024, 6, 2, 1, 14, 5, tzinfo=UTC))


def test_unit_events_carry_kind_and_call() -> None:
    """Unit status events name the unit kind and the call, except 'available'."""
    [record] = one(make(UNITS), unit_row("A", "E1", utype="CHIEF"))
    assert isinstance(record, CallRecord)
    units = [event for event in record_events(record) if isinstance(event, UnitEvent)]
    assert [(u.status, u.unit_kind, u.call_id) for u in units] == [
        ("dispatched", "supervisor", "A"), ("en_route", "supervisor", "A"),
        ("on_scene", "supervisor", "A"), ("available", "supervisor", None)]


def test_mapping_core_reads_no_files() -> None:
    """The pure mapping package never touches the disk: reading files is streams.mapping_files."""
    package = Path(__file__).resolve().parents[2] / "streams" / "core" / "mapping"
    io_calls = re.compile(r"\b(open|read_bytes|read_text|is_file|exists|tomllib\.load)\(")
    found = {path.name: io_calls.findall(path.read_text()) for path in package.glob("*.py")}
    assert {name: calls for name, calls in found.items() if calls} == {}


def test_mapping_check_names_a_source_column_without_a_header() -> None:
    """An export whose header has an empty cell lists it by position among the unused
    columns, not as a blank between two commas."""
    from datetime import UTC, datetime

    from streams.core.mapping.check import CheckReport

    mapping = load_mapping(MAPPINGS / "sandiego_cfs.toml", SHARED_DATA)
    report = CheckReport(mapping, now=datetime(2026, 1, 1, tzinfo=UTC))
    report.see_row({"incident_num": "E1", "": "x", "day_of_week": "1"})
    unused = report.text().split("source columns never used\n", 1)[1].split("\n")[0]
    assert unused == "  (column 2 has no name), day_of_week"
