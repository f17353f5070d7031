"""The typed change feed: change records, their encoding, and snapshot assembly (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from streams.core import changefeed
from streams.core.changefeed import Change, EntityKind
from streams.core.keys import Keys

CALL = {"call_id": "C1", "status": "pending", "caller_name": "Jo", "caller_phone": "555",
        "applied": ["e1"], "address": "1 Main St", "district": "North"}
KEYS = Keys("t")


def test_upsert_and_remove_drop_internal_fields_only() -> None:
    """Change records carry the whole state without the consumer's bookkeeping."""
    change = changefeed.upsert("call", "C1", CALL)
    assert (change.entity, change.op, change.id) == ("call", "upsert", "C1")
    assert "applied" not in change.data and change.data["caller_name"] == "Jo"
    assert changefeed.remove("alert", "A1") == Change("alert", "remove", "A1", {})
    assert changefeed.remove("call", "C1", CALL).data["status"] == "pending"
    assert CALL["applied"] == ["e1"]  # the input is not mutated


def test_feed_clock_is_a_freshness_record() -> None:
    """A feed's clock travels as the freshness pseudo-entity, keyed by source."""
    assert changefeed.feed_clock("cad", 10.5, 11.0) == Change(
        "freshness", "upsert", "cad", {"source": "cad", "event_time": 10.5, "seen": 11.0})


def test_a_batch_round_trips_as_the_json_pages_read() -> None:
    """encode_batch writes the JSON list of {entity, op, id, data}; decode_batch reads it."""
    batch = [changefeed.upsert("unit", "U1", {"unit_id": "U1", "applied": []}),
             changefeed.remove("call", "C1")]
    raw = changefeed.encode_batch(batch)
    assert json.loads(raw) == [
        {"entity": "unit", "op": "upsert", "id": "U1", "data": {"unit_id": "U1"}},
        {"entity": "call", "op": "remove", "id": "C1", "data": {}}]
    assert changefeed.decode_batch(raw) == batch


@pytest.mark.parametrize("raw", [b"", b"{}", b"[1]", b"\xff", b'[{"entity": "unit"}]',
                                 b'[{"entity": "unit", "op": "merge", "id": "U1"}]',
                                 b'[{"entity": "unit", "op": "upsert", "id": 7}]'])
def test_decode_batch_refuses_what_is_not_a_list_of_change_records(raw: bytes) -> None:
    """Anything but a list of well-formed records is a ValueError saying why."""
    with pytest.raises(ValueError, match="not a list of change records"):
        changefeed.decode_batch(raw)


def test_decode_objects_skips_missing_and_broken_values() -> None:
    """Missing hash fields and unreadable JSON are skipped, not fatal."""
    assert changefeed.decode_objects([b'{"a":1}', None, b"{", b"[1]"]) == [{"a": 1}]


@pytest.mark.parametrize(("view", "caller"), [("full", "Jo"), ("tablet", None)])
def test_visible_hides_caller_details_from_tablets(view: changefeed.View,
                                                   caller: str | None) -> None:
    """Tablet views of a call have no caller name or phone; no view has internals."""
    seen = changefeed.visible(changefeed.KINDS["call"], CALL, view)
    assert seen.get("caller_name") == caller and "applied" not in seen
    unit = changefeed.visible(changefeed.KINDS["unit"], {"unit_id": "U1", "caller_name": "x"},
                              "tablet")
    assert unit == {"unit_id": "U1", "caller_name": "x"}  # only calls have private fields


def test_kinds_table_is_what_pages_need() -> None:
    """Pages learn each kind's list name and id field from Python, not their own list."""
    assert changefeed.kinds_table() == {
        "call": {"plural": "calls", "id": "call_id"},
        "unit": {"plural": "units", "id": "unit_id"},
        "alert": {"plural": "alerts", "id": "alert_id"},
        "share": {"plural": "shares", "id": "share_id"},
        "work": {"plural": "work", "id": "call_id", "follows": "call"}}


def test_assemble_freshness_covers_every_source() -> None:
    """Freshness has every feed, with times, counts and rejections as numbers."""
    view = changefeed.assemble_freshness({b"cad": b"100.5", b"cad:seen": b"101"},
                                         {b"cad": b"7", b"cad:rejected": b"2"})
    assert view["cad"] == {"event_time": 100.5, "seen": 101.0, "count": 7, "rejected": 2}
    assert view["avl"] == {"event_time": None, "seen": None, "count": 0, "rejected": 0}
    assert list(view) == ["cad", "avl", "shotspotter", "mutualink"]


