"""The event model: round trips, UTC normalisation and every rejection reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from streams.core.events import (
    MAX_EVENT_BYTES,
    CallEvent,
    InvalidEvent,
    ShareEvent,
    ShotAlert,
    UnitEvent,
    decode_event,
    encode_event,
    is_qol,
    source_of,
)

T0 = datetime(2014, 6, 1, 12, 0, tzinfo=UTC)


def created(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "call", "event_id": "e1", "event_time": "2014-06-01T12:00:30Z",
        "kind": "created", "call_id": "C1", "received_time": "2014-06-01T12:00:00Z",
        "category": "noise", "priority": 3, "lat": 41.76, "lon": -72.68,
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def decode(body: dict[str, Any]) -> Any:
    return decode_event(json.dumps(body).encode())


EXAMPLES = [
    CallEvent(event_id="e1", event_time=T0, kind="created", call_id="C1", received_time=T0,
              category="atv", priority=2, units=["U1"], caller_name="Pat"),
    UnitEvent(event_id="u1", event_time=T0, unit_id="U1", unit_kind="cso",
              status="en_route", lat=41.7, lon=-72.6, heading=90.0, speed_kmh=40.0),
    ShotAlert(event_id="s1", event_time=T0, alert_id="A1", alert_type="probable",
              rounds=2, lat=41.7, lon=-72.6, detected_time=T0, published_time=T0),
    ShareEvent(event_id="m1", event_time=T0, kind="opened", share_id="S1",
               partner="Hartford Hospital", partner_kind="hospital", resource_kind="camera",
               resource_id="cam-1", resource_name="ER door",
               stream_url="rtsp://cams.example/1"),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda event: type(event).__name__)
def test_encode_decode_round_trip(event: Any) -> None:
    """Every event type survives encode -> decode unchanged."""
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(("event", "source"), list(zip(EXAMPLES, ["cad", "avl", "shotspotter",
                                                             "mutualink"], strict=True)))
def test_source_of_each_type(event: Any, source: str) -> None:
    """Each event type belongs on its own raw stream."""
    assert source_of(event) == source


def test_times_are_normalised_to_utc() -> None:
    """A local time with an offset is converted to UTC; the instant is unchanged."""
    event = decode(created(event_time="2014-06-01T08:00:30-04:00",
                           received_time="2014-06-01T08:00:00-04:00"))
    assert event.event_time == T0 + timedelta(seconds=30)
    assert event.event_time.utcoffset() == timedelta(0)
    assert event.received_time.tzinfo is not None


def test_dst_change_gives_no_negative_interval() -> None:
    """Across the autumn DST change, local times with offsets keep the true order."""
    before = datetime(2014, 11, 2, 1, 50, tzinfo=timezone(timedelta(hours=-4)))
    after = datetime(2014, 11, 2, 1, 10, tzinfo=timezone(timedelta(hours=-5)))
    event = decode(created(received_time=before.isoformat(), event_time=after.isoformat()))
    assert (event.event_time - event.received_time).total_seconds() == 1200


def test_is_qol() -> None:
    """QoL categories are QoL; violent is not."""
    assert is_qol("noise") and is_qol("other_qol") and not is_qol("violent")


REJECTIONS = [
    (b"x" * (MAX_EVENT_BYTES + 1), "limit is"),
    (b'{"type": "call", "call_id": "\xff\xfe"}', "not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[]", "invalid event"),
    (json.dumps({"type": "radio"}).encode(), "invalid event"),
    (json.dumps(created(category="jaywalking")).encode(), "category"),
    (json.dumps(created(priority=9)).encode(), "priority"),
    (json.dumps(created(priority="high")).encode(), "priority"),
    (json.dumps(created(call_id=None)).encode(), "call_id"),
    (json.dumps(created(call_id="bad id!")).encode(), "call_id"),
    (json.dumps(created(event_time="2014-06-01T12:00:30")).encode(), "event_time"),
    (json.dumps(created(event_time="yesterday")).encode(), "event_time"),
    (json.dumps(created(lat=95.0)).encode(), "lat"),
    (json.dumps(created(lon=None)).encode(), "lat and lon must be given together"),
    (json.dumps(created(lat=0, lon=0)).encode(), "0,0 is a missing fix"),
    (json.dumps(created(priority=None)).encode(), "needs priority"),
    (json.dumps(created(received_time="2014-06-01T13:00:00Z")).encode(),
     "received_time is after event_time"),
    (json.dumps(created(surprise=1)).encode(), "surprise"),
    (json.dumps(created(v=2)).encode(), "v"),
    (json.dumps(created(kind="dispatched")).encode(), "needs unit_id"),
    (json.dumps(created(kind="teleported")).encode(), "kind"),
    (json.dumps({"type": "unit", "event_id": "u", "event_time": "2014-06-01T12:00:00Z",
                 "unit_id": "U1", "unit_kind": "patrol", "status": "napping"}).encode(),
     "status"),
    (json.dumps({"type": "unit", "event_id": "u", "event_time": "2014-06-01T12:00:00Z",
                 "unit_id": "U1", "unit_kind": "patrol", "status": "available",
                 "speed_kmh": 900}).encode(), "speed_kmh"),
    (json.dumps({"type": "shot", "event_id": "s", "event_time": "2014-06-01T12:00:00Z",
                 "alert_id": "A", "alert_type": "single", "lat": 41.7, "lon": -72.6,
                 "detected_time": "2014-06-01T12:00:00Z",
                 "published_time": "2014-06-01T11:00:00Z"}).encode(),
     "published_time is before detected_time"),
    (json.dumps({"type": "share", "event_id": "m", "event_time": "2014-06-01T12:00:00Z",
                 "kind": "opened", "share_id": "S", "partner": "P", "partner_kind": "arena",
                 "resource_kind": "camera", "resource_id": "c", "resource_name": "n",
                 "stream_url": "javascript:alert(1)"}).encode(), "stream_url"),
]


@pytest.mark.parametrize(("payload", "reason"), REJECTIONS)
def test_rejection_reasons_are_readable(payload: bytes, reason: str) -> None:
    """Each kind of bad input raises InvalidEvent naming what is wrong."""
    with pytest.raises(InvalidEvent) as caught:
        decode_event(payload)
    assert reason in caught.value.reason


def test_invalid_event_is_a_value_error() -> None:
    """InvalidEvent is a ValueError carrying its reason."""
    error = InvalidEvent("why")
    assert isinstance(error, ValueError) and error.reason == "why" and str(error) == "why"


def test_decode_accepts_str() -> None:
    """A str payload decodes like bytes."""
    assert decode_event(json.dumps(created())).call_id == "C1"  # type: ignore[union-attr]
