"""Response-time figures as plain functions: filters in, numbers and tables out.

The /response page's callbacks pass the closed calls (a DataFrame from the read API) and
the chosen filters to these functions; nothing here imports dash or redis, so every number
the page shows is computed here and tested without a server. Percentiles are numpy's
default (linear interpolation), the same as pandas' ``quantile``.

Speed: a filter change over 1,000,000 closed calls is numpy masks over columns the read
API already holds in memory, one ``groupby`` for the series and a pre-binned histogram, so
the browser never receives one value per call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from streams.core import response
from streams.core.events import CATEGORY_LABELS

METRICS = {
    "dispatch": ("dispatch_s", "Received → dispatched"),
    "travel": ("travel_s", "Dispatched → on scene"),
    "response": ("response_s", "Received → on scene"),
}
"""Metric key -> (closed-record column in seconds, label)."""

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
TABLE_COLUMNS = (
    "call_id", "received", "district", "neighborhood", "category", "priority", "call_type",
    "dispatch_seconds", "travel_seconds", "response_seconds",
)
"""The slowest-calls table's fields = its CSV header (interval columns say their unit)."""
TABLE_SECONDS = {"dispatch": "dispatch_seconds", "travel": "travel_seconds",
                 "response": "response_seconds"}
"""Metric key -> the table field holding it."""


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

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {self.bucket!r}")

    @property
    def column(self) -> str:
        return METRICS[self.metric][0]


@dataclass(frozen=True)
class Stat:
    """Count, median and 90th percentile of one set of intervals (None when empty)."""

    n: int
    median: float | None
    p90: float | None


@dataclass
class Shown:
    """Everything one filter change puts on screen (and exactly what CSV export writes)."""

    kpis: dict[str, dict[str, Stat]] = field(default_factory=dict)
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
        return Period(start, end, start - (end - start), start, "Custom range")
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

def select(frame: pd.DataFrame, start: float, end: float, query: ResponseQuery) -> pd.DataFrame:
    """Closed, not cancelled calls received in [start, end) that pass the filters
    (``streams.core.response.filter_calls``; the read API's dtypes: bool flags)."""
    if frame.empty:
        return frame
    return response.filter_calls(frame, start, end, districts=query.districts or None,
                                 priorities=query.priorities or None,
                                 categories=query.categories or None,
                                 qol=True if query.qol_only else None)


def stat(frame: pd.DataFrame, column: str) -> Stat:
    """Count, median and 90th percentile of one interval column (blanks = never happened)."""
    if frame.empty:
        return Stat(0, None, None)
    found = response.summary(frame, column)
    median, p90 = found["median"], found["p90"]
    return Stat(int(found["count"] or 0), None if median is None else float(median),
                None if p90 is None else float(p90))


def kpis(current: pd.DataFrame, previous: pd.DataFrame) -> dict[str, dict[str, Stat]]:
    """Per metric: this period's and the previous period's Stat."""
    return {key: {"current": stat(current, column), "previous": stat(previous, column)}
            for key, (column, _label) in METRICS.items()}


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
    return str(value)


