"""Mapping files: turn any agency's rows into the project's records and events.

A mapping file (TOML, documented in ``streams/mappings/README.md``) names the columns of
one feed, how its times are written, which lookup tables explain its codes, how call
types become categories, how priorities become 1-5 and where a call is. ``Mapping.load``
reads it (and its lookup tables) once; ``Mapping.records`` then turns rows (dicts of
strings, from a CSV export or a JSON API) into ``CallRecord``/``ShotRecord`` values, or
``Rejected`` rows with a reason; ``record_events`` turns a record into lifecycle events.

Streaming and memory: feeds with one row per unit are grouped into calls in a bounded
window. A call stays open while its rows keep coming; once ``window_rows`` rows have
passed since its last row it is complete and emitted. A row of a call that was already
emitted is rejected as ``late_row`` (the export violated the window). Memory is therefore
bounded by the window, never by the file.

Every rejection reason starts with a short code followed by ``": "`` and a sentence,
e.g. ``"bad_time: Received DtTm '13/45/2019' is not a time like %m/%d/%Y ..."``; the code is
what summaries count by.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import tomllib
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.events import (
    ALERT_TYPES,
    CATEGORIES,
    UNIT_KINDS,
    CallEvent,
    CallKind,
    Event,
    ShotAlert,
    UnitEvent,
)

log = logging.getLogger(__name__)

REJECT_CODES: Final = (
    "only_id", "missing_id", "missing_field", "bad_time", "impossible_time", "bad_code",
    "unknown_code", "bad_priority", "missing_location", "bad_location", "out_of_bounds",
    "encoding", "truncated", "malformed", "duplicate", "late_row",
)
"""Every reason code ``Rejected.reason`` can start with."""

DEFAULT_NULLS: Final = ("", "null", "NULL", "None", "NaN")
DEFAULT_WINDOW_ROWS: Final = 20_000
UNIT_TIME_FIELDS: Final = ("assigned", "dispatched", "en_route", "on_scene", "cleared")
CALL_TIME_FIELDS: Final = ("received_time", "closed_time")
SHOT_TIME_FIELDS: Final = ("detected_time", "published_time")
TEXT_LIMITS: Final = {"call_type_code": 40, "call_type": 200, "address": 200, "cross_street": 200,
                      "district": 40, "neighborhood": 60, "beat": 20, "disposition": 200}
ID_LIMIT: Final = 64

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")
_BAD_TEXT = re.compile("[\udc80-\udcff\ufeff]")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_WKT_POINT = re.compile(
    rf"^\s*POINT\s*\(\s*({_NUMBER.pattern})\s+({_NUMBER.pattern})\s*\)\s*$", re.IGNORECASE)
_PAIR = re.compile(
    rf"^\s*[\[(]?\s*({_NUMBER.pattern})\s*[,\s]\s*({_NUMBER.pattern})\s*[\])]?\s*$")

Row = MappingABC[str, Any]
Builder = Callable[[tuple[Any, ...]], datetime]


# --- records ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnitTimes:
    """One unit's timestamps on one call (UTC; None where the feed has none)."""

    unit_id: str
    unit_kind: str = "patrol"
    assigned: datetime | None = None
    dispatched: datetime | None = None
    en_route: datetime | None = None
    on_scene: datetime | None = None
    cleared: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call for service as the feed describes it, every time in UTC."""

    call_id: str
    received_time: datetime
    call_type_code: str | None
    call_type: str | None
    category: str
    priority: int
    address: str | None
    lat: float | None
    lon: float | None
    district: str | None
    neighborhood: str | None
    beat: str | None
    status: str | None
    disposition: str | None
    closed_time: datetime | None
    units: tuple[UnitTimes, ...]
    source: str
    file: str
    row: int
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class ShotRecord:
    """One gunshot detection, the fields of ``ShotAlert``."""

    alert_id: str
    alert_type: str
    rounds: int
    lat: float
    lon: float
    address: str | None
    district: str | None
    neighborhood: str | None
    beat: str | None
    detected_time: datetime
    published_time: datetime | None
    source: str
    file: str
    row: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that cannot become a record, with why (``code: sentence``) and the raw row."""

    file: str
    row: int
    reason: str
    raw: str

    @property
    def code(self) -> str:
        """The reason code (``bad_time``, ``duplicate``...) summaries count by."""
        return self.reason.split(":", 1)[0]


Record = CallRecord | ShotRecord


class RowError(ValueError):
    """A row cannot be mapped; ``reason`` is ``code: sentence``."""

    def __init__(self, code: str, sentence: str) -> None:
        super().__init__(f"{code}: {sentence}")
        self.reason = f"{code}: {sentence}"


# --- small helpers ------------------------------------------------------------------------

def safe_id(value: str) -> str:
    """An id that fits the event model's Id pattern: unsafe characters become '_'."""
    cleaned = _ID_UNSAFE.sub("_", value.strip())
    if len(cleaned) > ID_LIMIT:
        digest = hashlib.sha1(cleaned.encode()).hexdigest()[:16]
        cleaned = f"{cleaned[:ID_LIMIT - 17]}~{digest}".replace("~", "-")
    return cleaned


def shard_of(value: Any, count: int) -> int:
    """Which of ``count`` shards a row with this id belongs to (stable across processes)."""
    if type(value) is not str or not value.strip():
        return 0
    return zlib.crc32(value.strip().encode("utf-8", "surrogateescape")) % count


def raw_text(row: Row) -> str:
    """The row as one CSV line (what the dead-letter stream keeps as payload)."""
    out = io.StringIO()
    values = [_as_text(value) or "" for key, value in row.items() if key is not None]
    extra = row.get(None)  # type: ignore[call-overload]
    if isinstance(extra, list):
        values.extend(str(value) for value in extra)
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue().encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _truncate(value: str | None, name: str) -> str | None:
    limit = TEXT_LIMITS.get(name)
    if value is None or limit is None or len(value) <= limit:
        return value
    return value[:limit]


# --- times --------------------------------------------------------------------------------

