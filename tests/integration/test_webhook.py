"""The gunshot webhook as a real process: signatures, replays, bad bodies, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from streams.core.events import ShotAlert, decode_event
from streams.core.keys import EVENT_FIELD, Keys
from streams.core.settings import PROJECT_ROOT
from streams.core.signatures import sign
from streams.redis_server import free_port
from tests.conftest import TIMEOUT_SCALE

SECRET = "test-webhook-secret"

DETECTED = (datetime.now(UTC) - timedelta(seconds=45)).replace(microsecond=120_000)
ALERT = {
    "id": "HFD-20140621-0001",
    "type": "Multiple Gunshots",
    "rounds": 4,
    "lat": 41.7761, "lon": -72.6934,  # Albany Ave at Woodland St, North End
    "address": "Albany Ave & Woodland St",
    "district": "North",
    "beat": "N3",
    "detected_time": DETECTED.isoformat().replace("+00:00", "Z"),
    "published_time": (DETECTED + timedelta(seconds=35)).isoformat(),
    "vendor_extra": {"sensors": 9},
}


@dataclass
class Webhook:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def webhook(redis_url: str, key_prefix: str, r: redis.Redis) -> Iterator[Webhook]:
    """`python -m streams webhook` on a free port, with this test's key prefix."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "DISPATCH_KEY_PREFIX": key_prefix,
           "DISPATCH_SHOTSPOTTER_SECRET": SECRET, "DISPATCH_WEBHOOK_PORT": str(port),
           "DISPATCH_WEBHOOK_HOST": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "streams", "webhook"], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20 * TIMEOUT_SCALE
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"webhook did not start: {process.stdout.read()!r}")  # type: ignore[union-attr]
        time.sleep(0.1)
    yield Webhook(url, process)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20 * TIMEOUT_SCALE)
    assert process.stdout is not None
    process.stdout.close()


def post(webhook: Webhook, body: bytes, timestamp: int | None = None,
         secret: str = SECRET, signature: str | None = None) -> httpx.Response:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = signature or "sha256=" + sign(secret, timestamp, body)
    return httpx.post(f"{webhook.url}/shotspotter", content=body, timeout=10 * TIMEOUT_SCALE,
                      headers={"X-Timestamp": str(timestamp), "X-Signature": signature,
                               "Content-Type": "application/json"})


def shot_entries(r: redis.Redis, keys: Keys) -> list[ShotAlert]:
    alerts = []
    for _, fields in r.xrange(keys.raw_stream("shotspotter")):
        event = decode_event(fields[EVENT_FIELD.encode()])
        assert isinstance(event, ShotAlert)
        alerts.append(event)
    return alerts


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange(keys.deadletter)]


def test_valid_alert_is_accepted_and_streamed(webhook: Webhook, r: redis.Redis,
                                              keys: Keys) -> None:
    """A correctly signed alert answers 202 and lands on the shotspotter raw stream."""
    response = post(webhook, json.dumps(ALERT).encode())
    assert response.status_code == 202
    assert response.json() == {"accepted": "HFD-20140621-0001"}
    [alert] = shot_entries(r, keys)
    assert (alert.alert_id, alert.alert_type, alert.rounds) == ("HFD-20140621-0001", "multiple", 4)
    assert (alert.lat, alert.lon, alert.district, alert.beat) == (41.7761, -72.6934, "North", "N3")
    assert alert.detected_time == DETECTED
    assert alert.event_id == "shot-HFD-20140621-0001"
    assert dead_letters(r, keys) == []


def test_tampered_body_is_unauthorized(webhook: Webhook, r: redis.Redis, keys: Keys) -> None:
    """A body changed after signing answers 401 and writes nothing."""
    body = json.dumps(ALERT).encode()
    timestamp = int(time.time())
    signature = sign(SECRET, timestamp, body)
    tampered = body.replace(b'"rounds": 4', b'"rounds": 9')
    response = post(webhook, tampered, timestamp=timestamp, signature=signature)
    assert response.status_code == 401
    assert "does not match" in response.json()["error"]
    assert shot_entries(r, keys) == [] and dead_letters(r, keys) == []


def test_wrong_key_is_unauthorized(webhook: Webhook, r: redis.Redis, keys: Keys) -> None:
    """An alert signed with another key answers 401."""
    response = post(webhook, json.dumps(ALERT).encode(), secret="not-the-secret")
    assert response.status_code == 401
    assert shot_entries(r, keys) == []


def test_missing_signature_is_unauthorized(webhook: Webhook, r: redis.Redis, keys: Keys) -> None:
    """An unsigned request answers 401 naming the missing header."""
    response = httpx.post(f"{webhook.url}/shotspotter", content=json.dumps(ALERT).encode(),
                          headers={"X-Timestamp": str(int(time.time()))})
    assert response.status_code == 401
    assert response.json()["error"] == "missing X-Signature header"
    assert shot_entries(r, keys) == []


