"""Response-time maths over the closed-calls DataFrame (``LiveReader.closed_calls``).

Pure pandas in, plain pandas/dicts out. Times in the frame are UTC epoch seconds; periods
(hour/day/week) are cut on the city's wall clock (``settings.timezone``) and labelled with
naive local timestamps, so a day is a local calendar day, DST included. Percentiles use
linear interpolation, like ``numpy.percentile``'s default.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Interval:
    """One measured interval: the closed-record column holding it (seconds), the two
    times it runs between, its label and the definition the page shows."""

    column: str
    start: str
    end: str
    label: str
    definition: str


INTERVALS: Final = {
    "dispatch": Interval(
        "dispatch_s", "received_time", "dispatched_time", "Received → dispatched",
        "From the call being received (entered in CAD) to the first unit being dispatched: "
        "time the call waited for a unit."),
    "travel": Interval(
        "travel_s", "dispatched_time", "on_scene_time", "Dispatched → on scene",
        "From the first unit being dispatched to the first unit arriving on scene: the "
        "drive."),
    "response": Interval(
        "response_s", "received_time", "on_scene_time", "Received → on scene",
        "From the call being received to the first unit arriving on scene: the response "
        "time the public sees."),
    "on_scene": Interval(
        "on_scene_s", "on_scene_time", "closed_time", "Time on scene",
        "From the first unit arriving on scene to the call being cleared (closed)."),
}
"""Every interval the closed record supports, in the order the page shows them. One that
lacks either time is absent for that call (never zero)."""
TARGETED: Final = ("dispatch", "travel", "response")
"""Intervals with per-priority targets (time on scene has none)."""

METRICS: Final = ("dispatch_s", "travel_s", "response_s")
METRIC_LABELS: Final = {spec.column: spec.label for spec in INTERVALS.values()}


def interval_targets(interval: str, pending_targets: Sequence[int],
                     response_targets: Sequence[int]) -> tuple[float, ...] | None:
    """P1..P5 target seconds of an interval: pending targets for received -> dispatched,
    response targets for received -> on scene, their difference for the drive; None for
    an interval without targets."""
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}")
    if interval not in TARGETED:
        return None
    pairs = zip(pending_targets, response_targets, strict=True)
    return tuple(float({"dispatch": pending, "response": response,
                        "travel": max(response - pending, 0)}[interval])
                 for pending, response in pairs)


def passes(share: float | None, compliance_percent: float) -> bool | None:
    """Whether a share of calls within target meets the compliance goal (None: no calls)."""
    return None if share is None else share * 100 >= compliance_percent - 1e-9
Period = Literal["hour", "day", "week"]
PERIODS: Final = ("hour", "day", "week")
SPLIT_COLUMNS: Final = ("district", "priority", "category", "qol", "neighborhood")


def _check_metric(metric: str) -> None:
    if metric not in METRIC_LABELS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_LABELS)}")


def filter_calls(frame: pd.DataFrame, start: float | None = None, end: float | None = None,
                 districts: Collection[str] | None = None,
                 priorities: Collection[int] | None = None,
                 categories: Collection[str] | None = None, qol: bool | None = None,
                 include_cancelled: bool = False) -> pd.DataFrame:
    """Rows received in [start, end) matching every given filter (None = no filter).

    Cancelled calls are left out unless asked for: they have no response to measure.
    """
    mask = np.ones(len(frame), dtype=bool)
    received = frame["received_time"].to_numpy(dtype=float)
    if start is not None:
        mask &= received >= start
    if end is not None:
        mask &= received < end
    if districts:
        mask &= frame["district"].isin(list(districts)).to_numpy()
    if priorities:
        mask &= frame["priority"].isin([float(p) for p in priorities]).to_numpy()
    if categories:
        mask &= frame["category"].isin(list(categories)).to_numpy()
    if qol is not None:
        mask &= frame["qol"].to_numpy(dtype=bool) == qol
    if not include_cancelled:
        mask &= ~frame["cancelled"].to_numpy(dtype=bool)
    return frame.loc[mask].reset_index(drop=True)


def local_period_start(epochs: pd.Series, period: Period, timezone: str) -> pd.Series:
    """Start of the local hour/day/week (Monday) each epoch falls in, as naive local time."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use hour, day or week")
    local = (pd.to_datetime(epochs.to_numpy(dtype=float), unit="s", utc=True)
             .tz_convert(timezone).tz_localize(None))
    series = pd.Series(local, index=epochs.index)
    if period == "hour":
        return series.dt.floor("h")
    days = series.dt.normalize()
    if period == "day":
        return days
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D")


