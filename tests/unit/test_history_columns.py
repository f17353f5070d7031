"""History columns and the SQL statistics: equal to an independent pandas computation."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from dashboard import responseview as rv
from dashboard.history import ResultCache, Selection, select_frame
from streams.core import history
from streams.core.livestate import closed_record

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()


def test_records_become_typed_columns_with_blanks_as_missing() -> None:
    """A closed record's strings become floats (blank = NaN, never 0), flags and text;
    a record without left_feed (written before it existed) reads as not left."""
    record = closed_record({"call_id": "A", "category": "noise", "priority": 2,
                            "received_time": 1000.0, "dispatched_time": 1060.0,
                            "status": "closed", "source": "cad"})
    table = history.table_of_records([record, {**record, "call_id": "B", "left_feed": "1"}],
                                     TZ)
    assert list(table.columns) == list(history.HISTORY_COLUMNS)
    assert table["dispatch_s"].tolist() == [60.0, 60.0]
    assert np.isnan(table["response_s"]).all()
    assert table["left_feed"].tolist() == [False, True]
    assert table["anchor_time"].tolist() == [1000.0, 1000.0]


def test_fast_and_slow_parsing_agree() -> None:
    """Raw byte replies (the C-reader path) and str dicts (the slow path) give one table."""
    record = closed_record({"call_id": "A", "category": "noise", "priority": 1,
                            "received_time": 1000.0, "on_scene_time": 1300.0,
                            "status": "cancelled", "source": "cad"})
    raw = [(b"1-0", [part for k, v in record.items() for part in (k.encode(), v.encode())])]
    fast = history.table_of_entries(raw, TZ)
    slow = history.table_of_entries([("1-0", record)], TZ)
    odd = history.table_of_entries([(b"1-0", {b"call_id": b"x\x1fy"})], TZ)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["cancelled"].tolist() == [True] and fast["response_s"].tolist() == [300.0]
    assert odd["call_id"].tolist() == ["x\x1fy"] and np.isnan(odd["anchor_time"][0])


def test_anchor_falls_back_to_the_first_known_time() -> None:
    """A history export without received times is placed by its first known time."""
    table = history.table_of_records([{"call_id": "A", "on_scene_time": "5000.0",
                                       "closed_time": "6000.0", "on_scene_s": "1000.0"}], TZ)
    assert table["anchor_time"].tolist() == [5000.0]


@pytest.mark.parametrize("text", ["2014-03-09T01:30:00", "2014-03-09T03:30:00",
                                  "2014-11-02T00:59:00", "2014-07-15T23:59:59"])
def test_local_wall_seconds_follow_dst(text: str) -> None:
    """anchor_local is the city's wall-clock time, on both sides of a DST change."""
    local = datetime.fromisoformat(text)
    found = history.local_wall_seconds(np.array([epoch(text)]), TZ)[0]
    assert found == pytest.approx((local - datetime(1970, 1, 1)).total_seconds())


def test_manifest_of_another_time_zone_is_not_used() -> None:
    """A folder written for another time zone (wrong wall-clock column) starts afresh."""
    text = '{"version": 1, "timezone": "UTC", "last_id": "5-0", "rows": 1, "files": []}'
    assert history.parse_manifest(text, "UTC")["last_id"] == "5-0"
    assert history.parse_manifest(text, TZ)["last_id"] == "0-0"
    assert history.parse_manifest(b"not json", TZ) == history.new_manifest(TZ)


def random_history(count: int, seed: int = 7) -> pd.DataFrame:
    """``count`` closed calls over 90 days of July-September 2014, with gaps and flags."""
    rng = np.random.default_rng(seed)
    received = epoch("2014-07-01T00:00:00") + rng.random(count) * 90 * 86400
    dispatch = rng.gamma(2.0, 90.0, count)
    travel = rng.gamma(3.0, 110.0, count)
    travel[rng.random(count) < 0.1] = np.nan
    records = pd.DataFrame({
        "call_id": [f"C{n:05d}" for n in range(count)],
        "category": rng.choice(["noise", "atv", "violent", "traffic"], count),
        "priority": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], count),
        "district": rng.choice(["North", "Central", "South"], count),
        "neighborhood": "Somewhere", "call_type": "x", "source": "sim",
        "received_time": received, "dispatched_time": received + dispatch,
        "on_scene_time": received + dispatch + travel, "closed_time": np.nan,
        "dispatch_s": dispatch, "travel_s": travel, "response_s": dispatch + travel,
        "on_scene_s": np.nan, "cancelled": rng.random(count) < 0.05,
        "left_feed": rng.random(count) < 0.03})
    records["qol"] = records["category"].isin(["noise", "atv"])
    return history.with_anchor(records, TZ)


