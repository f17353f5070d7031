"""Live open-data feeds (Socrata SODA, ArcGIS REST query) as plain data (pure).

A mapping file that can be polled has a ``[poll]`` table next to the mapping itself::

    [poll]
    kind = "soda"                 # "soda" or "arcgis"
    url = "https://data.sfgov.org/resource/nuek-vuh3.json"   # SODA resource, or
                                  #   ".../FeatureServer/0/query" for ArcGIS
    feed = "sf-fire"              # name in Redis keys and health (default: file name)
    updated_field = "data_as_of"  # read only rows updated after the last poll (optional)
    order = "data_as_of, call_number"   # SODA $order / ArcGIS orderByFields (stable paging)
    where = "call_date > '2024-01-01'"  # extra filter (SODA $where, ArcGIS where)
    page_size = 1000              # $limit / resultRecordCount
    interval_seconds = 60         # between polls
    timeout_seconds = 20          # per HTTP request
    overlap_seconds = 300         # re-read this far behind the watermark (late writes)
    active_only = false           # true: the feed lists only open calls (read whole each
                                  #   poll, so no updated_field)
    left_feed = "close"           # active_only: a call that drops out of a complete poll is
                                  #   "close"d at once, "close_after" missing_polls polls in
                                  #   a row, or "keep_open" (the feed's own status closes it);
                                  #   it closes at the last poll that showed it, with
                                  #   left_feed = "1" in its closed record
    missing_polls = 3             # close_after: polls in a row a call must be missing
    format = "json"               # ArcGIS: "json" (esri) or "geojson"
    app_token = true              # SODA: send DISPATCH_SODA_APP_TOKEN as X-App-Token
    backoff_base_seconds = 1.0    # first retry delay after an error (doubles, full jitter)
    backoff_cap_seconds = 300     # longest retry delay
    page_retries = 3              # tries per page before the poll counts as failed

Rows handed to the mapping are flat ``{column: text}``: numbers become their decimal text,
JSON objects (SODA point/location columns) become JSON text, ArcGIS dates stay epoch
milliseconds as text, and a feature's geometry becomes a GeoJSON ``geometry`` column plus
``geometry_lon`` / ``geometry_lat`` (esri ``{x, y}`` or GeoJSON point), so the mapping's
lat/lon-column or GeoJSON location formats apply.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

FeedKind = Literal["soda", "arcgis"]
LeftFeed = Literal["close", "close_after", "keep_open"]
_FEED_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SODA_TIME = "%Y-%m-%dT%H:%M:%S.%f"


@dataclass(frozen=True)
class PollConfig:
    """How to poll one feed; built from a mapping file's ``[poll]`` table."""

    feed: str
    kind: FeedKind
    url: str
    updated_field: str | None = None
    order: str | None = None
    where: str | None = None
    page_size: int = 1000
    interval_seconds: float = 60.0
    timeout_seconds: float = 20.0
    overlap_seconds: float = 300.0
    active_only: bool = False
    left_feed: LeftFeed = "close"
    missing_polls: int = 3
    format: Literal["json", "geojson"] = "json"
    app_token: bool = True
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    page_retries: int = 3
    max_pages: int = 10_000


_NUMBERS = {"page_size": int, "interval_seconds": float, "timeout_seconds": float,
            "overlap_seconds": float, "backoff_base_seconds": float,
            "backoff_cap_seconds": float, "page_retries": int, "max_pages": int,
            "missing_polls": int}
_TEXTS = ("updated_field", "order", "where")
_KNOWN = {"kind", "url", "feed", "active_only", "left_feed", "format", "app_token",
          *_NUMBERS, *_TEXTS}
POLL_KEYS: Final = tuple(sorted(_KNOWN))
"""Every key of a [poll] table (the README test checks each is documented)."""


