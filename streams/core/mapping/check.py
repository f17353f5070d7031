"""``mapping check``: what a mapping makes of a feed, row by row, without writing (pure).

``CheckReport`` is fed every row and every item ``Mapping.records`` gives, and prints what
a department needs to trust a new mapping: rows read, events per type, rejected rows by
reason with three examples each, fields left empty after a failed check, source columns
the mapping never reads, status values no [status]/[unit_status] step names, times in the
future or far in the past (a wrong time zone shows up here), positions outside the service
area, and which response intervals the feed supports (with how many calls have each).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from streams.core.admission import Admission
from streams.core.events import CallEvent, Event, InvalidEvent, ShotAlert, UnitEvent
from streams.core.mapping.cells import CSV_ERROR_KEY
from streams.core.mapping.engine import Mapping
from streams.core.mapping.lifecycle import record_events
from streams.core.mapping.records import CallRecord, Rejected, ShotRecord

EXAMPLES: Final = 3
INTERVALS: Final = {
    "dispatch_s": ("received", "dispatched", "received -> dispatched"),
    "travel_s": ("dispatched", "on_scene", "dispatched -> on scene"),
    "response_s": ("received", "on_scene", "received -> on scene"),
    "on_scene_s": ("on_scene", "closed", "on scene -> cleared (time on scene)"),
}
"""Closed-record interval -> (start time, end time, label), as ``livestate`` computes them."""

Box = tuple[float, float, float, float]  # west, south, east, north


@dataclass
class _Tally:
    """A count by key with the first few examples of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, example: str) -> None:
        self.counts[key] += 1
        kept = self.examples.setdefault(key, [])
        if len(kept) < EXAMPLES:
            kept.append(example)

    def lines(self, indent: str = "  ") -> list[str]:
        out = []
        for key, count in self.counts.most_common():
            out.append(f"{indent}{key:<24}{count:>9,}")
            out += [f"{indent}    {example}" for example in self.examples[key]]
        return out


