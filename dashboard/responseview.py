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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

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

SUMMER_START = (6, 1)
SUMMER_END = (9, 7)
"""The summer season is June 1 through September 7 (inclusive) in the city's time zone:
the 2014 Summer Initiative's span, roughly Memorial Day week to Labor Day."""

SLOWEST_LIMIT = 100
HISTOGRAM_BIN_S = 30.0
HISTOGRAM_MAX_BINS = 120
TABLE_COLUMNS = (
    "call_id", "received", "district", "neighborhood", "category", "priority", "call_type",
    "dispatch_s", "travel_s", "response_s",
)


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


# --- periods ----------------------------------------------------------------------------

def _local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


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

    Today compares with yesterday up to the same time; 7 and 30 days end now and compare
    with the span of equal length just before;
    the summer season (capped at now) compares with the same dates a year earlier; a custom
    range covers whole local days ``custom_start``..``custom_end`` (ISO dates, inclusive).
    """
    zone = ZoneInfo(timezone)
    if preset == "today":
        today = datetime.fromtimestamp(now, zone).date()
        start = _local_midnight(today, zone)
        yesterday = _local_midnight(today - timedelta(days=1), zone)
        return Period(start, now, yesterday, yesterday + (now - start), "Today")
    if preset in ("7d", "30d"):
        days = 7 if preset == "7d" else 30
        start = now - days * 86400.0
        return Period(start, now, start - days * 86400.0, start, f"Last {days} days")
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
        return Period(start, end, start - (end - start), start, f"{first} – {last}")
    raise ValueError(f"period must be one of {', '.join(PRESETS)}, got {preset!r}")


# --- selection and statistics -------------------------------------------------------------

def select(frame: pd.DataFrame, start: float, end: float, query: ResponseQuery) -> pd.DataFrame:
    """Closed, not cancelled calls received in [start, end) that pass the filters."""
    if frame.empty:
        return frame
    received = frame["received_time"].to_numpy(dtype=float, na_value=np.nan)
    mask = (received >= start) & (received < end)
    if "cancelled" in frame:
        mask &= ~_flag(frame["cancelled"])
    if query.districts:
        mask &= _as_str(frame["district"]).isin(query.districts).to_numpy()
    if query.categories:
        mask &= _as_str(frame["category"]).isin(query.categories).to_numpy()
    if query.priorities:
        mask &= np.isin(_priorities(frame), np.asarray(query.priorities, dtype=float))
    if query.qol_only:
        mask &= _flag(frame["qol"])
    return frame[mask]


def _flag(column: pd.Series) -> np.ndarray:
    """A flag column as bools, whether the reader gave bools or the stream's "1"/"0"."""
    if column.dtype == bool:
        return column.to_numpy()
    return column.astype(str).isin(("1", "True", "true")).to_numpy()