def poll_config(table: dict[str, Any], default_feed: str) -> PollConfig:
    """Validate a ``[poll]`` table; ValueError names the key to fix."""
    for key in sorted(set(table) - _KNOWN):
        close = difflib.get_close_matches(key, sorted(_KNOWN), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else \
            f"expected some of {', '.join(sorted(_KNOWN))}"
        raise ValueError(f"[poll] unknown key {key!r}; {hint}")
    kind = table.get("kind")
    if kind not in ("soda", "arcgis"):
        raise ValueError(f"[poll] kind must be \"soda\" or \"arcgis\", got {kind!r}")
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"[poll] url must be an http(s) URL, got {url!r}")
    feed = table.get("feed", default_feed)
    if not isinstance(feed, str) or not _FEED_NAME.match(feed):
        raise ValueError(f"[poll] feed must be 1-60 letters, digits, '_', '.', '-', got {feed!r}")
    values: dict[str, Any] = {"feed": feed, "kind": kind, "url": url}
    for name, kind_of in _NUMBERS.items():
        if name in table:
            values[name] = _positive(table[name], name, kind_of)
    for name in _TEXTS:
        if name in table:
            if not isinstance(table[name], str) or not table[name].strip():
                raise ValueError(f"[poll] {name} must be non-empty text")
            values[name] = table[name].strip()
    for name in ("active_only", "app_token"):
        if name in table:
            if not isinstance(table[name], bool):
                raise ValueError(f"[poll] {name} must be true or false")
            values[name] = table[name]
    if table.get("format", "json") not in ("json", "geojson"):
        raise ValueError(f"[poll] format must be \"json\" or \"geojson\", got {table['format']!r}")
    values["format"] = table.get("format", "json")
    if table.get("left_feed", "close") not in ("close", "close_after", "keep_open"):
        raise ValueError(f"[poll] left_feed must be \"close\", \"close_after\" or "
                         f"\"keep_open\", got {table['left_feed']!r}")
    values["left_feed"] = table.get("left_feed", "close")
    config = PollConfig(**values)
    _check_combination(config)
    return config


