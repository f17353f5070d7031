"""A validated ``MappingFile`` -> the specs the engine runs on (pure).

The schema (``streams.core.mapping.schema``) has already refused every unknown or
ill-typed key; what is left here is compiling regexes, joining nulls and attaching the
loaded lookup tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from streams.core.mapping.fields import CategoryRule, FieldSpec, PriorityMap
from streams.core.mapping.location import LocationSpec
from streams.core.mapping.lookups import Lookup
from streams.core.mapping.schema import (
    CallFields,
    FieldTable,
    GunshotSection,
    LocationSection,
    PrioritySection,
    RuleSection,
    ShotFields,
    ShotSection,
    StatusSection,
    UnitsSection,
    UnitStatusSection,
)

UNIT_TIME_FIELDS: Final = ("assigned", "dispatched", "en_route", "on_scene", "cleared")
DEFAULT_ROUNDS: Final = {"single": 1, "multiple": 3, "probable": 1}


@dataclass(frozen=True)
class UnitSpec:
    """Columns of a one-row-per-unit feed: unit id, kind, per-unit times and status."""

    id_column: str
    kind_column: str | None
    kind_map: dict[str, str]
    kind_default: str
    times: dict[str, str]  # UnitTimes field -> column
    status_column: str | None = None
    steps: dict[str, str] | None = None  # unit status value -> unit step
    position: tuple[str, str] | None = None  # (lat, lon) columns of the unit's own fix


@dataclass(frozen=True)
class ShotSpec:
    """Columns of a gunshot feed: type (mapped), rounds, per-type default rounds."""

    type_column: str
    type_map: dict[str, str]
    rounds_column: str | None
    default_rounds: dict[str, int]


@dataclass(frozen=True)
class GunshotRule:
    """Which CAD calls the gunshot system opened, and what to do with them."""

    codes: frozenset[str]
    types: frozenset[str]
    pattern: re.Pattern[str] | None
    create_alert: bool
    alert_type: str

    def matches(self, code: str | None, description: str | None) -> bool:
        if code is not None and code in self.codes:
            return True
        if description is not None and description in self.types:
            return True
        return self.pattern is not None and any(
            self.pattern.search(text) for text in (code, description) if text)


def field_specs(fields: CallFields | ShotFields, nulls: frozenset[str],
                lookups: dict[str, Lookup]) -> tuple[dict[str, FieldSpec], dict[str, str]]:
    """(record field -> spec, time field -> column) of the [fields] table."""
    specs: dict[str, FieldSpec] = {}
    times: dict[str, str] = {}
    for name in type(fields).model_fields:
        value = getattr(fields, name)
        if value is None:
            continue
        if isinstance(value, FieldTable):
            specs[name] = field_spec(name, value, nulls, lookups)
        else:
            times[name] = value
    return specs, times


def field_spec(name: str, table: FieldTable, nulls: frozenset[str],
               lookups: dict[str, Lookup]) -> FieldSpec:
    return FieldSpec(
        name=name, columns=tuple(table.column), nulls=nulls | frozenset(table.nulls),
        skip=frozenset(table.skip), separator=table.separator,
        extract=re.compile(table.extract) if table.extract else None,
        pattern=re.compile(table.pattern) if table.pattern else None,
        on_mismatch=table.on_mismatch,
        lookup=lookups[table.lookup] if table.lookup else None, unknown=table.unknown,
        required=table.required)


def priority_map(spec: PrioritySection, nulls: frozenset[str]) -> PriorityMap:
    ranges = tuple((item.min, item.max, item.priority) for item in spec.ranges)
    return PriorityMap(spec.column, dict(spec.map), ranges, spec.numeric, spec.offset,
                       spec.default, nulls)


def location_spec(spec: LocationSection, nulls: frozenset[str],
                  lookups: dict[str, Lookup]) -> LocationSpec:
    columns = (spec.lat, spec.lon) if spec.format == "latlon" else \
        (spec.column,) if spec.column else ()
    centroid = None
    if spec.format == "centroid":
        centroid = lookups.get(spec.lookup or "")
        if centroid is None or not centroid.points:
            raise ValueError(f"[location] lookup {spec.lookup!r} must be a [lookups] table "
                             f"with lat and lon columns")
    return LocationSpec(
        kind=spec.format, columns=tuple(column for column in columns if column), nulls=nulls,
        required=spec.required, bounds=spec.bounds, centroid=centroid,
        centroid_by=tuple(spec.by))


def rules(items: list[RuleSection]) -> tuple[CategoryRule, ...]:
    return tuple(CategoryRule(
        category=item.category, codes=frozenset(item.codes), types=frozenset(item.types),
        pattern=re.compile(item.pattern, re.IGNORECASE) if item.pattern else None)
        for item in items)


def unit_spec(spec: UnitsSection, statuses: UnitStatusSection | None) -> UnitSpec:
    times = {name: getattr(spec, name) for name in UNIT_TIME_FIELDS
             if getattr(spec, name) is not None}
    return UnitSpec(spec.id, spec.kind, dict(spec.kind_map), spec.kind_default, times,
                    spec.status, steps_of(statuses) if statuses is not None else None,
                    (spec.lat, spec.lon) if spec.lat and spec.lon else None)


def steps_of(table: StatusSection | UnitStatusSection) -> dict[str, str]:
    """Status value -> step, from a table of step -> values."""
    return {value: step for step in type(table).model_fields for value in getattr(table, step)}


def shot_spec(spec: ShotSection) -> ShotSpec:
    rounds: dict[str, int] = {**DEFAULT_ROUNDS}
    rounds.update({str(name): count for name, count in spec.rounds_default.items()})
    return ShotSpec(spec.type, dict(spec.type_map), spec.rounds, rounds)


def gunshot_rule(spec: GunshotSection) -> GunshotRule:
    return GunshotRule(frozenset(spec.codes), frozenset(spec.types),
                       re.compile(spec.pattern, re.IGNORECASE) if spec.pattern else None,
                       spec.create_alert, spec.alert_type)
