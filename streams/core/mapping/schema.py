"""The mapping file's schema: every section and key, typed and strict (pure, pydantic v2).

``validate_mapping(raw, text, file)`` checks a parsed TOML document against the models
below and returns a ``MappingFile``; anything wrong raises one ``MappingError`` listing
every problem on its own line as ``file:line: sentence``, with a "did you mean" for a
misspelled section or key. ``SECTIONS`` names every section's model, which the README
test walks so no key goes undocumented.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Collection
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.core.events import CATEGORIES, UNIT_KINDS
from streams.core.feeds import poll_config
from streams.core.mapping.cells import DEFAULT_NULLS
from streams.core.mapping.times import check_format, check_zone

LIFECYCLE_STEPS: Final = ("pending", "dispatched", "en_route", "on_scene", "closed",
                          "cancelled")
"""Steps a call's status column can map to ([status])."""
UNIT_STEPS: Final = ("assigned", "dispatched", "en_route", "on_scene", "cleared")
"""Steps a unit's status column can map to ([unit_status])."""

Category = Literal[
    "noise", "dumping", "loitering", "public_drinking", "atv", "speeding", "theft",
    "narcotics", "other_qol", "violent", "property", "traffic", "medical", "other",
]
UnitKind = Literal[
    "patrol", "cso", "sro", "conditions", "traffic", "mounted", "k9", "supervisor", "task_force",
]
AlertType = Literal["single", "multiple", "probable"]
OnFailure = Literal["null", "reject", "keep"]
assert set(get_args(Category)) == set(CATEGORIES) and set(get_args(UnitKind)) == set(UNIT_KINDS)


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` holds one sentence per mistake."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file, self.problems = file, problems
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        super().__init__(f"mapping {file} has {count}:\n  " + "\n  ".join(problems))


class Section(BaseModel):
    """A table of the file: unknown keys are mistakes, values are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a regular expression ({error})") from None
    return value


Regex = Annotated[str, BeforeValidator(_regex)]
Bounds = Annotated[tuple[float, float, float, float], Field(strict=False)]
"""west, south, east, north (a TOML list; whole numbers are fine)."""
Columns = Annotated[list[str], BeforeValidator(lambda value: [value]
                                               if isinstance(value, str) else value)]


# --- sections -----------------------------------------------------------------------------
class DatasetSection(Section):
    name: str
    kind: Literal["calls", "shots"] = "calls"
    source: str | None = None
    id: str
    nulls: list[str] = Field(default_factory=lambda: list(DEFAULT_NULLS))
    encoding_fallback: str | None = None


class TimeSection(Section):
    formats: Columns = Field(default_factory=lambda: ["iso"])
    timezone: str = "UTC"
    local_as_utc: bool = False

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one time format")
        for fmt in value:
            check_format(fmt)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        check_zone(value)
        return value


class LookupSection(Section):
    file: str
    key: str
    value: str | None = None
    lat: str | None = None
    lon: str | None = None


class FieldTable(Section):
    column: Columns
    separator: str = " "
    skip: list[str] = Field(default_factory=list)
    nulls: list[str] = Field(default_factory=list)
    extract: Regex | None = None
    pattern: Regex | None = None
    on_mismatch: OnFailure = "null"
    lookup: str | None = None
    unknown: OnFailure = "reject"
    required: bool = False


def _table(value: Any) -> Any:
    return {"column": value} if isinstance(value, str | list) else value


FieldValue = Annotated[FieldTable, BeforeValidator(_table)]


class CallFields(Section):
    received_time: str | None = None
    dispatched_time: str | None = None
    en_route_time: str | None = None
    on_scene_time: str | None = None
    closed_time: str | None = None
    updated_time: str | None = None
    call_type_code: FieldValue | None = None
    call_type: FieldValue | None = None
    address: FieldValue | None = None
    cross_street: FieldValue | None = None
    district: FieldValue | None = None
    neighborhood: FieldValue | None = None
    beat: FieldValue | None = None
    status: FieldValue | None = None
    disposition: FieldValue | None = None
    disposition_code: FieldValue | None = None


class ShotFields(Section):
    detected_time: str
    published_time: str | None = None
    address: FieldValue | None = None
    district: FieldValue | None = None
    neighborhood: FieldValue | None = None
    beat: FieldValue | None = None


CALL_TIME_FIELDS: Final = ("received_time", "dispatched_time", "en_route_time",
                           "on_scene_time", "closed_time", "updated_time")
SHOT_TIME_FIELDS: Final = ("detected_time", "published_time")


class PriorityRange(Section):
    min: float
    max: float
    priority: int = Field(ge=1, le=5)


class PrioritySection(Section):
    column: str | None = None
    map: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    ranges: list[PriorityRange] = Field(default_factory=list)
    numeric: bool = False
    offset: int = 0
    default: Annotated[int, Field(ge=1, le=5)] | None = None


class LocationSection(Section):
    format: Literal["latlon", "wkt", "lonlat", "geojson", "centroid", "none"] = "none"
    column: str | None = None
    lat: str | None = None
    lon: str | None = None
    lookup: str | None = None
    by: Columns = Field(default_factory=list)
    required: bool = False
    bounds: Bounds | None = None

    @model_validator(mode="after")
    def _columns_for_format(self) -> LocationSection:
        needs = {"latlon": ("lat", "lon"), "wkt": ("column",), "lonlat": ("column",),
                 "geojson": ("column",), "centroid": ("lookup", "by"), "none": ()}
        missing = [name for name in needs[self.format] if not getattr(self, name)]
        if missing:
            raise ValueError(f"format {self.format!r} needs {' and '.join(missing)}")
        if self.bounds is not None:
            _check_bounds(self.bounds)
        return self


def _check_bounds(bounds: tuple[float, float, float, float]) -> None:
    west, south, east, north = bounds
    if not (west < east and south < north):
        raise ValueError("bounds are [west, south, east, north]: west < east and "
                         "south < north")


class CallSection(Section):
    cancel_values: list[str] = Field(default_factory=list)


class CategoriesSection(Section):
    default: Category = "other"


class RuleSection(Section):
    category: Category
    codes: Annotated[list[str], BeforeValidator(
        lambda values: [str(value) for value in values] if isinstance(values, list)
        else values)] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    pattern: Regex | None = None


class UnitsSection(Section):
    id: str
    kind: str | None = None
    kind_map: dict[str, UnitKind] = Field(default_factory=dict)
    kind_default: UnitKind = "patrol"
    assigned: str | None = None
    dispatched: str | None = None
    en_route: str | None = None
    on_scene: str | None = None
    cleared: str | None = None
    status: str | None = None
    lat: str | None = None
    lon: str | None = None

    @model_validator(mode="after")
    def _position_pair(self) -> UnitsSection:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("a unit position needs both lat and lon")
        return self


class StatusSection(Section):
    pending: list[str] = Field(default_factory=list)
    dispatched: list[str] = Field(default_factory=list)
    en_route: list[str] = Field(default_factory=list)
    on_scene: list[str] = Field(default_factory=list)
    closed: list[str] = Field(default_factory=list)
    cancelled: list[str] = Field(default_factory=list)


class UnitStatusSection(Section):
    assigned: list[str] = Field(default_factory=list)
    dispatched: list[str] = Field(default_factory=list)
    en_route: list[str] = Field(default_factory=list)
    on_scene: list[str] = Field(default_factory=list)
    cleared: list[str] = Field(default_factory=list)


class GroupingSection(Section):
    window_rows: int = Field(default=20_000, ge=1)


class ShotSection(Section):
    type: str
    type_map: dict[str, AlertType] = Field(default_factory=dict)
    rounds: str | None = None
    rounds_default: dict[AlertType, Annotated[int, Field(ge=1, le=500)]] = Field(
        default_factory=dict)


class GunshotSection(Section):
    codes: Annotated[list[str], BeforeValidator(
        lambda values: [str(value) for value in values] if isinstance(values, list)
        else values)] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    pattern: Regex | None = None
    create_alert: bool = False
    alert_type: AlertType = "multiple"


class ServiceAreaSection(Section):
    bounds: Bounds
    margin_km: float = Field(default=0.0, ge=0, strict=False)

    @model_validator(mode="after")
    def _ordered(self) -> ServiceAreaSection:
        _check_bounds(self.bounds)
        return self


# --- the file -----------------------------------------------------------------------------
class _File(Section):
    dataset: DatasetSection
    time: TimeSection = Field(default_factory=TimeSection)
    lookups: dict[str, LookupSection] = Field(default_factory=dict)
    location: LocationSection = Field(default_factory=LocationSection)
    service_area: ServiceAreaSection | None = None
    poll: dict[str, Any] | None = None

    def lookup_names(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(where, lookup name) of every reference to a [lookups] table."""
        refs: list[tuple[tuple[str | int, ...], str]] = []
        fields = getattr(self, "fields")  # noqa: B009 (declared by the subclasses)
        for name in type(fields).model_fields:
            value = getattr(fields, name)
            if isinstance(value, FieldTable) and value.lookup:
                refs.append((("fields", name, "lookup"), value.lookup))
        if self.location.lookup:
            refs.append((("location", "lookup"), self.location.lookup))
        return refs


class CallsFile(_File):
    fields: CallFields = Field(default_factory=CallFields)
    priority: PrioritySection = Field(default_factory=PrioritySection)
    call: CallSection = Field(default_factory=CallSection)
    categories: CategoriesSection = Field(default_factory=CategoriesSection)
    rules: list[RuleSection] = Field(default_factory=list)
    units: UnitsSection | None = None
    status: StatusSection | None = None
    unit_status: UnitStatusSection | None = None
    grouping: GroupingSection = Field(default_factory=GroupingSection)
    gunshot: GunshotSection | None = None


class ShotsFile(_File):
    fields: ShotFields
    shot: ShotSection


MappingFile = CallsFile | ShotsFile

SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "dataset": DatasetSection, "time": TimeSection, "lookups.NAME": LookupSection,
    "fields": CallFields, "fields (shots)": ShotFields, "fields.NAME (a table)": FieldTable,
    "priority": PrioritySection, "priority.ranges": PriorityRange,
    "location": LocationSection, "service_area": ServiceAreaSection, "call": CallSection,
    "categories": CategoriesSection, "rules": RuleSection, "units": UnitsSection,
    "status": StatusSection, "unit_status": UnitStatusSection, "grouping": GroupingSection,
    "shot": ShotSection, "gunshot": GunshotSection,
}
"""Every section's model (the README test checks each key is documented)."""


# --- validation and its messages ----------------------------------------------------------
def validate_mapping(raw: dict[str, Any], text: str | None, file: str,
                     tables: Collection[str] = ()) -> MappingFile:
    """The document as a typed ``MappingFile``; MappingError lists every mistake.

    ``tables`` names lookup tables loaded apart from the file's [lookups] (tests)."""
    dataset = raw.get("dataset")
    kind = dataset.get("kind", "calls") if isinstance(dataset, dict) else "calls"
    model: type[CallsFile] | type[ShotsFile] = ShotsFile if kind == "shots" else CallsFile
    problems: list[str] = []
    parsed: MappingFile | None = None
    try:
        parsed = model.model_validate(raw)
    except ValidationError as error:
        problems = [_problem(model, item, text, file) for item in error.errors()]
    if parsed is not None:
        problems += [_locate(text, file, where, sentence)
                     for where, sentence in cross_checks(parsed, tables)]
        if parsed.poll is not None:
            try:
                poll_config(parsed.poll, default_feed="feed")
            except ValueError as error:
                key = re.search(r"\[poll\] (?:unknown key )?'?(\w+)", str(error))
                where = ("poll", key.group(1)) if key else ("poll",)
                problems.append(_locate(text, file, where, str(error)))
    if problems:
        raise MappingError(file, list(dict.fromkeys(problems)))
    assert parsed is not None
    return parsed


def cross_checks(parsed: MappingFile, tables: Collection[str] = (),
                 ) -> list[tuple[tuple[str | int, ...], str]]:
    """Mistakes between sections: a missing lookup table, a status value listed twice."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for where, name in parsed.lookup_names():
        if name not in parsed.lookups and name not in tables:
            known = ", ".join(parsed.lookups) or "none"
            found.append((where, f"[{where[0]}] lookup {name!r} is not a [lookups] table "
                                 f"(tables: {known}){_suggest(name, list(parsed.lookups))}"))
    if isinstance(parsed, CallsFile):
        for section in ("status", "unit_status"):
            table = getattr(parsed, section)
            if table is not None:
                found += _twice(section, table)
        if parsed.status is not None and parsed.fields.status is None:
            found.append((("status",), "[status] maps the values of [fields] status, which "
                                       "is not set: name the status column there"))
        if parsed.unit_status is not None and (parsed.units is None
                                               or parsed.units.status is None):
            found.append((("unit_status",), "[unit_status] needs [units] status (the "
                                            "column with each unit's status)"))
    return found


def _twice(section: str, table: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
    seen: dict[str, str] = {}
    found: list[tuple[tuple[str | int, ...], str]] = []
    for step in type(table).model_fields:
        for value in getattr(table, step):
            if value in seen and seen[value] != step:
                found.append(((section, step), f"[{section}] {value!r} is listed under both "
                                               f"{seen[value]} and {step}"))
            seen.setdefault(value, step)
    return found


def _problem(model: type[BaseModel], item: Any, text: str | None, file: str) -> str:
    loc = tuple(part for part in item["loc"] if not _is_validator_tag(part))
    kind, message = item["type"], item["msg"].removeprefix("Value error, ")
    where = _where(loc)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        key = str(loc[-1])
        if len(loc) == 1:
            sentence = f"unknown section [{key}]{_suggest(key, allowed, '[', ']')}"
            if key in _OTHER_KIND_SECTIONS.get(model, ()):
                sentence = f"[{key}] is not a section of a {_KIND[model]} mapping"
        else:
            sentence = f"{_where(loc[:-1])} unknown key {key!r}{_suggest(key, allowed)}"
    elif kind == "missing":
        sentence = f"{_where(loc[:-1]) or 'the file'} needs {loc[-1]!r}" if len(loc) > 1 \
            else f"the file needs a [{loc[0]}] section"
    else:
        sentence = f"{where}: {message} (got {_short(item.get('input'))})"
    return _locate(text, file, loc, sentence)


_KIND: Final = {CallsFile: "calls", ShotsFile: "shots"}
_OTHER_KIND_SECTIONS: Final = {
    CallsFile: ("shot",),
    ShotsFile: ("priority", "call", "categories", "rules", "units", "status", "unit_status",
                "grouping", "gunshot"),
}


def _is_validator_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return ""
    head, rest = loc[0], [str(part) for part in loc[1:]]
    return f"[{head}]" + (f" {'.'.join(rest)}" if rest else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(key: str, allowed: list[str], left: str = "'", right: str = "'") -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean {left}{close[0]}{right}?" if close else \
        (f"; expected one of {', '.join(sorted(allowed))}" if allowed else "")


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` points, walking the models along the path."""
    current: Any = model
    skip = False
    for part in loc:
        if skip:
            skip = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current, skip = _inner(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner(annotation: Any) -> tuple[Any, bool]:
    """(the model inside an annotation, whether a list index / dict key comes first)."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if origin in (Union, types.UnionType) or origin is Annotated:
        for arg in get_args(annotation):
            found, skip = _inner(arg)
            if found is not None:
                return found, skip
        return None, False
    if origin in (list, dict):
        found, _ = _inner(get_args(annotation)[-1])
        return found, True
    return None, False


