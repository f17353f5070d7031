"""Response-time figures as plain functions: filters in, numbers and tables out.

The /response page's callbacks pass a history selection (``dashboard.history``: DuckDB
over the history writer's files, or over any table in tests) and the chosen filters to
``compute``; nothing here imports dash or redis. Every statistic is one SQL aggregate
(``quantile_cont``: linear interpolation, numpy's and pandas' default); this module turns
the small results into what the page shows, so the browser never receives one value per
call and no worker holds the whole history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from dashboard.history import Query, Selection, local_stamps
from streams.core import csvsafe, display, response
from streams.core.events import CATEGORIES, CATEGORY_LABELS
from streams.core.history import TIME_FIELDS

METRICS = {key: (spec.column, spec.label) for key, spec in response.INTERVALS.items()}
"""Interval key -> (closed-record column in seconds, label), in the page's order."""
DEFINITIONS = {key: spec.definition for key, spec in response.INTERVALS.items()}
CANCELLED = {"exclude": "Left out", "include": "Included"}
LEFT_FEED = {"exclude": "Left out", "include": "Included"}
"""Treatment of cancelled calls, and of calls closed only because they left an active
feed (the feed never said they closed): both left out of statistics by default."""

SPLITS = {"none": "All calls", "district": "District", "priority": "Priority",
          "category": "Category"}
BUCKETS = {"hour": "Hour", "day": "Day", "week": "Week"}
PRESETS = {"today": "Today", "7d": "7 days", "30d": "30 days", "summer": "Summer season",
           "custom": "Custom"}
PRESET_DAYS = {"today": 1, "7d": 7, "30d": 30}
"""Local calendar days (today included) each rolling preset covers."""

SUMMER_START = (6, 1)
SUMMER_END = (9, 7)
"""The summer season is June 1 through September 7 (inclusive) in the city's time zone:
the 2014 Summer Initiative's span, roughly Memorial Day week to Labor Day."""

BUCKET_SECONDS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}
MAX_BUCKETS = 800
"""More points than this per line and the chart shows the next coarser bucket."""

SLOWEST_LIMIT = 100
HISTOGRAM_BIN_S = 30.0
HISTOGRAM_MAX_BINS = 120
TABLE_SECONDS = {key: f"{key}_seconds" for key in METRICS}
"""Interval key -> the table field holding it."""
TABLE_COLUMNS = (
    "call_id", "received", "district", "neighborhood", "category", "priority", "call_type",
    *TABLE_SECONDS.values(), "target_seconds", "past_target_seconds", "source",
)
"""The slowest-calls table's fields = its CSV header (interval columns say their unit);
``past_target_seconds`` is how far the chosen interval went past the call's own priority's
target (negative: within it)."""


@dataclass(frozen=True)
class Period:
    """A half-open span [start, end) of epoch seconds, and the one it is compared with."""

    start: float
    end: float
    previous_start: float
    previous_end: float
    label: str

    def shift(self, timezone: str) -> pd.Timedelta:
        """What to add to a previous-period wall-clock time to overlay it on this period
        (local wall-clock difference, so a DST change does not misalign day buckets)."""
        zone = ZoneInfo(timezone)
        now = datetime.fromtimestamp(self.start, zone).replace(tzinfo=None)
        then = datetime.fromtimestamp(self.previous_start, zone).replace(tzinfo=None)
        return pd.Timedelta(now - then)


@dataclass(frozen=True)
class ResponseQuery:
    """Everything the page's controls choose, except the period."""

    metric: str = "response"
    split: str = "none"
    bucket: str = "day"
    districts: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    qol_only: bool = False
    cancelled: str = "exclude"
    left_feed: str = "exclude"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {self.bucket!r}")
        if self.cancelled not in CANCELLED or self.left_feed not in LEFT_FEED:
            raise ValueError("cancelled and left_feed must be 'exclude' or 'include'")
        unknown = sorted(set(self.categories) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"no such call category: {', '.join(unknown)}")

    @property
    def column(self) -> str:
        return METRICS[self.metric][0]


@dataclass(frozen=True)
class Stat:
    """Count, median and 90th percentile of one set of intervals (None when empty)."""

    n: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class Compliance:
    """One priority's calls against its target for the chosen interval."""

    priority: int
    n: int
    within: int
    median: float | None
    p90: float | None
    target: float
    passed: bool | None

    @property
    def share(self) -> float | None:
        return self.within / self.n if self.n else None


@dataclass(frozen=True)
class Coverage:
    """What the period's calls of one feed hold: calls, calls with each time, and those
    left out (cancelled, left the feed) or counted."""

    source: str
    calls: int
    times: dict[str, int]
    cancelled: int
    left_feed: int
    counted: int

    def lacks(self, interval: str) -> bool:
        """True when no call of this feed has both times the interval needs."""
        spec = response.INTERVALS[interval]
        return self.calls > 0 and (self.times[spec.start] == 0 or self.times[spec.end] == 0)


