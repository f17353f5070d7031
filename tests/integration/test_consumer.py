"""The live-state consumer against a real Redis: state, redelivery, crashes, junk, restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.clients import sync_client
from streams.connections import connect
from streams.consumer import Counters, run_consumer
from streams.core.events import CallEvent, Event, UnitEvent, encode_event, source_of
from streams.core.keys import CONSUMER_GROUP, SOURCES, Keys
from streams.core.livestate import CLOSED_FIELDS
from streams.core.settings import PROJECT_ROOT, Settings
from streams.publish import publish, publish_raw
from streams.redis_server import EmbeddedRedis, free_port
from tests.conftest import TIMEOUT_SCALE, close_client, delete_keys
from tests.eventgen import START, generate_events

DRAIN_TIMEOUT = 60 * TIMEOUT_SCALE


# --- helpers ------------------------------------------------------------------------------

async def publish_events(url: str, keys: Keys, events: Sequence[Event]) -> None:
    client = await connect(url)
    try:
        await publish(client, keys, events)
    finally:
        await client.aclose()


def drained(r: redis.Redis, keys: Keys) -> bool:
    """True when every raw entry was delivered to the group and acked."""
    for source in SOURCES:
        stream = keys.raw_stream(source)
        if not r.exists(stream):
            continue
        last = r.xinfo_stream(stream)["last-generated-id"]
        groups = {group["name"]: group for group in r.xinfo_groups(stream)}
        group = groups.get(CONSUMER_GROUP.encode())
        if group is None or group["pending"] or group["last-delivered-id"] != last:
            return False
    return True


async def consume_until_drained(settings: Settings, r: redis.Redis, name: str = "c1",
                                ) -> Counters:
    """Run one consumer in this process until the raw streams are drained, then stop it."""
    partitions = settings.keys.every_partition
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, name, stop))
    deadline = time.monotonic() + DRAIN_TIMEOUT
    await asyncio.sleep(0.05)
    while not all(drained(r, keys) for keys in partitions):
        assert not task.done(), task.exception() if task.done() else ""
        assert time.monotonic() < deadline, "consumer did not drain the streams"
        await asyncio.sleep(0.05)
    stop.set()
    return await asyncio.wait_for(task, 10 * TIMEOUT_SCALE)


def apply_sequence(settings: Settings, r: redis.Redis, events: Sequence[Event]) -> Counters:
    async def go() -> Counters:
        await publish_events(settings.redis_url or "", settings.keys, events)
        return await consume_until_drained(settings, r)
    return asyncio.run(go())


def live_state(r: redis.Redis, keys: Keys) -> dict[str, Any]:
    """Everything the consumer writes as live state, comparable across prefixes."""
    def hash_of(key: str) -> dict[str, Any]:
        return {k.decode(): msgspec.json.decode(v) for k, v in r.hgetall(key).items()}

    def zset(key: str) -> list[tuple[bytes, float]]:
        return r.zrange(key, 0, -1, withscores=True)

    queues = {}
    for key in r.scan_iter(match=f"{keys.prefix}:queue:*"):
        queues[key.decode().rsplit(":", 1)[1]] = zset(key.decode())
    closed = sorted(tuple(sorted((k.decode(), v.decode()) for k, v in fields.items()))
                    for _, fields in r.xrange(keys.closed))
    return {
        "calls": hash_of(keys.calls), "units": hash_of(keys.units),
        "alerts": hash_of(keys.alerts), "shares": hash_of(keys.shares),
        "open": zset(keys.calls_open), "queues": {k: v for k, v in queues.items() if v},
        "closed_index": zset(keys.calls_closed_index), "geo": zset(keys.units_geo),
        "alerts_active": zset(keys.alerts_active), "shares_active": zset(keys.shares_active),
        "closed": closed, "closed_ids": sorted(r.smembers(keys.closed_ids)),
    }


def settings_for(settings: Settings, prefix: str, **changes: Any) -> Settings:
    return Settings(**{**{name: getattr(settings, name)
                          for name in settings.__dataclass_fields__},
                       "key_prefix": prefix, **changes})


def delete_prefix(r: redis.Redis, prefix: str) -> None:
    delete_keys(r, prefix)


@pytest.fixture
def other_prefix(r: redis.Redis) -> Any:
    """A second fresh prefix (for reference runs), cleaned up afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test-ref-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    for prefix in made:
        delete_prefix(r, prefix)


