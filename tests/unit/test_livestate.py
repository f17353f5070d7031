"""Live-state transitions: calls, units, alerts, shares, closed records and batch plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.core.access import public_view
from streams.core.changefeed import batch_changes
from streams.core.events import CallEvent, InvalidEvent, ShareEvent, ShotAlert, UnitEvent
from streams.core.livestate import (
    CLOSED_FIELDS,
    INDEX_ALERTS,
    INDEX_CLOSED,
    INDEX_OPEN,
    INDEX_SHARES,
    BatchPlan,
    IndexWrite,
    apply_alert,
    apply_call,
    apply_share,
    apply_unit,
    closed_record,
    distance_m,
    queue_score,
)

T0 = datetime(2014, 6, 1, 12, 0, tzinfo=UTC)
E0 = T0.timestamp()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call_event(kind: str, seconds: float, event_id: str | None = None, **fields: Any,
               ) -> CallEvent:
    if kind == "created":
        fields = {"received_time": T0, "category": "noise", "priority": 3, **fields}
    return CallEvent(event_id=event_id or f"e-{kind}-{seconds}", event_time=at(seconds),
                     kind=kind, call_id=fields.pop("call_id", "C1"), **fields)  # type: ignore[arg-type]


def run_call(*events: CallEvent) -> dict[str, Any]:
    state = None
    for event in events:
        state = apply_call(state, event).state or state
    assert state is not None
    return state


def unit_event(seconds: float, lat: float | None = 41.76, lon: float | None = -72.68,
               event_id: str | None = None, **fields: Any) -> UnitEvent:
    return UnitEvent(event_id=event_id or f"u-{seconds}", event_time=at(seconds),
                     unit_id="U1", unit_kind="patrol", status=fields.pop("status", "available"),
                     lat=lat, lon=lon, **fields)


def full_call() -> dict[str, Any]:
    return run_call(
        call_event("created", 30),
        call_event("unit_assigned", 40, unit_id="U1"),
        call_event("dispatched", 100, unit_id="U1"),
        call_event("en_route", 110, unit_id="U1"),
        call_event("on_scene", 400, unit_id="U1"),
        call_event("cleared", 1000, disposition="report"),
    )


def test_created_call_is_pending_with_received_time_and_queue_writes() -> None:
    """A created call starts pending and is queued by priority then received time."""
    outcome = apply_call(None, call_event("created", 30, address="1 Main St"))
    state = outcome.state
    assert state is not None and state["status"] == "pending"
    assert state["received_time"] == E0 and state["address"] == "1 Main St"
    assert state["qol"] is True and state["applied"] == ["e-created-30"]
    score = queue_score(3, E0)
    assert set(outcome.indexes) == {IndexWrite(INDEX_OPEN, "C1", score),
                                    IndexWrite("queue:noise", "C1", score)}


def test_queue_score_orders_priority_before_age() -> None:
    """A newer P1 call sorts before an older P2 call."""
    assert queue_score(1, E0 + 3600) < queue_score(2, E0)


def test_lifecycle_records_first_unit_times_and_status() -> None:
    """Unit steps move the call forward and record the first unit's times."""
    state = full_call()
    assert state["status"] == "closed"
    assert state["units"] == ["U1"]
    assert state["dispatched_time"] == E0 + 100 and state["en_route_time"] == E0 + 110
    assert state["on_scene_time"] == E0 + 400 and state["closed_time"] == E0 + 1000
    assert state["unit_times"]["U1"] == {"assigned": E0 + 40, "dispatched": E0 + 100,
                                         "en_route": E0 + 110, "on_scene": E0 + 400}
    assert state["disposition"] == "report"


def test_second_unit_does_not_change_first_unit_times() -> None:
    """A second unit arriving later leaves the first-unit on-scene time alone."""
    state = run_call(call_event("created", 0), call_event("dispatched", 10, unit_id="U1"),
                     call_event("on_scene", 50, unit_id="U1"),
                     call_event("dispatched", 60, unit_id="U2"),
                     call_event("on_scene", 90, unit_id="U2"))
    assert state["units"] == ["U1", "U2"] and state["on_scene_time"] == E0 + 50
    assert state["status"] == "on_scene"


