"""Response-time maths behind /response: periods, filters, percentiles, series, tables."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from dashboard import responseview as rv
from dashboard.history import select_frame
from streams.core import display, history

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)


def epoch(text: str) -> float:
    """A city wall-clock time as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """History rows (streams.core.history columns) from the fields each test sets."""
    defaults: dict[str, object] = {
        "category": "noise", "qol": True, "priority": 3.0, "district": "North",
        "neighborhood": "Blue Hills", "call_type": "Noise", "cancelled": False,
        "left_feed": False, "source": "test", **{name: np.nan for name in history.NUMBER_FIELDS}}
    table = pd.DataFrame([{**defaults, **row} for row in rows])
    return history.with_anchor(table, TZ)


NOW = epoch("2014-07-15T14:30:00")
PENDING, RESPONSE = (60, 180, 600, 1200, 1800), (420, 720, 1200, 1800, 3600)


def shown_of(data: pd.DataFrame, period: rv.Period,
             query: rv.ResponseQuery | None = None) -> rv.Shown:
    """What the page would show over ``data`` (the same SQL the history store runs)."""
    return rv.compute(lambda selection: select_frame(data, selection), period,
                      query or rv.ResponseQuery(), TZ, PENDING, RESPONSE)


def recent(seconds: float = 100) -> rv.Period:
    """The last ``seconds`` before NOW, compared with the same span before it."""
    return rv.Period(NOW - seconds, NOW, NOW - 2 * seconds, NOW - seconds, "recent")


def test_today_compares_with_yesterday_to_the_same_time() -> None:
    """'Today' runs from local midnight to now; previous = yesterday up to the same time."""
    period = rv.period_bounds("today", NOW, TZ)
    assert period.start == epoch("2014-07-15T00:00:00") and period.end == NOW
    assert period.previous_start == epoch("2014-07-14T00:00:00")
    assert period.previous_end == epoch("2014-07-14T14:30:00")
    assert period.shift(TZ) == pd.Timedelta(days=1)


def test_seven_days_are_whole_local_days_to_now() -> None:
    """'7 days' is the last 7 local days incl. today (from midnight), to now; the previous
    7 days run to the same time of day."""
    period = rv.period_bounds("7d", NOW, TZ)
    assert period.start == epoch("2014-07-09T00:00:00") and period.end == NOW
    assert period.previous_start == epoch("2014-07-02T00:00:00")
    assert period.previous_end == epoch("2014-07-08T14:30:00")
    assert period.label == "Last 7 days"


def test_thirty_days_across_dst_start_at_local_midnight() -> None:
    """'30 days' spanning the fall-back change starts at local midnight, not 01:00 or 23:00."""
    now = epoch("2014-11-20T02:04:00")
    period = rv.period_bounds("30d", now, TZ)
    assert period.start == epoch("2014-10-22T00:00:00") and period.end == now
    assert datetime.fromtimestamp(period.previous_start, ZONE).time().isoformat() == "00:00:00"
    assert period.previous_end == epoch("2014-10-21T02:04:00")
    assert period.shift(TZ) == pd.Timedelta(days=30)


@pytest.mark.parametrize(("preset", "dates"), [
    ("today", ("2014-07-15", "2014-07-15")), ("7d", ("2014-07-09", "2014-07-15")),
    ("30d", ("2014-06-16", "2014-07-15")), ("summer", ("2014-06-01", "2014-07-15")),
    ("custom", None),
])
def test_preset_dates_fill_the_date_picker(preset: str, dates: tuple[str, str] | None) -> None:
    """Each preset names the local dates it covers (custom keeps the picker's own)."""
    assert rv.preset_dates(preset, NOW, TZ) == dates


def test_summer_season_this_year_capped_at_now() -> None:
    """In July the season is June 1 (local) to now, compared with June 1 a year earlier."""
    period = rv.period_bounds("summer", NOW, TZ)
    assert period.start == epoch("2014-06-01T00:00:00") and period.end == NOW
    assert period.previous_start == epoch("2013-06-01T00:00:00")
    assert period.label == "Summer 2014"


