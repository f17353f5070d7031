"""The simulator runner against a real Redis: publishing, pacing, reconnecting."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from streams.core.events import CallEvent, decode_event, encode_event, source_of
from streams.core.geography import load_geography
from streams.core.keys import EVENT_FIELD, SOURCES, Keys
from streams.core.settings import Settings
from streams.core.simulation import Simulation
from streams.redis_server import EmbeddedRedis, free_port
from streams.simulate import run_simulation
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE

START = datetime(2014, 7, 4, 20, 0, tzinfo=UTC)


def stream_events(client: redis.Redis, keys: Keys, source: str) -> list[bytes]:
    return [fields[EVENT_FIELD.encode()]
            for _, fields in client.xrange(keys.raw_stream(source))]


async def run_until(settings: Settings, done: Callable[[], bool], *, speed: float,
                    warmup_hours: float = 0.0, seed: int = 11) -> None:
    """Run the simulator until ``done()`` holds (or time runs out), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_simulation(settings, seed, speed, stop, start=START,
                                              warmup_hours=warmup_hours))
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while not done() and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 15 * TIMEOUT_SCALE)


def test_published_events_decode_and_match_the_pure_simulation(
        settings: Settings, keys: Keys, r: redis.Redis) -> None:
    """At high speed every raw stream fills with valid events, exactly the simulation's."""
    def enough() -> bool:
        return r.xlen(keys.raw_stream("shotspotter")) >= 2 and r.xlen(keys.raw_stream("cad")) >= 300

    asyncio.run(run_until(settings, enough, speed=7200.0))
    published = {source: stream_events(r, keys, source) for source in SOURCES}
    assert len(published["cad"]) >= 300 and len(published["avl"]) >= 3000
    assert len(published["shotspotter"]) >= 2
    for source, payloads in published.items():
        events = [decode_event(payload) for payload in payloads]
        assert all(source_of(event) == source for event in events)
        times = [event.event_time for event in events]
        assert times == sorted(times)
    expected: dict[str, list[bytes]] = {source: [] for source in SOURCES}
    newest_cad = decode_event(published["cad"][-1]).event_time
    sim = Simulation(11, START, load_geography(SHARED_DATA), settings.timezone)
    for event in sim.events_until(newest_cad):
        expected[source_of(event)].append(encode_event(event))
    assert published["cad"] == expected["cad"]
    assert any(isinstance(decode_event(p), CallEvent) and b'"created"' in p
               for p in published["cad"])
    assert r.exists(keys.health("simulator")) == 1


def test_warm_up_publishes_history_then_follows_the_clock(
        settings: Settings, keys: Keys, r: redis.Redis) -> None:
    """With a 2 h warm-up at speed 1, history up to start+2h appears, and not much more."""
    anchor = START + timedelta(hours=2)

    def warmed() -> bool:
        newest = r.xrevrange(keys.raw_stream("avl"), count=1)
        return bool(newest) and decode_event(newest[0][1][EVENT_FIELD.encode()]).event_time \
            >= anchor - timedelta(minutes=1)

    asyncio.run(run_until(settings, warmed, speed=1.0, warmup_hours=2))
    cad = [decode_event(p) for p in stream_events(r, keys, "cad")]
    avl = [decode_event(p) for p in stream_events(r, keys, "avl")]
    assert sum(isinstance(e, CallEvent) and e.kind == "created" for e in cad) >= 20
    assert avl[0].event_time < START + timedelta(minutes=2)
    newest = max(e.event_time for e in cad + avl)
    assert anchor - timedelta(minutes=1) <= newest <= anchor + timedelta(
        seconds=60 * TIMEOUT_SCALE)


def test_simulator_survives_a_redis_restart(tmp_path: Path, key_prefix: str) -> None:
    """When Redis stops and comes back on the same port, publishing carries on."""
    server = EmbeddedRedis(tmp_path / "redis", free_port(), appendonly=True).start()
    settings = Settings(redis_url=server.url, key_prefix=key_prefix,
                        shared_data_dir=SHARED_DATA, data_dir=tmp_path / "var")
    keys = Keys(key_prefix)
    client = redis.Redis.from_url(server.url)

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(run_simulation(settings, 5, 600.0, stop, start=START))
        await wait_for(lambda: client.xlen(keys.raw_stream("avl")) > 50)
        server.stop()
        await asyncio.sleep(1.0)
        server.start()
        before = client.xlen(keys.raw_stream("avl"))
        await wait_for(lambda: client.xlen(keys.raw_stream("avl")) > before + 50)
        stop.set()
        await asyncio.wait_for(task, 15 * TIMEOUT_SCALE)
        return int(before)

    try:
        before = asyncio.run(scenario())
        assert client.xlen(keys.raw_stream("avl")) > before + 50
        times = [decode_event(p).event_time for p in stream_events(client, keys, "avl")]
        assert times[-1] > times[0]
    finally:
        client.close()
        server.stop()


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while True:
        try:
            if condition():
                return
        except redis.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_zero_speed_is_refused(settings: Settings) -> None:
    """A speed of 0 would never advance; run_simulation refuses it."""
    stop = asyncio.Event()
    try:
        asyncio.run(run_simulation(dataclasses.replace(settings), 1, 0.0, stop))
    except ValueError as error:
        assert "above 0" in str(error)
    else:
        raise AssertionError("speed 0 was accepted")
