"""Status, history and backfill over 3 partitions, on real Redis.

The multi-partition consumer is not here yet, so partition state is written directly with
the helpers the processes use (``queue_deadletter``, XADD to each partition's streams) into
the partition ``Keys.of_entity`` names for each entity.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from dashboard.history import HistoryStore, Selection
from streams.backfill import Summary, run_backfill, write_closed_records
from streams.core.deadletter import deadletter_entry
from streams.core.keys import CLOSED_MAXLEN, CONSUMER_GROUP, EVENT_FIELD, SOURCES, Keys
from streams.core.partitions import partition_of
from streams.core.settings import Settings
from streams.publish import queue_deadletter
from tests.conftest import SHARED_DATA
from tests.integration.test_backfill import MAPPINGS, SF_CSV, closed_frame, run
from tests.integration.test_history_writer import (
    Writer,
    folder,
    manifest,
    records,
    responses,
    wait_for,
)
from tests.integration.test_status import status

PARTITIONS = 3


@pytest.fixture
def three(settings: Settings) -> Settings:
    return replace(settings, partitions=PARTITIONS, history_flush_seconds=0.2)


# --- status ---------------------------------------------------------------------------------

def write_partition_state(r: redis.Redis, keys: Keys, now: float) -> dict[int, list[str]]:
    """Open calls, closed records, units, dead letters, counters, freshness and raw streams
    (the group one entry in on cad) in each call's partition; leases on 0 and 2."""
    calls: dict[int, list[str]] = {}
    for number in range(12):
        call_id = f"C{number}"
        calls.setdefault(partition_of(call_id, PARTITIONS), []).append(call_id)
    assert sorted(calls) == [0, 1, 2]
    for number, ids in calls.items():
        part = keys.partition(number)
        with r.pipeline(transaction=True) as pipe:  # one partition's keys: one slot
            pipe.zadd(part.calls_open, {call_id: 1 for call_id in ids})
            for call_id in ids[:2]:
                pipe.xadd(part.closed, {"call_id": call_id, "response_s": "60"})
            pipe.hset(part.units, f"U{number}", "{}")
            for letter in range(number + 1):
                queue_deadletter(pipe, part, deadletter_entry(
                    "cad", "invalid" if letter % 2 else "not_json", f"bad {letter}", b"x"))
            pipe.hincrby(part.counts, "cad", 10 * (number + 1))
            pipe.hincrby(part.counts, "cad:duplicate", 1)
            pipe.hset(part.freshness, mapping={"cad": now - 100 + number,
                                               "cad:seen": now - 10 + number})
            pipe.execute()
        for source in SOURCES:
            r.xgroup_create(part.raw_stream(source), CONSUMER_GROUP, id="0", mkstream=True)
        for entry in range(3):
            r.xadd(part.raw_stream("cad"), {EVENT_FIELD: f"e{entry}"})
        r.xreadgroup(CONSUMER_GROUP, f"reader-{number}", {part.raw_stream("cad"): ">"},
                     count=1)
    r.set(keys.partition(0).lease(), "consumer-a/1f", px=5000)
    r.set(keys.partition(2).lease(), "consumer-b/2e", px=5000)
    r.zadd(keys.consumers, {"consumer-a": now - 1, "consumer-b": now - 3})
    return calls


