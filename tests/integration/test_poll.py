"""Pollers against a local HTTP server serving real rows as SODA and ArcGIS answers.

SF Fire rows (../shared/data/sf_fire_calls) are reshaped to DataSF's API field names and
served as a paged SODA resource; San Diego rows (../shared/data/sandiego_cfs) as a paged
ArcGIS FeatureServer layer of active calls. Between polls calls progress, change and
disappear; some answers are 500s, 429s or too slow. The raw streams must hold exactly the
expected events.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis

from streams.core.events import CallEvent, Event, decode_event
from streams.core.keys import EVENT_FIELD, Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.poll import run_poll
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE
from tests.feedserver import FeedServer

SF_CALLS = ("192910057", "192910064", "192910154", "192910219")
PACIFIC = ZoneInfo("America/Los_Angeles")


# --- real rows, reshaped ---------------------------------------------------------------------
def sf_rows() -> dict[str, list[dict[str, str]]]:
    """CSV rows of the chosen SF calls, by call number, in file order."""
    chosen: dict[str, list[dict[str, str]]] = {call: [] for call in SF_CALLS}
    path = SHARED_DATA / "sf_fire_calls" / "data_sample.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Call Number"] in chosen:
                chosen[row["Call Number"]].append(row)
    return chosen


_API_NAMES = {"Neighborhooods - Analysis Boundaries": "neighborhoods_analysis_boundaries",
              "Location": "case_location", "RowID": "rowid"}


def soda_row(row: dict[str, str], as_of: str, drop: tuple[str, ...] = (),
             **changes: str) -> dict[str, Any]:
    """A CSV row as DataSF's API serves it: snake_case names, ISO floating times, GeoJSON
    point, nulls left out; ``drop`` removes times not yet known at ``as_of``."""
    api: dict[str, Any] = {"data_as_of": as_of}
    for name, value in row.items():
        key = _API_NAMES.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        if value == "null" or name in drop:
            continue
        if name.endswith("DtTm"):
            value = datetime.strptime(value, "%m/%d/%Y %I:%M:%S %p").strftime(
                "%Y-%m-%dT%H:%M:%S.000")
        if name == "Location":
            lon, lat = re.match(r"POINT \((\S+) (\S+)\)", value).groups()  # type: ignore[union-attr]
            api[key] = {"type": "Point", "coordinates": [float(lon), float(lat)]}
            continue
        api[key] = value
    api.update(changes)
    return api


LATER_TIMES = ("Response DtTm", "On Scene DtTm", "Transport DtTm", "Hospital DtTm",
               "Available DtTm")


def unit_steps(call: str, unit: str, *steps: str) -> list[str]:
    """Event ids the mapping gives for these unit steps (independent of the code)."""
    ids = []
    for step in steps:
        if step == "dispatched":
            ids += [f"sf_fire:{call}:{unit}:unit_assigned", f"sf_fire:{call}:{unit}:dispatched",
                    f"sf_fire:{call}:{unit}:unit:dispatched"]
        elif step == "available":
            ids.append(f"sf_fire:{call}:{unit}:unit:available")
        else:
            ids += [f"sf_fire:{call}:{unit}:{step}", f"sf_fire:{call}:{unit}:unit:{step}"]
    return ids


# --- helpers ---------------------------------------------------------------------------------
def live_mapping(tmp_path: Path, shipped: str, url: str, replace: dict[str, str],
                 poll: str | None = None) -> Path:
    """A shipped mapping file with its URL (and a few lines) changed for the test."""
    text = (PROJECT_ROOT / "streams" / "mappings" / shipped).read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    if poll is not None:
        text += "\n" + poll
    path = tmp_path / shipped
    path.write_text(re.sub(r'(?m)^url = ".*"$', f'url = "{url}"', text))
    return path


def poll(settings: Settings, mapping: Path) -> int:
    async def once() -> int:
        return await run_poll(old_rows_are_live(settings), mapping, asyncio.Event(), once=True)
    return asyncio.run(once())


def old_rows_are_live(settings: Settings) -> Settings:
    """The real rows are from 2019 and 2023: widen the live window so the poller's
    admission (DISPATCH_MAX_EVENT_AGE) takes them as news."""
    return replace(settings, max_event_age_seconds=20 * 365.25 * 86400)


class Stream:
    """Reads the cad and avl raw streams incrementally: ``new()`` returns entries since the
    last call (unit status events go to avl, call events to cad)."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r = r
        self.last = {keys.raw_stream("cad"): "-", keys.raw_stream("avl"): "-"}

    def new(self) -> list[Event]:
        events = []
        for name, last in self.last.items():
            entries = self.r.xrange(name, min=last if last == "-" else f"({last}")
            if entries:
                self.last[name] = entries[-1][0].decode()
            events += [decode_event(fields[EVENT_FIELD.encode()]) for _, fields in entries]
        return events


