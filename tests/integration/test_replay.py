"""Replay of real data files into the raw streams, against a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from streams.clients import async_client
from streams.core.events import CallEvent, Event, ShotAlert, UnitEvent, decode_event
from streams.core.keys import Keys
from streams.core.settings import Settings
from streams.mapping_files import load_mapping
from streams.replay import ReplaySummary, replay, run_replay
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE

MAPPINGS = Path(__file__).resolve().parents[2] / "streams" / "mappings"
DC_CSV = SHARED_DATA / "dc_shotspotter" / "shotspotter.csv"
SF_CSV = SHARED_DATA / "sf_fire_calls" / "data_sample.csv"


def run(redis_url: str, keys: Keys, mapping_name: str, paths: list[Path], speed: float = 0,
        **options: object) -> ReplaySummary:
    mapping = load_mapping(MAPPINGS / f"{mapping_name}.toml", SHARED_DATA)

    async def go() -> ReplaySummary:
        client = async_client(redis_url)
        try:
            return await replay(client, keys, mapping, paths, speed, asyncio.Event(),
                                **options)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(go())


def stream_events(r: redis.Redis, key: str) -> list[Event]:
    return [decode_event(fields[b"event"]) for _, fields in r.xrange(key)]


def test_dc_replay_puts_alerts_in_time_order(redis_url: str, keys: Keys,
                                             r: redis.Redis) -> None:
    """Every DC detection becomes a ShotAlert on the shotspotter stream, sorted by detection
    time (the file has one pair out of order), and the off-map row is dead-lettered."""
    summary = run(redis_url, keys, "dc_shotspotter", [DC_CSV])
    alerts = stream_events(r, keys.raw_stream("shotspotter"))
    assert len(alerts) == summary.published == 39065
    assert all(isinstance(alert, ShotAlert) for alert in alerts)
    detected = [alert.detected_time for alert in alerts]  # type: ignore[union-attr]
    assert detected == sorted(detected)
    assert detected[0] == datetime(2006, 1, 27, 8, 35, 11, 313000, tzinfo=UTC)
    first = alerts[0]
    assert isinstance(first, ShotAlert)
    assert (first.alert_id, first.alert_type, first.rounds, first.district) == \
        ("53-3", "single", 1, "7D")
    [letter] = r.xrange(keys.deadletter)
    assert letter[1][b"row"] == b"39067" and letter[1][b"reason"].startswith(b"out_of_bounds")
    assert summary.late == 0


def test_sf_replay_turns_unit_times_into_lifecycle_and_status_events(
        redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """SF rows become call lifecycle events on cad and unit status events on avl, all in
    event-time order, each call's steps in lifecycle order."""
    summary = run(redis_url, keys, "sf_fire_calls", [SF_CSV])
    calls = stream_events(r, keys.raw_stream("cad"))
    units = stream_events(r, keys.raw_stream("avl"))
    assert summary.records == 2406 and len(calls) + len(units) == summary.published == 38862
    assert all(isinstance(event, CallEvent) for event in calls)
    assert all(isinstance(event, UnitEvent) for event in units)
    times = [event.event_time for event in calls]
    assert times == sorted(times)
    by_call: dict[str, list[str]] = defaultdict(list)
    for event in calls:
        assert isinstance(event, CallEvent)
        by_call[event.call_id].append(f"{event.kind}:{event.unit_id or ''}")
    assert len(by_call) == 2406
    assert by_call["192910017"] == ["created:", "unit_assigned:E11", "dispatched:E11",
                                    "en_route:E11", "on_scene:E11", "cleared:"]
    # dispatched, never arrived (data README): no on_scene for B10 or T07
    assert not any(step.startswith("on_scene") for step in by_call["192910018"])
    assert all(steps[0] == "created:" for steps in by_call.values())
    kinds = {event.status for event in units}  # type: ignore[union-attr]
    assert kinds == {"dispatched", "en_route", "on_scene", "available"}
    assert dict(summary.rejected) == {"impossible_time": 1}


def test_replay_speed_paces_by_event_time(tmp_path: Path, redis_url: str, keys: Keys,
                                          r: redis.Redis) -> None:
    """At speed 100, detections 20 s apart in event time are published ~0.2 s apart."""
    path = tmp_path / "shots.csv"
    path.write_text(
        "Coverage Area,Incident ID,Date Time,Type,Longitude-100meter,Latitude-100meter\n"
        "WashingtonDC7D,1,2010-01-01 00:00:00.000,Single Gunshot,-77.0,38.86\n"
        "WashingtonDC7D,2,2010-01-01 00:00:10.000,Single Gunshot,-77.0,38.86\n"
        "WashingtonDC7D,3,2010-01-01 00:00:20.000,Multiple Gunshots,-77.0,38.86\n")
    started = time.monotonic()
    summary = run(redis_url, keys, "dc_shotspotter", [path], speed=100)
    elapsed = time.monotonic() - started
    assert summary.published == 3
    assert elapsed >= 0.18  # a lower bound only: never a speed assertion
    assert r.xlen(keys.raw_stream("shotspotter")) == 3