def test_replayed_alert_is_unauthorized(webhook: Webhook, r: redis.Redis, keys: Keys) -> None:
    """The same signed request sent twice is accepted once, then 401 as a replay."""
    body = json.dumps(ALERT).encode()
    timestamp = int(time.time())
    assert post(webhook, body, timestamp=timestamp).status_code == 202
    again = post(webhook, body, timestamp=timestamp)
    assert again.status_code == 401
    assert "replay" in again.json()["error"]
    assert len(shot_entries(r, keys)) == 1


def test_too_old_and_future_timestamps_are_unauthorized(webhook: Webhook, r: redis.Redis,
                                                        keys: Keys) -> None:
    """Signed correctly but stamped 6 minutes ago or 6 minutes ahead answers 401."""
    body = json.dumps(ALERT).encode()
    old = post(webhook, body, timestamp=int(time.time()) - 360)
    future = post(webhook, body, timestamp=int(time.time()) + 360)
    assert (old.status_code, future.status_code) == (401, 401)
    assert "old" in old.json()["error"] and "future" in future.json()["error"]
    assert shot_entries(r, keys) == []


def test_malformed_json_is_400_and_dead_lettered(webhook: Webhook, r: redis.Redis,
                                                 keys: Keys) -> None:
    """A signed but unparseable body answers 400 and is kept in the dead-letter stream."""
    body = b'{"id": "DC-1", "type": "single", "lat": 38.9'
    response = post(webhook, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    [letter] = dead_letters(r, keys)
    assert letter["source"] == "shotspotter" and letter["payload"] == body.decode()
    assert letter["reason"].startswith("malformed JSON")
    assert shot_entries(r, keys) == []
    assert r.hget(keys.counts, "shotspotter:rejected") == b"1"


def test_invalid_alert_is_400_and_dead_lettered(webhook: Webhook, r: redis.Redis,
                                                keys: Keys) -> None:
    """A signed alert with an unknown type and no position answers 400 with the reason."""
    bad = {**ALERT, "type": "fireworks"}
    response = post(webhook, json.dumps(bad).encode())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid alert: type 'fireworks' is not single, " \
                                       "multiple or probable"
    no_position = {key: value for key, value in ALERT.items() if key != "lat"}
    second = post(webhook, json.dumps(no_position).encode())
    assert second.status_code == 400
    assert second.json()["error"] == "invalid alert: lat and lon are required"
    assert [letter["reason"] for letter in dead_letters(r, keys)] == [
        response.json()["error"], second.json()["error"]]
    assert shot_entries(r, keys) == []


def test_healthz_unknown_path_and_sigterm(webhook: Webhook) -> None:
    """GET /healthz is 200, other paths 404, GET on the alert path 405; SIGTERM exits 0."""
    assert httpx.get(f"{webhook.url}/healthz").status_code == 200
    assert httpx.get(f"{webhook.url}/nope").status_code == 404
    assert httpx.get(f"{webhook.url}/shotspotter").status_code == 405
    webhook.process.send_signal(signal.SIGTERM)
    assert webhook.process.wait(timeout=20 * TIMEOUT_SCALE) == 0


@pytest.mark.parametrize(("detected", "published"), [
    ("0001-01-01T00:00:00+14:00", None),
    ("9999-12-31T23:59:59-14:00", None),
    ("2099-01-01T00:00:00Z", None),
    ("2001-06-24T03:41:05Z", "2001-06-24T03:41:40Z"),
    (-1e20, None),
])
def test_times_outside_the_window_are_400_and_dead_lettered(
        webhook: Webhook, r: redis.Redis, keys: Keys, detected: object,
        published: object) -> None:
    """Times Python cannot hold, far-future and years-old times answer 400 (never a 500),
    are dead-lettered as time_out_of_range and reach no raw stream."""
    body = json.dumps({**ALERT, "detected_time": detected, "published_time": published})
    response = post(webhook, body.encode())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "time_out_of_range"
    [letter] = dead_letters(r, keys)
    assert letter["code"] == "time_out_of_range" and letter["payload"] == body
    assert shot_entries(r, keys) == []
    assert r.hget(keys.rejected_codes, "time_out_of_range") == b"1"


def test_alert_outside_the_service_area_is_400(webhook: Webhook, r: redis.Redis,
                                               keys: Keys) -> None:
    """An alert in Sydney (or anywhere far from the city) answers 400 outside_service_area."""
    response = post(webhook, json.dumps({**ALERT, "lat": -33.8688, "lon": 151.2093}).encode())
    assert response.status_code == 400
    assert response.json()["code"] == "outside_service_area"
    assert [letter["code"] for letter in dead_letters(r, keys)] == ["outside_service_area"]
    assert shot_entries(r, keys) == []