def ids(events: list[Event]) -> Counter[str]:
    """Event ids with counts; updated ids lose their change digest."""
    return Counter(re.sub(r":updated:[0-9a-f]+$", ":updated", event.event_id)
                   for event in events)


def health(r: redis.Redis, keys: Keys, feed: str) -> dict[str, Any]:
    raw = r.get(keys.health(f"poll:{feed}"))
    assert raw is not None
    return json.loads(raw)


SODA_SETTINGS = {
    'page_size = 1000': 'page_size = 3',
    'timeout_seconds = 30': 'timeout_seconds = 0.5\nbackoff_base_seconds = 0.05\n'
                            'backoff_cap_seconds = 0.2\npage_retries = 3',
    'interval_seconds = 60': 'interval_seconds = 0.2',
    "where = \"received_dttm > '2025-01-01T00:00:00'\"":
        "where = \"received_dttm > '2019-01-01T00:00:00'\"",
}
AS_OF_1, AS_OF_2 = "2019-10-18T03:00:00.000", "2019-10-18T04:00:00.000"


def first_poll_rows(calls: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """Each call's first unit only, dispatched but not yet en route."""
    return [soda_row(rows[0], AS_OF_1, drop=LATER_TIMES) for rows in calls.values()]


def first_poll_ids(calls: dict[str, list[dict[str, str]]]) -> Counter[str]:
    expected: list[str] = []
    for call, rows in calls.items():
        expected += [f"sf_fire:{call}:created", *unit_steps(call, rows[0]["Unit ID"],
                                                             "dispatched")]
    return Counter(expected)


# --- SODA ------------------------------------------------------------------------------------
def test_soda_poll_emits_exactly_the_changes(feed_server: tuple[FeedServer, str],
                                             settings: Settings, r: redis.Redis,
                                             keys: Keys, tmp_path: Path) -> None:
    """New calls, unit progress, a second unit, a priority change and a close each emit
    just their events; unchanged rows re-read through the overlap emit none."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sf_fire_live.toml", f"{base}/resource/sf.json",
                           SODA_SETTINGS)
    calls = sf_rows()
    stream = Stream(r, keys)
    server.soda_rows = first_poll_rows(calls)
    assert poll(settings, mapping) == 0
    first = stream.new()
    assert ids(first) == first_poll_ids(calls)
    created = {event.call_id: event for event in first
               if isinstance(event, CallEvent) and event.kind == "created"}
    assert created["192910057"].call_type == "Medical Incident"
    assert created["192910057"].received_time.isoformat() == "2019-10-18T07:23:58+00:00"
    assert r.get(keys.poll_watermark("sf-fire-live")) == AS_OF_1.encode()
    sizes = [int(params["$limit"]) for _, _, params, _ in server.requests]
    assert sizes == [3, 3] and [p["$offset"] for _, _, p, _ in server.requests] == ["0", "3"]
    assert "data_as_of" not in server.requests[0][2]["$where"]  # no watermark yet

    # second poll: call A complete (both units, all times) -> closes; call B re-prioritised;
    # C and D unchanged (their rows are re-read through the overlap window).
    a, b = SF_CALLS[0], SF_CALLS[1]
    a_rows = calls[a]
    server.soda_rows = [
        *(soda_row(row, AS_OF_2) for row in a_rows),
        soda_row(calls[b][0], AS_OF_2, drop=LATER_TIMES, priority="E"),
        *first_poll_rows({call: calls[call] for call in SF_CALLS[2:]}),
    ]
    server.requests.clear()
    assert poll(settings, mapping) == 0
    second = stream.new()
    first_unit, second_unit = a_rows[0]["Unit ID"], a_rows[1]["Unit ID"]
    expected = Counter([
        *unit_steps(a, first_unit, "en_route", "on_scene", "available"),
        *unit_steps(a, second_unit, "dispatched", "en_route", "on_scene", "available"),
        f"sf_fire:{a}:cleared", f"sf_fire:{b}:updated"])
    assert ids(second) == expected
    [update] = [event for event in second if isinstance(event, CallEvent)
                and event.kind == "updated"]
    assert (update.call_id, update.priority) == (b, 1)
    assert "data_as_of > '2019-10-18T02:50:00.000'" in server.requests[0][2]["$where"]

    # a restart with the same feed re-emits nothing
    assert poll(settings, mapping) == 0
    assert stream.new() == []
    assert r.xlen(keys.deadletter) == 0
    status = health(r, keys, "sf-fire-live")
    assert status["state"] == "ok" and status["events"] == 0 and status["failures"] == 0


def test_soda_errors_leave_feed_stale_then_recover(feed_server: tuple[FeedServer, str],
                                                   settings: Settings, r: redis.Redis,
                                                   keys: Keys, tmp_path: Path) -> None:
    """500, 429 and a timeout exhaust a poll's retries: nothing is emitted and health says
    why; the next poll emits the calls exactly once."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sf_fire_live.toml", f"{base}/resource/sf.json",
                           SODA_SETTINGS)
    calls = sf_rows()
    server.soda_rows = first_poll_rows(calls)
    stream = Stream(r, keys)
    server.faults = [500, 429, "slow"]
    assert poll(settings, mapping) == 1
    assert stream.new() == []
    status = health(r, keys, "sf-fire-live")
    assert status["state"] == "error" and status["last_success"] is None
    assert status["last_error"] == "timed out after 0.5s"
    assert [fault for *_, fault in server.requests] == [500, 429, "slow"]
    retry_gap = server.requests[2][0] - server.requests[1][0]
    assert retry_gap >= 0.95  # Retry-After: 1 honoured
    assert r.get(keys.poll_watermark("sf-fire-live")) is None

    assert poll(settings, mapping) == 0
    assert ids(stream.new()) == first_poll_ids(calls)
    assert health(r, keys, "sf-fire-live")["state"] == "ok"