@dataclass
class CheckReport:
    """Everything ``mapping check`` prints about one mapping and its data."""

    mapping: Mapping
    now: datetime
    max_ahead: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=50 * 365.25)
    area: Box | None = None
    admission: Admission | None = None  # what the sources dead-letter (window, area)
    live: bool = False  # a live feed (the live window) rather than files (history)
    rows: int = 0
    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    rejected: _Tally = field(default_factory=_Tally)
    warnings: _Tally = field(default_factory=_Tally)
    unmapped: _Tally = field(default_factory=_Tally)
    times: _Tally = field(default_factory=_Tally)
    outside: _Tally = field(default_factory=_Tally)
    intervals: Counter[str] = field(default_factory=Counter)
    columns: dict[str, None] = field(default_factory=dict)

    def see_row(self, row: dict[str, Any]) -> None:
        """Count a row and remember its columns (before it is mapped)."""
        self.rows += 1
        if len(self.columns) < 1000:
            for name in row:
                if name is not None and name != CSV_ERROR_KEY:
                    self.columns.setdefault(name, None)

    def add(self, item: CallRecord | ShotRecord | Rejected) -> None:
        """Count one item ``Mapping.records`` gave."""
        if isinstance(item, Rejected):
            self.rejected.add(item.code, f"row {item.row}: {item.reason[:160]}")
            return
        self.records += 1
        where = f"{'call' if isinstance(item, CallRecord) else 'alert'} " \
                f"{item.call_id if isinstance(item, CallRecord) else item.alert_id}"
        for warning in item.warnings:
            self.warnings.add(warning.split(":", 1)[0], f"row {item.row}: {warning[:160]}")
        try:
            events = record_events(item, self.now)
            for event in events if self.admission is not None else ():
                self.admission.check(event, self.now.timestamp(),  # type: ignore[union-attr]
                                     history=not self.live)
        except InvalidEvent as error:
            self.rejected.add(error.code, f"row {item.row}: {error.reason[:160]}")
            return
        except ValueError as error:
            self.rejected.add("invalid_event", f"row {item.row}: {error}")
            return
        for event in events:
            self.events[_event_type(event)] += 1
            self._check_times(event, item.row, where)
        self._check_place(item, where)
        if isinstance(item, CallRecord):
            self._check_statuses(item)
            self._count_intervals(item)

    def _check_times(self, event: Event, row: int, where: str) -> None:
        when = event.event_time
        if when > self.now + self.max_ahead:
            self.times.add("in the future", f"row {row}: {where} {_event_type(event)} at "
                                            f"{when:%Y-%m-%d %H:%M}Z, "
                                            f"{_hours(when - self.now)} ahead of now")
        elif when < self.now - self.max_age:
            self.times.add("too far in the past", f"row {row}: {where} "
                                                  f"{_event_type(event)} at "
                                                  f"{when:%Y-%m-%d %H:%M}Z")

    def _check_place(self, item: CallRecord | ShotRecord, where: str) -> None:
        if self.area is None or item.lat is None or item.lon is None:
            return
        west, south, east, north = self.area
        if not (west <= item.lon <= east and south <= item.lat <= north):
            self.outside.add("outside the service area",
                             f"row {item.row}: {where} at {item.lat:.5f},{item.lon:.5f}")

    def _check_statuses(self, record: CallRecord) -> None:
        if self.mapping.steps is not None and record.status and record.step is None:
            self.unmapped.add(f"call status {record.status!r}"[:40],
                              f"row {record.row}: call {record.call_id}")
        units = self.mapping.units
        if units is None or units.steps is None:
            return
        for unit in record.units:
            if unit.status and unit.step is None:
                self.unmapped.add(f"unit status {unit.status!r}"[:40],
                                  f"row {record.row}: unit {unit.unit_id}")

    def _count_intervals(self, record: CallRecord) -> None:
        times = _first_times(record)
        for name, (start, end, _) in INTERVALS.items():
            if times.get(start) is not None and times.get(end) is not None:
                self.intervals[name] += 1

    # --- the printout ---------------------------------------------------------------------
    def text(self) -> str:
        """The report as lines for a terminal."""
        mapping = self.mapping
        lines = [f"mapping {mapping.name} ({mapping.kind}, source {mapping.source})",
                 f"rows read        {self.rows:>10,}",
                 f"records          {self.records:>10,}",
                 f"rejected rows    {sum(self.rejected.counts.values()):>10,}"]
        lines += ["", "events by type"] + [f"  {name:<24}{count:>9,}"
                                            for name, count in sorted(self.events.items())]
        lines += _block("rejected rows by reason (first examples)", self.rejected)
        lines += _block("fields left empty or kept after a failed extract/pattern",
                        self.warnings)
        unused = [name or f"(column {number} has no name)"
                  for number, name in enumerate(self.columns, start=1)
                  if name not in mapping.columns]
        lines += ["", "source columns never used"] + (
            [f"  {', '.join(unused)}"] if unused else ["  (none)"])
        if mapping.has_status_steps:
            lines += _block("status values no step is mapped to", self.unmapped,
                            empty="  (none: every status value is mapped)")
        lines += _block(f"times outside now {self.now:%Y-%m-%d %H:%M}Z "
                        f"- {_hours(self.max_age)} .. + {_hours(self.max_ahead)}",
                        self.times, empty="  (none)")
        area = "not checked" if self.area is None else \
            ", ".join(f"{value:g}" for value in self.area)
        lines += _block(f"positions outside the service area [{area}]", self.outside,
                        empty="  (none)")
        if mapping.kind == "calls":
            lines += self._interval_lines()
        return "\n".join(lines)

    def _interval_lines(self) -> list[str]:
        have = set(self.mapping.feed_times)
        calls = max(1, self.records)
        lines = ["", f"response intervals (the feed has times: "
                     f"{', '.join(self.mapping.feed_times) or 'none'})"]
        for name, (start, end, label) in INTERVALS.items():
            if start in have and end in have:
                count = self.intervals[name]
                lines.append(f"  {label:<38} supported: {count:,} calls "
                             f"({100 * count / calls:.0f} %)")
            else:
                missing = " and ".join(t for t in (start, end) if t not in have)
                lines.append(f"  {label:<38} not in this feed (no {missing} time)")
        return lines


def _block(title: str, tally: _Tally, empty: str = "  (none)") -> list[str]:
    return ["", title] + (tally.lines() or [empty])


def _event_type(event: Event) -> str:
    if isinstance(event, CallEvent):
        return f"call {event.kind}" + (f" {event.step}" if event.step else "")
    if isinstance(event, UnitEvent):
        return f"unit {event.status}"
    if isinstance(event, ShotAlert):
        return "gunshot alert" + (" (from CAD)" if event.from_cad else "")
    return "share"


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.0f} days" if hours < 730 * 24 else f"{hours / 24 / 365.25:.0f} years"


def _first_times(record: CallRecord) -> dict[str, datetime | None]:
    def first(*values: datetime | None) -> datetime | None:
        known = [value for value in values if value is not None]
        return min(known) if known else None

    units = record.units
    return {
        "received": record.received_time,
        "dispatched": first(record.dispatched_time, *(u.dispatched for u in units)),
        "on_scene": first(record.on_scene_time, *(u.on_scene for u in units)),
        "closed": record.closed_time,
    }