def expected_from(events: Sequence[Event]) -> dict[str, Any]:
    """Independent expectations: final call status, last unit fix, response times."""
    status: dict[str, str] = {}
    received: dict[str, float] = {}
    first_on_scene: dict[str, float] = {}
    last_fix: dict[str, tuple[float, float]] = {}
    step_status = {"created": "pending", "unit_assigned": "assigned",
                   "dispatched": "dispatched", "en_route": "en_route",
                   "on_scene": "on_scene", "cleared": "closed", "cancelled": "cancelled"}
    for event in events:
        if isinstance(event, CallEvent):
            if event.kind == "created":
                assert event.received_time is not None
                received[event.call_id] = event.received_time.timestamp()
            if event.kind != "updated":
                status[event.call_id] = step_status[event.kind]
            if event.kind == "on_scene":
                first_on_scene.setdefault(event.call_id, event.event_time.timestamp())
        elif isinstance(event, UnitEvent):
            assert event.lat is not None and event.lon is not None
            last_fix[event.unit_id] = (event.lat, event.lon)
    response = {call: round(first_on_scene[call] - received[call], 3)
                for call in first_on_scene if status[call] == "closed"}
    return {"status": status, "last_fix": last_fix, "response": response}


# --- tests ----------------------------------------------------------------------------

def test_mixed_sequence_builds_expected_state(settings: Settings, r: redis.Redis,
                                              keys: Keys) -> None:
    """A generated mixed sequence ends with the statuses, positions and intervals it implies."""
    events = generate_events(7, calls=120, units=8, fixes_per_unit=15, alerts=6, shares=4)
    counters = apply_sequence(settings, r, events)
    expected = expected_from(events)
    assert counters.applied == len(events) and counters.rejected == 0
    calls = live_state(r, keys)["calls"]
    assert {call_id: call["status"] for call_id, call in calls.items()} == expected["status"]
    open_ids = {m.decode() for m in r.zrange(keys.calls_open, 0, -1)}
    assert open_ids == {c for c, s in expected["status"].items()
                        if s not in ("closed", "cancelled")}
    units = live_state(r, keys)["units"]
    assert {u: (s["lat"], s["lon"]) for u, s in units.items()} == expected["last_fix"]
    records = {fields[b"call_id"].decode(): fields for _, fields in r.xrange(keys.closed)}
    assert len(records) == sum(1 for s in expected["status"].values()
                               if s in ("closed", "cancelled"))
    for call_id, seconds in expected["response"].items():
        assert float(records[call_id][b"response_s"]) == pytest.approx(seconds, abs=0.002)
    assert r.zcard(keys.alerts_active) == 6 and r.zcard(keys.shares_active) == 0
    counts = {k.decode(): int(v) for k, v in r.hgetall(keys.counts).items()}
    assert counts["avl"] == 8 * 15 and counts["shotspotter"] == 6 and counts["mutualink"] == 8
    fresh = r.hgetall(keys.freshness)
    newest_cad = max(e.event_time.timestamp() for e in events if source_of(e) == "cad")
    assert float(fresh[b"cad"]) == pytest.approx(newest_cad)
    assert float(fresh[b"cad:seen"]) == pytest.approx(time.time(), abs=60)


def test_changes_stream_carries_public_views(settings: Settings, r: redis.Redis,
                                             keys: Keys) -> None:
    """Every applied batch writes change objects with public data (no applied ids)."""
    events = generate_events(3, calls=10, units=2, fixes_per_unit=3, alerts=1, shares=1)
    apply_sequence(settings, r, events)
    changes = [change for _, fields in r.xrange(keys.changes)
               for change in json.loads(fields[b"batch"])]
    entities = {change["entity"] for change in changes}
    assert entities == {"call", "unit", "alert", "share", "freshness"}
    assert all("applied" not in change["data"] for change in changes)
    closed = [c for c in changes if c["entity"] == "call" and c["op"] == "remove"]
    assert closed and all(c["data"]["status"] in ("closed", "cancelled") for c in closed)


