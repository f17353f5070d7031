"""Status-based live feeds through the real poller and consumer on real Redis.

A local ArcGIS-style server serves an active-calls layer with a status column and an
update-time column across several polls (new calls, status changes, closures, drop-outs,
junk rows); a local Socrata-style server serves a one-row-per-unit feed with unit
statuses and no unit times, and its mapping is fixed (a wrong time zone) between polls.
Live state and the closed stream must say what the feed said, with true times only.
A history export without received or dispatch times backfills with only the interval it
supports.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from streams.backfill import backfill
from streams.check import run_check
from streams.connections import connect
from streams.core.keys import Keys
from streams.core.settings import Settings
from streams.mapping_files import admission_for, load_mapping
from streams.poll import Poller, http_client, load_feed
from tests.feedserver import FeedServer
from tests.integration.test_consumer import consume_until_drained

EASTERN = ZoneInfo("America/New_York")
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
"""The first poll's clock: an hour ago, so every later poll is still in the past."""


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class Clock:
    """The poller's clock, moved by the test between polls."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now.timestamp()


async def poll_and_consume(settings: Settings, r: redis.Redis, mapping_path: Path,
                           clock: Clock) -> dict[str, Any]:
    """One poll with the given clock, then the consumer until drained; the health key."""
    mapping, config = load_feed(settings, mapping_path)
    client = await connect(settings.redis_address)
    try:
        async with http_client(settings, config) as http:
            poller = Poller(config, mapping, client, settings.keys, http,
                            clock=clock, admission=admission_for(settings, mapping))
            ok, _ = await poller.poll_and_record()
            assert ok, poller.status.last_error
    finally:
        await client.aclose()
    counters = await consume_until_drained(settings, r)
    keys = settings.keys
    raw = r.get(keys.health(f"poll:{config.feed}"))
    assert raw is not None
    health = dict(json.loads(raw))
    print(f"feed {config.feed} poll at {clock.now:%H:%M:%S}: rows {health['rows']}, events "
          f"{health['events']}, rejected {health['rejected']}, corrected "
          f"{health['corrected']}; consumer applied {counters.applied}, rejected "
          f"{counters.rejected}; open {r.zcard(keys.calls_open)}, "
          f"closed {r.xlen(keys.closed) if r.exists(keys.closed) else 0}")
    return health


def calls(r: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    return {key.decode(): json.loads(value) for key, value in r.hgetall(keys.calls).items()}


def closed(r: redis.Redis, keys: Keys) -> dict[str, dict[str, str]]:
    out = {}
    for _, fields in r.xrange(keys.closed):
        record = {key.decode(): value.decode() for key, value in fields.items()}
        out[record["call_id"]] = record
    return out


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [{key.decode(): value.decode() for key, value in fields.items()}
            for _, fields in r.xrange(keys.deadletter)]


def open_ids(r: redis.Redis, keys: Keys) -> set[str]:
    return {member.decode() for member in r.zrange(keys.calls_open, 0, -1)}


# --- an ArcGIS active-calls layer with a status column -------------------------------------
ARCGIS_MAPPING = """
[poll]
kind = "arcgis"
url = "URL/arcgis/0/query"
feed = "active"
active_only = true
left_feed = "close_after"
missing_polls = 2
page_size = 2

[dataset]
name = "city_active"
source = "city_active"
id = "INCIDENT_NO"

[time]
formats = ["epoch_ms"]

[fields]
received_time = "RECEIVED"
updated_time = "LAST_UPDATE"
call_type = "CALL_TYPE"
address = "ADDRESS"
status = "STATUS"

[status]
pending = ["PENDING"]
dispatched = ["ASSIGNED", "DISPATCHED"]
en_route = ["ENROUTE"]
on_scene = ["ONSCENE"]
closed = ["CLOSED"]
cancelled = ["CANCELLED"]

[priority]
column = "PRIORITY"
numeric = true
default = 3

[location]
format = "latlon"
lat = "geometry_lat"
lon = "geometry_lon"

[service_area]
bounds = [-72.75, 41.70, -72.60, 41.82]

[categories]
default = "other"

[[rules]]
category = "noise"
pattern = "noise|loud"