_DIRECTIVES: Final = {
    "Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d{2})", "m": r"(?P<m>\d{1,2})",
    "d": r"(?P<d>\d{1,2})", "H": r"(?P<H>\d{1,2})", "I": r"(?P<I>\d{1,2})",
    "M": r"(?P<M>\d{1,2})", "S": r"(?P<S>\d{1,2})", "f": r"(?P<f>\d{1,6})",
    "p": r"(?P<p>[AaPp][Mm])", "z": r"(?P<z>Z|[+-]\d{2}:?\d{2})", "%": "%",
}


def _format_regex(fmt: str) -> re.Pattern[str]:
    """Compile a strptime-style format to a regex with named groups (a fast strptime)."""
    parts, index = [], 0
    while index < len(fmt):
        char = fmt[index]
        if char == "%" and index + 1 < len(fmt):
            directive = fmt[index + 1]
            if directive not in _DIRECTIVES:
                raise ValueError(f"time format {fmt!r}: %{directive} is not supported; use "
                                 f"%Y %y %m %d %H %I %M %S %f %p %z, or 'iso'/'epoch'")
            parts.append(_DIRECTIVES[directive])
            index += 2
        else:
            parts.append(r"\s+" if char == " " else re.escape(char))
            index += 1
    return re.compile("^\\s*" + "".join(parts) + "\\s*$")


_PM: Final = frozenset({"PM", "pm", "Pm", "pM"})


def _builder(pattern: re.Pattern[str], zone: ZoneInfo, local_as_utc: bool,
             offsets: dict[tuple[int, int, int, int], timedelta]) -> Builder:
    """A function turning ``match.groups()`` into a UTC datetime, for one compiled format.

    Local times are converted with the zone's offset cached per local hour (offsets only
    change on the hour), which is several times cheaper than zoneinfo per value.
    """
    at = {name: index - 1 for name, index in pattern.groupindex.items()}
    year4, year2, month, day = at.get("Y"), at.get("y"), at.get("m"), at.get("d")
    hour24, hour12, meridiem = at.get("H"), at.get("I"), at.get("p")
    minute, second, fraction, stamp = at.get("M"), at.get("S"), at.get("f"), at.get("z")

    def build(groups: tuple[Any, ...]) -> datetime:
        year = int(groups[year4]) if year4 is not None else \
            2000 + int(groups[year2]) if year2 is not None else 2000
        if hour12 is not None:
            hour = int(groups[hour12])
            if not 1 <= hour <= 12:
                raise ValueError("12-hour clock hour out of range")
            hour %= 12
            if meridiem is not None and groups[meridiem] in _PM:
                hour += 12
        else:
            hour = int(groups[hour24]) if hour24 is not None else 0
        months = int(groups[month]) if month is not None else 1
        days = int(groups[day]) if day is not None else 1
        value = datetime(
            year, months, days, hour, int(groups[minute]) if minute is not None else 0,
            int(groups[second]) if second is not None else 0,
            int(groups[fraction].ljust(6, "0")) if fraction is not None else 0, tzinfo=UTC)
        if stamp is not None and not local_as_utc:
            return value - _offset(groups[stamp])
        key = (year, months, days, hour)
        offset = offsets.get(key)
        if offset is None:
            offset = value.replace(tzinfo=zone).utcoffset() or timedelta(0)
            if len(offsets) > 10_000:  # a bound, not a working-set size: refills are cheap
                offsets.clear()
            offsets[key] = offset
        return value - offset

    return build


def _offset(text: str) -> timedelta:
    if text == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


@dataclass(frozen=True)
class TimeParser:
    """Parses a feed's time strings to UTC datetimes.

    ``formats`` are tried in order: strptime-style patterns, ``iso``, ``epoch`` (seconds)
    or ``epoch_ms``. A time without an offset is local time in ``zone``. With
    ``local_as_utc`` the feed wrote local wall-clock time but stamped it UTC (``Z`` or
    ``+00:00``, or epoch of the wall clock): the offset is dropped and the wall clock is
    read in ``zone``.
    """

    formats: tuple[str, ...]
    zone: ZoneInfo
    local_as_utc: bool = False
    _compiled: tuple[tuple[str, re.Pattern[str] | None, Builder | None], ...] = field(
        default=(), repr=False)
    _cache: dict[str, datetime] = field(default_factory=dict, repr=False, compare=False)
    _offsets: dict[tuple[int, int, int, int], timedelta] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = []
        for fmt in self.formats:
            pattern = None if fmt in ("iso", "epoch", "epoch_ms") else _format_regex(fmt)
            build = _builder(pattern, self.zone, self.local_as_utc, self._offsets) \
                if pattern else None
            compiled.append((fmt, pattern, build))
        if not compiled:
            raise ValueError("[time] formats is empty; name at least one time format")
        object.__setattr__(self, "_compiled", tuple(compiled))

    def parse(self, text: str) -> datetime:
        """UTC datetime of ``text``; ValueError naming the expected formats."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        value = self._parse(text)
        if len(self._cache) > 50_000:  # rows of one call repeat times; keep it bounded
            self._cache.clear()
        self._cache[text] = value
        return value

    def _parse(self, text: str) -> datetime:
        for fmt, pattern, build in self._compiled:
            try:
                value = self._try(text, fmt, pattern, build)
            except (ValueError, OverflowError):
                continue
            if value is not None:
                return value
        raise ValueError(f"{text!r} is not a time like {' or '.join(self.formats)}")

    def _try(self, text: str, fmt: str, pattern: re.Pattern[str] | None,
             build: Builder | None) -> datetime | None:
        if fmt == "iso":
            return self._zoned(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
        if fmt in ("epoch", "epoch_ms"):
            seconds = float(text) / (1000 if fmt == "epoch_ms" else 1)
            stamp = datetime.fromtimestamp(seconds, UTC)
            return self._zoned(stamp)
        assert pattern is not None and build is not None
        match = pattern.match(text)
        if match is None:
            return None
        return build(match.groups())

    def _zoned(self, value: datetime) -> datetime:
        if value.tzinfo is not None and self.local_as_utc:
            value = value.replace(tzinfo=None) + (value.utcoffset() or timedelta(0))
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return value.replace(tzinfo=self.zone).astimezone(UTC)


# --- lookup tables --------------------------------------------------------------------------

def read_text_table(path: Path) -> list[dict[str, str]]:
    """Rows of a small CSV lookup table: a UTF-8 BOM is dropped, Latin-1 is the fallback."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("lookup table %s is not UTF-8; reading it as Latin-1", path)
        text = data.decode("latin-1")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [{(key or "").strip(): (value or "").strip() for key, value in row.items()
             if key is not None} for row in reader]


