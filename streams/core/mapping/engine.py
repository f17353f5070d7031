"""The mapping: rows -> ``CallRecord``/``ShotRecord`` or ``Rejected`` (pure).

Streaming and memory: feeds with one row per unit are grouped into calls in a bounded
window (``streams.core.mapping.grouping``). Every rejection reason starts with a short
code followed by ``": "`` and a sentence, e.g. ``"bad_time: Received DtTm '13/45/2019' is
not a time like %m/%d/%Y ..."``; the code is what summaries count by.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.core.mapping.cells import (
    DEFAULT_NULLS,
    Row,
    as_text,
    cell,
    check_shape,
    truncate,
)
from streams.core.mapping.fields import CategoryRule, FieldSpec, PriorityMap
from streams.core.mapping.grouping import Grouper
from streams.core.mapping.location import LocationSpec
from streams.core.mapping.lookups import Lookup, required
from streams.core.mapping.records import (
    CallRecord,
    Rejected,
    RowError,
    ShotRecord,
    UnitTimes,
    safe_id,
    shard_of,
)
from streams.core.mapping.schema import (
    DEFAULT_WINDOW_ROWS,
    UNIT_TIME_FIELDS,
    ShotSpec,
    UnitSpec,
    category,
    field_specs,
    listify,
    location_spec,
    priority_map,
    rules,
    shot_spec,
    unit_spec,
    zone,
)
from streams.core.mapping.times import TimeParser


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
    _categories: dict[tuple[str | None, str | None], str] = field(
        default_factory=dict, repr=False, compare=False)

    # --- loading ----------------------------------------------------------------------
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
        fields, time_columns = field_specs(raw.get("fields", {}), nulls, lookups, kind)
        return cls(
            name=required(dataset, "name", "dataset"), kind=kind,
            source=dataset.get("source", dataset["name"]),
            id_column=required(dataset, "id", "dataset"),
            encoding_fallback=dataset.get("encoding_fallback"),
            times=TimeParser(tuple(listify(time_spec.get("formats", ["iso"]))),
                             zone(time_spec.get("timezone", "UTC")),
                             bool(time_spec.get("local_as_utc", False))),
            nulls=nulls, fields=fields, time_columns=time_columns,
            priority=priority_map(raw.get("priority"), nulls) if kind == "calls" else None,
            location=location_spec(raw.get("location", {}), nulls, lookups),
            rules=rules(raw.get("rules", [])),
            default_category=category(raw.get("categories", {}).get("default", "other")),
            cancel_values=frozenset(raw.get("call", {}).get("cancel_values", [])),
            units=unit_spec(raw["units"]) if "units" in raw else None,
            shot=shot_spec(raw.get("shot", {})) if kind == "shots" else None,
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

    def _values(self, row: Row) -> dict[str, Any]:
        return {name: spec.read(row) for name, spec in self.fields.items()}

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
            address = truncate(f"{address} & {cross}" if address else cross, "address")
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
        unit_id = cell(row, spec.id_column, self.nulls)
        if unit_id is None:
            raise RowError("missing_field", f"{spec.id_column} (the unit) is empty")
        kind_text = cell(row, spec.kind_column, self.nulls) if spec.kind_column else None
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
            file=file, row=number)


