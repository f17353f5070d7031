"""Grouping one-row-per-unit rows into calls in a bounded window (pure).

A call stays open while its rows keep coming; once ``window_rows`` rows have passed since
its last row it is complete and emitted. A row of a call that was already emitted is
rejected as ``late_row`` (the export violated the window). Memory is therefore bounded by
the window, never by the file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.core.mapping.cells import Row, raw_text, repair_encoding
from streams.core.mapping.records import (
    CallRecord,
    Record,
    Rejected,
    RowError,
    ShotRecord,
    UnitTimes,
)

if TYPE_CHECKING:
    from streams.core.mapping.engine import Mapping


@dataclass
class _Group:
    """Rows of one call seen so far (one-row-per-unit feeds)."""

    record: CallRecord
    units: list[UnitTimes]
    unit_rows: dict[str, int]
    last_row: int



class Grouper:
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
            record.cancelled, record.dispatched_time, record.en_route_time,
            record.on_scene_time, record.updated_time, record.step, record.gunshot,
            record.gunshot_alert, record.poll_times, record.warnings)

    def flush_all(self) -> Iterator[Record]:
        while self.open:
            call_id, group = self.open.popitem(last=False)
            yield self._complete(call_id, group)

