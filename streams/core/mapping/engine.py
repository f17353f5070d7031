"""The mapping: rows -> ``CallRecord``/``ShotRecord`` or ``Rejected`` (pure).

Streaming and memory: feeds with one row per unit are grouped into calls in a bounded
window (``streams.core.mapping.grouping``). Every rejection reason starts with a short
code followed by ``": "`` and a sentence, e.g. ``"bad_time: Received DtTm '13/45/2019' is
not a time like %m/%d/%Y ..."``; the code is what summaries count by.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from streams.core.mapping.cells import (
    Row,
    as_text,
    cell,
    check_shape,
    truncate,
)
from streams.core.mapping.fields import CategoryRule, FieldSpec, PriorityMap
from streams.core.mapping.grouping import Grouper
from streams.core.mapping.location import LocationSpec
from streams.core.mapping.lookups import Lookup
from streams.core.mapping.records import (
    CallRecord,
    Rejected,
    RowError,
    ShotRecord,
    UnitTimes,
    safe_id,
    shard_of,
)
from streams.core.mapping.schema import CallsFile, MappingFile, ShotsFile, validate_mapping
from streams.core.mapping.specs import (
    UNIT_TIME_FIELDS,
    GunshotRule,
    ShotSpec,
    UnitSpec,
    field_specs,
    gunshot_rule,
    location_spec,
    priority_map,
    rules,
    shot_spec,
    steps_of,
    unit_spec,
)
from streams.core.mapping.status import stamp_steps
from streams.core.mapping.times import TimeParser, check_zone

DEFAULT_WINDOW_ROWS: Final = 20_000


@dataclass(frozen=True)
class Mapping:
    """A loaded mapping file. Build with ``Mapping.from_dict`` (``streams.mapping_files.
    load_mapping`` reads a file and its lookup tables)."""

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
    steps: dict[str, str] | None = None  # [status]: status value -> lifecycle step
    gunshot: GunshotRule | None = None
    service_area: tuple[tuple[float, float, float, float], float] | None = None
    digest: str = ""
    _categories: dict[tuple[str | None, str | None], str] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        declared = tuple(name for name in CALL_TIMES if name in self.time_columns)
        object.__setattr__(self, "_declared_times", declared)

    # --- loading ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], lookups: dict[str, Lookup],
                  path: Path | None = None, text: str | None = None) -> Mapping:
        """Build a mapping from parsed TOML and loaded lookups (tests use this directly).

        ``text`` (the file's source) lets errors name their line; MappingError lists
        every mistake in the file."""
        model = validate_mapping(raw, text, str(path) if path else "<mapping>", lookups)
        return cls.from_model(model, lookups, raw, path)

    @classmethod
    def from_model(cls, model: MappingFile, lookups: dict[str, Lookup],
                   raw: dict[str, Any], path: Path | None = None) -> Mapping:
        """Build a mapping from a validated file and its loaded lookup tables."""
        dataset = model.dataset
        nulls = frozenset(dataset.nulls)
        fields, time_columns = field_specs(model.fields, nulls, lookups)
        calls = model if isinstance(model, CallsFile) else None
        area = model.service_area
        return cls(
            name=dataset.name, kind=dataset.kind, source=dataset.source or dataset.name,
            id_column=dataset.id, encoding_fallback=dataset.encoding_fallback,
            times=TimeParser(tuple(model.time.formats), check_zone(model.time.timezone),
                             model.time.local_as_utc),
            nulls=nulls, fields=fields, time_columns=time_columns,
            priority=priority_map(calls.priority, nulls) if calls else None,
            location=location_spec(model.location, nulls, lookups),
            rules=rules(calls.rules) if calls else (),
            default_category=calls.categories.default if calls else "other",
            cancel_values=frozenset(calls.call.cancel_values) if calls else frozenset(),
            units=unit_spec(calls.units, calls.unit_status) if calls and calls.units
            else None,
            shot=shot_spec(model.shot) if isinstance(model, ShotsFile) else None,
            window_rows=calls.grouping.window_rows if calls else DEFAULT_WINDOW_ROWS,
            lookups=lookups, raw=raw, path=path,
            steps=steps_of(calls.status) if calls and calls.status else None,
            gunshot=gunshot_rule(calls.gunshot) if calls and calls.gunshot else None,
            service_area=(area.bounds, area.margin_km) if area else None,
            digest=content_digest(raw, lookups),
        )

    @property
    def columns(self) -> frozenset[str]:
        """Every source column this mapping reads."""
        used = {self.id_column, *self.time_columns.values(), *self.location.columns}
        for spec in self.fields.values():
            used.update(spec.columns)
        if self.priority is not None and self.priority.column:
            used.add(self.priority.column)
        if self.units is not None:
            used.update(column for column in (self.units.id_column, self.units.kind_column,
                                              self.units.status_column, *self.units.times.values(),
                                              *(self.units.position or ()))
                        if column)
        if self.shot is not None:
            used.update(column for column in (self.shot.type_column, self.shot.rounds_column)
                        if column)
        return frozenset(used)

    @property
    def feed_times(self) -> tuple[str, ...]:
        """The times this feed has, in lifecycle order (received, dispatched, en_route,
        on_scene, closed), from its time columns, unit columns and status steps."""
        have = {name.removesuffix("_time") for name in self.time_columns}
        if self.units is not None:
            have |= {"dispatched" if name == "assigned" else
                     "closed" if name == "cleared" else name for name in self.units.times}
            if self.units.times.get("cleared") and "closed_time" not in self.time_columns:
                have.add("closed")
        stamped = set((self.steps or {}).values()) | set(
            (self.units.steps or {}).values() if self.units else ())
        have |= {"closed" if step in ("cleared", "cancelled") else
                 "dispatched" if step == "assigned" else step for step in stamped
                 if step != "pending"}
        order = ("received", "dispatched", "en_route", "on_scene", "closed")
        return tuple(name for name in order if name in have)

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
                shard: tuple[int, int] = (0, 1), stamp: bool = True,
                ) -> Iterator[CallRecord | ShotRecord | Rejected]:
        """Map rows to records in a bounded window (see the module docstring).

        ``first_row`` is the row number of the first row (2 for a CSV with a header);
        rejected rows carry their number. Records of one-row-per-unit feeds come out when
        their call is complete, so their order is completion order, not file order.
        ``shard = (i, n)`` maps only the rows whose id hashes to shard i of n (rows without
        an id belong to shard 0), so n processes can share one file; the other rows are
        skipped but still numbered. With ``stamp`` the steps statuses report get the row's
        update time (``status.stamp_steps``); a poller stamps after merging instead.
        """
        items = self._grouped(rows, file, first_row, shard)
        if not (stamp and self.has_status_steps):
            yield from items
            return
        for item in items:  # statuses give steps the row's update time
            yield stamp_steps(item) if isinstance(item, CallRecord) else item

    @property
    def has_status_steps(self) -> bool:
        """Whether call or unit statuses map to lifecycle steps ([status], [unit_status])."""
        return self.steps is not None or (self.units is not None
                                          and self.units.steps is not None)

    def _grouped(self, rows: Iterable[Row], file: str, first_row: int,
                 shard: tuple[int, int]) -> Iterator[CallRecord | ShotRecord | Rejected]:
        grouper = Grouper(self, file)
        index, count = shard
        column = self.id_column
        for offset, row in enumerate(rows):
            if count > 1 and shard_of(row.get(column), count) != index:
                continue
            yield from grouper.add(row, first_row + offset)
        yield from grouper.flush_all()

    def map_row(self, row: Row, file: str, number: int) -> CallRecord | ShotRecord:
        """One row -> one record (a unit row gives a call with that one unit)."""
        check_shape(row, self.encoding_fallback)
        call_id = cell(row, self.id_column, self.nulls)
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
            if value is not None and as_text(value) is not None \
                    and (as_text(value) or "").strip() not in self.nulls:
                return False
        return True

    def _values(self, row: Row, warnings: list[str]) -> dict[str, Any]:
        return {name: spec.read(row, warnings) for name, spec in self.fields.items()}

    def _time(self, row: Row, name: str, required: bool = False,
              column: str | None = None) -> datetime | None:
        column = column or self.time_columns.get(name)
        text = cell(row, column, self.nulls) if column else None
        if text is None:
            if required:
                raise RowError("missing_field", f"{column or name} (the {name}) is empty")
            return None
        try:
            return self.times.parse(text)
        except ValueError as error:
            raise RowError("bad_time", f"{column}: {error}") from None

    def _call(self, row: Row, call_id: str, file: str, number: int) -> CallRecord:
        warnings: list[str] = []
        values = self._values(row, warnings)
        # A declared received time is every row's anchor: empty is missing_field. A feed
        # without one does not declare it, and its other times are all optional.
        times = dict(_NO_TIMES)
        declared = self._declared_times  # type: ignore[attr-defined]
        for name in declared:
            times[name] = self._time(row, name, required=name == "received_time")
        received, closed = times["received_time"], times["closed_time"]
        assert self.priority is not None
        priority = self.priority.read(row)
        lat, lon = self.location.read(row, values)
        if len(declared) > 1:
            _check_order(times)
        unit = self._unit(row, received, closed) if self.units else None
        code, description = values.get("call_type_code"), values.get("call_type")
        status, disposition = values.get("status"), values.get("disposition")
        step = self.steps.get(status) if self.steps is not None and status else None
        cancelled = step == "cancelled" or bool(self.cancel_values) and bool(
            {status, disposition, values.get("disposition_code")} & self.cancel_values)
        address, cross = values.get("address"), values.get("cross_street")
        if cross:
            address = truncate(f"{address} & {cross}" if address else cross, "address")
        gunshot = self.gunshot is not None and self.gunshot.matches(code, description)
        return CallRecord(
            call_id=call_id, received_time=received, call_type_code=code,
            call_type=description or code, category=self.category_of(code, description),
            priority=priority, address=address, lat=lat, lon=lon,
            district=values.get("district"), neighborhood=values.get("neighborhood"),
            beat=values.get("beat"), status=status, disposition=disposition,
            closed_time=closed, units=(unit,) if unit else (), source=self.source,
            file=file, row=number, cancelled=cancelled,
            dispatched_time=times["dispatched_time"], en_route_time=times["en_route_time"],
            on_scene_time=times["on_scene_time"], updated_time=times["updated_time"],
            step=step, gunshot=gunshot, warnings=tuple(warnings),
            gunshot_alert=self.gunshot.alert_type if gunshot and self.gunshot
            and self.gunshot.create_alert else None)

    def _unit(self, row: Row, received: datetime | None,
              closed: datetime | None) -> UnitTimes | None:
        spec = self.units
        assert spec is not None
        unit_id = cell(row, spec.id_column, self.nulls)
        if unit_id is None:
            raise RowError("missing_field", f"{spec.id_column} (the unit) is empty")
        kind_text = cell(row, spec.kind_column, self.nulls) if spec.kind_column else None
        kind = spec.kind_map.get(kind_text or "", spec.kind_default)
        times = {name: self._time(row, name, column=column)
                 for name, column in spec.times.items()}
        previous_name, previous = _in_order(
            [("received", received), *((name, times.get(name)) for name in UNIT_TIME_FIELDS)],
            subject=f"unit {unit_id} ")
        if closed is not None and previous is not None and previous > closed:
            raise RowError("impossible_time", f"unit {unit_id} {previous_name} is after the "
                                              f"call closed")
        status = cell(row, spec.status_column, self.nulls) if spec.status_column else None
        step = spec.steps.get(status) if spec.steps is not None and status else None
        lat, lon = self._unit_position(row, spec.position) if spec.position else (None, None)
        return UnitTimes(safe_id(unit_id), kind, **times, status=status, step=step, lat=lat,
                         lon=lon)

    def _unit_position(self, row: Row, columns: tuple[str, str],
                       ) -> tuple[float | None, float | None]:
        """A unit's own fix; missing, junk, 0,0 or off-Earth is no fix (the call is fine)."""
        try:
            lat, lon = (float(cell(row, column, self.nulls) or "nan") for column in columns)
        except ValueError:
            return None, None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
            return None, None  # NaN fails both comparisons too
        return lat, lon

    def _shot(self, row: Row, alert_id: str, file: str, number: int) -> ShotRecord:
        spec = self.shot
        assert spec is not None
        warnings: list[str] = []
        values = self._values(row, warnings)
        detected = self._time(row, "detected_time", required=True)
        assert detected is not None
        published = self._time(row, "published_time")
        if published is not None and published < detected:
            raise RowError("impossible_time", "published before detected")
        type_text = cell(row, spec.type_column, self.nulls)
        alert_type = spec.type_map.get(type_text or "")
        if alert_type is None:
            raise RowError("unknown_code", f"{spec.type_column} {type_text!r} is not in the "
                                           f"type map ({', '.join(spec.type_map)})")
        rounds = spec.default_rounds.get(alert_type, 1)
        rounds_text = cell(row, spec.rounds_column, self.nulls) if spec.rounds_column else None
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
            file=file, row=number, warnings=tuple(warnings))