@dataclass(frozen=True)
class Lookup:
    """A code table: key -> value, or key -> (lat, lon) for a centroid table."""

    name: str
    values: dict[str, str]
    points: dict[str, tuple[float, float]]
    conflicts: tuple[str, ...] = ()


def load_lookup(name: str, spec: dict[str, Any], path: Path) -> Lookup:
    """Load one ``[lookups.NAME]`` table from ``path``."""
    rows = read_text_table(path)
    key = _required(spec, "key", f"lookups.{name}")
    if rows and key not in rows[0]:
        raise ValueError(f"lookups.{name}: {path} has no column {key!r} "
                         f"(columns: {', '.join(rows[0])})")
    values: dict[str, str] = {}
    points: dict[str, tuple[float, float]] = {}
    conflicts: list[str] = []
    value_column = spec.get("value")
    for row in rows:
        code = row.get(key, "")
        if not code:
            continue
        if value_column:
            value = row.get(value_column, "")
            if code in values and values[code] != value:
                conflicts.append(f"{code}: {values[code]!r} kept, {value!r} ignored")
                continue
            values.setdefault(code, value)
        if "lat" in spec and "lon" in spec:
            try:
                points.setdefault(code, (float(row[spec["lat"]]), float(row[spec["lon"]])))
            except (KeyError, ValueError):
                continue
    for conflict in conflicts:
        log.warning("lookup %s has two values for %s", name, conflict)
    return Lookup(name, values, points, tuple(conflicts))


def _required(spec: dict[str, Any], name: str, where: str) -> Any:
    if name not in spec:
        raise ValueError(f"mapping [{where}] needs {name!r}")
    return spec[name]


# --- field specs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """How one record field is read: columns, nulls, extraction, lookup, checks."""

    name: str
    columns: tuple[str, ...]
    nulls: frozenset[str]
    skip: frozenset[str] = frozenset()
    separator: str = " "
    extract: re.Pattern[str] | None = None
    pattern: re.Pattern[str] | None = None
    lookup: Lookup | None = None
    unknown: str = "reject"  # reject | null | keep
    required: bool = False

    def __post_init__(self) -> None:
        simple = len(self.columns) == 1 and self.extract is None and self.pattern is None \
            and self.lookup is None and not self.required
        object.__setattr__(self, "_simple", self.columns[0] if simple else None)
        object.__setattr__(self, "_limit", TEXT_LIMITS.get(self.name, 10_000))

    def read(self, row: Row) -> str | None:
        """The field's value (None when null); RowError on junk or an unknown code."""
        column = self._simple  # type: ignore[attr-defined]
        if column is not None:  # a plain column: the common case, kept short
            value = row.get(column)
            if type(value) is str:
                value = value.strip()
                if value in self.nulls:
                    return None
                return value if len(value) <= self._limit else value[:self._limit]  # type: ignore[attr-defined]
            return _cell(row, column, self.nulls)
        return _truncate(self._read(row), self.name)

    def _read(self, row: Row) -> str | None:
        if len(self.columns) == 1:
            value = _cell(row, self.columns[0], self.nulls)
        else:
            parts = [_cell(row, column, self.nulls) for column in self.columns]
            joined = self.separator.join(part for part in parts
                                         if part is not None and part not in self.skip)
            value = " ".join(joined.split()) or None
        if value is None:
            if self.required:
                raise RowError("missing_field", f"{self._where()} is empty")
            return None
        if self.extract is not None:
            match = self.extract.search(value)
            if match is None:
                raise RowError("bad_code", f"{self._where()} {value!r} does not match "
                                           f"{self.extract.pattern!r}")
            value = match.group(1) if match.groups() else match.group(0)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise RowError("bad_code", f"{self._where()} {value!r} is not a valid code "
                                       f"(expected {self.pattern.pattern!r})")
        if self.lookup is not None:
            return self._look_up(value)
        return value

    def _look_up(self, code: str) -> str | None:
        assert self.lookup is not None
        found = self.lookup.values.get(code)
        if found is not None:
            return found or code
        if self.unknown == "keep":
            return code
        if self.unknown == "null":
            return None
        raise RowError("unknown_code", f"{self._where()} {code!r} is not in lookup "
                                       f"{self.lookup.name!r}")

    def _where(self) -> str:
        return "+".join(self.columns)


def _cell(row: Row, column: str, nulls: frozenset[str]) -> str | None:
    value = row.get(column)
    if type(value) is not str:
        value = _as_text(value)
        if value is None:
            return None
    value = value.strip()
    return None if value in nulls else value


# --- rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CategoryRule:
    """Call types -> a category: exact codes, exact descriptions, or a regex."""

    category: str
    codes: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    def matches(self, code: str | None, description: str | None) -> bool:
        if code is not None and code in self.codes:
            return True
        if description is not None and description in self.types:
            return True
        if self.pattern is not None:
            return any(self.pattern.search(text) for text in (code, description) if text)
        return False


@dataclass(frozen=True)
class PriorityMap:
    """A feed's priority value -> 1-5: exact map, then ranges, then number + offset."""

    column: str | None
    values: dict[str, int]
    ranges: tuple[tuple[float, float, int], ...]
    numeric: bool
    offset: int
    default: int | None
    nulls: frozenset[str]

    def read(self, row: Row) -> int:
        raw = _cell(row, self.column, self.nulls) if self.column else None
        if raw is None:
            if self.default is None:
                raise RowError("missing_field", f"priority column {self.column} is empty")
            return self.default
        if raw in self.values:
            return self.values[raw]
        try:
            number = float(raw)
        except ValueError:
            raise RowError("bad_priority", f"priority {raw!r} is not in the priority map "
                                           f"({', '.join(self.values) or 'numbers'})") from None
        for low, high, priority in self.ranges:
            if low <= number <= high:
                return priority
        if self.numeric:
            return min(5, max(1, int(number) + self.offset))
        raise RowError("bad_priority", f"priority {raw!r} is not in the priority map")


