"""No single bad input stops or corrupts live state (issue 8 items 1-3), on a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import redis

from streams.clients import async_client
from streams.consumer import prune
from streams.core.events import CallEvent, ShareEvent, ShotAlert, UnitEvent, encode_event
from streams.core.keys import CONSUMER_GROUP, EVENT_FIELD, Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.publish import publish_raw
from tests.conftest import TIMEOUT_SCALE, delete_keys
from tests.eventgen import generate_events
from tests.integration.test_consumer import (
    apply_sequence,
    consume_until_drained,
    drained,
    publish_events,
    settings_for,
)

CRITICAL_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
"""The two event times that once stopped all live processing (OverflowError in utc())."""


def critical_entry(number: int, when: str) -> bytes:
    return json.dumps({"type": "call", "event_id": f"crit-{number}", "event_time": when,
                       "kind": "created", "call_id": f"CRIT{number}", "category": "noise",
                       "received_time": when, "priority": 3}).encode()


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [{k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            for _, fields in r.xrange(keys.deadletter)]


def test_overflowing_times_are_dead_lettered_by_the_running_consumer(
        settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """The two entries that once crash-looped the consumer are dead-lettered as
    time_out_of_range by a real `python -m streams consume`, which goes on applying every
    other feed's events and never restarts."""
    events = generate_events(41, calls=20, units=3, fixes_per_unit=5, alerts=2, shares=1)

    async def publish_all() -> None:
        client = async_client(settings.redis_url or "")
        try:
            for number, when in enumerate(CRITICAL_TIMES):
                await publish_raw(client, keys, "cad", critical_entry(number, when))
        finally:
            await client.aclose()

    asyncio.run(publish_all())
    asyncio.run(publish_events(settings.redis_url or "", keys, events))
    env = {**os.environ, "REDIS_URL": settings.redis_url or "",
           "DISPATCH_KEY_PREFIX": settings.key_prefix, "DISPATCH_CONSUMER_BLOCK_MS": "100",
           "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "streams", "consume", "--name", "only"],
                               cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60 * TIMEOUT_SCALE
        while not drained(r, keys):
            assert process.poll() is None, "the consumer stopped"
            assert time.monotonic() < deadline, "the consumer did not drain the streams"
            time.sleep(0.05)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20 * TIMEOUT_SCALE)
    assert process.returncode == 0, stderr.decode()[-2000:]
    letters = dead_letters(r, keys)
    assert [letter["code"] for letter in letters] == ["time_out_of_range"] * 2
    assert [letter["payload"] for letter in letters] == [
        critical_entry(number, when).decode() for number, when in enumerate(CRITICAL_TIMES)]
    assert all("outside the years 1-9999" in letter["reason"] for letter in letters)
    counts = {k.decode(): int(v) for k, v in r.hgetall(keys.counts).items()}
    assert sum(v for k, v in counts.items() if ":" not in k) == len(events)
    assert counts["cad:rejected"] == 2
    assert r.hget(keys.rejected_codes, "time_out_of_range") == b"2"