def test_status_sums_every_partition_and_shows_one_row_each(
        three: Settings, r: redis.Redis) -> None:
    """Totals over the three partitions (counts summed, dead letters merged, freshness the
    newest), one row per partition with its lease, pending and lag, and the consumers."""
    keys = three.keys
    now = time.time()
    calls = write_partition_state(r, keys, now)
    done = status(three, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)

    assert report["schema"] == 2
    live = report["live"]
    assert (live["open_calls"], live["closed_records"], live["units"]) == (12, 6, 3)
    letters = report["dead_letters"]
    assert (letters["in_stream"], letters["scanned"], letters["sampled"]) == (6, 6, False)
    assert letters["counted_by_code"] == {"not_json": 4, "invalid": 2}
    assert {(item["code"], item["count"]) for item in letters["by_code"]} == {
        ("not_json", 4), ("invalid", 2)}
    cad = next(row for row in report["feeds"] if row["source"] == "cad")
    assert (cad["applied"], cad["rejected"], cad["duplicate"]) == (60, 6, 3)
    assert cad["event_time"] == pytest.approx(now - 98)
    assert cad["seen"] == pytest.approx(now - 8)

    rows = report["by_partition"]
    assert [row["partition"] for row in rows] == [0, 1, 2]
    assert [row["key_prefix"] for row in rows] == [keys.partition(n).prefix for n in range(3)]
    assert [row["holder"] for row in rows] == ["consumer-a", None, "consumer-b"]
    assert 0 < rows[0]["expires_in_s"] <= 5 and rows[1]["expires_in_s"] is None
    assert [(row["pending"], row["lag"]) for row in rows] == [(1, 2)] * 3
    assert [row["open_calls"] for row in rows] == [len(calls[n]) for n in range(3)]
    assert [row["dead_letters"] for row in rows] == [1, 2, 3]
    streams = report["partitions"]
    assert [(row["partition"], row["name"]) for row in streams] == [
        (number, source) for number in range(3) for source in SOURCES]
    assert report["lease"]["holder"] == "consumer-a"
    assert [row["name"] for row in report["consumers"]] == ["consumer-a", "consumer-b"]

    text = status(three).stdout
    print(text)
    assert "Partitions (3, each applied by the holder of its lease)" in text
    assert "free - nobody applies its events" in text
    assert "consumers running: consumer-a" in text


# --- history --------------------------------------------------------------------------------

def add_partitioned(r: redis.Redis, keys: Keys, rows: list[dict[str, str]]) -> None:
    """Each record onto its call's partition's closed stream, one pipeline per partition."""
    grouped: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(partition_of(row["call_id"], keys.partitions), []).append(row)
    for number, part_rows in grouped.items():
        with r.pipeline(transaction=False) as pipe:
            for row in part_rows:
                pipe.xadd(keys.partition(number).closed, row, maxlen=CLOSED_MAXLEN,
                          approximate=True)
            pipe.execute()


def pandas_quantiles(rows: list[dict[str, str]]) -> list[float]:
    values = pd.to_numeric(pd.Series([row["response_s"] for row in rows]))
    return [float(values.quantile(0.5)), float(values.quantile(0.9))]


def test_history_writer_appends_every_partition_once_and_the_tail_merges_them(
        three: Settings, r: redis.Redis) -> None:
    """The writer keeps a position per partition, writes each closed record once (also
    across a restart), and a worker's files plus tail equal pandas over every record."""
    keys = three.keys
    first = records(300)
    add_partitioned(r, keys, first)
    assert all(r.xlen(part.closed) > 50 for part in keys.every_partition)
    with Writer(three):
        wait_for(lambda: manifest(three)["rows"] == 300, "300 rows from 3 partitions")
    written = manifest(three)
    assert written["last_ids"] == [
        r.xinfo_stream(part.closed)["last-generated-id"].decode()
        for part in keys.every_partition]
    assert written["last_id"] == written["last_ids"][0]

    later = records(40, first=300)
    add_partitioned(r, keys, later)  # in no file yet: every partition's tail
    store = HistoryStore(r, keys, folder(three), three.timezone, tail_limit=500)
    state = store.state()
    assert (state.file_rows, len(state.tail.table), state.tail.complete) == (300, 40, True)
    everything = first + later
    assert sorted(responses(store)) == sorted(float(row["response_s"]) for row in everything)
    with store.select(Selection(0, 2e9)) as query:
        total = query.period_stats().iloc[0]
    assert total["response_n"] == 340
    assert list(total["response_q"]) == pytest.approx(pandas_quantiles(everything), abs=1e-6)

    with Writer(three):
        wait_for(lambda: manifest(three)["rows"] == 340, "the tail written")
        time.sleep(0.5)  # a few more rounds over the quiet partitions: nothing again
    assert manifest(three)["rows"] == 340
    ids = store.closed_calls(0, 2e9)["call_id"]
    assert len(ids) == 340 and ids.nunique() == 340
    assert len(store.state().tail.table) == 0