# --- location -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocationSpec:
    """Where a record is: lat/lon columns, WKT, ``[lon, lat]``, GeoJSON, or a centroid."""

    kind: str  # latlon | wkt | lonlat | geojson | centroid | none
    columns: tuple[str, ...]
    nulls: frozenset[str]
    required: bool
    bounds: tuple[float, float, float, float] | None
    centroid: Lookup | None = None
    centroid_by: tuple[str, ...] = ()

    def read(self, row: Row, fields: dict[str, Any]) -> tuple[float | None, float | None]:
        point = self._point(row, fields)
        if point is None:
            if self.required:
                raise RowError("missing_location", f"no location in {', '.join(self.columns)}")
            return None, None
        lat, lon = point
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RowError("bad_location", f"position lat {lat}, lon {lon} is not on Earth")
        if lat == 0 and lon == 0:
            raise RowError("missing_location", "position 0,0 is a missing fix")
        if self.bounds is not None:
            west, south, east, north = self.bounds
            if not (west <= lon <= east and south <= lat <= north):
                raise RowError("out_of_bounds", f"position lat {lat}, lon {lon} is outside "
                                                f"the mapping's bounds {list(self.bounds)}")
        return lat, lon

    def _point(self, row: Row, fields: dict[str, Any]) -> tuple[float, float] | None:
        if self.kind == "none":
            return None
        if self.kind == "centroid":
            return self._centroid(fields)
        if self.kind == "latlon":
            lat_text = _cell(row, self.columns[0], self.nulls)
            lon_text = _cell(row, self.columns[1], self.nulls)
            if lat_text is None or lon_text is None:
                return None
            return _float(lat_text, self.columns[0]), _float(lon_text, self.columns[1])
        text = _cell(row, self.columns[0], self.nulls)
        if text is None:
            return None
        if self.kind == "wkt":
            return _parse_wkt(text)
        if self.kind == "lonlat":
            return _parse_pair(text)
        return _parse_geojson(text)

    def _centroid(self, fields: dict[str, Any]) -> tuple[float, float] | None:
        assert self.centroid is not None
        for name in self.centroid_by:
            key = fields.get(name)
            if key is not None and key in self.centroid.points:
                return self.centroid.points[key]
        return None


