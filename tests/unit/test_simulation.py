"""The Hartford simulation: determinism, volumes, lifecycles, movement and places."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from streams.core.events import (
    UNIT_KINDS,
    CallEvent,
    Event,
    ShareEvent,
    ShotAlert,
    UnitEvent,
    decode_event,
    encode_event,
    is_qol,
)
from streams.core.geography import Geography, haversine_m, load_geography
from streams.core.simulation import Simulation
from tests.conftest import SHARED_DATA

START = datetime(2014, 6, 28, 4, 0, tzinfo=UTC)  # midnight in Hartford, a summer Saturday
DAYS = 7


@pytest.fixture(scope="module")
def geo() -> Geography:
    return load_geography(SHARED_DATA)


@dataclass
class Week:
    """What a week of simulation produced; unit fixes are summarised, not kept."""

    others: list[Event] = field(default_factory=list)
    unit_sample: list[UnitEvent] = field(default_factory=list)
    unit_ids: set[str] = field(default_factory=set)
    unit_kinds: set[str] = field(default_factory=set)
    unit_fixes: int = 0
    max_speed_kmh: float = 0.0
    out_of_order: int = 0
    event_ids: set[str] = field(default_factory=set)
    duplicate_ids: int = 0


def run_week(geo: Geography) -> Week:
    week = Week()
    last_fix: dict[str, tuple[float, float, float]] = {}
    previous = START
    for event in Simulation(2014, START, geo).events_until(START + timedelta(days=DAYS)):
        if event.event_time < previous:
            week.out_of_order += 1
        previous = event.event_time
        if event.event_id in week.event_ids:
            week.duplicate_ids += 1
        week.event_ids.add(event.event_id)
        if not isinstance(event, UnitEvent):
            week.others.append(event)
            continue
        week.unit_fixes += 1
        week.unit_ids.add(event.unit_id)
        week.unit_kinds.add(event.unit_kind)
        if week.unit_fixes % 97 == 0:
            week.unit_sample.append(event)
        assert event.lat is not None and event.lon is not None
        now = event.event_time.timestamp()
        if event.unit_id in last_fix:
            then, lat, lon = last_fix[event.unit_id]
            if now > then:
                speed = haversine_m(lat, lon, event.lat, event.lon) / (now - then) * 3.6
                week.max_speed_kmh = max(week.max_speed_kmh, speed)
        last_fix[event.unit_id] = (now, event.lat, event.lon)
    return week


@pytest.fixture(scope="module")
def week(geo: Geography) -> Week:
    return run_week(geo)


def calls_of(week: Week) -> dict[str, list[CallEvent]]:
    calls: dict[str, list[CallEvent]] = defaultdict(list)
    for event in week.others:
        if isinstance(event, CallEvent):
            calls[event.call_id].append(event)
    return calls


def created(week: Week) -> list[CallEvent]:
    return [e for e in week.others if isinstance(e, CallEvent) and e.kind == "created"]


def encoded(geo: Geography, seed: int, hours: float, start: datetime = START) -> list[bytes]:
    sim = Simulation(seed, start, geo)
    return [encode_event(e) for e in sim.events_until(start + timedelta(hours=hours))]


def test_same_seed_gives_identical_events(geo: Geography) -> None:
    """Two runs with one seed and start produce byte-identical event streams."""
    first = encoded(geo, 7, 6)
    assert len(first) > 1000
    assert encoded(geo, 7, 6) == first


def test_different_seeds_differ(geo: Geography) -> None:
    """Another seed gives another stream."""
    assert encoded(geo, 7, 3) != encoded(geo, 8, 3)


def test_running_in_chunks_equals_running_at_once(geo: Geography) -> None:
    """events_until called every 10 minutes yields exactly the one-shot stream."""
    sim = Simulation(7, START, geo)
    chunked: list[bytes] = []
    for step in range(1, 19):
        chunked += [encode_event(e) for e in sim.events_until(START + timedelta(minutes=10 * step))]
    assert chunked == encoded(geo, 7, 3)


def test_different_starts_use_different_ids(geo: Geography) -> None:
    """A run restarted at another time never reuses the earlier run's call or event ids."""
    first = Simulation(7, START, geo)
    second = Simulation(7, START + timedelta(minutes=5), geo)
    ids_first = {e.event_id for e in first.events_until(START + timedelta(hours=1))}
    ids_second = {e.event_id for e in second.events_until(START + timedelta(hours=1))}
    assert ids_first and ids_second and not ids_first & ids_second