def test_every_event_delivered_twice_leaves_state_identical(
        settings: Settings, r: redis.Redis, keys: Keys,
        other_prefix: Callable[[], str]) -> None:
    """Publishing each event twice (adjacent and again at the end) changes nothing."""
    events = generate_events(11, calls=80, units=6, fixes_per_unit=12, alerts=4, shares=3)
    twice = [e for event in events for e in (event, event)] + list(events)
    counters = apply_sequence(settings, r, twice)
    assert counters.rejected == 0
    assert counters.applied == len(events)
    assert counters.duplicate + counters.stale == 2 * len(events)
    reference = settings_for(settings, other_prefix())
    apply_sequence(reference, r, events)
    assert live_state(r, keys) == live_state(r, reference.keys)


KILLABLE_CONSUMER = """
import asyncio, sys
from streams.core.settings import Settings
from streams.consumer import run_consumer
settings = Settings(redis_url=sys.argv[1], key_prefix=sys.argv[2], consumer_batch=1000,
                    consumer_block_ms=100, consumer_lease_ms=1000)
asyncio.run(run_consumer(settings, "doomed", asyncio.Event()))
"""


def test_kill_9_mid_batch_then_reclaim_equals_undisturbed_run(
        settings: Settings, r: redis.Redis, keys: Keys,
        other_prefix: Callable[[], str]) -> None:
    """A consumer SIGKILLed mid-batch leaves nothing half-applied; a second one reclaims
    its pending entries and the final state equals an undisturbed run."""
    events = generate_events(5, calls=1200, units=20, fixes_per_unit=250, alerts=40,
                             shares=20)
    asyncio.run(publish_events(settings.redis_url or "", keys, events))
    process = subprocess.Popen([sys.executable, "-c", KILLABLE_CONSUMER,
                                settings.redis_url or "", settings.key_prefix],
                               cwd=PROJECT_ROOT, env={**os.environ,
                                                      "PYTHONPATH": str(PROJECT_ROOT)})
    deadline = time.monotonic() + DRAIN_TIMEOUT
    try:
        # Kill once some batches are applied and the next one is read but not yet applied.
        while sum(int(v) for v in r.hvals(keys.counts)) < 2000 or not pending_count(r, keys):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    applied_at_kill = sum(int(v) for v in r.hvals(keys.counts))
    pending = pending_count(r, keys)
    assert pending > 0, "the kill should have landed with a batch read but not applied"
    assert applied_at_kill < len(events)
    time.sleep(settings.claim_idle_ms / 1000 * 1.5)
    counters = asyncio.run(consume_until_drained(settings, r, name="rescuer"))
    assert counters.reclaimed >= pending
    reference = settings_for(settings, other_prefix())
    apply_sequence(reference, r, events)
    assert live_state(r, keys) == live_state(r, reference.keys)
    assert sum(int(v) for v in r.hvals(keys.counts)) == len(events)


def pending_count(r: redis.Redis, keys: Keys) -> int:
    return sum(r.xpending(keys.raw_stream(s), CONSUMER_GROUP)["pending"] for s in SOURCES)


# --- junk -----------------------------------------------------------------------------

VALID = generate_events(13, calls=8, units=3, fixes_per_unit=4, alerts=2, shares=2)
ANCHOR_FIX = UnitEvent(event_id="UJ-0", event_time=START, unit_id="UJ", unit_kind="patrol",
                       status="available", lat=41.76, lon=-72.68)
VALID_ALL = [ANCHOR_FIX, *VALID]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _created_body(number: int) -> dict[str, Any]:
    return {"type": "call", "event_id": f"junk-{number}",
            "event_time": (START + timedelta(minutes=1)).isoformat(),
            "kind": "created", "call_id": f"J{number}", "category": "noise",
            "received_time": START.isoformat(), "priority": 2}


JUNK_KINDS: dict[str, tuple[str, Callable[[int, Any], bytes], str]] = {
    "out_of_order": ("cad", lambda n, _: encode_event(CallEvent(
        event_id=f"junk-{n}", event_time=START, kind="on_scene", call_id=f"J{n}",
        unit_id="U1")), "no created event yet"),
    "impossible": ("avl", lambda n, _: encode_event(UnitEvent(
        event_id=f"junk-{n}", event_time=START + timedelta(seconds=1 + n), unit_id="UJ",
        unit_kind="patrol", status="available", lat=41.85, lon=-72.68)),
        "impossible position"),
    "unknown_code": ("cad", lambda n, _: _json({**_created_body(n), "category": "jaywalk"}),
                     "category"),
    "missing_field": ("cad", lambda n, _: _json({k: v for k, v in _created_body(n).items()
                                                  if k != "call_id"}), "call_id"),
    "wrong_type": ("cad", lambda n, _: _json({**_created_body(n), "priority": "urgent"}),
                   "priority"),
    "not_utf8": ("shotspotter", lambda n, data: b"\xff\xfe" + data, "not UTF-8"),
    "not_json": ("mutualink", lambda n, data: b"{" + data.hex().encode(), "not JSON"),
    "oversized": ("avl", lambda n, data: b'{"type":"unit","pad":"' + b"x" * 17_000 + b'"}',
                  "limit is"),
}