@dataclass
class Shown:
    """Everything one filter change puts on screen (and exactly what CSV export writes)."""

    kpis: dict[str, dict[str, Stat]] = field(default_factory=dict)
    compliance: list[Compliance] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    complete: bool = True
    """False when the history writer is behind and the newest calls are left out."""
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    previous_series: pd.DataFrame = field(default_factory=pd.DataFrame)
    histogram: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    slowest: list[dict[str, Any]] = field(default_factory=list)
    bucket: str = "day"
    """The bucket drawn (coarser than asked for when that would be too many points)."""
    note: str = ""


# --- periods ----------------------------------------------------------------------------

def _local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def _same_wall_time(now: float, day: date, zone: ZoneInfo) -> float:
    """Epoch of ``now``'s local wall-clock time on ``day``."""
    return datetime.combine(day, datetime.fromtimestamp(now, zone).time(),
                            tzinfo=zone).timestamp()


def summer_season(now: float, timezone: str) -> tuple[float, float, int]:
    """(start, end, year) of the current summer season, or last year's before June 1."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    year = today.year if today >= date(today.year, *SUMMER_START) else today.year - 1
    return (_local_midnight(date(year, *SUMMER_START), zone),
            _local_midnight(date(year, *SUMMER_END) + timedelta(days=1), zone), year)


def period_bounds(preset: str, now: float, timezone: str, custom_start: str | None = None,
                  custom_end: str | None = None) -> Period:
    """The span a preset means at ``now`` and the previous span it is compared with.

    Today compares with yesterday up to the same time; 7 and 30 days are whole local
    calendar days (the last N including today, up to now) compared with the N days before
    up to the same time of day;
    the summer season (capped at now) compares with the same dates a year earlier; a custom
    range covers whole local days ``custom_start``..``custom_end`` (ISO dates, inclusive).
    """
    zone = ZoneInfo(timezone)
    if preset == "today":
        today = datetime.fromtimestamp(now, zone).date()
        start = _local_midnight(today, zone)
        yesterday = _local_midnight(today - timedelta(days=1), zone)
        return Period(start, now, yesterday, _same_wall_time(now, today - timedelta(days=1), zone),
                      "Today")
    if preset in ("7d", "30d"):
        # Whole local calendar days: the last N days including today, up to now; the
        # previous period is the N days before, up to the same wall-clock time (so a DST
        # change never shifts the bounds off midnight).
        days = PRESET_DAYS[preset]
        today = datetime.fromtimestamp(now, zone).date()
        first = today - timedelta(days=days - 1)
        start = _local_midnight(first, zone)
        previous_start = _local_midnight(first - timedelta(days=days), zone)
        previous_end = _same_wall_time(now, today - timedelta(days=days), zone)
        return Period(start, now, previous_start, previous_end, f"Last {days} days")
    if preset == "summer":
        start, end, year = summer_season(now, timezone)
        end = min(end, now)
        last_start = _local_midnight(date(year - 1, *SUMMER_START), zone)
        return Period(start, end, last_start, last_start + (end - start), f"Summer {year}")
    if preset == "custom":
        if not custom_start or not custom_end:
            raise ValueError("pick both a start and an end date for a custom range")
        first, last = date.fromisoformat(custom_start[:10]), date.fromisoformat(custom_end[:10])
        if last < first:
            raise ValueError("the custom range ends before it starts; swap the dates")
        start = _local_midnight(first, zone)
        end = _local_midnight(last + timedelta(days=1), zone)
        # As many whole local days before (not as many seconds: a DST change in between
        # would put the previous period an hour off midnight).
        before = _local_midnight(first - timedelta(days=(last - first).days + 1), zone)
        return Period(start, end, before, start, "Custom range")
    raise ValueError(f"period must be one of {', '.join(PRESETS)}, got {preset!r}")


def preset_dates(preset: str, now: float, timezone: str) -> tuple[str, str] | None:
    """The first and last local dates (ISO) a preset covers, for the date picker to show;
    None for a custom range (the picker holds it)."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    if preset in PRESET_DAYS:
        return (today - timedelta(days=PRESET_DAYS[preset] - 1)).isoformat(), today.isoformat()
    if preset == "summer":
        start, end, _year = summer_season(now, timezone)
        first = datetime.fromtimestamp(start, zone).date()
        last = min(datetime.fromtimestamp(end, zone).date() - timedelta(days=1), today)
        return first.isoformat(), last.isoformat()
    if preset == "custom":
        return None
    raise ValueError(f"period must be one of {', '.join(PRESETS)}, got {preset!r}")


# --- selection and statistics -------------------------------------------------------------

SPLIT_COLUMNS = {"district": "district", "priority": "priority", "category": "category"}