def test_summer_season_before_june_means_last_year() -> None:
    """Before June 1 the season is last year's, through September 7 inclusive."""
    period = rv.period_bounds("summer", epoch("2015-03-01T12:00:00"), TZ)
    assert period.start == epoch("2014-06-01T00:00:00")
    assert period.end == epoch("2014-09-08T00:00:00")


def test_custom_range_covers_whole_days_across_dst() -> None:
    """A custom range spans local midnights inclusive of the last day, DST or not."""
    period = rv.period_bounds("custom", NOW, TZ, "2014-11-01", "2014-11-02")
    assert period.start == epoch("2014-11-01T00:00:00")
    assert period.end == epoch("2014-11-03T00:00:00")
    assert period.end - period.start == 49 * 3600  # the fall-back day has 25 hours


@pytest.mark.parametrize(("preset", "start", "end", "message"), [
    ("custom", None, "2014-01-01", "both"), ("custom", "2014-02-01", "2014-01-01", "swap"),
    ("yesterday", None, None, "period must be"),
])
def test_bad_periods_are_refused(preset: str, start: str | None, end: str | None,
                                 message: str) -> None:
    """Incomplete or reversed ranges and unknown presets raise ValueError."""
    with pytest.raises(ValueError, match=message):
        rv.period_bounds(preset, NOW, TZ, start, end)


def test_bad_query_is_refused() -> None:
    """An unknown metric, split or bucket raises ValueError naming the choices."""
    with pytest.raises(ValueError, match="metric"):
        rv.ResponseQuery(metric="wait")
    with pytest.raises(ValueError, match="split"):
        rv.ResponseQuery(split="beat")
    with pytest.raises(ValueError, match="bucket"):
        rv.ResponseQuery(bucket="month")


def test_selection_filters_period_district_priority_category_and_cancelled() -> None:
    """Selection keeps calls received in the period that match every filter, not cancelled."""
    data = frame([
        {"call_id": "A", "received_time": NOW - 10, "district": "North", "priority": 1.0},
        {"call_id": "B", "received_time": NOW - 10, "district": "South", "priority": 1.0},
        {"call_id": "C", "received_time": NOW - 10, "district": "North", "priority": 2.0},
        {"call_id": "D", "received_time": NOW + 10, "district": "North", "priority": 1.0},
        {"call_id": "E", "received_time": NOW - 10, "district": "North", "priority": 1.0,
         "cancelled": True},
        {"call_id": "F", "received_time": NOW - 10, "district": "North", "priority": 1.0,
         "category": "atv"},
        {"call_id": "G", "received_time": NOW - 10, "district": "North", "priority": 1.0,
         "left_feed": True},
    ])
    data["response_s"] = 60.0
    query = rv.ResponseQuery(districts=("North",), priorities=(1,), categories=("noise",))
    assert [row["call_id"] for row in shown_of(data, recent(), query).slowest] == ["A"]
    both = dataclasses.replace(query, cancelled="include", left_feed="include")
    assert [row["call_id"] for row in shown_of(data, recent(), both).slowest] == ["A", "E", "G"]


def test_left_out_calls_are_counted_per_feed() -> None:
    """Cancelled and left-the-feed calls are left out of the statistics and counted."""
    data = frame([
        {"call_id": "A", "received_time": NOW - 10, "response_s": 100.0},
        {"call_id": "B", "received_time": NOW - 10, "response_s": 900.0, "cancelled": True},
        {"call_id": "C", "received_time": NOW - 10, "response_s": 700.0, "left_feed": True},
    ])
    shown = shown_of(data, recent())
    assert shown.kpis["response"]["current"] == rv.Stat(1, 100.0, 100.0)
    [feed] = shown.coverage
    assert (feed.calls, feed.cancelled, feed.left_feed, feed.counted) == (3, 1, 1, 1)
    assert "Cancelled: 1" in rv.left_out_text(shown.coverage)
    assert "left an active-calls feed (the feed never said they closed): 1" in \
        rv.left_out_text(shown.coverage)


