"""Snapshots over partitions (changefeed.merge_partitions) and the push reader's chunks of
one partition each (pure)."""

from __future__ import annotations

import json
from typing import Any

from streams.core import changefeed
from streams.core.keys import Keys
from streams.push.clients import Chunk

KEYS = Keys("t", 2)


def partition_read(number: int, tip: str, calls: dict[str, float], alerts: dict[str, float],
                   fresh: dict[bytes, bytes], counts: dict[bytes, bytes],
                   ) -> tuple[changefeed.SnapshotRead, changefeed.Bodies]:
    """One partition's scored step 1 (RESP2's flat WITHSCORES replies) and its bodies."""
    keys = KEYS.partition(number)
    commands = changefeed.snapshot_reads(keys, now=5000.0, scored=True)
    assert commands[1] == ("ZRANGE", keys.calls_open, 0, -1, "WITHSCORES")
    flat = [value for member, score in calls.items() for value in (member.encode(), score)]
    newest = [value for member, score in alerts.items()
              for value in (member.encode(), str(score).encode())]
    read = changefeed.read_step_one(keys, [[(tip.encode(), {})], flat, [], newest, [],
                                           fresh, counts], scored=True)
    bodies: dict[str, list[dict[str, Any]]] = {
        "call": [{"call_id": call_id} for call_id in calls],
        "unit": [{"unit_id": f"U{number}"}],
        "alert": [{"alert_id": alert_id} for alert_id in alerts],
        "share": [], "work": [{"call_id": call_id} for call_id in calls]}
    return read, bodies


def test_partitions_merge_as_one_index_would_hold_them() -> None:
    """Calls by queue score (ties by id) and alerts newest first across partitions, work
    in its calls' order, the cursor of both tips, freshness newest and counts summed."""
    parts = [partition_read(0, "7-0", {"C2": 2.0, "C4": 3.0}, {"A0": 100.0},
                            {b"cad": b"50", b"cad:seen": b"51"}, {b"cad": b"4"}),
             partition_read(1, "9-2", {"C1": 1.0, "C3": 3.0}, {"A1": 200.0, "A2": 90.0},
                            {b"cad": b"60", b"avl": b"5"}, {b"cad": b"3", b"cad:rejected": b"1"})]
    read, bodies = changefeed.merge_partitions(parts)
    snap = changefeed.assemble_snapshot(read, bodies, "full")
    assert snap["last_id"] == "7-0,9-2"
    assert [call["call_id"] for call in snap["calls"]] == ["C1", "C2", "C3", "C4"]
    assert [alert["alert_id"] for alert in snap["alerts"]] == ["A1", "A0", "A2"]
    assert [unit["unit_id"] for unit in snap["units"]] == ["U0", "U1"]
    assert [work["call_id"] for work in snap["work"]] == ["C1", "C2", "C3", "C4"]
    assert snap["freshness"]["cad"] == {"event_time": 60.0, "seen": 51.0, "count": 7,
                                        "rejected": 1}
    assert snap["freshness"]["avl"]["event_time"] == 5.0
    json.dumps(snap)


def test_one_partition_is_left_as_it_is() -> None:
    """With one partition nothing is merged: the read and the bodies come back as given."""
    part = partition_read(0, "7-0", {"C2": 2.0}, {}, {}, {})
    assert changefeed.merge_partitions([part]) is part


def test_a_chunk_is_new_to_a_page_by_its_own_partition_only() -> None:
    """A page whose first messages are further on in partition 1 than the reader still
    gets partition 0's chunk, but not partition 1's older one."""
    sent = ((5, 0), (9, 0))
    older = Chunk(1, (8, 0), ((6, 0), (8, 0)), [], [])
    newer = Chunk(0, (6, 0), ((6, 0), (7, 0)), [], [])
    assert newer.new_to(sent) and not older.new_to(sent)
    assert newer.sent_to(sent) == ((6, 0), (9, 0))
    assert older.last_id == "6-0,8-0"