def summary(frame: pd.DataFrame, metric: str) -> dict[str, float | int | None]:
    """Count, median and 90th percentile of one interval (blank intervals ignored)."""
    _check_metric(metric)
    values = frame[metric].dropna().to_numpy(dtype=float)
    if not len(values):
        return {"count": 0, "median": None, "p90": None}
    return {"count": int(len(values)), "median": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90))}


def percentile_series(frame: pd.DataFrame, metric: str, period: Period, timezone: str,
                      by: str | None = None) -> pd.DataFrame:
    """Median and p90 of ``metric`` per local period (and per ``by`` value).

    Columns: period (naive local start), [by], count, median, p90; sorted by period.
    """
    _check_metric(metric)
    if by is not None and by not in SPLIT_COLUMNS:
        raise ValueError(f"cannot split by {by!r}; use one of {', '.join(SPLIT_COLUMNS)}")
    columns = ["period", *([by] if by else []), "count", "median", "p90"]
    rows = frame.loc[frame[metric].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    data = pd.DataFrame({"period": local_period_start(rows["received_time"], period,
                                                      timezone),
                         "value": rows[metric].to_numpy(dtype=float)})
    keys = ["period"]
    if by:
        data[by] = rows[by].astype(object).to_numpy()
        keys.append(by)
    grouped = data.groupby(keys, sort=True, observed=True)["value"]
    result = pd.DataFrame({"count": grouped.count(), "median": grouped.quantile(0.5),
                           "p90": grouped.quantile(0.9)}).reset_index()
    result["count"] = result["count"].astype(int)
    return result[columns]


def histogram(frame: pd.DataFrame, metric: str, bin_s: float = 60.0,
              max_s: float | None = None) -> pd.DataFrame:
    """Counts per ``bin_s``-wide bin from 0; values above ``max_s`` fall in the last bin.

    Columns: bin_start, bin_end, count.
    """
    _check_metric(metric)
    if bin_s <= 0:
        raise ValueError("bin_s must be above 0 seconds")
    values = frame[metric].dropna().to_numpy(dtype=float)
    if not len(values):
        return pd.DataFrame({"bin_start": [], "bin_end": [], "count": []})
    top = float(values.max()) if max_s is None else max_s
    values = np.minimum(values, top)
    bins = max(1, int(np.ceil(top / bin_s)) + (1 if top % bin_s == 0 else 0))
    edges = np.arange(bins + 1) * bin_s
    counts, _ = np.histogram(values, bins=edges)
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})


def previous_period(start: float, end: float) -> tuple[float, float]:
    """The period of equal length just before [start, end)."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    return start - (end - start), start


def compare_with_previous(frame: pd.DataFrame, start: float, end: float, metric: str,
                          **filters: Any) -> dict[str, Any]:
    """Summary of [start, end) and of the previous period of equal length, with changes."""
    before_start, before_end = previous_period(start, end)
    current = summary(filter_calls(frame, start, end, **filters), metric)
    previous = summary(filter_calls(frame, before_start, before_end, **filters), metric)

    def change(name: str) -> float | None:
        now, then = current[name], previous[name]
        return None if now is None or then is None else float(now) - float(then)

    return {"current": current, "previous": previous,
            "median_change_s": change("median"), "p90_change_s": change("p90"),
            "previous_start": before_start, "previous_end": before_end}


def slowest_calls(frame: pd.DataFrame, metric: str = "response_s",
                  count: int = 20) -> pd.DataFrame:
    """The ``count`` calls with the longest ``metric``, slowest first (blanks left out)."""
    _check_metric(metric)
    rows = frame.loc[frame[metric].notna()]
    return rows.sort_values([metric, "call_id"], ascending=[False, True],
                            kind="stable").head(count).reset_index(drop=True)


def share_within_target(frame: pd.DataFrame, targets: tuple[int, ...],
                        metric: str = "response_s") -> float | None:
    """Fraction of calls whose ``metric`` met its priority's target (P1..P5 seconds)."""
    _check_metric(metric)
    rows = frame.loc[frame[metric].notna() & frame["priority"].between(1, len(targets))]
    if rows.empty:
        return None
    limits = np.asarray(targets, dtype=float)[rows["priority"].to_numpy(dtype=int) - 1]
    return float(np.mean(rows[metric].to_numpy(dtype=float) <= limits))
