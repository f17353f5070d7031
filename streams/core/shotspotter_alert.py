"""The JSON a gunshot-detection vendor pushes to the webhook, turned into a ShotAlert (pure).

Accepted shape (unknown fields are ignored, vendors add their own)::

    {
      "id": "SST-2014-06-21-0042",          # required; letters, digits, _ . : - ; <= 56 chars
      "type": "multiple",                    # required; single | multiple | probable, or the
                                             #   vendor words "Single Gunshot", "Multiple Gunshots",
                                             #   "Probable Gunfire"
      "rounds": 4,                           # optional, 1..500, default 1
      "lat": 41.7658, "lon": -72.6734,       # required (also "latitude"/"longitude")
      "address": "100 Main St",              # optional text
      "district": "North", "neighborhood": "Northeast", "beat": "N3",   # optional
      "detected_time": "2014-06-21T23:14:05.120Z",   # required; ISO 8601 with offset or
                                                      #   epoch seconds (number)
      "published_time": "2014-06-21T23:14:41Z"       # optional, same forms, not before detected
    }
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from streams.core.events import InvalidEvent, ShotAlert, decode_event

ALERT_SOURCE: Final = "shotspotter-webhook"

_TYPE_WORDS: Final = {
    "single": "single", "single gunshot": "single", "single_gunshot": "single",
    "multiple": "multiple", "multiple gunshots": "multiple", "multiple_gunshots": "multiple",
    "probable": "probable", "probable gunfire": "probable", "probable_gunfire": "probable",
}
_ALERT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,56}$")
_OPTIONAL_TEXT: Final = ("address", "district", "neighborhood", "beat")


def parse_alert_json(body: bytes) -> dict[str, Any]:
    """Decode the body as a JSON object; InvalidEvent('malformed JSON: ...') otherwise."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidEvent(f"malformed JSON: {error}", "not_json") from None
    if not isinstance(payload, dict):
        raise InvalidEvent(f"malformed JSON: expected an object, got {type(payload).__name__}",
                           "not_json")
    return payload


def alert_from_payload(payload: dict[str, Any]) -> ShotAlert:
    """Map the vendor's alert object to a validated ShotAlert; InvalidEvent (a ValueError)
    says what is wrong, with its dead-letter code."""
    alert_id = _alert_id(payload.get("id"))
    detected = _time(payload.get("detected_time"), "detected_time")
    if detected is None:
        raise InvalidEvent("invalid alert: detected_time is required")
    published = _time(payload.get("published_time"), "published_time")
    event: dict[str, Any] = {
        "type": "shot",
        "event_id": f"shot-{alert_id}",
        "event_time": (published or detected).isoformat(),
        "source": ALERT_SOURCE,
        "alert_id": alert_id,
        "alert_type": _alert_type(payload.get("type")),
        "rounds": payload.get("rounds", 1),
        "lat": _first(payload, "lat", "latitude"),
        "lon": _first(payload, "lon", "longitude"),
        "detected_time": detected.isoformat(),
    }
    if published is not None:
        event["published_time"] = published.isoformat()
    for name in _OPTIONAL_TEXT:
        if payload.get(name) not in (None, ""):
            event[name] = payload[name]
    if event["lat"] is None or event["lon"] is None:
        raise InvalidEvent("invalid alert: lat and lon are required")
    try:
        alert = decode_event(msgspec.json.encode(event))
    except InvalidEvent as error:
        raise InvalidEvent(f"invalid alert: {error.reason}", error.code) from None
    assert isinstance(alert, ShotAlert)
    return alert


def _first(payload: dict[str, Any], *names: str) -> Any:
    for name in names:
        if payload.get(name) is not None:
            return payload[name]
    return None


def _alert_id(value: Any) -> str:
    if not isinstance(value, str) or not _ALERT_ID.match(value):
        raise InvalidEvent("invalid alert: id must be 1-56 letters, digits, '_', '.', ':' or '-'")
    return value


def _alert_type(value: Any) -> str:
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in _TYPE_WORDS:
        raise InvalidEvent(f"invalid alert: type {value!r} is not single, multiple or probable")
    return _TYPE_WORDS[word]


def _time(value: Any, name: str) -> datetime | None:
    """ISO 8601 with an offset, or epoch seconds; naive times are refused (zone unknown)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidEvent(f"invalid alert: {name} must be a time, got {value!r}")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidEvent(f"invalid alert: {name} {value!r} is not epoch seconds in "
                               f"the years 1-9999", "time_out_of_range") from None
    if not isinstance(value, str):
        raise InvalidEvent(f"invalid alert: {name} must be a time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"invalid alert: {name} {value[:40]!r} is not ISO 8601") from None
    if parsed.utcoffset() is None:
        raise InvalidEvent(f"invalid alert: {name} {value[:40]!r} needs a UTC offset or 'Z'")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidEvent(f"invalid alert: {name} {value[:40]!r} is outside the years "
                           f"1-9999 in UTC", "time_out_of_range") from None