def test_closed_record_intervals() -> None:
    """The closed record carries dispatch, travel, response and on-scene seconds."""
    record = closed_record(full_call())
    assert tuple(record) == CLOSED_FIELDS
    assert record["dispatch_s"] == "100.0" and record["travel_s"] == "300.0"
    assert record["response_s"] == "400.0" and record["on_scene_s"] == "600.0"
    assert record["qol"] == "1" and record["cancelled"] == "0" and record["priority"] == "3"
    assert record["received_time"] == repr(round(E0, 3))


def test_close_outcome_removes_from_queues_and_emits_record() -> None:
    """Clearing a call removes it from the open index and its queue and emits one record."""
    state = run_call(call_event("created", 0))
    outcome = apply_call(state, call_event("cleared", 500))
    assert outcome.removed and outcome.closed is not None
    assert IndexWrite(INDEX_OPEN, "C1", None) in outcome.indexes
    assert IndexWrite("queue:noise", "C1", None) in outcome.indexes
    assert IndexWrite(INDEX_CLOSED, "C1", E0 + 500) in outcome.indexes
    assert outcome.closed["dispatch_s"] == "" and outcome.closed["response_s"] == ""


def test_cancelled_call_record_is_flagged() -> None:
    """A cancelled call's record says cancelled=1."""
    state = run_call(call_event("created", 0), call_event("cancelled", 20))
    assert state["status"] == "cancelled" and closed_record(state)["cancelled"] == "1"


def test_negative_interval_is_blank(caplog: pytest.LogCaptureFixture) -> None:
    """An on-scene time before dispatch leaves travel blank and logs why."""
    state = run_call(call_event("created", 0), call_event("dispatched", 300, unit_id="U1"),
                     call_event("on_scene", 200, unit_id="U2"), call_event("cleared", 900))
    record = closed_record(state)
    assert record["travel_s"] == "" and record["response_s"] == "200.0"
    assert "travel_s is negative" in caplog.text


def test_duplicate_event_is_a_noop() -> None:
    """An event id already applied to a call is reported as a duplicate."""
    created = call_event("created", 0)
    state = apply_call(None, created).state
    assert apply_call(state, created).verdict == "duplicate"


def test_duplicate_after_close_is_still_a_duplicate() -> None:
    """Redelivering the closing event of a closed call is a duplicate, not an error."""
    cleared = call_event("cleared", 50)
    state = run_call(call_event("created", 0), cleared)
    assert apply_call(state, cleared).verdict == "duplicate"


@pytest.mark.parametrize("kind", ["updated", "unit_assigned", "dispatched", "on_scene",
                                  "cleared", "cancelled"])
def test_step_for_unknown_call_is_rejected(kind: str) -> None:
    """Any lifecycle step before the call was created is out of order."""
    with pytest.raises(InvalidEvent, match="no created event yet"):
        apply_call(None, call_event(kind, 10, unit_id="U1"))


def test_step_for_pruned_closed_call_is_rejected() -> None:
    """A step for a call known closed (body pruned) is rejected as closed."""
    with pytest.raises(InvalidEvent, match="already closed"):
        apply_call(None, call_event("on_scene", 10, unit_id="U1"), closed_before=True)


def test_created_again_for_closed_call_is_rejected() -> None:
    """A call id that already closed cannot be created again."""
    with pytest.raises(InvalidEvent, match="cannot be created again"):
        apply_call(None, call_event("created", 10), closed_before=True)


def test_event_after_close_is_rejected() -> None:
    """Nothing but a duplicate may follow a closed call."""
    state = run_call(call_event("created", 0), call_event("cleared", 50))
    with pytest.raises(InvalidEvent, match="is closed"):
        apply_call(state, call_event("dispatched", 60, unit_id="U1"))


def test_created_twice_with_other_event_id_is_rejected() -> None:
    """A second created event with a different id conflicts."""
    state = run_call(call_event("created", 0))
    with pytest.raises(InvalidEvent, match="already created"):
        apply_call(state, call_event("created", 5, event_id="other"))