def test_stat_matches_numpy_and_ignores_missing() -> None:
    """Median and p90 equal numpy's, over known values only; none gives None, not 0."""
    values = [10.0, 20.0, 30.0, 40.0, np.nan, 1000.0]
    data = frame([{"call_id": str(i), "received_time": NOW - 5, "response_s": v}
                  for i, v in enumerate(values)])
    finite = np.array([v for v in values if np.isfinite(v)])
    found = shown_of(data, recent()).kpis["response"]["current"]
    assert found.n == 5
    assert found.median == pytest.approx(float(np.median(finite)), abs=1e-9)
    assert found.p90 == pytest.approx(float(np.percentile(finite, 90)), abs=1e-9)
    assert shown_of(data.iloc[4:5], recent()).kpis["response"]["current"] == \
        rv.Stat(0, None, None)
    assert shown_of(data.iloc[0:0], recent()).kpis["response"]["current"] == \
        rv.Stat(0, None, None)


def test_series_by_day_and_district_in_city_time() -> None:
    """Daily buckets follow city midnight (a 23:30 local call is that day, not the UTC one)."""
    data = frame([
        {"call_id": "A", "received_time": epoch("2014-07-14T23:30:00"), "response_s": 100.0},
        {"call_id": "B", "received_time": epoch("2014-07-14T08:00:00"), "response_s": 300.0},
        {"call_id": "C", "received_time": epoch("2014-07-15T01:00:00"), "response_s": 50.0},
        {"call_id": "D", "received_time": epoch("2014-07-15T01:00:00"), "response_s": 70.0,
         "district": "South"},
    ])
    result = shown_of(data, recent(3 * 86400),
                      rv.ResponseQuery(split="district", bucket="day")).series
    assert result.to_dict("records") == [
        {"bucket": pd.Timestamp("2014-07-14"), "group": "North", "n": 2, "median": 200.0,
         "p90": 280.0},
        {"bucket": pd.Timestamp("2014-07-15"), "group": "North", "n": 1, "median": 50.0,
         "p90": 50.0},
        {"bucket": pd.Timestamp("2014-07-15"), "group": "South", "n": 1, "median": 70.0,
         "p90": 70.0},
    ]


def test_series_by_week_starts_monday_and_by_priority() -> None:
    """Weekly buckets start on Monday; the priority split labels groups P1..P5."""
    data = frame([
        {"call_id": "A", "received_time": epoch("2014-07-16T12:00:00"), "dispatch_s": 10.0,
         "priority": 1.0},
        {"call_id": "B", "received_time": epoch("2014-07-20T12:00:00"), "dispatch_s": 30.0,
         "priority": 1.0},
    ])
    period = rv.Period(epoch("2014-07-01T00:00:00"), epoch("2014-08-01T00:00:00"), 0, 1, "x")
    result = shown_of(data, period, rv.ResponseQuery(metric="dispatch", split="priority",
                                                     bucket="week")).series
    assert result.to_dict("records") == [
        {"bucket": pd.Timestamp("2014-07-14"), "group": "P1", "n": 2, "median": 20.0,
         "p90": 28.0}]


def test_series_by_hour_and_category_label() -> None:
    """Hourly buckets use city wall time; the category split uses readable labels."""
    data = frame([{"call_id": "A", "received_time": epoch("2014-07-15T13:59:59"),
                   "travel_s": 5.0, "category": "atv"}])
    result = shown_of(data, recent(86400), rv.ResponseQuery(
        metric="travel", split="category", bucket="hour")).series
    assert result[["bucket", "group"]].to_dict("records") == [
        {"bucket": pd.Timestamp("2014-07-15T13:00"), "group": "ATVs / dirt bikes"}]


def test_series_of_nothing_is_empty() -> None:
    """No known values gives an empty series with the right columns."""
    data = frame([{"call_id": "A", "received_time": NOW - 5}])
    result = shown_of(data, recent()).series
    assert result.empty and list(result.columns) == ["bucket", "group", "n", "median", "p90"]