@st.composite
def junk_plans(draw: st.DrawFn) -> list[tuple[int, str, bytes]]:
    """Junk payloads with the position (among the valid events) each is published at."""
    kinds = draw(st.lists(st.sampled_from(sorted(JUNK_KINDS)), min_size=1, max_size=8))
    plan = []
    for number, kind in enumerate(kinds):
        data = draw(st.binary(max_size=40))
        position = draw(st.integers(1, len(VALID_ALL)))
        plan.append((position, kind, JUNK_KINDS[kind][1](number, data)))
    return plan


@pytest.fixture(scope="module")
def reference_state(redis_url: str) -> Any:
    """Live state after the valid events alone (one undisturbed run)."""
    prefix = f"test-junkref-{uuid.uuid4().hex[:8]}"
    client = sync_client(redis_url)
    settings = Settings(redis_url=redis_url, key_prefix=prefix, consumer_block_ms=100,
                        claim_idle_ms=500)
    apply_sequence(settings, client, VALID_ALL)
    state = live_state(client, settings.keys)
    delete_prefix(client, prefix)
    close_client(client)
    return state


@hsettings(max_examples=12, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=junk_plans())
def test_junk_is_dead_lettered_and_valid_events_all_applied(
        plan: list[tuple[int, str, bytes]], settings: Settings, r: redis.Redis,
        reference_state: dict[str, Any]) -> None:
    """Each junk payload lands in the dead-letter stream with a readable reason and its
    original bytes; every valid event around it is applied."""
    prefix = f"{settings.key_prefix}-{uuid.uuid4().hex[:6]}"
    run_settings = settings_for(settings, prefix)
    keys = run_settings.keys

    async def go() -> Counters:
        client = await connect(run_settings.redis_url or "")
        try:
            junk_at = sorted(plan, key=lambda item: item[0])
            for index, event in enumerate(VALID_ALL, start=1):
                await publish(client, keys, [event])
                for position, kind, payload in junk_at:
                    if position == index:
                        await publish_raw(client, keys, JUNK_KINDS[kind][0], payload)
        finally:
            await client.aclose()
        return await consume_until_drained(run_settings, r)

    try:
        counters = asyncio.run(go())
        letters = r.xrange(keys.deadletter)
        assert counters.rejected == len(plan) == len(letters)
        assert counters.applied == len(VALID_ALL)
        expected = sorted((JUNK_KINDS[kind][0], payload) for _, kind, payload in plan)
        got = sorted((f[b"source"].decode(), f[b"payload"]) for _, f in letters)
        assert got == expected
        for _, fields in letters:
            reason = fields[b"reason"].decode()
            payload = fields[b"payload"]
            kind = next(k for _, k, p in plan if p == payload)
            assert JUNK_KINDS[kind][2] in reason, (kind, reason)
            assert fields[b"entry_id"]
        assert live_state(r, keys) == reference_state
    finally:
        delete_prefix(r, prefix)


# --- faults and lifecycle ---------------------------------------------------------------

def test_redis_restart_consumer_reconnects_and_state_survives(
        tmp_path: Path, settings: Settings, r: redis.Redis,
        other_prefix: Callable[[], str]) -> None:
    """Redis stops and starts on the same port mid-run; the consumer reconnects, the
    state from before is still there and later events are applied."""
    events = generate_events(17, calls=60, units=5, fixes_per_unit=10, alerts=3, shares=2)
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    server = EmbeddedRedis(tmp_path / "redis", free_port(), appendonly=True).start()
    own = settings_for(settings, "restart", redis_url=server.url)
    client = redis.Redis.from_url(server.url)
    keys = Keys("restart")

    async def go() -> Counters:
        stop = asyncio.Event()
        task = asyncio.create_task(run_consumer(own, "c1", stop))
        await publish_events(server.url, keys, first)
        await _wait(lambda: drained(client, keys))
        calls_before = client.hlen(keys.calls)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        assert client.hlen(keys.calls) == calls_before > 0
        await publish_events(server.url, keys, second)
        await _wait(lambda: drained(client, keys))
        stop.set()
        return await asyncio.wait_for(task, 10 * TIMEOUT_SCALE)

    try:
        counters = asyncio.run(go())
        assert counters.reconnects >= 1
        assert counters.applied == len(events)
        reference = settings_for(settings, other_prefix())
        apply_sequence(reference, r, events)
        assert live_state(client, keys) == live_state(r, reference.keys)
    finally:
        client.close()
        server.stop()