def _float(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RowError("bad_location", f"{column} {text!r} is not a number") from None


def _parse_wkt(text: str) -> tuple[float, float]:
    match = _WKT_POINT.match(text)
    if match is None:
        raise RowError("bad_location", f"{text[:60]!r} is not WKT 'POINT (lon lat)'")
    return float(match.group(2)), float(match.group(1))


def _parse_pair(text: str) -> tuple[float, float]:
    match = _PAIR.match(text)
    if match is None:
        raise RowError("bad_location", f"{text[:60]!r} is not a '[lon, lat]' pair")
    return float(match.group(2)), float(match.group(1))


def _parse_geojson(text: str) -> tuple[float, float]:
    try:
        geometry = json.loads(text)
    except ValueError:
        raise RowError("bad_location", f"{text[:60]!r} is not GeoJSON") from None
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if isinstance(geometry, dict) and "coordinates" in geometry:
        coordinates = geometry["coordinates"]
    elif isinstance(geometry, dict) and {"latitude", "longitude"} <= set(geometry):
        coordinates = [geometry["longitude"], geometry["latitude"]]  # Socrata location
    else:
        raise RowError("bad_location", f"{text[:60]!r} is not a GeoJSON Point")
    try:
        lon, lat = float(coordinates[0]), float(coordinates[1])
    except (TypeError, ValueError, IndexError):
        raise RowError("bad_location", f"{text[:60]!r} has no numeric coordinates") from None
    return lat, lon


# --- the mapping ----------------------------------------------------------------------------

@dataclass
class _Group:
    """Rows of one call seen so far (one-row-per-unit feeds)."""

    record: CallRecord
    units: list[UnitTimes]
    unit_rows: dict[str, int]
    last_row: int


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


@dataclass(frozen=True)
class Mapping:
    """A loaded mapping file. Build with ``Mapping.load(path, base_dir)``."""

    name: str
    kind: str  # calls | shots
    source: str
    id_column: str
    encoding_fallback: str | None
    times: TimeParser
    nulls: frozenset[str]
    fields: dict[str, FieldSpec]
    time_columns: dict[str, str]
    priority: PriorityMap | None
    location: LocationSpec
    rules: tuple[CategoryRule, ...]
    default_category: str
    cancel_values: frozenset[str]
    units: UnitSpec | None
    shot: ShotSpec | None
    window_rows: int
    lookups: dict[str, Lookup]
    raw: dict[str, Any] = field(repr=False)
    path: Path | None = None
    _categories: dict[tuple[str | None, str | None], str] = field(
        default_factory=dict, repr=False, compare=False)

    # --- loading ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, base_dir: Path) -> Mapping:
        """Read a mapping file; lookup files resolve against ``base_dir``, then the file."""
        with path.open("rb") as handle:
            try:
                raw = tomllib.load(handle)
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"mapping {path} is not valid TOML: {error}") from None
        lookups = {name: load_lookup(name, spec, _resolve(spec, name, base_dir, path.parent))
                   for name, spec in raw.get("lookups", {}).items()}
        return cls.from_dict(raw, lookups, path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], lookups: dict[str, Lookup],
                  path: Path | None = None) -> Mapping:
        """Build a mapping from parsed TOML and loaded lookups (tests use this directly)."""
        dataset = raw.get("dataset", {})
        kind = dataset.get("kind", "calls")
        if kind not in ("calls", "shots"):
            raise ValueError(f"[dataset] kind must be 'calls' or 'shots', not {kind!r}")
        nulls = frozenset(dataset.get("nulls", DEFAULT_NULLS))
        time_spec = raw.get("time", {})
        fields, time_columns = _field_specs(raw.get("fields", {}), nulls, lookups, kind)
        return cls(
            name=_required(dataset, "name", "dataset"), kind=kind,
            source=dataset.get("source", dataset["name"]),
            id_column=_required(dataset, "id", "dataset"),
            encoding_fallback=dataset.get("encoding_fallback"),
            times=TimeParser(tuple(_listify(time_spec.get("formats", ["iso"]))),
                             _zone(time_spec.get("timezone", "UTC")),
                             bool(time_spec.get("local_as_utc", False))),
            nulls=nulls, fields=fields, time_columns=time_columns,
            priority=_priority_map(raw.get("priority"), nulls) if kind == "calls" else None,
            location=_location_spec(raw.get("location", {}), nulls, lookups),
            rules=_rules(raw.get("rules", [])),
            default_category=_category(raw.get("categories", {}).get("default", "other")),
            cancel_values=frozenset(raw.get("call", {}).get("cancel_values", [])),
            units=_unit_spec(raw["units"]) if "units" in raw else None,
            shot=_shot_spec(raw.get("shot", {})) if kind == "shots" else None,
            window_rows=int(raw.get("grouping", {}).get("window_rows", DEFAULT_WINDOW_ROWS)),
            lookups=lookups, raw=raw, path=path,
        )

    def section(self, name: str) -> dict[str, Any]:
        """A section of the file this engine does not read (``[poll]`` for pollers)."""
        value = self.raw.get(name, {})
        return dict(value) if isinstance(value, dict) else {}

    def category_of(self, code: str | None, description: str | None) -> str:
        """The category the rules give a call type (first match wins)."""
        cache: dict[tuple[str | None, str | None], str] = self._categories
        found = cache.get((code, description))
        if found is not None:
            return found
        category = self.default_category
        for rule in self.rules:
            if rule.matches(code, description):
                category = rule.category
                break
        if len(cache) < 100_000:  # call types are few; junk must not grow it unbounded
            cache[(code, description)] = category
        return category

    # --- rows -> records ----------------------------------------------------------------
    def records(self, rows: Iterable[Row], file: str, first_row: int = 2,
                shard: tuple[int, int] = (0, 1),
                ) -> Iterator[CallRecord | ShotRecord | Rejected]:
        """Map rows to records in a bounded window (see the module docstring).

        ``first_row`` is the row number of the first row (2 for a CSV with a header);
        rejected rows carry their number. Records of one-row-per-unit feeds come out when
        their call is complete, so their order is completion order, not file order.
        ``shard = (i, n)`` maps only the rows whose id hashes to shard i of n (rows without
        an id belong to shard 0), so n processes can share one file; the other rows are
        skipped but still numbered.
        """
        grouper = _Grouper(self, file)
        index, count = shard
        column = self.id_column
        for offset, row in enumerate(rows):
            if count > 1 and shard_of(row.get(column), count) != index:
                continue
            yield from grouper.add(row, first_row + offset)
        yield from grouper.flush_all()

    def map_row(self, row: Row, file: str, number: int) -> CallRecord | ShotRecord:
        """One row -> one record (a unit row gives a call with that one unit)."""
        _check_shape(row, self.encoding_fallback)
        call_id = _cell(row, self.id_column, self.nulls)
        if call_id is None:
            raise RowError("missing_id", f"{self.id_column} is empty")
        record_id = safe_id(call_id)
        try:
            if self.kind == "shots":
                return self._shot(row, record_id, file, number)
            return self._call(row, record_id, file, number)
        except RowError:
            # Checked only on failure: a row with nothing but its id fails somewhere.
            if self._only_id(row):
                raise RowError("only_id", f"row has {self.id_column} {call_id!r} and "
                                          f"nothing else") from None
            raise

    def _only_id(self, row: Row) -> bool:
        for key, value in row.items():
            if key == self.id_column or key is None:
                continue
            if value is not None and _as_text(value) is not None \
                    and (_as_text(value) or "").strip() not in self.nulls:
                return False
        return True

    def _values(self, row: Row) -> dict[str, Any]:
        return {name: spec.read(row) for name, spec in self.fields.items()}

    def _time(self, row: Row, name: str, required: bool = False,
              column: str | None = None) -> datetime | None:
        column = column or self.time_columns.get(name)
        text = _cell(row, column, self.nulls) if column else None
        if text is None:
            if required:
                raise RowError("missing_field", f"{column or name} (the {name}) is empty")
            return None
        try:
            return self.times.parse(text)
        except ValueError as error:
            raise RowError("bad_time", f"{column}: {error}") from None

    def _call(self, row: Row, call_id: str, file: str, number: int) -> CallRecord:
        values = self._values(row)
        received = self._time(row, "received_time", required=True)
        assert received is not None
        closed = self._time(row, "closed_time")
        assert self.priority is not None
        priority = self.priority.read(row)
        lat, lon = self.location.read(row, values)
        unit = self._unit(row, received, closed) if self.units else None
        if closed is not None and closed < received:
            raise RowError("impossible_time", f"closed {closed:%Y-%m-%d %H:%M:%S}Z is before "
                                              f"received {received:%Y-%m-%d %H:%M:%S}Z")
        code, description = values.get("call_type_code"), values.get("call_type")
        status, disposition = values.get("status"), values.get("disposition")
        cancelled = bool(self.cancel_values) and bool(
            {status, disposition, values.get("disposition_code")} & self.cancel_values)
        address, cross = values.get("address"), values.get("cross_street")
        if cross:
            address = _truncate(f"{address} & {cross}" if address else cross, "address")
        return CallRecord(
            call_id=call_id, received_time=received, call_type_code=code,
            call_type=description or code, category=self.category_of(code, description),
            priority=priority, address=address, lat=lat, lon=lon,
            district=values.get("district"), neighborhood=values.get("neighborhood"),
            beat=values.get("beat"), status=status, disposition=disposition,
            closed_time=closed, units=(unit,) if unit else (), source=self.source,
            file=file, row=number, cancelled=cancelled)

    def _unit(self, row: Row, received: datetime, closed: datetime | None) -> UnitTimes | None:
        spec = self.units
        assert spec is not None
        unit_id = _cell(row, spec.id_column, self.nulls)
        if unit_id is None:
            raise RowError("missing_field", f"{spec.id_column} (the unit) is empty")
        kind_text = _cell(row, spec.kind_column, self.nulls) if spec.kind_column else None
        kind = spec.kind_map.get(kind_text or "", spec.kind_default)
        times = {name: self._time(row, name, column=column)
                 for name, column in spec.times.items()}
        previous_name, previous = "received", received
        for name in UNIT_TIME_FIELDS:
            value = times.get(name)
            if value is None:
                continue
            if value < previous:
                raise RowError("impossible_time",
                               f"unit {unit_id} {name} {value:%Y-%m-%d %H:%M:%S}Z is before "
                               f"{previous_name} {previous:%Y-%m-%d %H:%M:%S}Z")
            previous_name, previous = name, value
        if closed is not None and previous > closed:
            raise RowError("impossible_time", f"unit {unit_id} {previous_name} is after the "
                                              f"call closed")
        return UnitTimes(safe_id(unit_id), kind, **times)

    def _shot(self, row: Row, alert_id: str, file: str, number: int) -> ShotRecord:
        spec = self.shot
        assert spec is not None
        values = self._values(row)
        detected = self._time(row, "detected_time", required=True)
        assert detected is not None
        published = self._time(row, "published_time")
        if published is not None and published < detected:
            raise RowError("impossible_time", "published before detected")
        type_text = _cell(row, spec.type_column, self.nulls)
        alert_type = spec.type_map.get(type_text or "")
        if alert_type is None:
            raise RowError("unknown_code", f"{spec.type_column} {type_text!r} is not in the "
                                           f"type map ({', '.join(spec.type_map)})")
        rounds = spec.default_rounds.get(alert_type, 1)
        rounds_text = _cell(row, spec.rounds_column, self.nulls) if spec.rounds_column else None
        if rounds_text is not None:
            if not rounds_text.isdigit() or not 1 <= int(rounds_text) <= 500:
                raise RowError("bad_code", f"rounds {rounds_text!r} is not a count 1-500")
            rounds = int(rounds_text)
        lat, lon = self.location.read(row, values)
        if lat is None or lon is None:
            raise RowError("missing_location", "a gunshot alert needs a position")
        return ShotRecord(
            alert_id=alert_id, alert_type=alert_type, rounds=rounds, lat=lat, lon=lon,
            address=values.get("address"), district=values.get("district"),
            neighborhood=values.get("neighborhood"), beat=values.get("beat"),
            detected_time=detected, published_time=published, source=self.source,
            file=file, row=number)


