"""SODA / ArcGIS request building, answer flattening and [poll] validation (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from streams.core.feeds import (
    PollConfig,
    arcgis_params,
    arcgis_rows,
    flatten,
    newest,
    poll_config,
    retry_after_seconds,
    since,
    soda_params,
    soda_rows,
)

SODA = PollConfig(feed="sf", kind="soda", url="https://x/resource/a.json",
                  updated_field="data_as_of", page_size=500, overlap_seconds=300)
ARC = PollConfig(feed="sd", kind="arcgis", url="https://x/FeatureServer/0/query",
                 page_size=100)


def test_soda_first_page_without_watermark() -> None:
    """Without a watermark there is no time filter; order is the update field then :id."""
    assert soda_params(SODA, None, 0) == {"$limit": "500", "$offset": "0",
                                          "$order": "data_as_of, :id"}


def test_soda_page_with_watermark_and_filter() -> None:
    """The watermark moves back by the overlap and is ANDed with the configured where."""
    config = PollConfig(**{**SODA.__dict__, "where": "battalion = 'B06'"})
    params = soda_params(config, "2019-10-18T03:00:00.000", 1000)
    assert params["$where"] == "(battalion = 'B06') AND data_as_of > '2019-10-18T02:55:00.000'"
    assert params["$offset"] == "1000"


def test_since_handles_epoch_ms_and_iso() -> None:
    """Epoch-ms watermarks move back in ms; ISO ones keep their millisecond notation."""
    assert since("1672560005000", 300) == "1672559705000"
    assert since("2023-01-01T00:00:00Z", 60) == "2022-12-31T23:59:00.000"
    assert since(None, 60) is None


def test_arcgis_params_paging_and_watermark() -> None:
    """ArcGIS pages by resultOffset/resultRecordCount, all fields, WGS84 geometry."""
    assert arcgis_params(ARC, None, 200) == {
        "where": "1=1", "outFields": "*", "f": "json", "returnGeometry": "true",
        "outSR": "4326", "resultOffset": "200", "resultRecordCount": "100"}
    config = PollConfig(**{**ARC.__dict__, "updated_field": "updated", "overlap_seconds": 0})
    params = arcgis_params(config, "1672560005000", 0)
    assert params["where"] == "updated > TIMESTAMP '2023-01-01 08:00:05'"
    assert params["orderByFields"] == "updated ASC"


def test_soda_rows_flatten_values() -> None:
    """Numbers, booleans, nulls and point objects become text the mapping can read."""
    rows = soda_rows([{"a": 1, "b": 2.5, "c": True, "d": None,
                       "loc": {"type": "Point", "coordinates": [-122.4, 37.7]}}])
    assert rows == [{"a": "1", "b": "2.5", "c": "true", "d": "",
                     "loc": '{"type":"Point","coordinates":[-122.4,37.7]}'}]


@pytest.mark.parametrize("payload", [{"error": True, "message": "bad query"}, {"x": 1}, [1]])
def test_soda_rows_refuse_non_rows(payload: object) -> None:
    """Error objects and non-row answers raise ValueError."""
    with pytest.raises(ValueError):
        soda_rows(payload)


def test_arcgis_esri_json_rows_and_geometry() -> None:
    """Esri features give attributes plus geometry columns; the transfer flag pages on."""
    payload = {"features": [{"attributes": {"id": 7, "t": 1672560005000},
                             "geometry": {"x": -117.16, "y": 32.71}}],
               "exceededTransferLimit": True}
    rows, more = arcgis_rows(payload, geojson=False)
    assert more is True
    assert rows == [{"id": "7", "t": "1672560005000",
                     "geometry": json.dumps({"type": "Point", "coordinates": [-117.16, 32.71]}),
                     "geometry_lon": "-117.16", "geometry_lat": "32.71"}]


def test_arcgis_geojson_rows() -> None:
    """GeoJSON features give properties plus the point; no flag means the last page."""
    payload = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "A"},
         "geometry": {"type": "Point", "coordinates": [-72.68, 41.76]}},
        {"type": "Feature", "properties": {"id": "B"}, "geometry": None}]}
    rows, more = arcgis_rows(payload, geojson=True)
    assert more is False
    assert rows[0]["geometry_lat"] == "41.76" and rows[1] == {"id": "B"}


def test_arcgis_flag_on_empty_page_stops() -> None:
    """A server that claims more but sends nothing does not loop forever."""
    assert arcgis_rows({"features": [], "exceededTransferLimit": True}, False) == ([], False)


@pytest.mark.parametrize(("payload", "message"), [
    ({"error": {"code": 400, "message": "Invalid where"}}, "ArcGIS error: Invalid where"),
    ({"nothing": 1}, "ArcGIS answer has no features list"),
    ([], "ArcGIS answer is not a JSON object"),
    ({"features": [{"geometry": {}}]}, "ArcGIS feature has no attributes object"),
])
def test_arcgis_errors(payload: object, message: str) -> None:
    """ArcGIS error objects and odd answers raise ValueError with the reason."""
    with pytest.raises(ValueError) as caught:
        arcgis_rows(payload, geojson=False)
    assert str(caught.value) == message


def test_newest_compares_by_kind() -> None:
    """Epoch-ms values compare as numbers, ISO values as times; blanks are ignored."""
    assert newest(["999", "1000", ""], "998") == "1000"
    assert newest(["2019-10-18T03:00:00.000", "2019-10-18T10:00:00.000"],
                  "2019-10-18T04:00:00.000") == "2019-10-18T10:00:00.000"
    assert newest([""], None) is None


def test_retry_after_forms() -> None:
    """Retry-After is delta seconds or an HTTP date; junk is ignored."""
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_poll_config_defaults_and_values() -> None:
    """A minimal table gets defaults; given values are typed."""
    config = poll_config({"kind": "arcgis", "url": "https://x/q", "page_size": 50,
                          "interval_seconds": 30, "active_only": True, "format": "geojson"},
                         default_feed="file-stem")
    assert (config.feed, config.page_size, config.interval_seconds) == ("file-stem", 50, 30.0)
    assert config.active_only and config.format == "geojson" and config.timeout_seconds == 20


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "rss", "url": "https://x"}, "kind must be"),
    ({"kind": "soda", "url": "ftp://x"}, r"url must be an http\(s\) URL"),
    ({"kind": "soda", "url": "https://x", "feed": "a b"}, "feed must be"),
    ({"kind": "soda", "url": "https://x", "page_size": -1}, "page_size must be"),
    ({"kind": "soda", "url": "https://x", "page_size": 1.5}, "page_size must be a whole"),
    ({"kind": "soda", "url": "https://x", "active_only": "yes"}, "active_only must be"),
    ({"kind": "soda", "url": "https://x", "format": "xml"}, "format must be"),
    ({"kind": "soda", "url": "https://x", "limit": 5}, "unknown key .limit."),
    ({"kind": "soda", "url": "https://x", "active_only": True, "updated_field": "t"},
     "active_only feeds are read whole"),
    ({"kind": "soda", "url": "https://x", "updated_field": "t; drop"}, "is not a field name"),
])
def test_poll_config_errors(table: dict[str, object], message: str) -> None:
    """Each bad [poll] value raises a ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        poll_config(table, default_feed="f")


def test_flatten_keeps_strings() -> None:
    """Strings pass through unchanged; lists become JSON text."""
    assert flatten({"a": "x", "b": [1, 2]}) == {"a": "x", "b": "[1,2]"}
