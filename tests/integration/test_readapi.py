"""The sync read API over live state written by the real consumer."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from dashboard.readapi import LiveReader
from streams.core.events import CallEvent, Event, ShareEvent, ShotAlert, UnitEvent
from streams.core.keys import Keys
from streams.core.settings import Settings
from tests.eventgen import START
from tests.integration.test_consumer import apply_sequence

E0 = START.timestamp()


def at(seconds: float):  # type: ignore[no-untyped-def]
    return START + timedelta(seconds=seconds)


def created(call_id: str, seconds: float, priority: int, category: str, district: str,
            neighborhood: str = "Downtown") -> CallEvent:
    return CallEvent(event_id=f"{call_id}-c", event_time=at(seconds + 5), kind="created",
                     call_id=call_id, received_time=at(seconds), priority=priority,
                     category=category, district=district, neighborhood=neighborhood,
                     caller_name="Pat", caller_phone="860-555-0100")


def step(call_id: str, kind: str, seconds: float, unit: str | None = "U1") -> CallEvent:
    return CallEvent(event_id=f"{call_id}-{kind}-{unit}", event_time=at(seconds), kind=kind,  # type: ignore[arg-type]
                     call_id=call_id, unit_id=unit if kind not in ("cleared", "cancelled")
                     else None)


def fix(unit: str, seconds: float, lat: float, lon: float, status: str) -> UnitEvent:
    return UnitEvent(event_id=f"{unit}-{seconds}", event_time=at(seconds), unit_id=unit,
                     unit_kind="cso", status=status, lat=lat, lon=lon)  # type: ignore[arg-type]


SCENE: list[Event] = [
    created("A", 0, 3, "noise", "North"),
    created("B", 10, 1, "violent", "South"),
    created("C", 20, 3, "noise", "South", "Frog Hollow"),
    created("D", 30, 2, "atv", "North"),
    created("E", 40, 4, "noise", "North"),
    step("E", "dispatched", 100), step("E", "on_scene", 400), step("E", "cleared", 1000),
    created("F", 50, 5, "theft", "Central"),
    step("F", "cancelled", 60),
    fix("U1", 0, 41.7637, -72.6851, "available"),
    fix("U2", 0, 41.7700, -72.6851, "available"),
    fix("U3", 0, 41.7640, -72.6851, "on_scene"),
    fix("U4", 0, 41.8900, -72.6851, "available"),  # 14 km north: inside the area, far away
    ShotAlert(event_id="s1", event_time=at(100), alert_id="OLD", alert_type="single",
              lat=41.76, lon=-72.68, detected_time=at(100)),
    ShotAlert(event_id="s2", event_time=at(5000), alert_id="NEW", alert_type="multiple",
              rounds=6, lat=41.76, lon=-72.68, detected_time=at(5000)),
    ShareEvent(event_id="m1", event_time=at(10), kind="opened", share_id="S1",
               partner="XL Center", partner_kind="arena", resource_kind="camera",
               resource_id="cam1", resource_name="Gate A", stream_url="https://v.example/1"),
]


@pytest.fixture
def reader(settings: Settings, r: redis.Redis, keys: Keys) -> LiveReader:
    apply_sequence(settings, r, SCENE)
    return LiveReader(r, keys)


def ids(calls: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [call["call_id"] for call in calls]


def test_open_calls_in_queue_order(reader: LiveReader) -> None:
    """Open calls come priority first, then oldest first; closed ones are gone."""
    assert ids(reader.open_calls()) == ["B", "D", "A", "C"]


def test_open_calls_filters(reader: LiveReader) -> None:
    """Category, district, neighborhood and QoL filters narrow the queue."""
    assert ids(reader.open_calls(category="noise")) == ["A", "C"]
    assert ids(reader.open_calls(district="North")) == ["D", "A"]
    assert ids(reader.open_calls(neighborhood="Frog Hollow")) == ["C"]
    assert ids(reader.open_calls(qol_only=True)) == ["D", "A", "C"]
    assert ids(reader.open_calls(category="noise", district="South")) == ["C"]


def test_queue_counts(reader: LiveReader) -> None:
    """Counts per category, overall and per district, with zeros for empty queues."""
    counts = reader.queue_counts()
    assert counts["noise"] == 2 and counts["violent"] == 1 and counts["atv"] == 1
    assert counts["theft"] == 0 and len(counts) == 14
    north = reader.queue_counts(district="North")
    assert north["noise"] == 1 and north["atv"] == 1 and north["violent"] == 0


def test_call_detail_is_public(reader: LiveReader) -> None:
    """One call by id, without internal fields; unknown ids give None."""
    call = reader.call("E")
    assert call is not None and call["status"] == "closed" and "applied" not in call
    assert call["on_scene_time"] == E0 + 400
    assert reader.call("nope") is None


def test_units_and_units_near(reader: LiveReader) -> None:
    """Units near a point come nearest first with distances, filtered by status."""
    assert [u["unit_id"] for u in reader.units()] == ["U1", "U2", "U3", "U4"]
    near = reader.units_near(41.7637, -72.6851, 1000)
    assert [u["unit_id"] for u in near] == ["U1", "U2"]
    assert near[0]["distance_m"] == pytest.approx(0, abs=1)
    assert near[1]["distance_m"] == pytest.approx(700, rel=0.02)
    every = reader.units_near(41.7637, -72.6851, 1000, status=None)
    assert [u["unit_id"] for u in every] == ["U1", "U3", "U2"]
    assert reader.units_near(0.5, 0.5, 10) == []


def test_active_alerts_and_shares(reader: LiveReader) -> None:
    """Alerts within the age window, newest first; open shares."""
    alerts = reader.active_alerts(max_age_s=3600, now=E0 + 5100)
    assert [a["alert_id"] for a in alerts] == ["NEW"] and alerts[0]["rounds"] == 6
    both = reader.active_alerts(max_age_s=10_000, now=E0 + 5100)
    assert [a["alert_id"] for a in both] == ["NEW", "OLD"]
    shares = reader.active_shares()
    assert [s["share_id"] for s in shares] == ["S1"] and "applied" not in shares[0]


def test_freshness(reader: LiveReader) -> None:
    """Per source: newest event time, when it was seen, applied and rejected counts."""
    fresh = reader.freshness()
    assert set(fresh) == {"cad", "avl", "shotspotter", "mutualink"}
    assert fresh["cad"]["event_time"] == E0 + 1000 and fresh["cad"]["count"] == 10
    assert fresh["shotspotter"]["event_time"] == E0 + 5000
    assert fresh["avl"]["count"] == 4 and fresh["avl"]["rejected"] == 0
    assert fresh["cad"]["seen"] is not None


def test_snapshot(reader: LiveReader, r: redis.Redis, keys: Keys) -> None:
    """A snapshot carries the newest changes id and the live entities."""
    snap = reader.snapshot()
    newest = r.xrevrange(keys.changes, count=1)[0][0].decode()
    assert snap["last_id"] == newest
    assert ids(snap["calls"]) == ["B", "D", "A", "C"]
    assert len(snap["units"]) == 4 and [s["share_id"] for s in snap["shares"]] == ["S1"]
    assert set(snap["freshness"]) == {"cad", "avl", "shotspotter", "mutualink"}


def test_snapshot_of_empty_state(r: redis.Redis, keys: Keys) -> None:
    """With nothing applied yet the snapshot is empty with last_id 0-0."""
    snap = LiveReader(r, keys).snapshot()
    assert snap["last_id"] == "0-0" and snap["calls"] == [] and snap["units"] == []


def test_deadletters(reader: LiveReader, settings: Settings, r: redis.Redis) -> None:
    """Dead letters come newest first with source, reason and payload text."""
    apply_sequence(settings, r, [step("ZZ", "on_scene", 10)])
    letters = reader.deadletters()
    assert len(letters) == 1 and letters[0]["source"] == "cad"
    assert "no created event yet" in letters[0]["reason"]
    assert '"call_id":"ZZ"' in letters[0]["payload"] and letters[0]["id"]
