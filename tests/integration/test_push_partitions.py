"""Push, the read API and tablet actions over 3 partitions on a real Redis: events published
by entity, every partition applied by the consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis

from dashboard.actionstore import ActionStore
from dashboard.readapi import LiveReader
from streams.core import partitions
from streams.core.actions import Actor
from streams.core.events import Event
from streams.core.keys import Keys
from streams.core.settings import Settings
from tests.integration import test_push
from tests.integration.test_action_store import action, put_call
from tests.integration.test_consumer import consume_until_drained, publish_events
from tests.integration.test_push import (
    SECRET,
    WAIT,
    PushThread,
    open_client,
    receive,
    write_changes,
)
from tests.integration.test_readapi import SCENE, created

start_push = test_push.start_push  # shared fixture, on this module's push_settings
sessions = test_push.sessions  # push checks each token's session: pages sign in first

PARTITIONS = 3
# Open calls B (partition 1), D, A, C (2) and N6 (0): queue order B, D, A, N6, C crosses
# partitions; alerts NEW (0) and OLD (2); units in partitions 0 and 1.
EVENTS: list[Event] = [*SCENE, created("N6", 15, 3, "noise", "North")]


@pytest.fixture
def push_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, partitions=PARTITIONS, secret_key=SECRET,
                               push_host="127.0.0.1")


@pytest.fixture
def keys(push_settings: Settings) -> Keys:
    """The deployment's keys, with its 3 partitions."""
    return push_settings.keys


def apply_partitions(settings: Settings, r: redis.Redis, events: Sequence[Event]) -> None:
    """Publish ``events`` (each to its entity's partition), then apply every partition
    with the consumer (one process holding every partition's lease)."""
    async def go() -> None:
        await publish_events(settings.redis_url or "", settings.keys, events)
        await consume_until_drained(settings, r)
    asyncio.run(go())


def tips(r: redis.Redis, keys: Keys) -> list[str]:
    """Each partition's newest changes-stream id (0-0 when empty)."""
    newest = [r.xrevrange(part.changes, count=1) for part in keys.every_partition]
    return [entries[0][0].decode() if entries else "0-0" for entries in newest]


def ids(items: list[dict[str, Any]], field: str = "call_id") -> list[str]:
    return [item[field] for item in items]


def test_events_spread_over_the_partitions(push_settings: Settings, r: redis.Redis,
                                           keys: Keys) -> None:
    """Each entity's state is in its own partition's keys, and every partition has some."""
    apply_partitions(push_settings, r, EVENTS)
    held = {number: set(r.hkeys(part.calls)) | set(r.hkeys(part.units))
            for number, part in enumerate(keys.every_partition)}
    assert all(held.values())
    assert b"N6" in held[0] and b"B" in held[1] and b"A" in held[2]


def test_snapshot_merges_every_partition_in_order(
        start_push: Callable[..., PushThread], push_settings: Settings, r: redis.Redis,
        keys: Keys) -> None:
    """Push's snapshot holds every partition's entities: calls in queue order across
    partitions, alerts newest first, units by id; last_id is the cursor of every tip;
    freshness the newest and counts summed; the read API's snapshot is the same."""
    apply_partitions(push_settings, r, EVENTS)
    push = start_push()
    with open_client(push.port) as client:
        snapshot = receive(client)
    assert snapshot["type"] == "snapshot"
    assert snapshot["last_id"] == partitions.encode_cursor(tips(r, keys))
    assert all(tip != "0-0" for tip in tips(r, keys))
    assert ids(snapshot["calls"]) == ["B", "D", "A", "N6", "C"]
    assert ids(snapshot["units"], "unit_id") == ["U1", "U2", "U3", "U4"]
    assert ids(snapshot["shares"], "share_id") == ["S1"]
    assert snapshot["freshness"]["cad"]["count"] == 11  # the cad events of every partition
    assert snapshot["freshness"]["avl"]["count"] == 4
    polled = LiveReader(r, keys).snapshot()
    assert {**polled, "alerts": []} == {**snapshot, "alerts": []}  # alerts: by age, below
    reader = LiveReader(r, keys)
    assert ids(reader.open_calls()) == ["B", "D", "A", "N6", "C"]
    assert ids(reader.open_calls(district="North")) == ["D", "A", "N6"]
    assert reader.queue_counts()["noise"] == 3
    both = reader.active_alerts(max_age_s=1e12)
    assert ids(both, "alert_id") == ["NEW", "OLD"]
    assert reader.call("N6") is not None and reader.call("B") is not None
    assert ids(reader.units_near(41.7637, -72.6851, 1000), "unit_id") == ["U1", "U2"]
    every = reader.units_near(41.7637, -72.6851, 1000, status=None)
    assert ids(every, "unit_id") == ["U1", "U3", "U2"]  # partitions 1, 0, 1
    assert reader.freshness()["cad"]["count"] == 11