def _check_shape(row: Row, fallback: str | None) -> None:
    if CSV_ERROR_KEY in row:
        raise RowError("malformed", f"the CSV reader stopped on this line: {row[CSV_ERROR_KEY]}")
    extra = row.get(None)  # type: ignore[call-overload]
    if extra:
        raise RowError("malformed", f"row has {len(extra)} more values than the header")
    try:
        joined = "\x1f".join(row.values())  # one regex pass over the row is the fast path
    except TypeError:  # a None (short row) or a JSON value
        missing = sum(1 for value in row.values() if value is None)
        if missing:
            raise RowError("truncated", f"row ends early: {missing} of {len(row)} columns "
                                        f"missing") from None
        joined = "\x1f".join(_as_text(value) or "" for value in row.values())
    if _BAD_TEXT.search(joined) is None:
        return
    for key, value in row.items():
        text = _as_text(value) or ""
        if "\ufeff" in text:
            raise RowError("encoding", f"byte-order mark inside the row (column {key})")
        if fallback is None and _BAD_TEXT.search(text):
            raise RowError("encoding", f"column {key} has bytes that are not UTF-8 "
                                       f"(Latin-1?); set encoding_fallback to accept them")


def repair_encoding(row: dict[str, str], fallback: str) -> dict[str, str]:
    """Re-decode values read with surrogateescape in the fallback encoding (e.g. latin-1)."""
    return {key: value.encode("utf-8", "surrogateescape").decode(fallback)
            if type(value) is str and _BAD_TEXT.search(value) else value
            for key, value in row.items()}


class _Grouper:
    """Groups one-row-per-unit rows into calls in a window of ``window_rows`` rows."""

    def __init__(self, mapping: Mapping, file: str) -> None:
        self.mapping = mapping
        self.file = file
        self.open: OrderedDict[str, _Group] = OrderedDict()
        self.done: OrderedDict[str, int] = OrderedDict()  # id -> last row, for late rows
        self.seen_rows: OrderedDict[str, int] = OrderedDict()  # single-row feeds: id -> row

    def add(self, row: Row, number: int) -> Iterator[Record | Rejected]:
        mapping = self.mapping
        if mapping.encoding_fallback and isinstance(row, dict):
            row = repair_encoding(row, mapping.encoding_fallback)
        try:
            record = mapping.map_row(row, self.file, number)
        except RowError as error:
            yield Rejected(self.file, number, error.reason, raw_text(row))
            return
        if isinstance(record, ShotRecord) or mapping.units is None:
            yield from self._single(record, row, number)
        else:
            yield from self._grouped(record, row, number)
        yield from self._expire(number)

    def _single(self, record: Record, row: Row, number: int) -> Iterator[Record | Rejected]:
        key = record.alert_id if isinstance(record, ShotRecord) else record.call_id
        earlier = self.seen_rows.get(key)
        if earlier is not None:
            yield Rejected(self.file, number, f"duplicate: id {key} was already read at row "
                                              f"{earlier}", raw_text(row))
            return
        self.seen_rows[key] = number
        yield record

    def _grouped(self, record: CallRecord, row: Row, number: int,
                 ) -> Iterator[Record | Rejected]:
        unit = record.units[0]
        group = self.open.get(record.call_id)
        if group is None:
            late = self.done.get(record.call_id)
            if late is not None:
                yield Rejected(self.file, number, (
                    f"late_row: call {record.call_id} was completed at row {late}; its rows "
                    f"must be within {self.mapping.window_rows} rows of each other"),
                    raw_text(row))
                return
            self.open[record.call_id] = _Group(record, [unit], {unit.unit_id: number}, number)
            return
        earlier = group.unit_rows.get(unit.unit_id)
        if earlier is not None:
            yield Rejected(self.file, number, f"duplicate: unit {unit.unit_id} of call "
                                              f"{record.call_id} was already read at row "
                                              f"{earlier}", raw_text(row))
            return
        group.units.append(unit)
        group.unit_rows[unit.unit_id] = number
        group.last_row = number
        self.open.move_to_end(record.call_id)

    def _expire(self, number: int) -> Iterator[Record | Rejected]:
        horizon = number - self.mapping.window_rows
        while self.open:
            call_id, group = next(iter(self.open.items()))
            if group.last_row > horizon:
                break
            self.open.popitem(last=False)
            yield self._complete(call_id, group)
        if number % 1024 == 0:  # forgetting old ids is not urgent: do it in batches
            for memory in (self.done, self.seen_rows):
                limit = horizon - self.mapping.window_rows
                while memory and next(iter(memory.values())) <= limit:
                    memory.popitem(last=False)

    def _complete(self, call_id: str, group: _Group) -> CallRecord:
        self.done[call_id] = group.last_row
        units = tuple(group.units)
        closed = group.record.closed_time
        if closed is None:
            cleared = [unit.cleared for unit in units]
            if cleared and all(value is not None for value in cleared):
                closed = max(value for value in cleared if value is not None)
        if len(units) == 1 and closed == group.record.closed_time:
            return group.record  # already carries its one unit
        record = group.record
        # Positional construction: dataclasses.replace costs ~5x more per call.
        return CallRecord(
            record.call_id, record.received_time, record.call_type_code, record.call_type,
            record.category, record.priority, record.address, record.lat, record.lon,
            record.district, record.neighborhood, record.beat, record.status,
            record.disposition, closed, units, record.source, record.file, record.row,
            record.cancelled)

    def flush_all(self) -> Iterator[Record]:
        while self.open:
            call_id, group = self.open.popitem(last=False)
            yield self._complete(call_id, group)


