"""HMAC webhook signatures and the vendor alert shape (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from streams.core.shotspotter_alert import ALERT_SOURCE, alert_from_payload, parse_alert_json
from streams.core.signatures import SignatureError, parse_signature, sign, verify

SECRET = "s3cret"
BODY = b'{"id": "A1"}'
NOW = 1_700_000_000


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The digest is HMAC-SHA256 over "<timestamp>.<body>", computed independently here."""
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected


def test_verify_accepts_plain_and_prefixed_hex() -> None:
    """Both "sha256=<hex>" and bare hex (any case) verify and return the bare digest."""
    digest = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), digest, BODY, now=NOW) == digest
    assert verify(SECRET, str(NOW), "sha256=" + digest.upper(), BODY, now=NOW + 299) == digest


@pytest.mark.parametrize(("timestamp", "signature", "body", "now", "reason"), [
    (str(NOW), None, BODY, NOW, "missing X-Signature header"),
    (None, "ab" * 32, BODY, NOW, "missing X-Timestamp header"),
    ("12.5", "ab" * 32, BODY, NOW, "X-Timestamp must be whole unix seconds, got '12.5'"),
    (str(NOW), "sha256=xyz", BODY, NOW, "X-Signature must be 64 hex digits (HMAC-SHA256)"),
    (str(NOW), "SIG", BODY, NOW + 301, "timestamp is 301s old; the limit is 300s"),
    (str(NOW), "SIG", BODY, NOW - 301, "timestamp is 301s in the future; the limit is 300s"),
    (str(NOW), "SIG", BODY + b" ", NOW, "signature does not match the body and timestamp"),
    (str(NOW + 1), "SIG", BODY, NOW, "signature does not match the body and timestamp"),
])
def test_verify_refuses_with_reason(timestamp: str | None, signature: str | None, body: bytes,
                                    now: int, reason: str) -> None:
    """Missing, malformed, stale, future and mismatched signatures each give their reason."""
    if signature == "SIG":
        signature = sign(SECRET, NOW, BODY)
    with pytest.raises(SignatureError) as caught:
        verify(SECRET, timestamp, signature, body, now=now)
    assert caught.value.reason == reason


def test_wrong_secret_fails() -> None:
    """A digest made with another key never verifies."""
    with pytest.raises(SignatureError):
        verify(SECRET, str(NOW), sign("other", NOW, BODY), BODY, now=NOW)


def test_parse_signature_strips_prefix_and_whitespace() -> None:
    """Header noise around the digest is tolerated."""
    assert parse_signature("  sha256=" + "AB" * 32 + " ") == "ab" * 32


VALID = {"id": "SST-1", "type": "Single Gunshot", "lat": 41.77, "lon": -72.68,
         "detected_time": "2014-06-21T23:14:05-04:00", "extra": [1, 2]}


def test_alert_maps_vendor_shape_to_shot_alert() -> None:
    """Vendor words, offsets and unknown fields map to a UTC ShotAlert with a stable id."""
    alert = alert_from_payload(VALID)
    assert alert.alert_id == "SST-1" and alert.event_id == "shot-SST-1"
    assert (alert.alert_type, alert.rounds, alert.source) == ("single", 1, ALERT_SOURCE)
    assert alert.detected_time == datetime(2014, 6, 22, 3, 14, 5, tzinfo=UTC)
    assert alert.event_time == alert.detected_time and alert.published_time is None


def test_alert_accepts_epoch_and_latitude_names() -> None:
    """Epoch-second times and latitude/longitude keys are accepted; published is event time."""
    payload = {"id": "X.2", "type": "probable", "rounds": 3, "latitude": 38.9,
               "longitude": -77.0, "detected_time": 1_400_000_000,
               "published_time": 1_400_000_030.5, "district": "5D", "address": ""}
    alert = alert_from_payload(payload)
    assert (alert.lat, alert.lon, alert.rounds, alert.district) == (38.9, -77.0, 3, "5D")
    assert alert.address is None
    assert alert.event_time == datetime.fromtimestamp(1_400_000_030.5, UTC)


@pytest.mark.parametrize(("change", "reason"), [
    ({"id": "bad id!"}, "invalid alert: id must be 1-56 letters, digits, '_', '.', ':' or '-'"),
    ({"id": None}, "invalid alert: id must be 1-56 letters, digits, '_', '.', ':' or '-'"),
    ({"type": "boom"}, "invalid alert: type 'boom' is not single, multiple or probable"),
    ({"detected_time": None}, "invalid alert: detected_time is required"),
    ({"detected_time": "2014-06-21 23:14"},
     "invalid alert: detected_time '2014-06-21 23:14' needs a UTC offset or 'Z'"),
    ({"detected_time": "yesterday"}, "invalid alert: detected_time 'yesterday' is not ISO 8601"),
    ({"detected_time": True}, "invalid alert: detected_time must be a time, got True"),
    ({"lon": None}, "invalid alert: lat and lon are required"),
])
def test_alert_rejections_name_the_problem(change: dict[str, object], reason: str) -> None:
    """Each invalid field gives a sentence naming it."""
    with pytest.raises(ValueError) as caught:
        alert_from_payload({**VALID, **change})
    assert str(caught.value) == reason


@pytest.mark.parametrize("change", [
    {"lat": 123.0}, {"rounds": 0}, {"rounds": "many"},
    {"published_time": "2014-06-21T23:00:00-04:00"}, {"lat": 0, "lon": 0},
])
def test_alert_model_constraints_apply(change: dict[str, object]) -> None:
    """Out-of-range positions and rounds, and published-before-detected, are invalid."""
    with pytest.raises(ValueError, match="^invalid alert: "):
        alert_from_payload({**VALID, **change})


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "malformed JSON: expected an object, got list"),
    (b"", "malformed JSON"),
])
def test_parse_alert_json_refuses_non_objects(body: bytes, reason: str) -> None:
    """Bodies that are not a JSON object are malformed."""
    with pytest.raises(ValueError) as caught:
        parse_alert_json(body)
    assert str(caught.value).startswith(reason)


def test_parse_alert_json_roundtrip() -> None:
    """A JSON object decodes to the same dict."""
    assert parse_alert_json(json.dumps(VALID).encode()) == VALID