[[rules]]
category = "violent"
pattern = "assault|shots"
"""

CALL_TYPES = {"A": "LOUD MUSIC", "B": "ASSAULT IN PROGRESS", "C": "NOISE COMPLAINT",
              "D": "SUSPICIOUS PERSON", "E": "NOISE COMPLAINT"}


def active(call: str, status: str, updated: datetime, received: datetime,
           object_id: int) -> dict[str, Any]:
    """One feature of the active-calls layer, as an ArcGIS server sends it."""
    return {"attributes": {"OBJECTID": object_id, "INCIDENT_NO": f"24-{call}",
                           "CALL_TYPE": CALL_TYPES[call], "PRIORITY": 2,
                           "STATUS": status, "RECEIVED": ms(received),
                           "LAST_UPDATE": ms(updated), "ADDRESS": f"{object_id}0 MAIN ST"},
            "geometry": {"x": -72.68, "y": 41.76 + object_id / 1000}}


JUNK = {"attributes": {"OBJECTID": 99, "INCIDENT_NO": "24-JUNK", "CALL_TYPE": None,
                       "PRIORITY": None, "STATUS": None, "RECEIVED": None,
                       "LAST_UPDATE": None, "ADDRESS": None}}


def test_active_status_feed_opens_progresses_and_closes_calls(
        feed_server: tuple[FeedServer, str], settings: Settings, r: redis.Redis, keys: Keys,
        tmp_path: Path) -> None:
    """Calls open, move through the steps the feed's status says, at the feed's update
    times, close when it says CLOSED, and a call that left the feed closes (left_feed) at
    the last poll that showed it after two polls missing; junk rows are dead-lettered once
    and unmapped status values are counted by mapping check."""
    server, base = feed_server
    path = tmp_path / "active.toml"
    path.write_text(ARCGIS_MAPPING.replace("URL", base))
    clock = Clock()
    received = {"A": at(-30), "B": at(-20), "C": at(-10), "D": at(4)}
    elsewhere = active("E", "PENDING", at(-5), at(-5), 5)
    elsewhere["geometry"] = {"x": -73.9, "y": 40.7}  # outside the mapping's service area

    # poll 1: A pending, B assigned, C on scene, and a junk row with only its id
    server.features = [active("A", "PENDING", at(-30), received["A"], 1),
                       active("B", "ASSIGNED", at(-15), received["B"], 2),
                       active("C", "ONSCENE", at(-2), received["C"], 3), JUNK, elsewhere]
    health = asyncio.run(poll_and_consume(settings, r, path, clock))
    state = calls(r, keys)
    assert open_ids(r, keys) == {"24-A", "24-B", "24-C"}
    assert (state["24-A"]["status"], state["24-B"]["status"], state["24-C"]["status"]) == \
        ("pending", "dispatched", "on_scene")
    assert state["24-B"]["dispatched_time"] == at(-15).timestamp()  # the feed's own time
    assert state["24-C"]["on_scene_time"] == at(-2).timestamp()
    assert state["24-C"]["feed_status"] == "ONSCENE"
    assert [letter["reason"].split(":")[0] for letter in dead_letters(r, keys)] == \
        ["missing_field", "outside_service_area"]  # junk: an object id and nothing else
    assert health["rejected"] == 2

    # poll 2 (5 min later): A assigned, B on scene, C closed, D new
    clock.now = at(5)
    server.features = [active("A", "ASSIGNED", at(3), received["A"], 1),
                       active("B", "ONSCENE", at(4), received["B"], 2),
                       active("C", "CLOSED", at(4.5), received["C"], 3),
                       active("D", "PENDING", at(4), received["D"], 4), JUNK]
    asyncio.run(poll_and_consume(settings, r, path, clock))
    assert open_ids(r, keys) == {"24-A", "24-B", "24-D"}
    done = closed(r, keys)
    assert set(done) == {"24-C"}
    c = done["24-C"]
    assert (c["left_feed"], c["times_from_poll"], c["cancelled"]) == ("0", "", "0")
    assert c["closed_time"] == repr(at(4.5).timestamp())
    assert (c["dispatch_s"], c["travel_s"]) == ("", "")  # the feed never showed dispatch
    assert float(c["response_s"]) == 8 * 60  # received -10 min, on scene -2 min
    assert len(dead_letters(r, keys)) == 2  # the junk row is not dead-lettered again

    # poll 3: B has left the feed (1 poll missing: still open), A on scene
    clock.now = at(10)
    server.features = [active("A", "ONSCENE", at(9), received["A"], 1),
                       active("D", "PENDING", at(4), received["D"], 4)]
    asyncio.run(poll_and_consume(settings, r, path, clock))
    assert open_ids(r, keys) == {"24-A", "24-B", "24-D"}

    # poll 4: B missing a second poll -> closed at poll 2 (the last that showed it);
    # A closed by the feed; D has a status no step names
    clock.now = at(15)
    server.features = [active("A", "CLOSED", at(14), received["A"], 1),
                       active("D", "HOLDING", at(12), received["D"], 4)]
    asyncio.run(poll_and_consume(settings, r, path, clock))
    assert open_ids(r, keys) == {"24-D"}
    done = closed(r, keys)
    b = done["24-B"]
    assert (b["left_feed"], b["closed_time"]) == ("1", repr(at(5).timestamp()))
    assert b["times_from_poll"] == "closed_time"
    assert calls(r, keys)["24-B"]["disposition"] == "left the active-calls feed"
    a = done["24-A"]
    assert a["left_feed"] == "0"
    assert (float(a["dispatch_s"]), float(a["travel_s"]), float(a["on_scene_s"])) == \
        (33 * 60, 6 * 60, 5 * 60)
    assert calls(r, keys)["24-D"]["feed_status"] == "HOLDING"
    assert calls(r, keys)["24-D"]["status"] == "pending"
    updates = [json.loads(fields[b"event"]) for _, fields in r.xrange(keys.raw_stream("cad"))
               if json.loads(fields[b"event"])["kind"] == "updated"]
    assert updates and all(len(set(update) - {"v", "type", "event_id", "event_time",
                                              "source", "kind", "call_id", "time_source"})
                           for update in updates)  # every update carries a field

    server.features.append(JUNK)
    out = tmp_path / "check.txt"
    settings_check = Settings(shared_data_dir=settings.shared_data_dir)
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert run_check(settings_check, path, [], now=clock.now) == 0
    out.write_text(buffer.getvalue())
    report = buffer.getvalue()
    assert "call status 'HOLDING'" in report
    assert "missing_field" in report and "row 3: missing_field" in report
    assert "OBJECTID" in report.split("source columns never used", 1)[1].split("\n\n")[0]
    assert "received -> dispatched" in report and "supported" in report


# --- a Socrata one-row-per-unit feed with unit statuses and no unit times ------------------
SODA_MAPPING = """
[poll]
kind = "soda"
url = "URL/resource/units.json"
feed = "units"
active_only = true
left_feed = "keep_open"
order = "incident, unit"