def selection_of(period: Period, query: ResponseQuery) -> Selection:
    """The history selection a filter change asks about (both periods, every filter)."""
    return Selection(period.start, period.end, period.previous_start, period.previous_end,
                     districts=query.districts, priorities=query.priorities,
                     categories=query.categories, qol_only=query.qol_only,
                     include_cancelled=query.cancelled == "include",
                     include_left_feed=query.left_feed == "include",
                     group=SPLIT_COLUMNS.get(query.split))


def _quantiles(value: Any) -> tuple[float | None, float | None]:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None, None
    median, p90 = list(value)
    return (None if median is None else float(median)), (None if p90 is None else float(p90))


def kpis(stats: pd.DataFrame) -> dict[str, dict[str, Stat]]:
    """Per interval: this period's and the previous period's Stat (all priorities), from
    ``Query.period_stats``."""
    out: dict[str, dict[str, Stat]] = {}
    rows = stats.to_dict("records")
    for key in METRICS:
        out[key] = {"current": Stat(0, None, None), "previous": Stat(0, None, None)}
        for row in rows:
            median, p90 = _quantiles(row[f"{key}_q"])
            out[key]["current" if row["cur"] else "previous"] = Stat(
                int(row[f"{key}_n"]), median, p90)
    return out


def compliance(stats: pd.DataFrame, targets_s: Sequence[float] | None,
               goal_percent: float) -> list[Compliance]:
    """Per priority with calls this period (``Query.priority_stats`` with targets): share
    within its own target, median, p90, pass/fail against the compliance goal. Empty
    for an interval without targets."""
    if targets_s is None:
        return []
    found = []
    for row in stats.to_dict("records"):
        priority = int(row["priority"])
        if not 1 <= priority <= len(targets_s) or not int(row["judged"]):
            continue
        n, within = int(row["judged"]), int(row["within"])
        median, p90 = _quantiles(row["q"])
        found.append(Compliance(priority, n, within, median, p90, float(targets_s[priority - 1]),
                                response.passes(within / n, goal_percent)))
    return sorted(found, key=lambda item: item.priority)


def response_by_priority(select: Callable[[Selection], AbstractContextManager[Query]],
                         start: float, end: float, response_targets: Sequence[int]
                         ) -> list[dict[str, Any]]:
    """Received -> on scene per priority with calls in [start, end), then 'All': label,
    count, median_s, p90_s, target_s, median_ok, p90_ok. The wall's tile shows this: the
    same SQL, selection rules and quantile as /response, so the two never disagree."""
    column = response.INTERVALS["response"].column
    with select(Selection(start, end)) as found:
        by_priority = found.priority_stats(column, None)
        overall = kpis(found.period_stats())["response"]["current"]
    rows = []
    for row in by_priority.to_dict("records"):
        priority, n = int(row["priority"]), int(row["n"])
        if not n or not 1 <= priority <= len(response_targets):
            continue
        median, p90 = _quantiles(row["q"])
        rows.append(_tile_row(f"P{priority}", n, median, p90,
                              float(response_targets[priority - 1])))
    if overall.n:
        rows.append(_tile_row("All", overall.n, overall.median, overall.p90, None))
    return rows


def _tile_row(label: str, n: int, median: float | None, p90: float | None,
              target: float | None) -> dict[str, Any]:
    return {"label": label, "count": n, "median_s": median, "p90_s": p90, "target_s": target,
            "median_ok": None if target is None or median is None else median <= target,
            "p90_ok": None if target is None or p90 is None else p90 <= target}


def delta(current: float | None, previous: float | None) -> float | None:
    """current - previous in seconds, or None if either is missing."""
    if current is None or previous is None:
        return None
    return current - previous


# --- series -----------------------------------------------------------------------------

def group_label(value: Any, split: str) -> str:
    """The series name shown for one split value: 'P2', 'ATVs / dirt bikes', 'North'."""
    if split == "priority":
        return f"P{int(float(value))}" if _finite(value) else "P?"
    if split == "category":
        return CATEGORY_LABELS.get(str(value), str(value))
    if split == "none":
        return "All calls"
    return str(value) if _text(value) else "(none)"