# --- parsing the file's sections ------------------------------------------------------------

def _listify(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"[time] timezone {name!r} is not an IANA zone "
                         f"like 'America/New_York'") from None


def _category(name: str) -> str:
    if name not in CATEGORIES:
        raise ValueError(f"category {name!r} is unknown; use one of {', '.join(CATEGORIES)}")
    return name


def _resolve(spec: dict[str, Any], name: str, base_dir: Path, mapping_dir: Path) -> Path:
    file = Path(_required(spec, "file", f"lookups.{name}"))
    for candidate in (file, base_dir / file, mapping_dir / file):
        if candidate.is_file():
            return candidate
    raise ValueError(f"lookups.{name}: {file} is neither in {base_dir} nor in {mapping_dir}")


_RECORD_FIELDS: Final = {
    "calls": ("call_type_code", "call_type", "address", "district", "neighborhood", "beat",
              "cross_street", "status", "disposition", "disposition_code"),
    "shots": ("address", "district", "neighborhood", "beat"),
}


def _field_specs(spec: dict[str, Any], nulls: frozenset[str], lookups: dict[str, Lookup],
                 kind: str) -> tuple[dict[str, FieldSpec], dict[str, str]]:
    time_names = CALL_TIME_FIELDS if kind == "calls" else SHOT_TIME_FIELDS
    fields: dict[str, FieldSpec] = {}
    times: dict[str, str] = {}
    for name, value in spec.items():
        if name in time_names:
            times[name] = str(value)
        elif name in _RECORD_FIELDS[kind]:
            fields[name] = _field_spec(name, value, nulls, lookups)
        else:
            raise ValueError(f"[fields] {name!r} is not a {kind} field; use "
                             f"{', '.join(_RECORD_FIELDS[kind] + time_names)}")
    if time_names[0] not in times:
        raise ValueError(f"[fields] needs {time_names[0]!r} (the column with that time)")
    return fields, times


def _field_spec(name: str, value: Any, nulls: frozenset[str],
                lookups: dict[str, Lookup]) -> FieldSpec:
    if isinstance(value, (str, list)):
        value = {"column": value}
    columns = tuple(_listify(_required(value, "column", f"fields.{name}")))
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


def _priority_map(spec: dict[str, Any] | None, nulls: frozenset[str]) -> PriorityMap:
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


def _location_spec(spec: dict[str, Any], nulls: frozenset[str],
                   lookups: dict[str, Lookup]) -> LocationSpec:
    kind = spec.get("format", "none")
    needs = {"latlon": ("lat", "lon"), "wkt": ("column",), "lonlat": ("column",),
             "geojson": ("column",), "centroid": ("lookup", "by"), "none": ()}
    if kind not in needs:
        raise ValueError(f"[location] format {kind!r} is not one of {', '.join(needs)}")
    for name in needs[kind]:
        _required(spec, name, "location")
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
        centroid=centroid, centroid_by=tuple(_listify(spec.get("by", []))))


def _rules(items: list[dict[str, Any]]) -> tuple[CategoryRule, ...]:
    rules = []
    for item in items:
        pattern = item.get("pattern")
        rules.append(CategoryRule(
            category=_category(_required(item, "category", "[rules]")),
            codes=frozenset(str(code) for code in item.get("codes", [])),
            types=frozenset(item.get("types", [])),
            pattern=re.compile(pattern, re.IGNORECASE) if pattern else None))
    return tuple(rules)


def _unit_spec(spec: dict[str, Any]) -> UnitSpec:
    times: dict[str, str] = {name: str(spec[name]) for name in UNIT_TIME_FIELDS
                             if name in spec}
    kind_map = {str(key): str(value) for key, value in spec.get("kind_map", {}).items()}
    default = spec.get("kind_default", "patrol")
    for kind in [*kind_map.values(), default]:
        if kind not in UNIT_KINDS:
            raise ValueError(f"[units] kind {kind!r} is not one of {', '.join(UNIT_KINDS)}")
    return UnitSpec(_required(spec, "id", "units"), spec.get("kind"), kind_map, default, times)