def test_unit_going_back_a_step_is_rejected() -> None:
    """A unit that is on scene cannot then be dispatched on the same call."""
    state = run_call(call_event("created", 0), call_event("on_scene", 50, unit_id="U1"))
    with pytest.raises(InvalidEvent, match="already reached on_scene"):
        apply_call(state, call_event("dispatched", 60, unit_id="U1"))


def test_update_moves_call_between_queues() -> None:
    """Changing category re-queues the call and removes it from the old queue."""
    state = run_call(call_event("created", 0))
    outcome = apply_call(state, call_event("updated", 30, category="violent", priority=1))
    assert outcome.state is not None and outcome.state["qol"] is False
    assert IndexWrite("queue:noise", "C1", None) in outcome.indexes
    assert IndexWrite("queue:violent", "C1", queue_score(1, E0)) in outcome.indexes


def test_created_with_units_is_assigned() -> None:
    """A call created with units already attached starts assigned."""
    state = run_call(call_event("created", 0, units=["U1", "U2"]))
    assert state["status"] == "assigned" and state["units"] == ["U1", "U2"]


def test_public_view_drops_internals_and_private_fields_for_tablets() -> None:
    """A real call state through access.public_view: applied ids always dropped, caller
    details dropped for cso/sro (the rule's table of cases is tests/unit/test_access.py)."""
    state = run_call(call_event("created", 0, caller_name="Pat", caller_phone="860"))
    wall = public_view(state, "commander")
    tablet = public_view(state, "cso")
    assert "applied" not in wall and wall["caller_name"] == "Pat"
    assert "caller_name" not in tablet and "caller_phone" not in tablet
    assert "caller_name" not in public_view(state, "sro")
    assert "applied" in state  # the input is not modified


def test_unit_fix_applies_with_geo() -> None:
    """A first fix creates the unit and its GEO position (lon, lat)."""
    outcome = apply_unit(None, unit_event(0, callsign="P1"))
    assert outcome.state is not None and outcome.state["time"] == E0
    assert outcome.geo == (-72.68, 41.76) and outcome.state["callsign"] == "P1"


def test_older_fix_is_stale() -> None:
    """A fix older than the unit's last one is ignored as stale."""
    state = apply_unit(None, unit_event(100)).state
    assert apply_unit(state, unit_event(50)).verdict == "stale"


def test_repeated_fix_is_duplicate() -> None:
    """The same AVL event twice is a duplicate."""
    event = unit_event(100)
    state = apply_unit(None, event).state
    assert apply_unit(state, event).verdict == "duplicate"


def test_impossible_jump_is_rejected() -> None:
    """10 km in 60 s (600 km/h) is an impossible position."""
    state = apply_unit(None, unit_event(0)).state
    with pytest.raises(InvalidEvent, match="impossible position"):
        apply_unit(state, unit_event(60, lat=41.76 + 10_000 / 111_000))


def test_fast_but_possible_move_is_applied() -> None:
    """3 km in 60 s (180 km/h) is allowed."""
    state = apply_unit(None, unit_event(0)).state
    outcome = apply_unit(state, unit_event(60, lat=41.76 + 3_000 / 111_000))
    assert outcome.verdict == "applied"


def test_status_only_event_keeps_position() -> None:
    """A status change without a fix keeps the last position."""
    state = apply_unit(None, unit_event(0)).state
    outcome = apply_unit(state, unit_event(10, lat=None, lon=None, status="out_of_service"))
    assert outcome.state is not None and outcome.state["lat"] == 41.76
    assert outcome.state["status"] == "out_of_service"


def test_unmappable_latitude_is_rejected() -> None:
    """Latitudes Redis GEO cannot index are rejected, not half-applied."""
    with pytest.raises(InvalidEvent, match="cannot be mapped"):
        apply_unit(None, unit_event(0, lat=89.0, lon=10.0))