def series(frame: pd.DataFrame, query: ResponseQuery, timezone: str) -> pd.DataFrame:
    """Median and p90 of the query's metric per (bucket, group): columns bucket, group, n,
    median, p90, sorted by group then bucket; buckets with no value are absent.
    The maths is ``streams.core.response.percentile_series``; this names the groups."""
    columns = ["bucket", "group", "n", "median", "p90"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    by = None if query.split == "none" else query.split
    found = response.percentile_series(frame, query.column, query.bucket,  # type: ignore[arg-type]
                                       timezone, by=by)
    if found.empty:
        return pd.DataFrame(columns=columns)
    labels = {value: group_label(value, query.split) for value in found[by].unique()} \
        if by else {}
    table = pd.DataFrame({
        "bucket": found["period"].to_numpy(),
        "group": found[by].map(labels).to_numpy(dtype=object) if by else "All calls",
        "n": found["count"].to_numpy(), "median": found["median"].to_numpy(dtype=float),
        "p90": found["p90"].to_numpy(dtype=float)})
    return table.sort_values(["group", "bucket"], kind="stable").reset_index(drop=True)


def shift_series(frame: pd.DataFrame, shift: pd.Timedelta) -> pd.DataFrame:
    """The previous period's series moved onto this period's time axis."""
    if frame.empty:
        return frame
    moved = frame.copy()
    moved["bucket"] = moved["bucket"] + shift
    return moved


# --- histogram and slowest calls --------------------------------------------------------

def histogram(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges in seconds): 30 s bins, widened so there are at most 120; the
    last bin also holds everything above the 99th percentile so outliers stay visible."""
    values = frame[column].dropna().to_numpy(dtype=float) if not frame.empty else np.zeros(0)
    if values.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    top = max(float(np.percentile(values, 99)), HISTOGRAM_BIN_S)
    width = HISTOGRAM_BIN_S * max(1, math.ceil(top / HISTOGRAM_BIN_S / HISTOGRAM_MAX_BINS))
    bins = response.histogram(frame, column, bin_s=width, max_s=math.ceil(top / width) * width
                              - width / 2)
    edges = np.append(bins["bin_start"].to_numpy(dtype=float),
                      bins["bin_end"].to_numpy(dtype=float)[-1:])
    return bins["count"].to_numpy(dtype=int), edges


def slowest(frame: pd.DataFrame, query: ResponseQuery, timezone: str,
            limit: int = SLOWEST_LIMIT) -> list[dict[str, Any]]:
    """The ``limit`` calls with the longest metric, slowest first, as table rows."""
    if frame.empty:
        return []
    values = frame[query.column].to_numpy(dtype=float)
    finite = np.isfinite(values)
    if finite.sum() > limit:
        # Sorting 300,000 rows by (value, call id) costs 0.3 s; only rows at or above the
        # limit-th largest value can be in the answer, so the exact sort runs on those.
        threshold = np.partition(values[finite], finite.sum() - limit)[finite.sum() - limit]
        frame = frame.loc[finite & (values >= threshold)]
    rows = response.slowest_calls(frame, query.column, limit)
    zone = ZoneInfo(timezone)
    return [_table_row(row, zone) for row in rows.to_dict("records")]


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
    }


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
    """Target seconds per priority for ``metric``: pending targets for received->dispatched,
    response targets for received->on scene, and their difference for the drive itself."""
    chosen = sorted(set(priorities)) or [1, 2, 3, 4, 5]
    out: dict[int, float] = {}
    for priority in chosen:
        if not 1 <= priority <= 5:
            raise ValueError(f"priority must be 1..5, got {priority}")
        pending, response = pending_targets[priority - 1], response_targets[priority - 1]
        out[priority] = float({"dispatch": pending, "response": response,
                               "travel": max(response - pending, 0)}[metric])
    return out


def duration_text(seconds: float | None) -> str:
    """'—', '45 s', '2:04' (m:ss) or '1:02:03' (h:mm:ss), rounded to the nearest second."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def delta_text(seconds: float | None) -> str:
    """'+0:12', '−45 s', or '' when there is nothing to compare."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    sign = "+" if seconds >= 0 else "−"
    return sign + duration_text(abs(seconds))


def effective_bucket(bucket: str, span_s: float) -> str:
    """The bucket actually drawn: the chosen one, or a coarser one when the chosen one
    would put more than MAX_BUCKETS points on each line (hourly over a year is noise)."""
    order = list(BUCKET_SECONDS)
    index = order.index(bucket)
    while index < len(order) - 1 and span_s / BUCKET_SECONDS[order[index]] > MAX_BUCKETS:
        index += 1
    return order[index]


def compute(current_calls: pd.DataFrame, previous_calls: pd.DataFrame, period: Period,
            query: ResponseQuery, timezone: str) -> Shown:
    """Everything the page shows for one filter change, from the closed calls received in
    the period and in the previous period (wider frames are fine: selection re-checks)."""
    bucket = effective_bucket(query.bucket, period.end - period.start)
    note = "" if bucket == query.bucket else (
        f"{BUCKETS[query.bucket]}ly points over this period would be too many to read; "
        f"shown per {bucket}.")
    drawn = dataclasses.replace(query, bucket=bucket)
    current = select(current_calls, period.start, period.end, query)
    previous = select(previous_calls, period.previous_start, period.previous_end, query)
    return Shown(
        kpis=kpis(current, previous),
        series=series(current, drawn, timezone),
        previous_series=shift_series(series(previous, drawn, timezone), period.shift(timezone)),
        histogram=histogram(current, query.column),
        slowest=slowest(current, query, timezone),
        bucket=bucket, note=note,
    )


# --- what goes on screen: the series table, CSV, figures -----------------------------------

PALETTE = ("#56b4e9", "#e69f00", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
           "#bbbbbb", "#ffffff")
"""Okabe-Ito colours (colour-blind safe), one per series group."""
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


def csv_text(columns: dict[str, list[Any]] | Sequence[dict[str, Any]],
             names: Sequence[str]) -> str:
    """A column dict or a list of row dicts as CSV with ``names`` as header, in order."""
    frame = pd.DataFrame(columns if isinstance(columns, dict) else list(columns),
                         columns=list(names))
    return frame.to_csv(index=False, lineterminator="\n")


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
            + " · ".join(f"P{p} {duration_text(s)}" for p, s in sorted(every.items())))


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
    stamps = pd.DatetimeIndex(x)
    step = pd.Timedelta(seconds=BUCKET_SECONDS[bucket])
    # An hour bucket may skip the missing spring-forward hour: allow one extra hour there.
    slack = step * (2 if bucket == "hour" else 1)
    out_x: list[str | None] = [x[0]]
    out_cols: list[list[Any]] = [[c[0]] for c in columns]
    for index in range(1, len(x)):
        if stamps[index] - stamps[index - 1] > slack:
            out_x.append((stamps[index - 1] + step).strftime("%Y-%m-%dT%H:%M"))
            for column in out_cols:
                column.append(None)
        out_x.append(x[index])
        for column, source in zip(out_cols, columns, strict=True):
            column.append(source[index])
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
    colours = {group: PALETTE[index % len(PALETTE)] for index, group in enumerate(groups)}
    hover_format = AXIS_FORMATS[bucket]["hoverformat"]
    for group in groups:
        for period, dash, opacity in (("current", "solid", 1.0), ("previous", "dash", 0.6)):
            mine = frame[(frame["group"] == group) & (frame["period"] == period)]
            if mine.empty:
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
                          "text": f"P{priority} target {duration_text(seconds)}",
                          "showarrow": False, "xanchor": "left", "yanchor": "bottom",
                          "bgcolor": "rgba(33,37,41,0.75)",
                          "font": {"size": 12, "color": colour}})
    above = [f"P{p} {duration_text(s)}" for p, s in sorted(target_seconds.items()) if s > top]
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
        labels = [f"{duration_text(a)}–{duration_text(b)}"
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
                      "text": f"{name} {duration_text(value)}", "showarrow": False,
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