def test_the_tail_limit_counts_every_partition(three: Settings, r: redis.Redis) -> None:
    """With the writer down the tail holds at most the limit over all partitions, and
    says it is cut."""
    add_partitioned(r, three.keys, records(120))
    small = HistoryStore(r, three.keys, folder(three), three.timezone, tail_limit=100)
    state = small.state()
    assert len(state.tail.table) == 100 and state.tail.complete is False
    assert len({partition for partition, *_ in state.tail.ids}) == PARTITIONS


# --- backfill -------------------------------------------------------------------------------

def partition_snapshot(r: redis.Redis, keys: Keys) -> list[tuple[Any, ...]]:
    return [(r.xrange(part.closed), sorted(r.smembers(part.closed_ids)),
             r.xrange(part.deadletter)) for part in keys.every_partition]


def assert_each_call_in_its_partition(r: redis.Redis, keys: Keys, calls: int) -> None:
    seen: Counter[int] = Counter()
    for number, part in enumerate(keys.every_partition):
        frame = closed_frame(r, part)
        assert {partition_of(call_id, PARTITIONS) for call_id in frame["call_id"]} == {number}
        assert {member.decode() for member in r.smembers(part.closed_ids)} == \
            set(frame["call_id"])
        seen[number] = len(frame)
    assert sum(seen.values()) == calls and all(seen[number] > 0 for number in range(3))


def test_backfill_puts_each_call_in_its_partition_and_a_rerun_loads_nothing(
        redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """Every SF call's record and closed id in its own partition; the rejected row's dead
    letter and the done set on the deployment's keys; a second run writes nothing."""
    keys = Keys(keys.prefix, PARTITIONS)  # the prefix is a hash tag on a cluster
    first = run(redis_url, keys, "sf_fire_calls", SF_CSV)
    assert (first.loaded, first.already_loaded) == (2406, 0)
    assert_each_call_in_its_partition(r, keys, 2406)
    assert [r.xlen(part.deadletter) for part in keys.every_partition] == [1, 0, 0]
    assert r.scard(keys.backfill_done("sf_fire")) == 2406 + 1
    before = partition_snapshot(r, keys)
    second = run(redis_url, keys, "sf_fire_calls", SF_CSV)
    assert (second.loaded, second.already_loaded) == (0, 2406)
    assert partition_snapshot(r, keys) == before


def test_backfill_worker_processes_know_the_partition_count(
        settings: Settings, r: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    """run_backfill's worker processes write into the settings' partitions."""
    three = replace(settings, partitions=PARTITIONS, shared_data_dir=SHARED_DATA)
    code = asyncio.run(run_backfill(three, MAPPINGS / "sf_fire_calls.toml", [SF_CSV],
                                    asyncio.Event(), workers=2))
    assert code == 0 and "calls                2,406" in capsys.readouterr().out
    assert_each_call_in_its_partition(r, three.keys, 2406)


def test_closed_records_skip_a_call_closed_in_its_partition(
        three: Settings, r: redis.Redis) -> None:
    """The seed's writer: a call its partition already closed is not written again."""
    keys = three.keys
    rows = records(30)
    closed_live = rows[7]["call_id"]
    r.sadd(keys.of_entity(closed_live).closed_ids, closed_live)
    summary = Summary()
    write_closed_records(r, keys, "seed", rows, summary)
    assert (summary.loaded, summary.already_loaded) == (29, 1)
    streams = [closed_frame(r, part) for part in keys.every_partition]
    loaded = pd.concat(streams)["call_id"]
    assert len(loaded) == 29 and closed_live not in set(loaded)
    assert np.array_equal(sorted(loaded), sorted(row["call_id"] for row in rows
                                                 if row["call_id"] != closed_live))