[dataset]
name = "city_units"
source = "city_units"
id = "incident"

[time]
formats = ["iso"]
timezone = "ZONE"

[fields]
received_time = "received"
call_type = "type"
status = "call_status"

[units]
id = "unit"
kind = "unit_kind"
kind_map = { SGT = "supervisor" }
status = "unit_status"
lat = "unit_lat"
lon = "unit_lon"

[unit_status]
dispatched = ["Dispatched"]
en_route = ["En Route"]
on_scene = ["At Scene"]
cleared = ["Available", "Cleared"]

[priority]
column = "priority"
numeric = true

[location]
format = "geojson"
column = "location"
"""


def unit_row(call: str, unit: str, status: str, received: datetime,
             kind: str = "PATROL") -> dict[str, Any]:
    local = received.astimezone(EASTERN).replace(tzinfo=None)
    fix = {"unit_lat": "41.7702", "unit_lon": "-72.6790"} if unit == "E7" else {}
    return {**fix, "incident": call, "unit": unit, "unit_kind": kind, "unit_status": status,
            "received": local.strftime("%Y-%m-%dT%H:%M:%S.000"), "type": "ALARM",
            "priority": "2", "call_status": "Active",
            "location": {"latitude": "41.7637", "longitude": "-72.6851"}}


def test_unit_status_feed_attaches_units_and_a_fixed_mapping_corrects(
        feed_server: tuple[FeedServer, str], settings: Settings, r: redis.Redis, keys: Keys,
        tmp_path: Path) -> None:
    """Units with only an id and a status attach to their call with that status at the
    poll's clock (the feed has no unit times, and the records say so), on the map where
    the row gives the unit's position; a mapping fixed
    between polls (wrong time zone) corrects the received time of calls still in the feed;
    the call closes when its last unit is available."""
    server, base = feed_server
    path = tmp_path / "units.toml"
    wrong = SODA_MAPPING.replace("URL", base).replace("ZONE", "UTC")  # Eastern wall time
    path.write_text(wrong)
    clock = Clock()
    received = at(-12)
    server.soda_rows = [unit_row("X1", "E7", "Dispatched", received),
                   unit_row("X1", "S2", "En Route", received, kind="SGT")]
    health = asyncio.run(poll_and_consume(settings, r, path, clock))
    units = {key.decode(): json.loads(value) for key, value in r.hgetall(keys.units).items()}
    assert {unit: (state["status"], state["call_id"], state["unit_kind"])
            for unit, state in units.items()} == {
        "E7": ("dispatched", "X1", "patrol"), "S2": ("en_route", "X1", "supervisor")}
    assert units["E7"]["time"] == NOW.timestamp()
    assert (units["E7"]["lat"], units["S2"]["lat"]) == (41.7702, None)  # on the map: E7
    assert r.geopos(keys.units_geo, "E7")[0] is not None
    call = calls(r, keys)["X1"]
    local_as_utc = received.astimezone(EASTERN).replace(tzinfo=UTC)  # hours early
    assert call["received_time"] == local_as_utc.timestamp()
    assert dead_letters(r, keys) == []
    assert call["units"] == ["E7", "S2"] and call["status"] == "en_route"
    assert health["mapping_changed"] is None

    # the zone is fixed between polls: the next poll corrects the call still in the feed
    path.write_text(wrong.replace('timezone = "UTC"', 'timezone = "America/New_York"'))
    clock.now = at(3)
    server.soda_rows = [unit_row("X1", "E7", "At Scene", received),
                   unit_row("X1", "S2", "At Scene", received, kind="SGT")]
    health = asyncio.run(poll_and_consume(settings, r, path, clock))
    call = calls(r, keys)["X1"]
    assert call["received_time"] == received.timestamp()
    assert health["corrected"] == 1 and health["mapping_changed"] == at(3).timestamp()
    assert r.zscore(keys.calls_open, "X1") == pytest.approx(2e11 + received.timestamp())
    assert call["on_scene_time"] == at(3).timestamp() and call["status"] == "on_scene"

    # both units available: the call closes, every step time the poll's clock
    clock.now = at(20)
    server.soda_rows = [unit_row("X1", "E7", "Available", received),
                   unit_row("X1", "S2", "Cleared", received, kind="SGT")]
    asyncio.run(poll_and_consume(settings, r, path, clock))
    record = closed(r, keys)["X1"]
    assert record["closed_time"] == repr(at(20).timestamp())
    assert float(record["dispatch_s"]) == 12 * 60 and float(record["on_scene_s"]) == 17 * 60
    assert set(record["times_from_poll"].split(",")) == {
        "dispatched_time", "en_route_time", "on_scene_time", "closed_time"}
    units = {key.decode(): json.loads(value) for key, value in r.hgetall(keys.units).items()}
    assert {unit: state["status"] for unit, state in units.items()} == {
        "E7": "available", "S2": "available"}


# --- a history export without received or dispatch times --------------------------------
HISTORY_MAPPING = """
[dataset]
name = "scene_history"
source = "scene_history"
id = "Incident"