def test_replay_rebase_moves_times_to_now(tmp_path: Path, redis_url: str, keys: Keys,
                                          r: redis.Redis) -> None:
    """With rebase the first event is stamped about now and gaps are kept."""
    path = tmp_path / "shots.csv"
    path.write_text(
        "Coverage Area,Incident ID,Date Time,Type,Longitude-100meter,Latitude-100meter\n"
        "WashingtonDC7D,1,2010-01-01 00:00:00.000,Single Gunshot,-77.0,38.86\n"
        "WashingtonDC7D,2,2010-01-01 00:05:00.000,Single Gunshot,-77.0,38.86\n")
    run(redis_url, keys, "dc_shotspotter", [path], rebase=True)
    first, second = stream_events(r, keys.raw_stream("shotspotter"))
    assert abs(datetime.now(UTC) - first.event_time) < timedelta(seconds=60 * TIMEOUT_SCALE)
    assert second.event_time - first.event_time == timedelta(minutes=5)


def test_bad_rows_are_dead_lettered_and_the_replay_carries_on(
        tmp_path: Path, redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """Junk rows between good ones land in the dead-letter stream; the good ones publish."""
    path = tmp_path / "shots.csv"
    path.write_bytes(
        b"Coverage Area,Incident ID,Date Time,Type,Longitude-100meter,Latitude-100meter\n"
        b"WashingtonDC7D,1,2010-01-01 00:00:00.000,Single Gunshot,-77.0,38.86\n"
        b"WashingtonDC7D,2,not a time,Single Gunshot,-77.0,38.86\n"
        b"WashingtonDC7D,3,2010-01-01 00:00:20.000,Bang,-77.0,38.86\n"
        b"WashingtonDC7D,4,2010-01-01 00:00:30.000,Single Gunshot,-77.0,\n"
        b"WashingtonDC7D,1,2010-01-01 00:00:00.000,Single Gunshot,-77.0,38.86\n"
        b"WashingtonDC7D,5,2010-01-01 00:00:40.000,Single Gunshot,-77.0,38.86\n"
        b"WashingtonDC7D,6,2010-01-01 00:00:50")
    summary = run(redis_url, keys, "dc_shotspotter", [path])
    letters = {fields[b"row"].decode(): fields[b"reason"].decode().split(":")[0]
               for _, fields in r.xrange(keys.deadletter)}
    assert letters == {"3": "bad_time", "4": "unknown_code", "5": "missing_location",
                       "6": "duplicate", "8": "truncated"}
    published = stream_events(r, keys.raw_stream("shotspotter"))
    assert [alert.alert_id for alert in published] == ["1", "5"]  # type: ignore[union-attr]
    assert summary.rows == 7


def test_small_heap_still_keeps_each_calls_order(redis_url: str, keys: Keys,
                                                 r: redis.Redis) -> None:
    """With a tiny heap the SF file (not time-sorted) comes out partly late, but every
    call's own events stay in lifecycle order."""
    summary = run(redis_url, keys, "sf_fire_calls", [SF_CSV], heap_events=20)
    assert summary.late > 0
    by_call: dict[str, list[datetime]] = defaultdict(list)
    for event in stream_events(r, keys.raw_stream("cad")):
        assert isinstance(event, CallEvent)
        by_call[event.call_id].append(event.event_time)
    assert all(times == sorted(times) for times in by_call.values())


def test_cli_replay_entry_point(redis_url: str, key_prefix: str, keys: Keys,
                                r: redis.Redis, tmp_path: Path) -> None:
    """run_replay (what `python -m streams replay` calls) publishes and returns 0."""
    path = tmp_path / "shots.csv"
    path.write_text(
        "Coverage Area,Incident ID,Date Time,Type,Longitude-100meter,Latitude-100meter\n"
        "WashingtonDC7D,1,2010-01-01 00:00:00.000,Single Gunshot,-77.0,38.86\n")
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix,
                        shared_data_dir=SHARED_DATA)
    code = asyncio.run(run_replay(settings, MAPPINGS / "dc_shotspotter.toml", [path], 0.0,
                                  asyncio.Event()))
    assert code == 0 and r.xlen(keys.raw_stream("shotspotter")) == 1
    missing = asyncio.run(run_replay(settings, MAPPINGS / "dc_shotspotter.toml",
                                     [tmp_path / "nope.csv"], 0.0, asyncio.Event()))
    assert missing == 2