def series_frames(found: pd.DataFrame, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, previous) series from the history's per-bucket rows: columns bucket
    (naive local time), group, n, median, p90, sorted by group then bucket."""
    columns = ["bucket", "group", "n", "median", "p90"]
    parts = []
    for current in (True, False):
        rows = found.loc[found["cur"].astype(bool) == current]
        if rows.empty:
            parts.append(pd.DataFrame(columns=columns))
            continue
        labels = {value: group_label(value, split) for value in rows["grp"].unique()}
        table = pd.DataFrame({
            "bucket": local_stamps(rows["bucket"].to_numpy(dtype=float)),
            "group": rows["grp"].map(labels).to_numpy(dtype=object),
            "n": rows["n"].to_numpy(dtype=int), "median": rows["median"].to_numpy(dtype=float),
            "p90": rows["p90"].to_numpy(dtype=float)})
        parts.append(table.sort_values(["group", "bucket"], kind="stable")
                     .reset_index(drop=True))
    return parts[0], parts[1]


def shift_series(frame: pd.DataFrame, shift: pd.Timedelta) -> pd.DataFrame:
    """The previous period's series moved onto this period's time axis."""
    if frame.empty:
        return frame
    moved = frame.copy()
    moved["bucket"] = moved["bucket"] + shift
    return moved


# --- histogram and slowest calls --------------------------------------------------------

def histogram(query: Query, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges in seconds): 30 s bins, widened so there are at most 120; the
    last bin also holds everything above the 99th percentile so outliers stay visible."""
    p99 = query.quantile(column, 0.99)
    if p99 is None:
        return np.zeros(0, dtype=int), np.zeros(0)
    top = max(p99, HISTOGRAM_BIN_S)
    width = HISTOGRAM_BIN_S * max(1, math.ceil(top / HISTOGRAM_BIN_S / HISTOGRAM_MAX_BINS))
    bins = max(1, math.ceil(top / width))
    found = query.histogram(column, width, (bins - 1) * width)
    counts = np.zeros(bins, dtype=int)
    index = np.round(found["bin"].to_numpy(dtype=float) / width).astype(int)
    np.add.at(counts, np.clip(index, 0, bins - 1), found["n"].to_numpy(dtype=int))
    return counts, np.arange(bins + 1) * width


def slowest_rows(found: pd.DataFrame, timezone: str) -> list[dict[str, Any]]:
    """The history's slowest calls as table rows (TABLE_COLUMNS)."""
    zone = ZoneInfo(timezone)
    return [_table_row(row, zone) for row in found.to_dict("records")]


