"""Response-time maths: filters, percentiles vs numpy, local periods, histograms, periods."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from streams.core.response import (
    compare_with_previous,
    filter_calls,
    histogram,
    local_period_start,
    percentile_series,
    previous_period,
    share_within_target,
    slowest_calls,
    summary,
)

TZ = "America/New_York"


def epoch(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    defaults = {"call_id": "", "category": "noise", "qol": True, "priority": 3.0,
                "district": "North", "neighborhood": "Downtown", "call_type": "noise",
                "received_time": epoch(2014, 6, 2, 16), "dispatched_time": np.nan,
                "on_scene_time": np.nan, "closed_time": np.nan, "dispatch_s": np.nan,
                "travel_s": np.nan, "response_s": np.nan, "on_scene_s": np.nan,
                "cancelled": False, "source": "test"}
    return pd.DataFrame([{**defaults, "call_id": f"C{i}", **row} for i, row in enumerate(rows)])


RNG = np.random.default_rng(42)
VALUES = RNG.gamma(2.0, 200.0, size=500)
BIG = frame([{"response_s": float(value), "dispatch_s": float(value) / 3,
              "received_time": epoch(2014, 6, 2, 16) + i * 60,
              "district": ("North", "Central", "South")[i % 3]}
             for i, value in enumerate(VALUES)])


def test_summary_matches_numpy() -> None:
    """Median and p90 equal numpy.percentile on the same values."""
    result = summary(BIG, "response_s")
    assert result["count"] == 500
    assert result["median"] == pytest.approx(np.percentile(VALUES, 50))
    assert result["p90"] == pytest.approx(np.percentile(VALUES, 90))


def test_summary_of_known_values() -> None:
    """For 10, 20, ..., 100 the median is 55 and p90 is 91 (linear interpolation)."""
    data = frame([{"response_s": float(v)} for v in range(10, 101, 10)])
    assert summary(data, "response_s") == {"count": 10, "median": 55.0, "p90": 91.0}


def test_summary_ignores_blanks_and_handles_empty() -> None:
    """Blank intervals are left out; no values gives None, not NaN."""
    data = frame([{"response_s": 100.0}, {}])
    assert summary(data, "response_s")["count"] == 1
    assert summary(frame([{}]), "response_s") == {"count": 0, "median": None, "p90": None}


def test_unknown_metric_is_an_error() -> None:
    """Asking for a metric that does not exist says which exist."""
    with pytest.raises(ValueError, match="unknown metric"):
        summary(BIG, "wait_s")


def test_filter_by_everything() -> None:
    """Time range, district, priority, category, qol and cancelled filters combine."""
    data = frame([
        {"district": "North", "priority": 1.0, "category": "noise", "qol": True},
        {"district": "South", "priority": 1.0, "category": "noise", "qol": True},
        {"district": "North", "priority": 2.0, "category": "noise", "qol": True},
        {"district": "North", "priority": 1.0, "category": "violent", "qol": False},
        {"district": "North", "priority": 1.0, "category": "noise", "qol": True,
         "cancelled": True},
        {"district": "North", "priority": 1.0, "category": "noise", "qol": True,
         "received_time": epoch(2014, 6, 3, 16)},
    ])
    start, end = epoch(2014, 6, 2), epoch(2014, 6, 3)
    got = filter_calls(data, start, end, districts=["North"], priorities=[1],
                       categories=["noise"], qol=True)
    assert list(got["call_id"]) == ["C0"]
    assert len(filter_calls(data, start, end, include_cancelled=True)) == 5
    assert list(filter_calls(data, qol=False)["call_id"]) == ["C3"]


def test_day_periods_are_local_calendar_days() -> None:
    """03:30 UTC on 3 June is still 2 June in Hartford (UTC-4)."""
    starts = local_period_start(pd.Series([epoch(2014, 6, 3, 3, 30)]), "day", TZ)
    assert starts.iloc[0] == pd.Timestamp("2014-06-02")


def test_week_periods_start_monday() -> None:
    """Sunday 8 June 2014 belongs to the week starting Monday 2 June."""
    starts = local_period_start(pd.Series([epoch(2014, 6, 8, 20)]), "week", TZ)
    assert starts.iloc[0] == pd.Timestamp("2014-06-02")


def test_hour_periods_across_dst_end() -> None:
    """On 2 Nov 2014 05:30 UTC (01:30 EDT) and 06:30 UTC (01:30 EST) share a local hour."""
    starts = local_period_start(pd.Series([epoch(2014, 11, 2, 5, 30),
                                           epoch(2014, 11, 2, 6, 30)]), "hour", TZ)
    assert list(starts) == [pd.Timestamp("2014-11-02 01:00")] * 2


def test_unknown_period_is_an_error() -> None:
    """Only hour, day and week are periods."""
    with pytest.raises(ValueError, match="unknown period"):
        local_period_start(pd.Series([0.0]), "month", TZ)  # type: ignore[arg-type]


def test_hourly_series_matches_numpy_per_hour() -> None:
    """Each hour's median and p90 equal numpy's over that hour's rows."""
    series = percentile_series(BIG, "response_s", "hour", TZ)
    hours = (BIG["received_time"] - epoch(2014, 6, 2, 16)) // 3600
    assert len(series) == hours.nunique()
    for position, (_, rows) in enumerate(BIG.groupby(hours)):
        values = rows["response_s"].to_numpy()
        assert series["period"].iloc[position] == pd.Timestamp("2014-06-02 12:00") \
            + pd.Timedelta(hours=position)
        assert series["count"].iloc[position] == len(values)
        assert series["median"].iloc[position] == pytest.approx(np.percentile(values, 50))
        assert series["p90"].iloc[position] == pytest.approx(np.percentile(values, 90))