def test_snapshot_reads_are_one_consistent_step_then_the_bodies() -> None:
    """Step 1 reads the newest changes id first, then each live set, freshness, counts;
    step 2 fetches only the bodies of indexed kinds that have members."""
    commands = changefeed.snapshot_reads(KEYS, now=5000.0)
    assert commands[0] == ("XREVRANGE", KEYS.changes, "+", "-", "COUNT", 1)
    assert commands[1:5] == [("ZRANGE", KEYS.calls_open, 0, -1), ("HVALS", KEYS.units),
                             ("ZREVRANGEBYSCORE", KEYS.alerts_active, "+inf", 1400.0),
                             ("ZRANGE", KEYS.shares_active, 0, -1)]
    assert commands[5:] == [("HGETALL", KEYS.freshness), ("HGETALL", KEYS.counts)]
    read = changefeed.read_step_one(KEYS, step_one())
    assert read.last_id == "9-1"
    assert read.body_reads() == [("HMGET", KEYS.calls, b"C1", b"C2", b"C3"),
                                 ("HMGET", KEYS.alerts, b"A1"),
                                 ("MGET", KEYS.work("C1"), KEYS.work("C2"), KEYS.work("C3"))]


def step_one() -> list[Any]:
    """Replies of snapshot_reads as redis-py gives them (bytes, parsed entries)."""
    units = [json.dumps({"unit_id": unit, "applied": ["x"]}).encode() for unit in "BA"]
    return [[(b"9-1", {b"batch": b"[]"})], [b"C1", b"C2", b"C3"], units, [b"A1"], [],
            {b"cad": b"100"}, {b"cad": b"3"}]


def bodies_of(read: changefeed.SnapshotRead) -> dict[str, list[dict[str, Any]]]:
    calls = [json.dumps({**CALL, "call_id": f"C{i}", "district": district}).encode()
             for i, district in ((1, "North"), (2, "South"), (3, "North"))]
    work = [json.dumps({"call_id": f"C{i}", "district": district, "notes": []}).encode()
            for i, district in ((1, "North"), (2, "South"))]
    return read.bodies([calls[:2] + [None], [b'{"alert_id": "A1"}'], work + [None]])


def test_snapshot_keeps_queue_order_sorts_units_and_filters_the_view() -> None:
    """A full snapshot has calls in index order (a vanished body skipped), units by id,
    no internals anywhere, and freshness."""
    read = changefeed.read_step_one(KEYS, step_one())
    snap = changefeed.assemble_snapshot(read, bodies_of(read), "full")
    assert snap["type"] == "snapshot" and snap["last_id"] == "9-1"
    assert [call["call_id"] for call in snap["calls"]] == ["C1", "C2"]
    assert snap["calls"][0]["caller_phone"] == "555"
    assert snap["units"] == [{"unit_id": "A"}, {"unit_id": "B"}]
    assert snap["alerts"] == [{"alert_id": "A1"}] and snap["shares"] == []
    assert [record["call_id"] for record in snap["work"]] == ["C1", "C2"]
    assert snap["freshness"]["cad"]["count"] == 3
    assert "applied" not in json.dumps(snap)


def test_district_snapshot_keeps_only_its_calls_and_no_caller() -> None:
    """A North tablet's snapshot drops other districts' calls but keeps every unit."""
    read = changefeed.read_step_one(KEYS, step_one())
    snap = changefeed.assemble_snapshot(read, bodies_of(read), "tablet", "North")
    assert [call["call_id"] for call in snap["calls"]] == ["C1"]
    assert [record["call_id"] for record in snap["work"]] == ["C1"]
    assert "caller_name" not in json.dumps(snap) and len(snap["units"]) == 2


def test_empty_state_is_an_empty_snapshot_at_0_0() -> None:
    """Nothing applied yet: no bodies to fetch and last_id 0-0."""
    read = changefeed.read_step_one(KEYS, [[], [], [], [], [], {}, {}])
    assert read.last_id == "0-0" and read.body_reads() == []
    snap = changefeed.assemble_snapshot(read, read.bodies([]), "full")
    assert snap["calls"] == [] and snap["units"] == []


@pytest.fixture
def action_kind() -> Iterator[EntityKind]:
    """A new kind, as the tablet actions will register one (removed afterwards)."""
    kind = changefeed.register(EntityKind("action", "actions", "action_id", "calls",
                                          "calls_open", district_scoped=True,
                                          private_fields=("note",)))
    yield kind
    del changefeed.KINDS["action"]


def test_a_registered_kind_travels_with_the_others(action_kind: EntityKind) -> None:
    """One register() call puts a new kind in the snapshot reads, the snapshot (scoped and
    filtered like calls) and the pages' table."""
    reads = changefeed.snapshot_reads(KEYS, now=0.0)
    assert reads[5] == ("ZRANGE", KEYS.calls_open, 0, -1)
    read = changefeed.read_step_one(KEYS, [*step_one()[:5], [b"X1"], {}, {}])
    action = {"action_id": "X1", "district": "South", "note": "private"}
    bodies = read.bodies([[None], [b'{"alert_id": "A1"}'], [None, None, None],
                          [json.dumps(action).encode()]])
    assert changefeed.assemble_snapshot(read, bodies, "full")["actions"] == [action]
    assert changefeed.assemble_snapshot(read, bodies, "tablet", "North")["actions"] == []
    tablet = changefeed.assemble_snapshot(read, bodies, "tablet")["actions"]
    assert tablet == [{"action_id": "X1", "district": "South"}]
    assert changefeed.kinds_table()["action"] == {"plural": "actions", "id": "action_id"}
    with pytest.raises(ValueError, match="already registered"):
        changefeed.register(action_kind)