def test_poll_loop_survives_errors_and_stops_on_signal(feed_server: tuple[FeedServer, str],
                                                       settings: Settings, r: redis.Redis,
                                                       keys: Keys, tmp_path: Path) -> None:
    """The long-running loop rides out failed polls, emits each change once, and returns 0
    when stopped."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sf_fire_live.toml", f"{base}/resource/sf.json",
                           SODA_SETTINGS)
    calls = sf_rows()
    server.soda_rows = first_poll_rows(calls)
    server.faults = [500, 500, 500, "slow", 503]
    stream = Stream(r, keys)
    expected = first_poll_ids(calls)

    async def scenario() -> tuple[int, list[Event]]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_poll(old_rows_are_live(settings), mapping, stop))
        seen: list[Event] = []
        deadline = time.monotonic() + 30 * TIMEOUT_SCALE
        while sum(ids(seen).values()) < sum(expected.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            seen += stream.new()
        await asyncio.sleep(1.0)  # a few more polls: they must add nothing
        seen += stream.new()
        stop.set()
        return await asyncio.wait_for(task, 10 * TIMEOUT_SCALE), seen

    code, seen = asyncio.run(scenario())
    assert code == 0
    assert ids(seen) == expected
    assert [fault for *_, fault in server.requests[:5]] == [500, 500, 500, "slow", 503]
    assert len(server.requests) >= 9  # it kept polling after the first success


# --- ArcGIS ----------------------------------------------------------------------------------
def sd_rows(count: int) -> list[dict[str, str]]:
    """The first ``count`` San Diego calls with a known call type and a beat."""
    path = SHARED_DATA / "sandiego_cfs" / "pd_calls_for_service_2023_datasd.csv"
    types_path = SHARED_DATA / "sandiego_cfs" / "pd_cfs_calltypes_datasd.csv"
    with types_path.open(encoding="utf-8-sig", newline="") as handle:
        known = {row["call_type"].strip() for row in csv.DictReader(handle)}
    chosen = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["call_type"] in known and row["beat"] not in ("", "-1") \
                    and row["disposition"] == "":
                chosen.append(row)
                if len(chosen) == count:
                    break
    return chosen


def feature(row: dict[str, str], object_id: int, **changes: str) -> dict[str, Any]:
    """An SD row as an ArcGIS feature: numbers as numbers, the date as epoch milliseconds."""
    local = datetime.strptime(row["date_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=PACIFIC)
    attributes: dict[str, Any] = {"OBJECTID": object_id, **row, **changes}
    attributes["date_time"] = int(local.timestamp() * 1000)
    attributes["priority"] = int(attributes["priority"])
    return {"attributes": attributes}


ARCGIS_POLL = """
[poll]
kind = "arcgis"
url = "URL"
feed = "sd-active"
active_only = true
page_size = 5
timeout_seconds = 2
backoff_base_seconds = 0.05
backoff_cap_seconds = 0.2
"""


def test_arcgis_active_feed_creates_updates_and_clears(feed_server: tuple[FeedServer, str],
                                                       settings: Settings, r: redis.Redis,
                                                       keys: Keys, tmp_path: Path) -> None:
    """Paged ArcGIS features of active calls: new calls are created, a changed priority is
    an update, a call that disappears is cleared, a bad row is dead-lettered once, and a
    restart re-emits nothing."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sandiego_cfs.toml", f"{base}/arcgis/0/query",
                           {'formats = ["%Y-%m-%d %H:%M:%S"]': 'formats = ["epoch_ms"]'},
                           poll=ARCGIS_POLL)
    rows = sd_rows(6)
    bad = feature({**rows[5], "incident_num": "E23BAD", "call_type": "NOT-A-CODE"}, 99)
    server.features = [feature(row, index) for index, row in enumerate(rows[:5])] + [bad]
    stream = Stream(r, keys)

    assert poll(settings, mapping) == 0
    first = stream.new()
    calls = [row["incident_num"] for row in rows]
    assert ids(first) == Counter(f"sandiego_pd:{call}:created" for call in calls[:5])
    assert len(server.requests) == 3  # 6 features, 2 per page (server cap)
    event = next(e for e in first if isinstance(e, CallEvent) and e.call_id == calls[0])
    expected_received = datetime.strptime(rows[0]["date_time"], "%Y-%m-%d %H:%M:%S")
    assert event.received_time == expected_received.replace(tzinfo=PACIFIC)
    assert event.beat == rows[0]["beat"] and event.neighborhood
    [letter] = r.xrange(keys.deadletter)
    fields = {k.decode(): v.decode() for k, v in letter[1].items()}
    assert fields["reason"].startswith("unknown_code") and fields["source"] == "cad"
    assert fields["file"] == f"{base}/arcgis/0/query" and fields["row"] == "6"

    # call 0 leaves the feed, call 1 is re-prioritised, call 5 arrives; the bad row stays.
    server.features = [feature(rows[1], 1, priority="0"),
                       *(feature(row, index) for index, row in enumerate(rows[2:], start=2)),
                       bad]
    assert poll(settings, mapping) == 0
    second = stream.new()
    assert ids(second) == Counter([f"sandiego_pd:{calls[0]}:cleared",
                                   f"sandiego_pd:{calls[1]}:updated",
                                   f"sandiego_pd:{calls[5]}:created"])
    update = next(e for e in second if isinstance(e, CallEvent) and e.kind == "updated")
    assert update.priority == 1
    assert r.xlen(keys.deadletter) == 1  # the same bad row is not dead-lettered again

    assert poll(settings, mapping) == 0  # a restart: nothing new
    assert stream.new() == []
    status = health(r, keys, "sd-active")
    assert (status["state"], status["rows"], status["events"]) == ("ok", 6, 0)