def test_series_split_by_district() -> None:
    """Splitting gives one row per period and district with that group's percentiles."""
    series = percentile_series(BIG, "dispatch_s", "day", TZ, by="district")
    assert sorted(series["district"]) == ["Central", "North", "South"]
    north = BIG.loc[BIG["district"] == "North", "dispatch_s"].to_numpy()
    row = series.loc[series["district"] == "North"].iloc[0]
    assert row["count"] == len(north)
    assert row["p90"] == pytest.approx(np.percentile(north, 90))


def test_series_of_nothing_is_empty_with_columns() -> None:
    """No rows gives an empty frame with the expected columns."""
    series = percentile_series(frame([{}]), "response_s", "day", TZ, by="priority")
    assert list(series.columns) == ["period", "priority", "count", "median", "p90"]
    assert series.empty


def test_series_rejects_unknown_split() -> None:
    """Splitting by a column that is not a split column is an error."""
    with pytest.raises(ValueError, match="cannot split"):
        percentile_series(BIG, "response_s", "day", TZ, by="call_id")


def test_histogram_counts() -> None:
    """Values fall in 60 s bins; values above max_s land in the last bin."""
    data = frame([{"response_s": v} for v in (0.0, 59.0, 60.0, 130.0, 999.0)])
    result = histogram(data, "response_s", bin_s=60, max_s=180)
    assert list(result["bin_start"]) == [0, 60, 120, 180]
    assert list(result["count"]) == [2, 1, 1, 1]
    assert int(histogram(BIG, "response_s", 120)["count"].sum()) == 500


def test_histogram_of_nothing() -> None:
    """No values gives no bins."""
    assert histogram(frame([{}]), "response_s").empty


def test_previous_period() -> None:
    """The previous period has equal length and ends where this one starts."""
    assert previous_period(100.0, 160.0) == (40.0, 100.0)
    with pytest.raises(ValueError):
        previous_period(5.0, 5.0)


def test_compare_with_previous_period() -> None:
    """Comparison reports both periods' summaries and the change in seconds."""
    day = 86400.0
    start = epoch(2014, 6, 10)
    data = frame([{"response_s": 300.0, "received_time": start - day / 2},
                  {"response_s": 500.0, "received_time": start + day / 2},
                  {"response_s": 700.0, "received_time": start + day / 3}])
    result = compare_with_previous(data, start, start + day, "response_s")
    assert result["current"]["median"] == 600.0 and result["previous"]["median"] == 300.0
    assert result["median_change_s"] == 300.0
    empty = compare_with_previous(data, start + day, start + 2 * day, "response_s")
    assert empty["median_change_s"] is None


def test_slowest_calls() -> None:
    """Slowest first, blanks left out, ties by call id."""
    data = frame([{"response_s": 10.0}, {"response_s": 90.0}, {}, {"response_s": 90.0}])
    assert list(slowest_calls(data, count=2)["call_id"]) == ["C1", "C3"]


def test_share_within_target() -> None:
    """Share of calls meeting their priority's target."""
    data = frame([{"priority": 1.0, "response_s": 100.0},
                  {"priority": 1.0, "response_s": 500.0},
                  {"priority": 5.0, "response_s": 3000.0}, {"priority": 2.0}])
    assert share_within_target(data, (420, 720, 1200, 1800, 3600)) == pytest.approx(2 / 3)
    assert share_within_target(frame([{}]), (1, 2, 3, 4, 5)) is None