def test_histogram_counts_every_value_and_clips_outliers() -> None:
    """Every known value lands in a bin; 30 s bins; outliers go to the last bin."""
    values = np.concatenate([np.arange(0, 600, 1.0), [100_000.0, np.nan]])
    data = frame([{"call_id": str(i), "received_time": NOW - 5, "response_s": v}
                  for i, v in enumerate(values)])
    counts, edges = shown_of(data, recent()).histogram
    assert counts.sum() == 601 and len(edges) == len(counts) + 1
    assert edges[1] - edges[0] == 30.0 and edges[0] == 0.0
    assert len(counts) == 20 and counts[-1] == 31  # 570..599 s and the 100,000 s outlier
    assert shown_of(data.iloc[0:0], recent()).histogram[0].size == 0


def test_slowest_rank_by_miss_against_their_own_priority_target() -> None:
    """A P1 12 minutes late outranks a P4 theft that took longer in raw seconds: the list
    is ordered by how far each call went past its own priority's target."""
    data = frame([
        {"call_id": "P4-slow", "received_time": epoch("2014-07-15T09:00:00"),
         "priority": 4.0, "response_s": 2400.0},  # target 1800: 600 s past
        {"call_id": "P1-late", "received_time": epoch("2014-07-15T09:00:00"),
         "priority": 1.0, "response_s": 1140.0},  # target 420: 720 s past
        {"call_id": "P2-ok", "received_time": epoch("2014-07-15T09:00:00"),
         "priority": 2.0, "response_s": 600.0},  # target 720: within
        {"call_id": "N", "received_time": NOW - 5, "response_s": np.nan},
    ])
    rows = shown_of(data, recent(86400)).slowest
    assert [row["call_id"] for row in rows] == ["P1-late", "P4-slow", "P2-ok"]
    assert rows[0]["received"] == "2014-07-15 09:00:00"
    assert rows[0]["priority"] == "P1" and rows[0]["response_seconds"] == 1140.0
    assert rows[0]["target_seconds"] == 420.0 and rows[0]["past_target_seconds"] == 720.0
    assert rows[2]["past_target_seconds"] == -120.0
    assert set(rows[0]) == set(rv.TABLE_COLUMNS)


def test_compliance_per_priority_passes_and_fails() -> None:
    """Share within target per priority, with pass at the compliance goal (90 %)."""
    rows = [{"call_id": f"A{i}", "received_time": NOW - 5, "priority": 1.0,
             "response_s": 300.0 if i < 9 else 900.0} for i in range(10)]
    rows += [{"call_id": f"B{i}", "received_time": NOW - 5, "priority": 2.0,
              "response_s": 600.0 if i < 8 else 900.0} for i in range(10)]
    shown = shown_of(frame(rows), recent())
    assert [(c.priority, c.n, c.within, c.passed) for c in shown.compliance] == [
        (1, 10, 9, True), (2, 10, 8, False)]
    assert shown.compliance[0].target == 420.0 and shown.compliance[1].share == 0.8
    on_scene = shown_of(frame(rows), recent(), rv.ResponseQuery(metric="on_scene"))
    assert on_scene.compliance == []


def test_interval_a_feed_lacks_is_absent_and_named() -> None:
    """A feed with on-scene and cleared times only: time on scene is measured, the
    other intervals have n = 0 and are reported as not in this feed (never zero)."""
    data = frame([{"call_id": f"X{i}", "on_scene_time": NOW - 50 - i,
                   "closed_time": NOW - 10, "on_scene_s": 40.0 + i, "source": "export"}
                  for i in range(3)])
    shown = shown_of(data, recent())
    assert shown.kpis["on_scene"]["current"].n == 3
    assert shown.kpis["response"]["current"] == rv.Stat(0, None, None)
    assert rv.missing_intervals(shown.coverage) == {
        "dispatch": ["export"], "travel": ["export"], "response": ["export"], "on_scene": []}
    assert "not in this feed" in rv.empty_reason(shown, "response")


