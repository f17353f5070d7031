"""The mapping file's sections -> the specs the engine runs on (pure).

``CALL_TIME_FIELDS``/``SHOT_TIME_FIELDS`` name the time fields of each kind of record;
``UnitSpec``/``ShotSpec`` hold the ``[units]`` and ``[shot]`` tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.events import ALERT_TYPES, CATEGORIES, UNIT_KINDS
from streams.core.mapping.fields import CategoryRule, FieldSpec, PriorityMap
from streams.core.mapping.location import LocationSpec
from streams.core.mapping.lookups import Lookup, required

DEFAULT_WINDOW_ROWS: Final = 20_000
UNIT_TIME_FIELDS: Final = ("assigned", "dispatched", "en_route", "on_scene", "cleared")
CALL_TIME_FIELDS: Final = ("received_time", "closed_time")
SHOT_TIME_FIELDS: Final = ("detected_time", "published_time")


@dataclass(frozen=True)
class UnitSpec:
    """Columns of a one-row-per-unit feed: unit id, kind and per-unit times."""

    id_column: str
    kind_column: str | None
    kind_map: dict[str, str]
    kind_default: str
    times: dict[str, str]  # UnitTimes field -> column


@dataclass(frozen=True)
class ShotSpec:
    """Columns of a gunshot feed: type (mapped), rounds, per-type default rounds."""

    type_column: str
    type_map: dict[str, str]
    rounds_column: str | None
    default_rounds: dict[str, int]




def listify(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"[time] timezone {name!r} is not an IANA zone "
                         f"like 'America/New_York'") from None


def category(name: str) -> str:
    if name not in CATEGORIES:
        raise ValueError(f"category {name!r} is unknown; use one of {', '.join(CATEGORIES)}")
    return name


RECORD_FIELDS: Final = {
    "calls": ("call_type_code", "call_type", "address", "district", "neighborhood", "beat",
              "cross_street", "status", "disposition", "disposition_code"),
    "shots": ("address", "district", "neighborhood", "beat"),
}


def field_specs(spec: dict[str, Any], nulls: frozenset[str], lookups: dict[str, Lookup],
                 kind: str) -> tuple[dict[str, FieldSpec], dict[str, str]]:
    time_names = CALL_TIME_FIELDS if kind == "calls" else SHOT_TIME_FIELDS
    fields: dict[str, FieldSpec] = {}
    times: dict[str, str] = {}
    for name, value in spec.items():
        if name in time_names:
            times[name] = str(value)
        elif name in RECORD_FIELDS[kind]:
            fields[name] = field_spec(name, value, nulls, lookups)
        else:
            raise ValueError(f"[fields] {name!r} is not a {kind} field; use "
                             f"{', '.join(RECORD_FIELDS[kind] + time_names)}")
    if time_names[0] not in times:
        raise ValueError(f"[fields] needs {time_names[0]!r} (the column with that time)")
    return fields, times


def field_spec(name: str, value: Any, nulls: frozenset[str],
                lookups: dict[str, Lookup]) -> FieldSpec:
    if isinstance(value, (str, list)):
        value = {"column": value}
    columns = tuple(listify(required(value, "column", f"fields.{name}")))
    lookup_name = value.get("lookup")
    if lookup_name is not None and lookup_name not in lookups:
        raise ValueError(f"fields.{name}: lookup {lookup_name!r} is not under [lookups]")
    unknown = value.get("unknown", "reject")
    if unknown not in ("reject", "null", "keep"):
        raise ValueError(f"fields.{name}: unknown must be 'reject', 'null' or 'keep'")
    return FieldSpec(
        name=name, columns=columns, nulls=nulls | frozenset(value.get("nulls", [])),
        skip=frozenset(value.get("skip", [])), separator=value.get("separator", " "),
        extract=re.compile(value["extract"]) if "extract" in value else None,
        pattern=re.compile(value["pattern"]) if "pattern" in value else None,
        lookup=lookups.get(lookup_name) if lookup_name else None, unknown=unknown,
        required=bool(value.get("required", False)))


def priority_map(spec: dict[str, Any] | None, nulls: frozenset[str]) -> PriorityMap:
    spec = spec or {}
    values = {str(key): int(value) for key, value in spec.get("map", {}).items()}
    ranges = tuple((float(item["min"]), float(item["max"]), int(item["priority"]))
                   for item in spec.get("ranges", []))
    for priority in [*values.values(), *(item[2] for item in ranges)]:
        if not 1 <= priority <= 5:
            raise ValueError(f"[priority] maps to {priority}; priorities are 1-5")
    default = spec.get("default")
    return PriorityMap(spec.get("column"), values, ranges, bool(spec.get("numeric", False)),
                       int(spec.get("offset", 0)), None if default is None else int(default),
                       nulls)


def location_spec(spec: dict[str, Any], nulls: frozenset[str],
                   lookups: dict[str, Lookup]) -> LocationSpec:
    kind = spec.get("format", "none")
    needs = {"latlon": ("lat", "lon"), "wkt": ("column",), "lonlat": ("column",),
             "geojson": ("column",), "centroid": ("lookup", "by"), "none": ()}
    if kind not in needs:
        raise ValueError(f"[location] format {kind!r} is not one of {', '.join(needs)}")
    for name in needs[kind]:
        required(spec, name, "location")
    columns = (spec["lat"], spec["lon"]) if kind == "latlon" else \
        (spec["column"],) if "column" in spec else ()
    centroid = None
    if kind == "centroid":
        centroid = lookups.get(spec["lookup"])
        if centroid is None or not centroid.points:
            raise ValueError(f"[location] lookup {spec['lookup']!r} must be a [lookups] table "
                             f"with lat and lon columns")
    bounds = spec.get("bounds")
    return LocationSpec(
        kind=kind, columns=columns, nulls=nulls, required=bool(spec.get("required", False)),
        bounds=tuple(float(part) for part in bounds) if bounds else None,  # type: ignore[arg-type]
        centroid=centroid, centroid_by=tuple(listify(spec.get("by", []))))


def rules(items: list[dict[str, Any]]) -> tuple[CategoryRule, ...]:
    rules = []
    for item in items:
        pattern = item.get("pattern")
        rules.append(CategoryRule(
            category=category(required(item, "category", "[rules]")),
            codes=frozenset(str(code) for code in item.get("codes", [])),
            types=frozenset(item.get("types", [])),
            pattern=re.compile(pattern, re.IGNORECASE) if pattern else None))
    return tuple(rules)


def unit_spec(spec: dict[str, Any]) -> UnitSpec:
    times: dict[str, str] = {name: str(spec[name]) for name in UNIT_TIME_FIELDS
                             if name in spec}
    kind_map = {str(key): str(value) for key, value in spec.get("kind_map", {}).items()}
    default = spec.get("kind_default", "patrol")
    for kind in [*kind_map.values(), default]:
        if kind not in UNIT_KINDS:
            raise ValueError(f"[units] kind {kind!r} is not one of {', '.join(UNIT_KINDS)}")
    return UnitSpec(required(spec, "id", "units"), spec.get("kind"), kind_map, default, times)


def shot_spec(spec: dict[str, Any]) -> ShotSpec:
    type_map = {str(key): str(value) for key, value in spec.get("type_map", {}).items()}
    for value in type_map.values():
        if value not in ALERT_TYPES:
            raise ValueError(f"[shot] type_map value {value!r} is not one of "
                             f"{', '.join(ALERT_TYPES)}")
    rounds = {"single": 1, "multiple": 3, "probable": 1}
    rounds.update({str(key): int(value) for key, value in spec.get("rounds_default", {}).items()})
    return ShotSpec(required(spec, "type", "shot"), type_map, spec.get("rounds"), rounds)

