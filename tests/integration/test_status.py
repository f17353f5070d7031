"""`python -m streams status` as a real subprocess, after the real consumer, on real Redis.

Events and junk go through the consumer; then a few more CAD events arrive and a consumer
that will never ack takes one, so the CAD partition has a lag (Redis 7's own, or counted
on 6.2) and a holder with a pending entry whose heartbeat never existed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from streams.connections import connect
from streams.consumer import Counters
from streams.core.events import Event, ShareEvent, ShotAlert
from streams.core.keys import CONSUMER_GROUP, EVENT_FIELD, SOURCES, Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.core.status import SECTIONS
from streams.publish import publish, publish_raw
from streams.redis_server import free_port
from tests.browser.conftest import settings_env
from tests.conftest import TIMEOUT_SCALE
from tests.eventgen import HARTFORD, generate_events
from tests.integration.test_consumer import consume_until_drained


def status(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams", "status", *args],
                          env={**os.environ, **settings_env(settings), **env},
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60 * TIMEOUT_SCALE)


async def feed_and_consume(settings: Settings, r: redis.Redis, keys: Keys) -> Counters:
    """Valid events and two junk entries through the consumer (until drained)."""
    client = await connect(settings.redis_address)
    try:
        await publish(client, keys, generate_events(12, calls=12, units=4, fixes_per_unit=4,
                                                     alerts=2, shares=2) + fresh_alert_and_share())
        await publish_raw(client, keys, "cad", b"this is not json")
        await publish_raw(client, keys, "avl", b'{"v": 1, "type": "unit"}')
    finally:
        await client.aclose()
    return await consume_until_drained(settings, r)


def fresh_alert_and_share() -> list[Event]:
    """A gunshot alert and an open share of a minute ago (the generated ones are days old:
    no longer active)."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    return [ShotAlert(event_id="shot-now", event_time=now, source="gen", alert_id="SSNOW",
                      alert_type="single", lat=HARTFORD[0], lon=HARTFORD[1], detected_time=now),
            ShareEvent(event_id="share-now", event_time=now, source="gen", kind="opened",
                       share_id="SHNOW", partner="XL Center", partner_kind="arena",
                       resource_kind="camera", resource_id="cam-now", resource_name="Gate A",
                       lat=HARTFORD[0], lon=HARTFORD[1])]


@pytest.fixture
def consumed(settings: Settings, r: redis.Redis, keys: Keys) -> Counters:
    """The consumer's counters; then three CAD entries nobody has read but "stuck", a
    consumer with no heartbeat that takes one and never acks it."""
    counters = asyncio.run(feed_and_consume(settings, r, keys))
    for number in range(3):
        r.xadd(keys.raw_stream("cad"), {EVENT_FIELD: f"late {number}"})
    r.xreadgroup(CONSUMER_GROUP, "stuck", {keys.raw_stream("cad"): ">"}, count=1)
    return counters