def test_csv_states_what_it_holds_and_never_starts_a_formula() -> None:
    """An export begins with its period, filters, interval, time zone and time made; a
    cell that would start a formula (= + - @) is prefixed with an apostrophe."""
    period = rv.period_bounds("7d", NOW, TZ)
    meta = rv.export_meta(period, rv.ResponseQuery(districts=("North",)), TZ, NOW)
    rows = [{"call_id": "=HYPERLINK(\"http://x\")", "call_type": "+1", "district": "@x",
             "neighborhood": "-2", "past_target_seconds": -12.5}]
    text = rv.csv_text(rows, rv.TABLE_COLUMNS, meta)
    head = list(csv.reader(line for line in text.splitlines() if line.startswith("#")))
    assert [name for name, _ in head] == [
        "# Report", "# Interval", "# Period", "# Filters", "# Split", "# Time zone", "# Made"]
    assert "districts North" in text and "America/New_York" in text
    assert "2014-07-15 14:30:00 EDT" in text
    body = list(csv.DictReader(io.StringIO("\n".join(
        line for line in text.splitlines() if not line.startswith("#")))))
    for name, cell in body[0].items():
        assert name == "past_target_seconds" or not cell.startswith(("=", "+", "-", "@")), cell
    assert body[0]["call_id"] == "'=HYPERLINK(\"http://x\")"
    assert body[0]["neighborhood"] == "'-2"
    assert body[0]["past_target_seconds"] == "-12.5"  # a number stays a number


def test_csv_head_lines_are_two_cells_and_never_a_formula() -> None:
    """A head value with commas stays one cell; a district sent as a formula is text."""
    period = rv.period_bounds("7d", NOW, TZ)
    meta = rv.export_meta(period, rv.ResponseQuery(districts=("x,=HYPERLINK(1)",)), TZ, NOW)
    text = rv.csv_text([], rv.TABLE_COLUMNS, meta)
    head = dict(csv.reader(line for line in text.splitlines() if line.startswith("#")))
    assert head["# Period"] == meta["Period"] and "," in meta["Period"]
    assert all(not value.startswith(("=", "+", "-", "@")) for value in head.values())


def test_targets_per_metric() -> None:
    """Dispatch uses pending targets, response the response targets, travel the gap."""
    pending, response = (60, 180, 600, 1200, 1800), (420, 720, 1200, 1800, 3600)
    assert rv.targets("dispatch", [1, 2], pending, response) == {1: 60.0, 2: 180.0}
    assert rv.targets("response", [], pending, response)[5] == 3600.0
    assert rv.targets("travel", [3], pending, response) == {3: 600.0}
    with pytest.raises(ValueError, match="priority"):
        rv.targets("response", [7], pending, response)


def test_time_on_scene_filtered_by_priority_draws_no_target() -> None:
    """Time on scene has no target: a priority filter draws none (it raised KeyError, the
    page's callback failed)."""
    query = rv.ResponseQuery(metric="on_scene", priorities=(1,))
    assert rv.shown_targets(query, ["All calls"], [60] * 5, [600] * 5) == {}


def test_priority_series_use_the_shared_palette_and_other_groups_okabe_ito() -> None:
    """Split by priority, P1..P5 are drawn in the one priority palette (assets/display.css
    via streams.core.display: P1 and P5 no longer both blue); districts take the series
    colours in order, and the two never mix."""
    assert rv.series_colours(["P1", "P5", "P3"]) == {
        f"P{p}": display.priority_colour(p) for p in (1, 5, 3)}
    assert len(set(rv.series_colours([f"P{p}" for p in range(1, 6)]).values())) == 5
    assert rv.series_colours(["North", "P?", "South"]) == {
        "North": rv.PALETTE[0], "P?": rv.PALETTE[1], "South": rv.PALETTE[2]}
    figure = rv.series_figure({"period": ["current"] * 2, "bucket": ["2014-07-01T00:00"] * 2,
                               "group": ["P1", "P5"], "n": [3, 4],
                               "median_seconds": [60.0, 90.0], "p90_seconds": [80.0, 100.0]},
                              {}, "Received → on scene")
    colours = {trace["name"]: trace["line"]["color"] for trace in figure["data"]}
    assert colours == {"P1": display.priority_colour(1), "P5": display.priority_colour(5)}