def _as_str(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
        return column
    return column.astype(str)


def _priorities(frame: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(frame["priority"], errors="coerce").to_numpy(dtype=float,
                                                                      na_value=np.nan)


def stat(values: np.ndarray | pd.Series) -> Stat:
    """Count, median and 90th percentile of the finite values (NaN = never happened)."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return Stat(0, None, None)
    median, p90 = np.percentile(array, [50, 90])
    return Stat(int(array.size), float(median), float(p90))


def kpis(current: pd.DataFrame, previous: pd.DataFrame) -> dict[str, dict[str, Stat]]:
    """Per metric: this period's and the previous period's Stat."""
    return {key: {"current": stat(current[column]) if not current.empty else Stat(0, None, None),
                  "previous": stat(previous[column]) if not previous.empty else Stat(0, None, None)}
            for key, (column, _label) in METRICS.items()}


def delta(current: float | None, previous: float | None) -> float | None:
    """current - previous in seconds, or None if either is missing."""
    if current is None or previous is None:
        return None
    return current - previous


# --- series -----------------------------------------------------------------------------

def local_buckets(epochs: np.ndarray, bucket: str, timezone: str) -> pd.DatetimeIndex:
    """Start of each time's hour/day/week (weeks start Monday) as naive city wall time."""
    stamps = pd.to_datetime(epochs, unit="s", utc=True).tz_convert(timezone).tz_localize(None)
    if bucket == "hour":
        return stamps.floor("h")
    days = stamps.normalize()
    if bucket == "day":
        return days
    if bucket == "week":
        return days - pd.to_timedelta(days.dayofweek, unit="D")
    raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")


def group_labels(frame: pd.DataFrame, split: str) -> np.ndarray:
    """The series name of every row under ``split``."""
    if split == "none":
        return np.full(len(frame), "All calls", dtype=object)
    if split == "priority":
        return _priority_labels(frame)
    if split == "category":
        return _as_str(frame["category"]).map(lambda c: CATEGORY_LABELS.get(c, c)) \
            .to_numpy(dtype=object)
    return _as_str(frame["district"]).to_numpy(dtype=object)


def _priority_labels(frame: pd.DataFrame) -> np.ndarray:
    names = np.array(["P?", "P1", "P2", "P3", "P4", "P5"], dtype=object)
    codes = np.nan_to_num(_priorities(frame), nan=0.0).astype(int)
    return names[np.clip(codes, 0, 5)]


def series(frame: pd.DataFrame, query: ResponseQuery, timezone: str) -> pd.DataFrame:
    """Median and p90 of the query's metric per (bucket, group): columns bucket, group, n,
    median, p90, sorted by group then bucket; buckets with no value are absent."""
    columns = ["bucket", "group", "n", "median", "p90"]
    values = frame[query.column].to_numpy(dtype=float, na_value=np.nan) if not frame.empty \
        else np.zeros(0)
    keep = np.isfinite(values)
    if not keep.any():
        return pd.DataFrame(columns=columns)
    kept = frame[keep]
    table = pd.DataFrame({
        "bucket": local_buckets(kept["received_time"].to_numpy(dtype=float), query.bucket,
                                timezone),
        "group": group_labels(kept, query.split),
        "value": values[keep],
    })
    grouped = table.groupby(["group", "bucket"], sort=True)["value"]
    result = pd.DataFrame({
        "n": grouped.size(),
        "median": grouped.quantile(0.5),
        "p90": grouped.quantile(0.9),
    }).reset_index()
    return result[columns]


def shift_series(frame: pd.DataFrame, shift: pd.Timedelta) -> pd.DataFrame:
    """The previous period's series moved onto this period's time axis."""
    if frame.empty:
        return frame
    moved = frame.copy()
    moved["bucket"] = moved["bucket"] + shift
    return moved


# --- histogram and slowest calls --------------------------------------------------------

def histogram(values: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges in seconds): 30 s bins, widened so there are at most 120; the
    last bin also holds everything above the 99th percentile so outliers stay visible."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    top = max(float(np.percentile(array, 99)), HISTOGRAM_BIN_S)
    width = HISTOGRAM_BIN_S * max(1, math.ceil(top / HISTOGRAM_BIN_S / HISTOGRAM_MAX_BINS))
    edges = np.arange(0.0, top + width, width)
    counts, edges = np.histogram(np.clip(array, 0.0, edges[-1] - 1e-9), bins=edges)
    return counts, edges


def slowest(frame: pd.DataFrame, query: ResponseQuery, timezone: str,
            limit: int = SLOWEST_LIMIT) -> list[dict[str, Any]]:
    """The ``limit`` calls with the longest metric, slowest first, as table rows."""
    if frame.empty:
        return []
    values = frame[query.column].to_numpy(dtype=float, na_value=np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return []
    count = min(limit, finite.size)
    top = finite[np.argpartition(-values[finite], count - 1)[:count]]
    top = top[np.lexsort((frame["call_id"].to_numpy()[top].astype(str), -values[top]))]
    rows = frame.iloc[top]
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
        "priority": int(float(record["priority"])) if _finite(record.get("priority")) else None,
        "call_type": _text(record.get("call_type")),
        "dispatch_s": _seconds(record.get("dispatch_s")),
        "travel_s": _seconds(record.get("travel_s")),
        "response_s": _seconds(record.get("response_s")),
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


def compute(current_calls: pd.DataFrame, previous_calls: pd.DataFrame, period: Period,
            query: ResponseQuery, timezone: str) -> Shown:
    """Everything the page shows for one filter change, from the closed calls received in
    the period and in the previous period (wider frames are fine: selection re-checks)."""
    current = select(current_calls, period.start, period.end, query)
    previous = select(previous_calls, period.previous_start, period.previous_end, query)
    return Shown(
        kpis=kpis(current, previous),
        series=series(current, query, timezone),
        previous_series=shift_series(series(previous, query, timezone), period.shift(timezone)),
        histogram=histogram(current[query.column] if not current.empty else np.zeros(0)),
        slowest=slowest(current, query, timezone),
    )


# --- what goes on screen: KPI numbers, figures, CSV --------------------------------------

PALETTE = ("#56b4e9", "#e69f00", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
           "#999999", "#ffffff")
"""Okabe-Ito colours (colour-blind safe), one per series group."""


def series_rows(shown: Shown) -> list[dict[str, Any]]:
    """The series behind the chart as flat rows: period, bucket (city time), group, n,
    median_s, p90_s. This is what the chart draws and what the series CSV holds."""
    rows = []
    for period, frame in (("current", shown.series), ("previous", shown.previous_series)):
        for record in frame.to_dict("records"):
            rows.append({"period": period, "bucket": record["bucket"].isoformat(),
                         "group": record["group"], "n": int(record["n"]),
                         "median_s": round(float(record["median"]), 3),
                         "p90_s": round(float(record["p90"]), 3)})
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV (header first); blanks for missing values."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    return frame.to_csv(index=False, lineterminator="\n")


def series_figure(rows: Sequence[dict[str, Any]], target_seconds: dict[int, float],
                  metric_label: str) -> Any:
    """Two stacked charts (median, 90th percentile) of minutes per bucket and group; the
    previous period dashed on the same time axis; targets as dotted lines."""
    from plotly.subplots import make_subplots  # noqa: PLC0415 - keeps import of maths light

    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=(f"Median — {metric_label}",
                                           f"90th percentile — {metric_label}"))
    groups = list(dict.fromkeys(row["group"] for row in rows if row["period"] == "current"))
    groups += [g for g in dict.fromkeys(row["group"] for row in rows) if g not in groups]
    for index, group in enumerate(groups):
        colour = PALETTE[index % len(PALETTE)]
        for period, dash, opacity in (("current", "solid", 1.0), ("previous", "dash", 0.65)):
            mine = [row for row in rows if row["group"] == group and row["period"] == period]
            if not mine:
                continue
            x = [row["bucket"] for row in mine]
            for line, key in ((1, "median_s"), (2, "p90_s")):
                figure.add_scatter(
                    x=x, y=[row[key] / 60 for row in mine], row=line, col=1,
                    mode="lines+markers" if len(mine) < 60 else "lines",
                    name=group if period == "current" else f"{group} (previous period)",
                    legendgroup=f"{group}-{period}", showlegend=line == 1,
                    line={"color": colour, "dash": dash, "width": 2.5}, opacity=opacity,
                    customdata=[[duration_text(row[key]), row["n"]] for row in mine],
                    hovertemplate="%{x}<br>%{customdata[0]} (%{customdata[1]} calls)"
                                  f"<extra>{group}{' prev.' if period == 'previous' else ''}"
                                  "</extra>")
    # Targets far above the data would squash it; those lines are left off the chart and
    # listed in the title instead (everything is under them).
    top = max([max(row["p90_s"], row["median_s"]) for row in rows] or [60.0]) * 1.15
    for priority, seconds in sorted(target_seconds.items()):
        if seconds > top:
            continue
        for line in (1, 2):
            figure.add_hline(y=seconds / 60, row=line, col=1, line_dash="dot",
                             line_color="#cccccc", line_width=1.5, opacity=0.8,
                             annotation_text=f"P{priority} target {duration_text(seconds)}",
                             annotation_position="top left", annotation_font_size=12)
    figure.update_yaxes(range=[0, top / 60])
    above = [f"P{p} {duration_text(s)}" for p, s in sorted(target_seconds.items()) if s > top]
    if above:
        figure.add_annotation(text="Targets above the chart: " + ", ".join(above),
                              xref="paper", yref="paper", x=1, y=1.07, showarrow=False,
                              xanchor="right", font_size=12)
    figure.update_layout(**_dark_layout(), height=620,
                         legend={"orientation": "h", "y": -0.08, "x": 0})
    return figure


def histogram_figure(counts: np.ndarray, edges: np.ndarray, current: Stat,
                     target_seconds: dict[int, float], metric_label: str) -> Any:
    """Calls per interval length (minutes), with the median and p90 marked."""
    import plotly.graph_objects as go  # noqa: PLC0415

    figure = go.Figure()
    if len(counts):
        centres = (edges[:-1] + edges[1:]) / 2 / 60
        widths = np.diff(edges) / 60
        labels = [f"{duration_text(a)}–{duration_text(b)}" for a, b in zip(edges[:-1],
                                                                          edges[1:])]
        labels[-1] += " and longer"
        figure.add_bar(x=centres, y=counts, width=widths, marker_color="#56b4e9",
                       customdata=labels, name="calls",
                       hovertemplate="%{customdata}: %{y} calls<extra></extra>")
    for value, name, dash in ((current.median, "median", "solid"), (current.p90, "p90", "dash")):
        if value is not None:
            figure.add_vline(x=value / 60, line_color="#e69f00", line_dash=dash, line_width=2,
                             annotation_text=f"{name} {duration_text(value)}",
                             annotation_position="top right")
    if len(target_seconds) == 1:
        seconds = next(iter(target_seconds.values()))
        figure.add_vline(x=seconds / 60, line_color="#cccccc", line_dash="dot",
                         annotation_text=f"target {duration_text(seconds)}",
                         annotation_position="top left")
    figure.update_layout(**_dark_layout(), height=320, bargap=0.05, showlegend=False,
                         title={"text": f"Distribution — {metric_label}", "font_size": 15},
                         xaxis_title="minutes", yaxis_title="calls")
    return figure


def empty_figure(message: str) -> Any:
    import plotly.graph_objects as go  # noqa: PLC0415

    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font_size=16, x=0.5, y=0.5,
                          xref="paper", yref="paper")
    figure.update_layout(**_dark_layout(), height=300, xaxis_visible=False,
                         yaxis_visible=False)
    return figure


def _dark_layout() -> dict[str, Any]:
    return {"template": "plotly_dark", "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)", "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
            "font": {"size": 13}}