def test_status_json_counts_what_the_consumer_applied(
        settings: Settings, r: redis.Redis, keys: Keys, consumed: Counters) -> None:
    """Counts from live state, dead letters by reason code, per-feed counters, partitions
    with lag and holders, and processes: LIVE, STALE, NEVER SEEN, as the JSON says."""
    done = status(settings, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    print(done.stdout[:3000])

    live = report["live"]
    assert live == {
        "open_calls": r.zcard(keys.calls_open), "closed_calls_recent":
        r.zcard(keys.calls_closed_index), "closed_records": r.xlen(keys.closed),
        "units": 4, "active_alerts": 1, "active_shares": r.zcard(keys.shares_active)}
    assert r.zcard(keys.alerts_active) == 3  # two generated days ago, not pruned yet
    assert live["active_shares"] >= 1
    assert live["open_calls"] + live["closed_calls_recent"] == 12

    letters = report["dead_letters"]
    assert (letters["in_stream"], letters["scanned"], letters["sampled"]) == (2, 2, False)
    assert {(item["code"], item["count"], tuple(item["sources"]))
            for item in letters["by_code"]} == {("not_json", 1, ("cad",)),
                                                ("invalid", 1, ("avl",))}
    assert letters["counted_by_code"] == {"not_json": 1, "invalid": 1}

    feeds = {row["source"]: row for row in report["feeds"]}
    assert sum(row["applied"] for row in feeds.values()) == consumed.applied
    assert {source: row["rejected"] for source, row in feeds.items()} == {
        "cad": 1, "avl": 1, "shotspotter": 0, "mutualink": 0}
    assert {row["duplicate"] for row in feeds.values()} == {0}
    assert all(row["state"] == "live" and 0 <= row["age_s"] < 60 for row in feeds.values())

    parts = {row["name"]: row for row in report["partitions"]}
    assert list(parts) == list(SOURCES)
    cad = parts["cad"]
    assert (cad["lag"], cad["pending"], cad["consumers"]) == (2, 1, 2)
    assert ("stuck", 1) in {(h["name"], h["pending"]) for h in cad["holders"]}
    assert (parts["avl"]["lag"], parts["avl"]["pending"]) == (0, 0)

    processes = {row["name"]: row for row in report["processes"]}
    assert (processes["c1"]["kind"], processes["c1"]["state"]) == ("consumer", "live")
    assert 0 < processes["c1"]["heartbeat"]["applied"] <= consumed.applied
    assert (processes["stuck"]["state"], processes["stuck"]["age_s"]) == ("stale", None)
    assert processes["history"]["state"] == "never_seen"
    assert processes["push"]["state"] == "no_heartbeat"


def test_status_names_the_lease_holder(settings: Settings, r: redis.Redis, keys: Keys,
                                       consumed: Counters) -> None:
    """The consumer released its lease when it stopped: nobody applies, and status says so;
    a lease as streams.lease writes it (``<name>/<random>``) names its holder."""
    report = json.loads(status(settings, "--json").stdout)
    assert report["lease"] == {"partition": "0", "holder": None, "expires_in_s": None}
    r.set(keys.lease(), "consumer-b-7/5e1f", px=4000)
    try:
        lease = json.loads(status(settings, "--json").stdout)["lease"]
        assert lease["holder"] == "consumer-b-7" and 0 < lease["expires_in_s"] <= 4
        assert "lease 0: held by consumer-b-7" in status(settings).stdout
    finally:
        r.delete(keys.lease())


def test_status_text_names_each_section(settings: Settings, consumed: Counters) -> None:
    done = status(settings)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    for title in SECTIONS:
        assert f"\n{title}" in done.stdout
    assert "not_json" in done.stdout and "NEVER SEEN" in done.stdout


@pytest.mark.parametrize("problem", ["password", "port"])
def test_status_without_redis_exits_2_with_one_line(settings: Settings, problem: str) -> None:
    """A wrong password or nobody listening: exit 2, one line on stderr, no traceback."""
    url = settings.redis_address
    if problem == "port":
        url = f"redis://127.0.0.1:{free_port()}/0"
    elif "@" not in url:
        pytest.skip("this Redis asks for no password")
    else:
        url = f"redis://:not-the-password@{url.rpartition('@')[2]}"
    done = status(settings, REDIS_URL=url)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "not-the-password" not in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("status: Redis at ")
    if problem == "password":
        assert "refused the credentials" in done.stderr
    else:
        assert "cannot be reached" in done.stderr


def test_status_of_an_empty_prefix_is_unknown_not_zero(settings: Settings) -> None:
    """Nothing ever consumed under this prefix: counters unknown, no group, never seen."""
    done = status(settings, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {row["applied"] for row in report["feeds"]} == {None}
    assert {(row["group_exists"], row["lag"]) for row in report["partitions"]} == {
        (False, None)}
    assert Counter(row["state"] for row in report["processes"])["never_seen"] >= 2