def _positive(value: Any, name: str, kind_of: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (kind_of is int and not isinstance(value, int)):
        raise ValueError(f"[poll] {name} must be a {'whole ' if kind_of is int else ''}"
                         f"number >= 0, got {value!r}")
    return kind_of(value)


def _check_combination(config: PollConfig) -> None:
    if config.active_only and config.updated_field:
        raise ValueError("[poll] active_only feeds are read whole each poll; "
                         "remove updated_field (or set active_only = false)")
    if config.updated_field and not _FIELD_NAME.match(config.updated_field):
        raise ValueError(f"[poll] updated_field {config.updated_field!r} is not a field name")
    if config.page_size < 1:
        raise ValueError("[poll] page_size must be at least 1")
    if config.page_retries < 1:
        raise ValueError("[poll] page_retries must be at least 1")
    if config.missing_polls < 1:
        raise ValueError("[poll] missing_polls must be at least 1")


# --- request parameters ---------------------------------------------------------------
def since(watermark: str | None, overlap_seconds: float) -> str | None:
    """The watermark moved back by the overlap, in the same notation (ISO text or epoch ms)."""
    if watermark is None:
        return None
    if watermark.isdigit():
        return str(max(0, int(watermark) - int(overlap_seconds * 1000)))
    moved = _parse_floating(watermark) - timedelta(seconds=overlap_seconds)
    return moved.strftime(_SODA_TIME)[:-3]


def soda_params(config: PollConfig, watermark: str | None, offset: int) -> dict[str, str]:
    """Query string of one SODA page."""
    clauses = [f"({config.where})"] if config.where else []
    start = since(watermark, config.overlap_seconds)
    if config.updated_field and start is not None:
        clauses.append(f"{config.updated_field} > '{start}'")
    params = {"$limit": str(config.page_size), "$offset": str(offset),
              "$order": config.order or (f"{config.updated_field}, :id"
                                         if config.updated_field else ":id")}
    if clauses:
        params["$where"] = " AND ".join(clauses)
    return params


def arcgis_params(config: PollConfig, watermark: str | None, offset: int) -> dict[str, str]:
    """Query string of one ArcGIS ``query`` page."""
    clauses = [f"({config.where})"] if config.where else []
    start = since(watermark, config.overlap_seconds)
    if config.updated_field and start is not None:
        clauses.append(f"{config.updated_field} > TIMESTAMP '{_arcgis_timestamp(start)}'")
    params = {"where": " AND ".join(clauses) or "1=1", "outFields": "*",
              "f": config.format, "returnGeometry": "true", "outSR": "4326",
              "resultOffset": str(offset), "resultRecordCount": str(config.page_size)}
    if config.order or config.updated_field:
        params["orderByFields"] = config.order or f"{config.updated_field} ASC"
    return params


def _arcgis_timestamp(start: str) -> str:
    if start.isdigit():
        return datetime.fromtimestamp(int(start) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return _parse_floating(start).strftime("%Y-%m-%d %H:%M:%S")


def _parse_floating(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise ValueError(f"update time {text[:40]!r} is neither ISO 8601 nor epoch ms") from None


# --- responses ------------------------------------------------------------------------
def soda_rows(payload: Any) -> list[dict[str, str]]:
    """Rows of one SODA JSON page; ValueError if the answer is not a list of objects."""
    if isinstance(payload, dict) and payload.get("error"):
        raise ValueError(f"SODA error: {str(payload.get('message', payload))[:200]}")
    if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
        raise ValueError("SODA answer is not a JSON list of rows")
    return [flatten(row) for row in payload]


def arcgis_rows(payload: Any, geojson: bool) -> tuple[list[dict[str, str]], bool]:
    """(rows, more pages follow) of one ArcGIS query answer; ValueError on an error object."""
    if not isinstance(payload, dict):
        raise ValueError("ArcGIS answer is not a JSON object")
    if "error" in payload:
        error = payload["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ValueError(f"ArcGIS error: {str(message)[:200]}")
    features = payload.get("features")
    if not isinstance(features, list):
        raise ValueError("ArcGIS answer has no features list")
    rows = [_geojson_row(feature) if geojson else _esri_row(feature) for feature in features]
    more = payload.get("exceededTransferLimit") \
        or (payload.get("properties") or {}).get("exceededTransferLimit")
    return rows, bool(more) and bool(features)


def _esri_row(feature: Any) -> dict[str, str]:
    if not isinstance(feature, dict) or not isinstance(feature.get("attributes"), dict):
        raise ValueError("ArcGIS feature has no attributes object")
    row = flatten(feature["attributes"])
    geometry = feature.get("geometry")
    if isinstance(geometry, dict) and _is_number(geometry.get("x")) \
            and _is_number(geometry.get("y")):
        row.update(_point_columns(geometry["x"], geometry["y"]))
    return row


def _geojson_row(feature: Any) -> dict[str, str]:
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise ValueError("GeoJSON feature has no properties object")
    row = flatten(feature["properties"])
    geometry = feature.get("geometry")
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        coordinates = geometry.get("coordinates")
        if isinstance(coordinates, list) and len(coordinates) >= 2 \
                and all(_is_number(value) for value in coordinates[:2]):
            row.update(_point_columns(coordinates[0], coordinates[1]))
    return row


def _point_columns(lon: float, lat: float) -> dict[str, str]:
    return {"geometry": json.dumps({"type": "Point", "coordinates": [lon, lat]}),
            "geometry_lon": _text(lon), "geometry_lat": _text(lat)}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flatten(record: dict[str, Any]) -> dict[str, str]:
    """One flat text row: None -> "", numbers -> decimal text, objects -> JSON text."""
    return {str(name): _text(value) for name, value in record.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"))


def newest(values: list[str], current: str | None) -> str | None:
    """The latest of the update-time values and the current watermark (ISO or epoch ms)."""
    candidates = [value for value in values if value] + ([current] if current else [])
    if not candidates:
        return None
    if all(value.isdigit() for value in candidates):
        return max(candidates, key=int)
    return max(candidates, key=lambda value: _parse_floating(value))


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date), if usable."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