def test_compute_overlays_previous_period() -> None:
    """compute() fills KPIs for both periods and shifts the previous series onto this one."""
    data = frame([
        {"call_id": "A", "received_time": epoch("2014-07-15T09:00:00"), "response_s": 100.0},
        {"call_id": "B", "received_time": epoch("2014-07-14T09:00:00"), "response_s": 300.0},
    ])
    shown = shown_of(data, rv.period_bounds("today", NOW, TZ))
    assert shown.kpis["response"]["current"] == rv.Stat(1, 100.0, 100.0)
    assert shown.kpis["response"]["previous"] == rv.Stat(1, 300.0, 300.0)
    assert list(shown.previous_series["bucket"]) == [pd.Timestamp("2014-07-15")]
    assert [row["call_id"] for row in shown.slowest] == ["A"]


def test_effective_bucket_coarsens_only_when_too_many_points() -> None:
    """Hourly over a week stays hourly; hourly over 60 days becomes daily; weeks stay."""
    assert rv.effective_bucket("hour", 7 * 86400) == "hour"
    assert rv.effective_bucket("hour", 60 * 86400) == "day"
    assert rv.effective_bucket("day", 5 * 365 * 86400) == "week"
    assert rv.effective_bucket("week", 50 * 365 * 86400) == "week"


def test_compute_says_when_it_draws_a_coarser_bucket() -> None:
    """Asking for hours over 30 days draws days and says so."""
    data = frame([{"call_id": "A", "received_time": NOW - 3600, "response_s": 60.0}])
    period = rv.period_bounds("30d", NOW, TZ)
    shown = shown_of(data, period, rv.ResponseQuery(bucket="hour"))
    assert shown.bucket == "hour" and shown.note == ""
    shown = shown_of(data, rv.period_bounds("summer", NOW, TZ), rv.ResponseQuery(bucket="hour"))
    assert shown.bucket == "day" and "shown per day" in shown.note


def test_series_table_csv_and_figure_hold_the_same_numbers() -> None:
    """The series table, its CSV and the chart's traces carry the same values."""
    data = frame([
        {"call_id": "A", "received_time": epoch("2014-07-15T09:00:00"), "response_s": 120.0},
        {"call_id": "B", "received_time": epoch("2014-07-15T10:00:00"), "response_s": 240.0},
        {"call_id": "C", "received_time": epoch("2014-07-14T09:00:00"), "response_s": 600.0},
    ])
    shown = shown_of(data, rv.period_bounds("today", NOW, TZ))
    table = rv.series_table(shown)
    assert table == {"period": ["current", "previous"],
                     "bucket": ["2014-07-15T00:00", "2014-07-15T00:00"],
                     "group": ["All calls", "All calls"], "n": [2, 1],
                     "median_seconds": [180.0, 600.0], "p90_seconds": [228.0, 600.0]}
    assert rv.csv_text(table, rv.SERIES_COLUMNS).splitlines() == [
        "period,bucket,group,n,median_seconds,p90_seconds",
        "current,2014-07-15T00:00,All calls,2,180.0,228.0",
        "previous,2014-07-15T00:00,All calls,1,600.0,600.0"]
    figure = rv.series_figure(table, {1: 420.0, 5: 3600.0}, "Received → on scene")
    medians = [t for t in figure["data"] if t["yaxis"] == "y"]
    assert [(t["name"], t["y"], t["line"]["dash"]) for t in medians] == [
        ("All calls", [3.0], "solid"), ("All calls (previous period)", [10.0], "dash")]
    # The P1 target is drawn on both charts; P5's hour is far above the data, so listed.
    assert [shape["y0"] for shape in figure["layout"]["shapes"]] == [7.0, 7.0]
    assert any("P5 1:00:00" in note["text"] for note in figure["layout"]["annotations"])


def test_histogram_figure_marks_median_and_p90() -> None:
    """The histogram draws every bin and marks the median and p90 as lines."""
    data = frame([{"call_id": str(i), "received_time": NOW - 5, "response_s": v}
                  for i, v in enumerate([30.0, 60.0, 90.0, 400.0])])
    counts, edges = shown_of(data, recent()).histogram
    figure = rv.histogram_figure(counts, edges, rv.Stat(4, 75.0, 300.0), {2: 180.0}, "x")
    assert sum(figure["data"][0]["y"]) == 4
    assert [shape["x0"] for shape in figure["layout"]["shapes"]] == [1.25, 5.0, 3.0]
    assert rv.empty_figure("nothing")["layout"]["annotations"][0]["text"] == "nothing"