def pandas_reference(data: pd.DataFrame, start: float, end: float, column: str,
                     bucket: str, by: str | None) -> pd.DataFrame:
    """The same statistic computed with plain pandas (tz_convert, floor, groupby)."""
    rows = data[(data["received_time"] >= start) & (data["received_time"] < end)
                & ~data["cancelled"] & ~data["left_feed"] & data[column].notna()]
    local = pd.to_datetime(rows["received_time"], unit="s", utc=True).dt.tz_convert(TZ) \
        .dt.tz_localize(None)
    if bucket == "hour":
        key = local.dt.floor("h")
    elif bucket == "day":
        key = local.dt.normalize()
    else:
        key = local.dt.normalize() - pd.to_timedelta(local.dt.day_of_week, unit="D")
    frame = pd.DataFrame({"bucket": key.to_numpy(), "value": rows[column].to_numpy()})
    keys = ["bucket"]
    if by:
        frame["group"] = rows[by].to_numpy()
        keys.append("group")
    grouped = frame.groupby(keys)["value"]
    return pd.DataFrame({"n": grouped.count(), "median": grouped.quantile(0.5),
                         "p90": grouped.quantile(0.9)}).reset_index()


@pytest.mark.parametrize(("bucket", "by"), [("day", None), ("week", "district"),
                                            ("hour", "priority")])
def test_series_equal_an_independent_pandas_computation(bucket: str, by: str | None) -> None:
    """Every bucket's n, median and p90 from DuckDB equals pandas' (to 1 microsecond:
    floating-point interpolation order), across a DST-free summer and the filters."""
    data = random_history(6000)
    start, end = epoch("2014-07-10T00:00:00"), epoch("2014-09-20T00:00:00")
    with select_frame(data, Selection(start, end, group=by)) as query:
        found = query.series("response_s", bucket)
    found = found.sort_values(["bucket", "grp"]).reset_index(drop=True)
    expected = pandas_reference(data, start, end, "response_s", bucket, by)
    assert len(found) == len(expected)
    assert found["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(found["median"], expected["median"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(found["p90"], expected["p90"], rtol=0, atol=1e-6)
    stamps = pd.to_datetime(found["bucket"], unit="s")
    assert (stamps.to_numpy() == expected["bucket"].to_numpy()).all()


def test_cards_equal_numpy_per_interval_and_priority() -> None:
    """KPI cards and per-priority compliance equal numpy over the same calls."""
    data = random_history(4000, seed=11)
    period = rv.Period(epoch("2014-08-01T00:00:00"), epoch("2014-09-01T00:00:00"),
                       epoch("2014-07-01T00:00:00"), epoch("2014-08-01T00:00:00"), "Aug")
    targets = (60, 180, 600, 1200, 1800), (420, 720, 1200, 1800, 3600)
    shown = rv.compute(lambda selection: select_frame(data, selection), period,
                       rv.ResponseQuery(), TZ, *targets)
    kept = data[(data["received_time"] >= period.start) & (data["received_time"] < period.end)
                & ~data["cancelled"] & ~data["left_feed"]]
    for key, (column, _label) in rv.METRICS.items():
        values = kept[column].dropna().to_numpy()
        found = shown.kpis[key]["current"]
        assert found.n == len(values)
        if len(values):
            assert found.median == pytest.approx(np.percentile(values, 50), abs=1e-6)
            assert found.p90 == pytest.approx(np.percentile(values, 90), abs=1e-6)
    for item in shown.compliance:
        values = kept.loc[kept["priority"] == item.priority, "response_s"].dropna()
        assert item.n == len(values)
        assert item.within == int((values <= targets[1][item.priority - 1]).sum())
        assert item.p90 == pytest.approx(np.percentile(values, 90), abs=1e-6)


def test_result_cache_is_bounded_by_bytes_least_recently_used_out() -> None:
    """The worker's statement-result cache never holds more than its byte limit and
    drops the least recently used result first."""
    frame = pd.DataFrame({"x": np.arange(1000, dtype=float)})  # 8 kB and an index
    size = int(frame.memory_usage(index=True, deep=True).sum())
    cache = ResultCache(max_bytes=size * 5)
    for key in range(4):
        cache.put(key, frame)
    assert cache.get(0) is frame  # 0 is now the most recently used
    cache.put(4, frame)
    cache.put(5, frame)
    assert cache.size <= size * 5
    assert cache.get(1) is None and cache.get(0) is frame and cache.get(5) is frame
    cache.put("big", pd.DataFrame({"x": np.arange(10_000, dtype=float)}))
    assert cache.get("big") is None  # over a quarter of the limit: not kept