async def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_sigterm_finishes_and_logs_counters(settings: Settings, r: redis.Redis,
                                            keys: Keys) -> None:
    """`main` exits 0 on SIGTERM after draining, logging its counters, with a health key."""
    events = generate_events(19, calls=20, units=2, fixes_per_unit=3, alerts=0, shares=0)
    asyncio.run(publish_events(settings.redis_url or "", keys, events))
    script = ("import logging, sys\nlogging.basicConfig(level=logging.INFO)\n"
              "from streams.core.settings import Settings\nfrom streams.consumer import main\n"
              "s = Settings(redis_url=sys.argv[1], key_prefix=sys.argv[2], "
              "consumer_block_ms=100)\nsys.exit(main(s, ['--name', 'term']))\n")
    process = subprocess.Popen([sys.executable, "-c", script, settings.redis_url or "",
                                settings.key_prefix], cwd=PROJECT_ROOT, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not (drained(r, keys) and r.exists(keys.health("term"))):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        health = json.loads(r.get(keys.health("term")) or b"{}")
        assert health["name"] == "term" and 0 < r.ttl(keys.health("term")) <= 30
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20 * TIMEOUT_SCALE)
    finally:
        process.kill()
    assert process.returncode == 0
    assert f"'applied': {len(events)}" in stderr


def test_prune_drops_old_closed_bodies_and_old_alerts(settings: Settings, r: redis.Redis,
                                                      keys: Keys) -> None:
    """Closed calls older than a day (data clock) lose their bodies; old alerts go inactive;
    late events for a pruned call are rejected as closed."""
    early = generate_events(23, calls=30, units=1, fixes_per_unit=1, alerts=3, shares=0,
                            span_s=3600)
    late_time = START + timedelta(days=2)
    late = [CallEvent(event_id="late-1", event_time=late_time, kind="created", call_id="LATE",
                      received_time=late_time, category="noise", priority=2),
            ShotAlertAt(late_time)]
    apply_sequence(settings, r, [*early, *late])

    async def prune_now() -> None:
        from streams.consumer import prune
        client = await connect(settings.redis_url or "")
        try:
            await prune(client, keys)
        finally:
            await client.aclose()

    closed_ids = {m.decode() for m in r.smembers(keys.closed_ids)}
    assert closed_ids
    asyncio.run(prune_now())
    assert not (set(r.hkeys(keys.calls)) & {c.encode() for c in closed_ids})
    assert r.hexists(keys.calls, "LATE")
    assert [m.decode() for m in r.zrange(keys.alerts_active, 0, -1)] == ["LATE-ALERT"]
    assert r.xlen(keys.closed) == len(closed_ids)
    some_closed = sorted(closed_ids)[0]
    apply_sequence(settings, r, [CallEvent(
        event_id="after-prune", event_time=late_time, kind="cleared", call_id=some_closed)])
    reasons = [f[b"reason"].decode() for _, f in r.xrange(keys.deadletter)]
    assert reasons == [f"call {some_closed} is already closed; a cleared event cannot follow"]


def ShotAlertAt(when: Any) -> Event:  # noqa: N802 - reads like a constructor
    from streams.core.events import ShotAlert
    return ShotAlert(event_id="late-shot", event_time=when, alert_id="LATE-ALERT",
                     alert_type="single", lat=41.76, lon=-72.68, detected_time=when)


def test_closed_record_fields_are_the_contract(settings: Settings, r: redis.Redis,
                                               keys: Keys) -> None:
    """Closed-stream records have exactly the contract's fields, all strings."""
    apply_sequence(settings, r, generate_events(29, calls=15, units=1, fixes_per_unit=1,
                                                alerts=0, shares=0))
    records = r.xrange(keys.closed)
    assert records
    for _, fields in records:
        assert tuple(k.decode() for k in fields) == CLOSED_FIELDS