def test_slowest_breaks_ties_by_call_id_at_the_cut() -> None:
    """Calls tied at the cut-off value are ordered by call id, exactly as a full sort."""
    data = frame([{"call_id": cid, "received_time": NOW - 5, "response_s": value}
                  for cid, value in (("C", 5.0), ("A", 5.0), ("B", 5.0), ("D", 4.0))])
    rows = shown_of(data, recent()).slowest
    assert [row["call_id"] for row in rows] == ["A", "B", "C", "D"]


def test_targets_are_drawn_only_for_priorities_on_the_chart() -> None:
    """All calls: no target lines (a note lists them); split or filtered: one per priority."""
    pending, response = (60, 180, 600, 1200, 1800), (420, 720, 1200, 1800, 3600)
    assert rv.shown_targets(rv.ResponseQuery(), ["All calls"], pending, response) == {}
    assert rv.shown_targets(rv.ResponseQuery(split="district"), ["North"], pending,
                            response) == {}
    assert rv.shown_targets(rv.ResponseQuery(split="priority"), ["P2", "P4"], pending,
                            response) == {2: 720.0, 4: 1800.0}
    assert rv.shown_targets(rv.ResponseQuery(split="priority", priorities=(2,)), ["P2"],
                            pending, response) == {2: 720.0}
    assert rv.shown_targets(rv.ResponseQuery(metric="dispatch", priorities=(1, 3)),
                            ["All calls"], pending, response) == {1: 60.0, 3: 600.0}
    assert "P1 7:00 · P2 12:00" in rv.targets_note("response", pending, response)


def test_daily_chart_has_date_ticks_markers_and_breaks_at_missing_days() -> None:
    """Per day: 'Jul 6' ticks one day apart, markers on, and no line across a day with
    no calls; per week the ticks read 'wk of'."""
    table = {"period": ["current"] * 3, "bucket": ["2014-07-01T00:00", "2014-07-02T00:00",
                                                   "2014-07-05T00:00"],
             "group": ["All calls"] * 3, "n": [1, 2, 3], "median_seconds": [60.0, 120.0, 180.0],
             "p90_seconds": [60.0, 120.0, 180.0]}
    figure = rv.series_figure(table, {}, "x", "day")
    axis = figure["layout"]["xaxis2"]
    assert axis["tickformat"] == "%b %-d" and axis["dtick"] == 86_400_000
    assert axis["range"] == ["2014-06-30T12:00:00", "2014-07-05T12:00:00"]
    median = figure["data"][0]
    assert median["mode"] == "lines+markers" and median["connectgaps"] is False
    assert median["x"] == ["2014-07-01T00:00", "2014-07-02T00:00", "2014-07-03T00:00",
                           "2014-07-05T00:00"]
    assert median["y"] == [1.0, 2.0, None, 3.0]
    weekly = rv.series_figure(table, {}, "x", "week")["layout"]["xaxis2"]
    assert weekly["tickformat"].startswith("wk of")


def test_a_query_names_only_known_categories() -> None:
    """A category the page never offered (sent by hand) is refused with its name."""
    with pytest.raises(ValueError, match="no such call category: =HYPERLINK"):
        rv.ResponseQuery(categories=("noise", "=HYPERLINK"))


def test_a_custom_range_across_a_time_change_compares_with_whole_days() -> None:
    """2024-11-03 (clocks back) .. 11-09 compares with 10-27 .. 11-02, midnight to midnight,
    and the overlay shifts the previous days by exactly seven days of wall time."""
    zone = ZoneInfo(TZ)
    period = rv.period_bounds("custom", NOW, TZ, "2024-11-03", "2024-11-09")
    assert datetime.fromtimestamp(period.previous_start, zone) == datetime(
        2024, 10, 27, tzinfo=zone)
    assert datetime.fromtimestamp(period.previous_end, zone) == datetime(
        2024, 11, 3, tzinfo=zone)
    assert period.shift(TZ) == pd.Timedelta(days=7)