def test_distance_m_matches_a_known_distance() -> None:
    """One degree of latitude is about 111.2 km."""
    assert distance_m(41.0, -72.0, 42.0, -72.0) == pytest.approx(111_195, rel=1e-3)


def shot(seconds: float, event_id: str = "s1", rounds: int = 3) -> ShotAlert:
    return ShotAlert(event_id=event_id, event_time=at(seconds), alert_id="A1",
                     alert_type="multiple", rounds=rounds, lat=41.76, lon=-72.68,
                     detected_time=at(0), published_time=at(seconds))


def test_alert_applies_and_indexes_by_detected_time() -> None:
    """An alert is stored and indexed by its detected time."""
    outcome = apply_alert(None, shot(20))
    assert outcome.state is not None and outcome.state["rounds"] == 3
    assert outcome.indexes == (IndexWrite(INDEX_ALERTS, "A1", E0),)


def test_alert_revision_and_stale_revision() -> None:
    """A later event revises an alert; an older one is stale; a repeat is duplicate."""
    state = apply_alert(None, shot(20)).state
    revised = apply_alert(state, shot(40, "s2", rounds=7))
    assert revised.state is not None and revised.state["rounds"] == 7
    assert apply_alert(revised.state, shot(30, "s3")).verdict == "stale"
    assert apply_alert(revised.state, shot(40, "s2")).verdict == "duplicate"


def share(kind: str, seconds: float) -> ShareEvent:
    return ShareEvent(event_id=f"sh-{kind}", event_time=at(seconds), kind=kind,  # type: ignore[arg-type]
                      share_id="S1", partner="XL Center", partner_kind="arena",
                      resource_kind="camera", resource_id="cam1", resource_name="Gate A")


def test_share_open_then_close() -> None:
    """Opening indexes a share; closing removes it and records the end time."""
    opened = apply_share(None, share("opened", 0))
    assert opened.indexes == (IndexWrite(INDEX_SHARES, "S1", E0),)
    closed = apply_share(opened.state, share("closed", 600))
    assert closed.removed and closed.state is not None
    assert closed.state["status"] == "closed" and closed.state["end_time"] == E0 + 600
    assert IndexWrite(INDEX_SHARES, "S1", None) in closed.indexes


def test_share_lifecycle_out_of_order_is_rejected() -> None:
    """Closing an unknown share or reopening a closed one is rejected."""
    with pytest.raises(InvalidEvent, match="never opened"):
        apply_share(None, share("closed", 10))
    closed = apply_share(apply_share(None, share("opened", 0)).state, share("closed", 5)).state
    with pytest.raises(InvalidEvent, match="is closed"):
        apply_share(closed, ShareEvent(**{**_fields(share("opened", 9)), "event_id": "x"}))


def _fields(event: ShareEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_batch_plan_coalesces_and_keeps_final_state() -> None:
    """A call created and closed in one batch yields one remove change and one record."""
    plan = BatchPlan({})
    for event in (call_event("created", 0), call_event("dispatched", 10, unit_id="U1"),
                  call_event("cleared", 90)):
        assert plan.apply(event) == "applied"
    assert plan.upserts["call"]["C1"]["status"] == "closed"
    assert plan.indexes[INDEX_OPEN] == {"C1": None}
    assert len(plan.closed_records) == 1
    [change] = batch_changes(plan)
    assert (change.op, change.id, change.entity) == ("remove", "C1", "call")
    assert change.data["status"] == "closed" and "applied" not in change.data
    assert plan.freshness == {"cad": E0 + 90}


def test_batch_plan_rejection_leaves_plan_untouched() -> None:
    """A rejected event changes nothing in the plan."""
    plan = BatchPlan({})
    with pytest.raises(InvalidEvent):
        plan.apply(call_event("on_scene", 5, unit_id="U1"))
    assert plan.upserts == {} and batch_changes(plan) == [] and plan.freshness == {}


def test_batch_plan_counts_duplicates_within_batch() -> None:
    """The same event twice in one batch applies once."""
    plan = BatchPlan({})
    event = unit_event(0)
    assert [plan.apply(event), plan.apply(event)] == ["applied", "duplicate"]