CALL_TIMES: Final = ("received_time", "dispatched_time", "en_route_time", "on_scene_time",
                     "closed_time", "updated_time")
_NO_TIMES: Final[dict[str, datetime | None]] = dict.fromkeys(CALL_TIMES)
_ORDERED: Final = ("received_time", "dispatched_time", "en_route_time", "on_scene_time",
                   "closed_time")


def _check_order(times: dict[str, datetime | None]) -> None:
    """A later lifecycle time before an earlier one is impossible_time (absent ones skip)."""
    _in_order([(name.removesuffix("_time"), times.get(name)) for name in _ORDERED])


def _in_order(steps: Iterable[tuple[str, datetime | None]],
              subject: str = "") -> tuple[str, datetime | None]:
    """The last step that has a time, after raising impossible_time at the first time
    before the one ahead of it (steps without a time are skipped)."""
    previous_name, previous = "", None
    for name, value in steps:
        if value is None:
            continue
        if previous is not None and value < previous:
            raise RowError("impossible_time", f"{subject}{name} {value:%Y-%m-%d %H:%M:%S}Z "
                                              f"is before {previous_name} "
                                              f"{previous:%Y-%m-%d %H:%M:%S}Z")
        previous_name, previous = name, value
    return previous_name, previous


def content_digest(raw: dict[str, Any], lookups: dict[str, Lookup]) -> str:
    """16 hex digits that change whenever the mapping's content or a lookup table does
    (what a poller remembers of a feed is tied to it)."""
    tables = {name: [sorted(table.values.items()), sorted(table.points.items())]
              for name, table in sorted(lookups.items())}
    text = json.dumps([raw, tables], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