def _table_row(record: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    received = record.get("received_time")
    return {
        "call_id": str(record.get("call_id")),
        "received": (datetime.fromtimestamp(float(received), zone).strftime("%Y-%m-%d %H:%M:%S")
                     if _finite(received) else ""),
        "district": _text(record.get("district")),
        "neighborhood": _text(record.get("neighborhood")),
        "category": CATEGORY_LABELS.get(_text(record.get("category")),
                                        _text(record.get("category"))),
        "priority": group_label(record.get("priority"), "priority")
        if _finite(record.get("priority")) else "",
        "call_type": _text(record.get("call_type")),
        **{field: _seconds(record.get(METRICS[metric][0]))
           for metric, field in TABLE_SECONDS.items()},
        "target_seconds": _seconds(record.get("target_s")),
        "past_target_seconds": _seconds(record.get("past_s")),
        "source": _text(record.get("source")),
    }


def coverage(found: pd.DataFrame) -> list[Coverage]:
    """Per feed: what its calls in the period hold (see Coverage)."""
    return [Coverage(str(row["source"]), int(row["calls"]),
                     {name: int(row[name]) for name in TIME_FIELDS}, int(row["cancelled"]),
                     int(row["left_feed"]), int(row["counted"]))
            for row in found.to_dict("records")]


def missing_intervals(feeds: Sequence[Coverage]) -> dict[str, list[str]]:
    """Interval -> the feeds (with calls this period) whose data cannot give it."""
    return {key: [feed.source or "(unnamed feed)" for feed in feeds if feed.lacks(key)]
            for key in METRICS}


def _finite(value: Any) -> bool:
    try:
        return value is not None and value != "" and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _seconds(value: Any) -> float | None:
    return round(float(value), 1) if _finite(value) else None


# --- targets and formatting ---------------------------------------------------------------

def targets(metric: str, priorities: Sequence[int], pending_targets: Sequence[int],
            response_targets: Sequence[int]) -> dict[int, float]:
    """Target seconds per chosen priority (all five when none is chosen) for ``metric``, by
    the one rule in ``streams.core.response.interval_targets``; empty for an interval
    without targets (time on scene)."""
    chosen = sorted(set(priorities)) or [1, 2, 3, 4, 5]
    for priority in chosen:
        if not 1 <= priority <= 5:
            raise ValueError(f"priority must be 1..5, got {priority}")
    per_priority = response.interval_targets(metric, pending_targets, response_targets)
    return {} if per_priority is None else {p: per_priority[p - 1] for p in chosen}


def effective_bucket(bucket: str, span_s: float) -> str:
    """The bucket actually drawn: the chosen one, or a coarser one when the chosen one
    would put more than MAX_BUCKETS points on each line (hourly over a year is noise)."""
    order = list(BUCKET_SECONDS)
    index = order.index(bucket)
    while index < len(order) - 1 and span_s / BUCKET_SECONDS[order[index]] > MAX_BUCKETS:
        index += 1
    return order[index]


def compute(select: Callable[[Selection], AbstractContextManager[Query]], period: Period,
            query: ResponseQuery, timezone: str, pending_targets: Sequence[int],
            response_targets: Sequence[int], goal_percent: float = 90.0) -> Shown:
    """Everything the page shows for one filter change, from the history (``select`` is
    ``HistoryStore.select`` or ``history.select_frame(table)``)."""
    bucket = effective_bucket(query.bucket, period.end - period.start)
    note = "" if bucket == query.bucket else (
        f"{BUCKETS[query.bucket]}ly points over this period would be too many to read; "
        f"shown per {bucket}.")
    targeted = {key: t for key in response.TARGETED if (t := response.interval_targets(
        key, pending_targets, response_targets)) is not None}
    with select(selection_of(period, query)) as found:
        metric_targets = targeted.get(query.metric)
        overall = kpis(found.period_stats())  # first: the same for every split and bucket
        current, previous = series_frames(found.series(query.column, bucket), query.split)
        shown = Shown(
            kpis=overall,
            compliance=compliance(found.priority_stats(query.column, metric_targets),
                                  metric_targets, goal_percent),
            coverage=coverage(found.coverage()),
            complete=found.state.tail.complete,
            series=current, previous_series=shift_series(previous, period.shift(timezone)),
            histogram=histogram(found, query.column),
            slowest=slowest_rows(found.slowest(query.column, metric_targets, SLOWEST_LIMIT),
                                 timezone),
            bucket=bucket, note=note)
    return shown


# --- what goes on screen: the series table, CSV, figures -----------------------------------

PALETTE = ("#56b4e9", "#e69f00", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
           "#bbbbbb", "#ffffff")
"""Okabe-Ito colours (colour-blind safe), one per series group that is not a priority."""


def series_colours(groups: Sequence[str]) -> dict[str, str]:
    """Each series group's colour: a priority ('P1'..'P5') in the one priority palette
    every page uses (``streams.core.display``, from assets/display.css), so P1 here is
    the wall's P1; other groups (districts, categories) in Okabe-Ito order."""
    colours: dict[str, str] = {}
    others = 0
    for group in groups:
        priority = group[1:] if group[:1] == "P" else ""
        if priority.isdigit() and int(priority) in display.PRIORITIES:
            colours[group] = display.priority_colour(int(priority))
        else:
            colours[group] = PALETTE[others % len(PALETTE)]
            others += 1
    return colours


SERIES_COLUMNS = ("period", "bucket", "group", "n", "median_seconds", "p90_seconds")


def series_table(shown: Shown) -> dict[str, list[Any]]:
    """The series behind the chart, column by column: period ('current'/'previous'), bucket
    (city wall time, ISO), group, n, median_seconds, p90_seconds. The chart draws exactly this and
    the series CSV writes exactly this."""
    parts = [frame.assign(period=period) for period, frame in
             (("current", shown.series), ("previous", shown.previous_series)) if len(frame)]
    if not parts:
        return {name: [] for name in SERIES_COLUMNS}
    table = pd.concat(parts, ignore_index=True)
    return {
        "period": table["period"].tolist(),
        "bucket": pd.DatetimeIndex(table["bucket"]).strftime("%Y-%m-%dT%H:%M").tolist(),
        "group": table["group"].astype(str).tolist(),
        "n": table["n"].astype(int).tolist(),
        "median_seconds": table["median"].astype(float).round(3).tolist(),
        "p90_seconds": table["p90"].astype(float).round(3).tolist(),
    }


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet will read it literally (``streams.core.csvsafe``: the one
    formula-safe CSV rule); missing values are empty cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return csvsafe.cell(value)


def csv_text(columns: dict[str, list[Any]] | Sequence[dict[str, Any]],
             names: Sequence[str], meta: dict[str, str] | None = None) -> str:
    """A column dict or a list of row dicts as CSV with ``names`` as header, in order,
    after ``# name,value`` lines saying what it holds (period, filters, interval, time
    zone, when it was made; a comment to CSV readers that skip ``#``, two cells to a
    spreadsheet). No cell starts a formula; numbers stay numbers."""
    frame = pd.DataFrame(columns if isinstance(columns, dict) else list(columns),
                         columns=list(names))
    frame = frame.astype(object).map(safe_cell)
    head = "".join(csvsafe.line([f"# {name}", value]) for name, value in (meta or {}).items())
    return head + frame.to_csv(index=False, lineterminator="\n")


def export_meta(period: Period, query: ResponseQuery, timezone: str, made: float
                ) -> dict[str, str]:
    """What an export or a printed report holds, in words (also the CSV's first lines)."""
    zone = ZoneInfo(timezone)
    filters = [f"districts {', '.join(query.districts)}" if query.districts else "all districts",
               "priorities " + ", ".join(f"P{p}" for p in query.priorities)
               if query.priorities else "all priorities",
               "categories " + ", ".join(CATEGORY_LABELS.get(c, c) for c in query.categories)
               if query.categories else "all categories",
               f"cancelled calls {CANCELLED[query.cancelled].lower()}",
               f"calls that left the feed {LEFT_FEED[query.left_feed].lower()}"]
    if query.qol_only:
        filters.append("quality-of-life calls only")
    return {
        "Report": "Hartford dispatch response times",
        "Interval": f"{METRICS[query.metric][1]} ({DEFINITIONS[query.metric]})",
        "Period": period_text(period, timezone),
        "Filters": "; ".join(filters),
        "Split": f"{SPLITS[query.split]}, per {query.bucket}",
        "Time zone": f"{timezone} (times are city wall-clock time)",
        "Made": datetime.fromtimestamp(made, zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def preset_meaning(label: str) -> str:
    """What a rolling preset spans, said in the header next to its label."""
    if label.startswith("Last "):
        return " (whole calendar days including today, up to now)"
    return " (since midnight, up to now)" if label == "Today" else ""


def span_text(start: float, end: float, zone: ZoneInfo) -> str:
    """'2014-07-01 – 2014-07-31' for whole local days, else times to the minute."""
    first, after = datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone)
    if first.time() == after.time() == datetime.min.time():
        last = datetime.fromtimestamp(end - 1, zone)
        return f"{first:%Y-%m-%d} – {last:%Y-%m-%d}"
    return f"{first:%Y-%m-%d %H:%M} – {after:%Y-%m-%d %H:%M}"


def period_text(period: Period, timezone: str) -> str:
    """'Last 7 days (…): 2014-07-01 – 2014-07-07; compared with … (EDT, city time)'."""
    zone = ZoneInfo(timezone)
    return (f"{period.label}{preset_meaning(period.label)}: "
            f"{span_text(period.start, period.end, zone)}; compared "
            f"with {span_text(period.previous_start, period.previous_end, zone)}"
            f" ({datetime.fromtimestamp(period.end, zone):%Z}, city time)")


def missing_time_text(metric: str) -> str:
    """'on-scene time' / 'dispatch or on-scene time': what an interval needs, in words."""
    spec = response.INTERVALS[metric]
    return " or ".join(TIME_WORDS[name] for name in (spec.start, spec.end))


TIME_WORDS = {"received_time": "received time", "dispatched_time": "dispatch time",
              "on_scene_time": "on-scene time", "closed_time": "cleared time"}


def left_out_text(feeds: Sequence[Coverage]) -> str:
    """'Left out of these figures: 12 cancelled calls, 3 that left the feed …'."""
    cancelled = sum(feed.cancelled for feed in feeds)
    left = sum(feed.left_feed for feed in feeds)
    counted = sum(feed.counted for feed in feeds)
    calls = sum(feed.calls for feed in feeds)
    return (f"{calls:,} closed calls in the period, {counted:,} counted. "
            f"Cancelled: {cancelled:,}; closed because they left an active-calls feed "
            f"(the feed never said they closed): {left:,}. Change the two filters above to "
            f"count them.")


def empty_reason(shown: Shown, metric: str) -> str:
    """Why a chart is blank: the feed lacks the times, or no call matches."""
    lacking = missing_intervals(shown.coverage)[metric]
    if lacking and len(lacking) == len(shown.coverage):
        return f"{METRICS[metric][1]}: not in this feed (no {missing_time_text(metric)})."
    return "No closed calls match these filters."


def shown_targets(query: ResponseQuery, groups: Sequence[str], pending_targets: Sequence[int],
                  response_targets: Sequence[int]) -> dict[int, float]:
    """The target lines worth drawing: one per priority actually on the chart. A target
    belongs to one priority, so an 'All calls' line (every priority mixed) gets none."""
    if query.split == "priority":
        chosen = sorted({int(g[1:]) for g in groups if g[:1] == "P" and g[1:].isdigit()})
        chosen = [p for p in chosen if not query.priorities or p in query.priorities]
    elif query.priorities:
        chosen = sorted(set(query.priorities))
    else:
        return {}
    return targets(query.metric, chosen, pending_targets, response_targets) if chosen else {}


def targets_note(metric: str, pending_targets: Sequence[int],
                 response_targets: Sequence[int]) -> str:
    """'Targets (per priority, not drawn for mixed priorities): P1 7:00 · P2 12:00 · …'."""
    every = targets(metric, [], pending_targets, response_targets)
    return ("Targets apply per priority (split or filter by priority to draw them): "
            + " · ".join(f"P{p} {display.duration(s)}" for p, s in sorted(every.items())))


AXIS_FORMATS = {
    "hour": {"tickformat": "%H:%M<br>%a %b %-d", "hoverformat": "%a %b %-d, %H:%M"},
    "day": {"tickformat": "%b %-d", "hoverformat": "%a %b %-d, %Y"},
    "week": {"tickformat": "wk of %b %-d", "hoverformat": "week of %a %b %-d, %Y"},
}
"""Tick and hover labels per bucket: a daily chart never shows 03:00 ticks."""
MAX_TICKS = 14


def _time_axis(buckets: Sequence[str], bucket: str) -> dict[str, Any]:
    """Ticks on whole buckets (every k-th day or week), range padded half a bucket."""
    formats = AXIS_FORMATS[bucket]
    axis: dict[str, Any] = {"type": "date", "tickformat": formats["tickformat"],
                            "hoverformat": formats["hoverformat"]}
    if not buckets:
        return axis
    first, last = pd.Timestamp(min(buckets)), pd.Timestamp(max(buckets))
    step = pd.Timedelta(seconds=BUCKET_SECONDS[bucket])
    axis["range"] = [(first - step / 2).isoformat(), (last + step / 2).isoformat()]
    if bucket != "hour":
        count = int((last - first) / step) + 1
        every = max(1, math.ceil(count / MAX_TICKS))
        axis.update(tick0=first.isoformat(), dtick=int(step.total_seconds() * 1000) * every)
    return axis


def _with_gaps(x: list[str], columns: list[list[Any]], bucket: str
               ) -> tuple[list[str | None], list[list[Any]]]:
    """Break the line where buckets are missing (no calls): a None point after each gap,
    so a line never implies values for days that had none."""
    if len(x) < 2:
        return list(x), columns
    stamps = pd.DatetimeIndex(x).as_unit("s").asi8
    step = int(BUCKET_SECONDS[bucket])
    # An hour bucket may skip the missing spring-forward hour: allow one extra hour there.
    slack = step * (2 if bucket == "hour" else 1)
    gaps = np.flatnonzero(np.diff(stamps) > slack)
    out_x: list[str | None] = list(x)
    out_cols = [list(column) for column in columns]
    for index in gaps[::-1]:  # from the end, so earlier positions stay valid
        filler = pd.Timestamp(int(stamps[index] + step), unit="s").strftime("%Y-%m-%dT%H:%M")
        out_x.insert(index + 1, filler)
        for column in out_cols:
            column.insert(index + 1, None)
    return out_x, out_cols


def series_figure(table: dict[str, list[Any]], target_seconds: dict[int, float],
                  metric_label: str, bucket: str = "day", note: str = "") -> dict[str, Any]:
    """Two stacked charts (median above, 90th percentile below) in minutes per bucket and
    group; the previous period dashed on the same time axis; targets (one per priority
    shown) as dotted lines; ``note`` written above the chart (targets not drawn).
    Buckets with no calls break the line. A plain figure dict: building plotly objects
    costs seconds at these sizes."""
    frame = pd.DataFrame(table)
    traces: list[dict[str, Any]] = []
    groups = list(dict.fromkeys(frame.loc[frame["period"] == "current", "group"]))
    groups += [g for g in dict.fromkeys(frame["group"]) if g not in groups]
    colours = series_colours(groups)
    hover_format = AXIS_FORMATS[bucket]["hoverformat"]
    parts = {key: part for key, part in frame.groupby(["group", "period"], sort=False)}
    for group in groups:
        for period, dash, opacity in (("current", "solid", 1.0), ("previous", "dash", 0.6)):
            mine = parts.get((group, period))
            if mine is None or mine.empty:
                continue
            name = group if period == "current" else f"{group} (previous period)"
            marker = {"size": 7 if len(mine) <= 60 else 4, "color": colours[group]}
            for axis, column in (("y", "median_seconds"), ("y2", "p90_seconds")):
                minutes = np.round(mine[column].to_numpy(dtype=float) / 60, 3).tolist()
                x, (y, n) = _with_gaps(mine["bucket"].tolist(),
                                       [minutes, mine["n"].tolist()], bucket)
                traces.append({
                    "type": "scatter", "x": x, "y": y, "xaxis": "x" if axis == "y" else "x2",
                    "yaxis": axis, "name": name, "legendgroup": name,
                    "showlegend": axis == "y", "opacity": opacity, "mode": "lines+markers",
                    "connectgaps": False, "marker": marker,
                    "line": {"color": colours[group], "dash": dash, "width": 2.5},
                    "customdata": n, "xhoverformat": hover_format,
                    "hovertemplate": "%{x}<br>%{y:.1f} min (%{customdata} calls)"
                                     f"<extra>{name}</extra>"})
    top = max([max(table["median_seconds"] + table["p90_seconds"], default=0.0), 60.0]) * 1.15
    shapes, notes = _target_lines(target_seconds, top, colours)
    if note:
        notes.append({"xref": "paper", "yref": "paper", "x": 0, "y": 1.045, "showarrow": False,
                      "xanchor": "left", "yanchor": "bottom",
                      "font": {"size": 12, "color": "#dddddd"}, "text": note})
    time_axis = _time_axis(table["bucket"], bucket)
    layout = {
        **_dark_layout(), "height": 650, "showlegend": True,
        "margin": {"l": 60, "r": 20, "t": 80, "b": 40},
        "legend": {"orientation": "h", "y": -0.08, "x": 0},
        "xaxis": {"anchor": "y", "matches": "x2", "showticklabels": False, **time_axis,
                  **_grid()},
        "xaxis2": {"anchor": "y2", **time_axis, **_grid()},
        "yaxis": {"domain": [0.54, 1.0], "range": [0, top / 60], "title": {"text": "minutes"},
                  **_grid()},
        "yaxis2": {"domain": [0.0, 0.46], "range": [0, top / 60],
                   "title": {"text": "minutes"}, **_grid()},
        "shapes": shapes,
        "annotations": notes + [
            _title(f"Median — {metric_label}", 1.0), _title(f"90th percentile — {metric_label}",
                                                            0.46)],
    }
    return {"data": traces, "layout": layout}


def _target_lines(target_seconds: dict[int, float], top: float, colours: dict[str, str],
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # Targets far above the data would squash it: those are listed, not drawn. A priority
    # drawn as its own line gets its target in the same colour.
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for priority, seconds in sorted(target_seconds.items()):
        if seconds > top:
            continue
        colour = colours.get(f"P{priority}", "#cccccc")
        for axis in ("y", "y2"):
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": axis,
                           "y0": seconds / 60, "y1": seconds / 60,
                           "line": {"color": colour, "dash": "dot", "width": 1.5}})
            notes.append({"xref": "paper", "x": 0.005, "yref": axis, "y": seconds / 60,
                          "text": f"P{priority} target {display.duration(seconds)}",
                          "showarrow": False, "xanchor": "left", "yanchor": "bottom",
                          "bgcolor": "rgba(33,37,41,0.75)",
                          "font": {"size": 12, "color": colour}})
    above = [f"P{p} {display.duration(s)}" for p, s in sorted(target_seconds.items()) if s > top]
    if above:
        notes.append({"xref": "paper", "yref": "paper", "x": 1, "y": 1.045, "showarrow": False,
                      "xanchor": "right", "yanchor": "bottom",
                      "font": {"size": 12, "color": "#dddddd"},
                      "text": "Targets above the chart: " + ", ".join(above)})
    return shapes, notes


def _title(text: str, y: float) -> dict[str, Any]:
    return {"xref": "paper", "yref": "paper", "x": 0.5, "y": y, "yanchor": "bottom",
            "showarrow": False, "text": text, "font": {"size": 15}}


def histogram_figure(counts: np.ndarray, edges: np.ndarray, current: Stat,
                     target_seconds: dict[int, float], metric_label: str) -> dict[str, Any]:
    """Calls per interval length (minutes), with the median and p90 marked."""
    data: list[dict[str, Any]] = []
    if len(counts):
        labels = [f"{display.duration(a)}–{display.duration(b)}"
                  for a, b in zip(edges[:-1], edges[1:], strict=True)]
        labels[-1] += " and longer"
        data.append({"type": "bar", "x": ((edges[:-1] + edges[1:]) / 120).round(4).tolist(),
                     "y": counts.tolist(), "width": (np.diff(edges) / 60).round(4).tolist(),
                     "marker": {"color": "#56b4e9"}, "customdata": labels,
                     "hovertemplate": "%{customdata}: %{y} calls<extra></extra>"})
    marks = [(current.median, "median", "solid", "#e69f00"),
             (current.p90, "p90", "dash", "#e69f00")]
    if len(target_seconds) == 1:
        marks.append((next(iter(target_seconds.values())), "target", "dot", "#cccccc"))
    shapes, notes = [], []
    for value, name, dash, colour in marks:
        if value is None:
            continue
        shapes.append({"type": "line", "yref": "paper", "y0": 0, "y1": 1, "xref": "x",
                       "x0": value / 60, "x1": value / 60,
                       "line": {"color": colour, "dash": dash, "width": 2}})
        notes.append({"xref": "x", "x": value / 60, "yref": "paper", "y": 1.0,
                      "text": f"{name} {display.duration(value)}", "showarrow": False,
                      "xanchor": "left", "yanchor": "bottom", "font": {"color": colour}})
    layout = {**_dark_layout(), "height": 320, "bargap": 0.05, "showlegend": False,
              "title": {"text": f"Distribution — {metric_label}", "font": {"size": 15}},
              "xaxis": {"title": {"text": "minutes"}, **_grid()},
              "yaxis": {"title": {"text": "calls"}, **_grid()},
              "shapes": shapes, "annotations": notes}
    return {"data": data, "layout": layout}


def empty_figure(message: str) -> dict[str, Any]:
    """A blank chart saying why it is blank."""
    return {"data": [], "layout": {
        **_dark_layout(), "height": 300, "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "annotations": [{"text": message, "showarrow": False, "font": {"size": 16},
                         "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}]}}


def _grid() -> dict[str, Any]:
    return {"gridcolor": "#3a3f44", "zerolinecolor": "#55595e", "linecolor": "#55595e"}


def _dark_layout() -> dict[str, Any]:
    return {"paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"size": 13, "color": "#e6e6e6"},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
            "hoverlabel": {"font": {"size": 13}}}