def _shot_spec(spec: dict[str, Any]) -> ShotSpec:
    type_map = {str(key): str(value) for key, value in spec.get("type_map", {}).items()}
    for value in type_map.values():
        if value not in ALERT_TYPES:
            raise ValueError(f"[shot] type_map value {value!r} is not one of "
                             f"{', '.join(ALERT_TYPES)}")
    rounds = {"single": 1, "multiple": 3, "probable": 1}
    rounds.update({str(key): int(value) for key, value in spec.get("rounds_default", {}).items()})
    return ShotSpec(_required(spec, "type", "shot"), type_map, spec.get("rounds"), rounds)


# --- records -> events ----------------------------------------------------------------------

# Tie-break for events at the same second: lifecycle order, call step before unit status.
_ORDER: Final = {"created": 0, "unit_assigned": 1, "dispatched": 2, "unit:dispatched": 3,
                 "en_route": 4, "unit:en_route": 5, "on_scene": 6, "unit:on_scene": 7,
                 "unit:available": 8, "cleared": 9, "cancelled": 9}


def _event_id(*parts: str) -> str:
    return safe_id(":".join(parts))


def record_events(record: CallRecord | ShotRecord) -> list[Event]:
    """Every event a record implies, in event-time order, with deterministic ids.

    A call gives ``created`` at received time; per unit ``unit_assigned`` (assigned time,
    else its first known time), ``dispatched``, ``en_route``, ``on_scene`` call events and
    ``dispatched``/``en_route``/``on_scene``/``available`` unit-status events; and
    ``cleared`` (or ``cancelled``) at the close time when the call has one.
    """
    if isinstance(record, ShotRecord):
        return [_shot_event(record)]
    keyed: list[tuple[datetime, int, int, Event]] = []
    keyed.append((record.received_time, 0, 0, _created(record)))
    for index, unit in enumerate(record.units, start=1):
        for event in _unit_events(record, unit):
            step = event.kind if isinstance(event, CallEvent) \
                else f"unit:{event.status}" if isinstance(event, UnitEvent) else ""
            keyed.append((event.event_time, _ORDER[step], index, event))
    if record.closed_time is not None:
        kind: CallKind = "cancelled" if record.cancelled else "cleared"
        keyed.append((record.closed_time, _ORDER[kind], 0, CallEvent(
            event_id=_event_id(record.source, record.call_id, kind),
            event_time=record.closed_time, source=record.source, kind=kind,
            call_id=record.call_id, disposition=record.disposition)))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def _created(record: CallRecord) -> CallEvent:
    return CallEvent(
        event_id=_event_id(record.source, record.call_id, "created"),
        event_time=record.received_time, source=record.source, kind="created",
        call_id=record.call_id, received_time=record.received_time,
        call_type_code=record.call_type_code, call_type=record.call_type,
        category=record.category, priority=record.priority,  # type: ignore[arg-type]
        address=record.address, lat=record.lat, lon=record.lon, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat)


def _unit_events(record: CallRecord, unit: UnitTimes) -> list[Event]:
    events: list[Event] = []
    known = [value for value in (unit.assigned, unit.dispatched, unit.en_route, unit.on_scene)
             if value is not None]
    assigned = unit.assigned or (known[0] if known else None)
    base = (record.source, record.call_id, unit.unit_id)
    if assigned is not None:
        events.append(CallEvent(
            event_id=_event_id(*base, "unit_assigned"), event_time=assigned,
            source=record.source, kind="unit_assigned", call_id=record.call_id,
            unit_id=unit.unit_id))
    steps: tuple[CallKind, ...] = ("dispatched", "en_route", "on_scene")
    for step in steps:
        when = getattr(unit, step)
        if when is None:
            continue
        events.append(CallEvent(
            event_id=_event_id(*base, step), event_time=when, source=record.source,
            kind=step, call_id=record.call_id, unit_id=unit.unit_id))
        events.append(_unit_status(record, unit, step, when))
    if unit.cleared is not None:
        events.append(_unit_status(record, unit, "available", unit.cleared))
    return events


def _unit_status(record: CallRecord, unit: UnitTimes, status: str, when: datetime) -> UnitEvent:
    return UnitEvent(
        event_id=_event_id(record.source, record.call_id, unit.unit_id, "unit", status),
        event_time=when, source=record.source, unit_id=unit.unit_id,
        unit_kind=unit.unit_kind, status=status,  # type: ignore[arg-type]
        call_id=None if status == "available" else record.call_id,
        district=record.district)


def _shot_event(record: ShotRecord) -> ShotAlert:
    return ShotAlert(
        event_id=_event_id(record.source, record.alert_id), event_time=record.detected_time,
        source=record.source, alert_id=record.alert_id,
        alert_type=record.alert_type, rounds=record.rounds,  # type: ignore[arg-type]
        lat=record.lat, lon=record.lon, address=record.address, district=record.district,
        neighborhood=record.neighborhood, beat=record.beat,
        detected_time=record.detected_time, published_time=record.published_time)


# --- reading data files -----------------------------------------------------------------------

CSV_ERROR_KEY: Final = "\x00csv_error"
"""A row dict holding this key stands for a line the csv module could not parse."""


def read_csv_rows(path: Path, progress: Callable[[int], None] | None = None,
                  ) -> Iterator[dict[str, str]]:
    """Stream a CSV export's rows as dicts (header from line 1).

    A UTF-8 BOM at the start is dropped. Bytes that are not UTF-8 are kept as surrogates
    (``surrogateescape``) so the mapping can reject the row, or repair it when the mapping
    names an ``encoding_fallback``; one bad row never stops the file. ``progress`` is
    called with the number of bytes read since its last call (for a progress bar).
    """
    with path.open("rb") as handle:
        reader = csv.DictReader(_decoded_lines(handle, progress))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield {CSV_ERROR_KEY: str(error)}
                continue
            yield row


def _decoded_lines(handle: io.BufferedReader, progress: Callable[[int], None] | None,
                   ) -> Iterator[str]:
    pending = 0
    first = True
    for line in handle:
        if first:
            line = line.removeprefix(b"\xef\xbb\xbf")
            first = False
        pending += len(line)
        if progress is not None and pending >= 1 << 18:
            progress(pending)
            pending = 0
        yield line.decode("utf-8", "surrogateescape")
    if progress is not None and pending:
        progress(pending)