def test_naive_start_is_refused(geo: Geography) -> None:
    """A start without a timezone is a ValueError, not a silent local-time guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        Simulation(1, datetime(2014, 6, 28), geo)


def test_events_come_in_time_order_with_unique_ids(week: Week) -> None:
    """Event times never go backwards and no event id repeats."""
    assert week.out_of_order == 0
    assert week.duplicate_ids == 0


def test_about_500_calls_a_day(week: Week) -> None:
    """A summer week averages 400-600 calls a day, with every day in 300-750."""
    per_day = Counter((e.event_time - START).days for e in created(week))
    assert 400 <= sum(per_day.values()) / DAYS <= 600
    assert all(300 <= count <= 750 for count in per_day.values())


def test_winter_is_quieter_than_summer(geo: Geography) -> None:
    """The same seed in January makes fewer calls than in late June."""
    def calls(start: datetime) -> int:
        sim = Simulation(3, start, geo)
        return sum(1 for e in sim.events_until(start + timedelta(days=3))
                   if isinstance(e, CallEvent) and e.kind == "created")
    assert calls(datetime(2015, 1, 10, 5, tzinfo=UTC)) < calls(START)


def test_quality_of_life_share(week: Week) -> None:
    """35-45 % of calls fall in the Summer Initiative QoL categories; all 14 classes occur."""
    calls = created(week)
    qol = sum(is_qol(e.category or "") for e in calls) / len(calls)
    assert 0.35 <= qol <= 0.45
    assert len({e.category for e in calls}) == 14


def test_night_has_more_noise_and_afternoons_more_atvs(week: Week) -> None:
    """Noise peaks at night, ATV calls on summer afternoons (local time)."""
    def share(category: str, hours: set[int]) -> float:
        calls = [e for e in created(week)
                 if (e.event_time - timedelta(hours=4)).hour in hours]
        return sum(e.category == category for e in calls) / len(calls)
    night, morning, afternoon = {21, 22, 23, 0, 1}, {6, 7, 8, 9, 10}, {13, 14, 15, 16, 17}
    assert share("noise", night) > 2 * share("noise", morning)
    assert share("atv", afternoon) > 2 * share("atv", night)


def test_hourly_rhythm(week: Week) -> None:
    """Early morning (3-6 am local) is much quieter than the evening (6-9 pm)."""
    hours = Counter((e.event_time - timedelta(hours=4)).hour for e in created(week))
    assert sum(hours[h] for h in (3, 4, 5)) * 2 < sum(hours[h] for h in (18, 19, 20))


def test_every_event_survives_encode_and_decode(week: Week) -> None:
    """Calls, alerts, shares and a sample of unit fixes round-trip through the codec."""
    for event in week.others + list(week.unit_sample):
        assert decode_event(encode_event(event)) == event


def test_call_lifecycles_are_in_order(week: Week) -> None:
    """Each call starts with created, each unit goes assigned->dispatched->en_route->
    on_scene, and at most one cleared/cancelled ends it with nothing after."""
    unit_order = ["unit_assigned", "dispatched", "en_route", "on_scene"]
    closed = 0
    for call_id, events in calls_of(week).items():
        assert events[0].kind == "created", call_id
        assert all(e.kind != "created" for e in events[1:]), call_id
        terminal = [i for i, e in enumerate(events) if e.kind in {"cleared", "cancelled"}]
        assert len(terminal) <= 1 and (not terminal or terminal[0] == len(events) - 1), call_id
        closed += bool(terminal)
        steps: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event.unit_id is not None:
                steps[event.unit_id].append(event.kind)
        for unit_id, kinds in steps.items():
            assert kinds == unit_order[:len(kinds)], (call_id, unit_id, kinds)
        if events[-1].kind == "cleared":
            assert any(e.kind == "on_scene" for e in events), call_id
    assert closed > 0.95 * len(created(week))


def test_cancelled_and_updated_calls_occur(week: Week) -> None:
    """Some calls are cancelled before anyone arrives, some change priority."""
    calls = calls_of(week)
    cancelled = [events for events in calls.values() if events[-1].kind == "cancelled"]
    updated = [e for e in week.others if isinstance(e, CallEvent) and e.kind == "updated"]
    assert len(cancelled) >= 20 and len(updated) >= 50
    assert all(not any(e.kind == "on_scene" for e in events) for events in cancelled)
    assert all(e.priority is not None for e in updated)


def pending_seconds(week: Week) -> dict[int, list[float]]:
    by_priority: dict[int, list[float]] = defaultdict(list)
    for events in calls_of(week).values():
        assigned = [e for e in events if e.kind == "unit_assigned"]
        first = events[0]
        if assigned and first.priority is not None:
            by_priority[first.priority].append(
                (assigned[0].event_time - first.event_time).total_seconds())
    return by_priority


def test_response_times_spread_by_priority(week: Week) -> None:
    """P1 calls usually get a unit within a minute; P4/P5 wait tens of minutes."""
    pending = pending_seconds(week)
    assert statistics.median(pending[1]) < 60
    assert sum(s < 60 for s in pending[1]) / len(pending[1]) > 0.6
    assert statistics.median(pending[4] + pending[5]) > 600
    medians = [statistics.median(pending[p]) for p in range(1, 6)]
    assert medians == sorted(medians)


def test_call_positions_are_in_hartford(week: Week, geo: Geography) -> None:
    """Every call is inside the city and carries the neighborhood/district of its point."""
    for event in created(week):
        assert event.lat is not None and event.lon is not None
        assert geo.locate(event.lat, event.lon) == (event.neighborhood, event.district)
        assert event.address and event.beat


def test_some_callers_are_named(week: Week) -> None:
    """Roughly two thirds of calls carry a caller name and a 555-01xx phone number."""
    calls = created(week)
    named = [e for e in calls if e.caller_name]
    assert 0.5 < len(named) / len(calls) < 0.8
    assert all(e.caller_phone and "555-01" in e.caller_phone for e in named)


def test_about_sixty_units_of_every_kind(week: Week) -> None:
    """55-65 units report, covering every unit kind."""
    assert 55 <= len(week.unit_ids) <= 65
    assert week.unit_kinds == set(UNIT_KINDS)


def test_units_move_at_road_speeds(week: Week) -> None:
    """No unit covers ground faster than 80 km/h between consecutive fixes."""
    assert 20 < week.max_speed_kmh <= 80


def test_units_report_often(week: Week) -> None:
    """60 units reporting at least once a minute make over 80,000 fixes a day."""
    assert week.unit_fixes / DAYS > 80_000


def test_gunshot_alerts_come_in_bursts_with_calls(week: Week) -> None:
    """A few alerts a day, some within minutes of each other, most followed by a P1 call."""
    alerts = [e for e in week.others if isinstance(e, ShotAlert)]
    assert 7 <= len(alerts) <= 80
    times = sorted(a.detected_time for a in alerts)
    close_pairs = sum((b - a) < timedelta(minutes=10) for a, b in itertools.pairwise(times))
    assert close_pairs >= 2
    shot_calls = [e for e in created(week) if e.call_type_code == "SHOTSPOT"]
    assert len(shot_calls) >= len({a.detected_time.date() for a in alerts})
    for call in shot_calls:
        assert call.priority == 1 and call.category == "violent"
        assert any(haversine_m(a.lat, a.lon, call.lat or 0, call.lon or 0) < 400
                   and a.published_time is not None and a.published_time <= call.event_time
                   for a in alerts)


def test_video_shares_open_before_and_close_after(week: Week) -> None:
    """Partner shares open and later close, with example.invalid stream URLs."""
    shares = [e for e in week.others if isinstance(e, ShareEvent)]
    opened = {e.share_id: e for e in shares if e.kind == "opened"}
    closed = {e.share_id: e for e in shares if e.kind == "closed"}
    assert len(opened) >= 10
    assert set(closed) <= set(opened)
    for share_id, end in closed.items():
        assert end.event_time > opened[share_id].event_time
        assert end.start_time == opened[share_id].start_time
    assert all((e.stream_url or "").startswith("https://video.example.invalid/") for e in shares)
    assert {e.partner_kind for e in opened.values()} >= {"arena", "school"}