def _locate(text: str | None, file: str, loc: tuple[Any, ...], sentence: str) -> str:
    line = line_of(text, loc) if text is not None else None
    return f"{file}:{line}: {sentence}" if line else f"{file}: {sentence}"


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) a section/key path is written on, or its section's line."""
    lines = text.splitlines()
    start, end, depth = _section_span(lines, loc)
    if start is None:
        return None
    found = start + 1 if start >= 0 else None
    for part in loc[depth:]:
        if isinstance(part, int):
            continue
        key = re.compile(rf'(^|[\s{{,])"?{re.escape(str(part))}"?\s*=')
        for number in range(max(start, 0), end):
            if key.search(lines[number]):
                found, start = number + 1, number
                break
        else:
            break
    return found


def _section_span(lines: list[str], loc: tuple[Any, ...]) -> tuple[int | None, int, int]:
    """(header line index, end index, loc parts the header covers) of the table loc is in;
    header index -1 for keys before any header."""
    headers = [(index, match.group(2).replace(" ", ""), bool(match.group(1)))
               for index, line in enumerate(lines)
               if (match := re.match(r"^\s*(\[)?\[\s*([^\]]+?)\s*\]\]?", line))]
    for depth in range(min(len(loc), 3), 0, -1):
        names = [str(part) for part in loc[:depth] if not isinstance(part, int)]
        wanted = ".".join(names)
        matches = [index for index, name, _ in headers if name == wanted]
        if not matches:
            continue
        ordinal = next((part for part in loc[:depth + 1] if isinstance(part, int)), 0)
        index = matches[min(ordinal, len(matches) - 1)]
        following = [other for other, _, _ in headers if other > index]
        return index, following[0] if following else len(lines), depth
    first_header = headers[0][0] if headers else len(lines)
    return -1, first_header, 0