def next_delta(client: Any) -> dict[str, Any]:
    """The next delta (pings skipped) within WAIT; its cursor names every partition."""
    deadline = time.monotonic() + WAIT
    while (message := receive(client))["type"] != "delta":
        assert time.monotonic() < deadline, "no delta came"
    assert partitions.decode_cursor(message["last_id"], PARTITIONS) is not None
    return message


def calls_in(message: dict[str, Any]) -> list[str]:
    return [change["id"] for change in message["changes"] if change["entity"] == "call"]


def delta_ids_until(client: Any, wanted: set[str]) -> tuple[list[str], str]:
    """Changed call ids of every delta until ``wanted`` all arrived, and the last cursor;
    each delta's cursor is newer than the one before."""
    seen: list[str] = []
    cursor, deadline = "", time.monotonic() + WAIT
    while not wanted <= set(seen):
        assert time.monotonic() < deadline, f"only {seen} of {wanted} came"
        message = next_delta(client)
        assert not cursor or partitions.cursor_is_newer(message["last_id"], cursor)
        seen += calls_in(message)
        cursor = message["last_id"]
    return seen, cursor


def test_a_change_in_each_partition_reaches_the_page_and_since_resumes(
        start_push: Callable[..., PushThread], push_settings: Settings, r: redis.Redis,
        keys: Keys) -> None:
    """New calls in every partition reach a connected page as deltas; a page back with
    since=<its cursor> gets only what it missed, from each partition, and no snapshot."""
    push = start_push()
    with open_client(push.port) as client:
        assert receive(client)["type"] == "snapshot"
        apply_partitions(push_settings, r, [created(call_id, 30, 3, "noise", "South")
                                            for call_id in ("N7", "N3", "N0")])
        seen, cursor = delta_ids_until(client, {"N7", "N3", "N0"})
    assert sorted(seen) == ["N0", "N3", "N7"]
    missed = ("R1", "R4", "R0")  # partitions 0, 1, 2
    apply_partitions(push_settings, r, [created(call_id, 40, 2, "noise", "South")
                                        for call_id in missed])
    with open_client(push.port, since=cursor) as client:
        first = receive(client)
        assert first["type"] == "delta"
        seen = calls_in(first)
        if not set(missed) <= set(seen):
            more, _ = delta_ids_until(client, set(missed) - set(seen))
            seen += more
    assert sorted(seen) == sorted(missed)


def test_a_cursor_of_another_partition_count_or_trimmed_gets_a_snapshot(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A one-partition id, a malformed cursor, or one whose partition 1 id was trimmed
    away gets a snapshot; a good cursor gets its missed deltas."""
    parts = keys.every_partition
    written = [write_changes(r, part, [test_push.call_change(number)]) for number, part
               in enumerate(parts)]
    good = partitions.encode_cursor([ids_[0] for ids_ in written])
    for number, part in enumerate(parts):
        write_changes(r, part, [test_push.call_change(10 + number)] * 3)
    r.xtrim(parts[1].changes, maxlen=1, approximate=False)  # good's partition 1 id is gone
    push = start_push()
    for since in (written[0][0], "0-0,0-0", "1-0,x,1-0", "5-0,,5-0", good):
        with open_client(push.port, since=since) as client:
            assert receive(client)["type"] == "snapshot", since
    resumable = partitions.encode_cursor([written[0][0], tips(r, keys)[1], written[2][0]])
    with open_client(push.port, since=resumable) as client:
        replayed = [receive(client), receive(client)]  # one message per partition's entries
    assert [message["type"] for message in replayed] == ["delta", "delta"]
    assert [[change["id"] for change in message["changes"]] for message in replayed] == [
        ["C10"] * 3, ["C12"] * 3]
    assert replayed[-1]["last_id"] == partitions.encode_cursor(tips(r, keys))


def test_a_tablet_action_is_in_its_calls_partition_and_reaches_pages(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A claim writes its work record, action and change in the call's partition, and a
    page connected to push gets the work change."""
    call_keys = keys.of_entity("N3")
    assert call_keys != keys.partition(0)
    put_call(r, call_keys, "N3")
    push = start_push()
    with open_client(push.port) as client:
        receive(client)
        answer, _ = ActionStore(r, keys).apply(action(call_id="N3"),
                                               Actor("cso-north", "cso", "North"))
        assert answer["status"] == "applied"
        message = next_delta(client)
    assert [(change["entity"], change["id"]) for change in message["changes"]] == [
        ("work", "N3")]
    assert json.loads(r.get(call_keys.work("N3")))["claimed_by"] == "cso-north"
    assert r.xlen(call_keys.actions) == 1 and r.xlen(call_keys.changes) == 1
    assert not r.exists(keys.partition(0).changes, keys.work("N3"))
    assert ActionStore(r, keys).work_of(["N3", "B"]) == {
        "N3": json.loads(r.get(call_keys.work("N3")))}