[time]
formats = ["%m/%d/%Y %H:%M"]
timezone = "America/New_York"

[fields]
on_scene_time = "Arrived"
closed_time = "Cleared"
call_type = "Nature"

[priority]
default = 3
"""


def test_history_without_received_or_dispatch_times(settings: Settings, r: redis.Redis,
                                                    keys: Keys, tmp_path: Path) -> None:
    """A file with only on-scene and clearance times backfills: time on scene is the one
    interval, received-based intervals are absent (never zero), and mapping check says
    which intervals are not in this feed."""
    (tmp_path / "m.toml").write_text(HISTORY_MAPPING)
    data = tmp_path / "h.csv"
    data.write_text("Incident,Nature,Arrived,Cleared\n"
                    "H1,ALARM,06/01/2024 21:10,06/01/2024 21:40\n"
                    "H2,DISTURBANCE,06/01/2024 22:00,\n")
    mapping = load_mapping(tmp_path / "m.toml", tmp_path)
    summary = asyncio.run(backfill(r, keys, mapping, [data], progress=False))
    assert (summary.calls, sum(summary.rejected.values())) == (2, 0)
    records = closed(r, keys)
    h1 = records["H1"]
    assert (h1["received_time"], h1["dispatch_s"], h1["response_s"], h1["travel_s"]) == \
        ("", "", "", "")
    assert float(h1["on_scene_s"]) == 30 * 60
    assert h1["first_time"] == repr(datetime(2024, 6, 2, 1, 10, tzinfo=UTC).timestamp())
    assert records["H2"]["on_scene_s"] == ""
    assert r.hget(keys.feed_times, "scene_history") == b"on_scene,closed"
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert run_check(Settings(shared_data_dir=settings.shared_data_dir), tmp_path / "m.toml",
                         [data]) == 0
    report = buffer.getvalue()
    assert "received -> dispatched                 not in this feed" in report
    assert "on scene -> cleared (time on scene)    supported: 1 calls" in report