def test_entry_that_crashed_its_consumer_twice_is_set_aside_as_poison(
        settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """An entry delivered twice without an ack (its consumer died with it, in a batch and
    then alone) is dead-lettered as poison on the third delivery, unapplied; an entry
    whose consumer died once is applied; the feed goes on."""
    now = datetime.now(UTC)
    poison = CallEvent(event_id="p-1", event_time=now, kind="created", call_id="POISON",
                       received_time=now, category="noise", priority=3)
    once = CallEvent(event_id="o-1", event_time=now, kind="created", call_id="ONCE",
                     received_time=now, category="atv", priority=2)
    stream = keys.raw_stream("cad")
    r.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    poison_id = r.xadd(stream, {EVENT_FIELD: encode_event(poison)})
    r.xreadgroup(CONSUMER_GROUP, "crashy", {stream: ">"}, count=1)  # delivered in a batch
    r.xreadgroup(CONSUMER_GROUP, "crashy", {stream: "0"}, count=1)  # again, alone
    once_id = r.xadd(stream, {EVENT_FIELD: encode_event(once)})
    r.xreadgroup(CONSUMER_GROUP, "crashy", {stream: ">"}, count=1)  # delivered once
    after = CallEvent(event_id="a-1", event_time=now, kind="created", call_id="AFTER",
                      received_time=now, category="theft", priority=4)
    asyncio.run(publish_events(settings.redis_url or "", keys, [after]))

    counters = asyncio.run(consume_until_drained(settings, r, name="crashy"))

    assert counters.poison == 1
    [letter] = dead_letters(r, keys)
    assert letter["code"] == "poison" and letter["entry_id"] == poison_id.decode()
    assert letter["payload"] == encode_event(poison).decode()
    assert "delivered 3 times" in letter["reason"]
    assert not r.hexists(keys.calls, "POISON")
    assert r.hexists(keys.calls, "ONCE") and r.hexists(keys.calls, "AFTER")
    assert once_id != poison_id
    assert r.xpending(stream, CONSUMER_GROUP)["pending"] == 0


def test_a_far_future_event_cannot_purge_real_data(settings: Settings, r: redis.Redis,
                                                   keys: Keys) -> None:
    """With the future bound opened wide so a 2099 call, alert and share are applied,
    pruning still ages bodies by the receiving clock: no closed body, alert or share that
    is recent by the wall clock is removed, and the 2099 feed clock is never stored."""
    wide = settings_for(settings, settings.key_prefix, max_event_ahead_seconds=200 * 365 * 86400.0)
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    real = [
        CallEvent(event_id="r1", event_time=hour_ago, kind="created", call_id="REAL",
                  received_time=hour_ago, category="noise", priority=3),
        CallEvent(event_id="r2", event_time=hour_ago + timedelta(minutes=20), kind="cleared",
                  call_id="REAL"),
        ShotAlert(event_id="rs", event_time=now - timedelta(minutes=10), alert_id="REAL-SHOT",
                  alert_type="single", lat=41.77, lon=-72.68,
                  detected_time=now - timedelta(minutes=10)),
        ShareEvent(event_id="rv1", event_time=hour_ago, kind="opened", share_id="REAL-SHARE",
                   partner="XL Center", partner_kind="arena", resource_kind="camera",
                   resource_id="cam-1", resource_name="Gate A"),
        ShareEvent(event_id="rv2", event_time=hour_ago + timedelta(minutes=5), kind="closed",
                   share_id="REAL-SHARE", partner="XL Center", partner_kind="arena",
                   resource_kind="camera", resource_id="cam-1", resource_name="Gate A"),
    ]
    future = datetime(2099, 1, 1, tzinfo=UTC)
    attack = [
        CallEvent(event_id="f1", event_time=future, kind="created", call_id="FUTURE",
                  received_time=future, category="noise", priority=3),
        CallEvent(event_id="f2", event_time=future, kind="cleared", call_id="FUTURE"),
        ShotAlert(event_id="fs", event_time=future, alert_id="FUTURE-SHOT",
                  alert_type="multiple", lat=41.77, lon=-72.68, detected_time=future),
        UnitEvent(event_id="fu", event_time=future, unit_id="F1", unit_kind="patrol",
                  status="available"),
    ]
    apply_sequence(wide, r, [*real, *attack])
    assert float(r.hget(keys.freshness, "cad") or 0) <= time.time() + 5

    async def prune_now() -> None:
        client = async_client(settings.redis_url or "")
        try:
            await prune(client, keys)
        finally:
            await client.aclose()

    asyncio.run(prune_now())
    assert r.hexists(keys.calls, "REAL"), "a closed call an hour old lost its body"
    assert r.hexists(keys.shares, "REAL-SHARE"), "a share closed an hour ago lost its body"
    active = {member.decode() for member in r.zrange(keys.alerts_active, 0, -1)}
    assert "REAL-SHOT" in active, "a 10-minute-old alert left the active set"


def test_far_future_event_is_dead_lettered_with_the_default_window(
        settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """With the default bound (5 minutes ahead), a 2099 alert and an event timed 10
    minutes ahead are dead-lettered as time_out_of_range; one timed 1 minute ahead is
    applied; none of them moves the feed clock past the receiving clock."""
    now = datetime.now(UTC)
    events = [
        ShotAlert(event_id="x1", event_time=datetime(2099, 1, 1, tzinfo=UTC),
                  alert_id="FAR", alert_type="single", lat=41.77, lon=-72.68,
                  detected_time=datetime(2099, 1, 1, tzinfo=UTC)),
        ShotAlert(event_id="x2", event_time=now + timedelta(minutes=10), alert_id="TEN",
                  alert_type="single", lat=41.77, lon=-72.68,
                  detected_time=now + timedelta(minutes=10)),
        ShotAlert(event_id="x3", event_time=now + timedelta(minutes=1), alert_id="ONE",
                  alert_type="single", lat=41.77, lon=-72.68,
                  detected_time=now + timedelta(minutes=1)),
    ]
    counters = apply_sequence(settings, r, events)
    assert counters.applied == 1 and counters.rejected == 2
    assert [letter["code"] for letter in dead_letters(r, keys)] == ["time_out_of_range"] * 2
    assert [m.decode() for m in r.zrange(keys.alerts_active, 0, -1)] == ["ONE"]
    assert float(r.hget(keys.freshness, "shotspotter") or 0) <= time.time() + 1


def test_events_outside_the_service_area_are_dead_lettered(
        settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """A call at -45,170 and an alert in Sydney are dead-lettered as outside_service_area;
    a unit and a share just inside the margin are applied; with DISPATCH_SERVICE_AREA
    naming another city's box, that city's events are applied instead."""
    now = datetime.now(UTC)
    far_call = CallEvent(event_id="s1", event_time=now, kind="created", call_id="FAR",
                         received_time=now, category="noise", priority=3, lat=-45.0,
                         lon=170.0)
    sydney = ShotAlert(event_id="s2", event_time=now, alert_id="SYD", alert_type="single",
                       lat=-33.8688, lon=151.2093, detected_time=now)
    west_hartford = UnitEvent(event_id="s3", event_time=now, unit_id="WH1",
                              unit_kind="patrol", status="available", lat=41.762, lon=-72.742)
    share = ShareEvent(event_id="s4", event_time=now, kind="opened", share_id="SH1",
                       partner="UConn Health", partner_kind="hospital", resource_kind="camera",
                       resource_id="c1", resource_name="Lobby", lat=41.73, lon=-72.79)
    counters = apply_sequence(settings, r, [far_call, sydney, west_hartford, share])
    assert counters.applied == 2
    assert sorted(letter["code"] for letter in dead_letters(r, keys)) == [
        "outside_service_area"] * 2
    assert r.hexists(keys.units, "WH1") and r.hexists(keys.shares, "SH1")
    assert not r.hexists(keys.calls, "FAR") and not r.hexists(keys.alerts, "SYD")

    sydney_settings = settings_for(settings, settings.key_prefix + "-syd",
                                   service_area="-34.2,150.5,-33.5,151.4")
    try:
        assert apply_sequence(sydney_settings, r, [sydney]).applied == 1
    finally:
        delete_keys(r, sydney_settings.key_prefix)