def test_one_empty_answer_does_not_clear_an_active_feed(
        feed_server: tuple[FeedServer, str], settings: Settings, r: redis.Redis, keys: Keys,
        tmp_path: Path) -> None:
    """A single empty answer leaves the open calls alone; a second one in a row clears them."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sandiego_cfs.toml", f"{base}/arcgis/0/query",
                           {'formats = ["%Y-%m-%d %H:%M:%S"]': 'formats = ["epoch_ms"]'},
                           poll=ARCGIS_POLL)
    rows = sd_rows(2)
    server.features = [feature(row, index) for index, row in enumerate(rows)]
    stream = Stream(r, keys)
    assert poll(settings, mapping) == 0
    stream.new()
    server.features = []
    assert poll(settings, mapping) == 0
    assert stream.new() == []
    assert poll(settings, mapping) == 0
    calls = [row["incident_num"] for row in rows]
    assert ids(stream.new()) == Counter(f"sandiego_pd:{call}:cleared" for call in calls)


def test_arcgis_error_object_counts_as_failure(feed_server: tuple[FeedServer, str],
                                               settings: Settings, r: redis.Redis,
                                               keys: Keys, tmp_path: Path) -> None:
    """An ArcGIS error (HTTP 200 with an error object) fails the poll without clearing the
    calls already known."""
    server, base = feed_server
    mapping = live_mapping(tmp_path, "sandiego_cfs.toml", f"{base}/arcgis/0/query",
                           {'formats = ["%Y-%m-%d %H:%M:%S"]': 'formats = ["epoch_ms"]'},
                           poll=ARCGIS_POLL.replace('url = "URL"', 'url = "URL"\n'
                                                    'page_retries = 1'))
    rows = sd_rows(2)
    server.features = [feature(row, index) for index, row in enumerate(rows)]
    stream = Stream(r, keys)
    assert poll(settings, mapping) == 0
    assert len(stream.new()) == 2
    original = server.arcgis
    server.arcgis = lambda params: {"error": {"code": 500, "message": "Database busy"}}  # type: ignore[method-assign]
    assert poll(settings, mapping) == 1
    assert stream.new() == []
    assert health(r, keys, "sd-active")["last_error"] == "ArcGIS error: Database busy"
    server.arcgis = original  # type: ignore[method-assign]
    assert poll(settings, mapping) == 0
    assert stream.new() == []
