"""Partitioned streams (issue 12): N consumers share P partitions by lease and leave the
live state one consumer leaves over one partition, in the interleavings these tests make:
events arriving while consumers join, leave, stop cleanly or are killed with SIGKILL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.clients import async_client
from streams.consumer import feed_clocks, prune, run_consumer
from streams.core.events import Event, ShotAlert
from streams.core.keys import Keys, lease_owner
from streams.core.partitions import partition_of
from streams.core.settings import PROJECT_ROOT, Settings
from streams.partition_count import PartitionCountMismatch, record_partition_count
from tests.browser.conftest import settings_env
from tests.conftest import TIMEOUT_SCALE
from tests.eventgen import START, generate_events
from tests.integration import test_consumer
from tests.integration.test_consumer import (
    apply_sequence,
    drained,
    live_state,
    pending_count,
    publish_events,
)
from tests.integration.test_consumer_lease import (
    LEASE_MS,
    consumers,
    hash_of,
    reference_run,
    wait_for,
)

other_prefix = test_consumer.other_prefix  # a fixture: fresh prefixes for reference runs

PARTITIONS = 4
DEADLINE = 60 * TIMEOUT_SCALE


@pytest.fixture
def parted(settings: Settings) -> Settings:
    """The test's settings with four partitions and a short lease."""
    return dataclasses.replace(settings, partitions=PARTITIONS, consumer_lease_ms=LEASE_MS,
                               consumer_batch=50)


def many_events(seed: int = 41) -> list[Event]:
    return generate_events(seed, calls=300, units=10, fixes_per_unit=100, alerts=20,
                           shares=10)


def merged_state(r: redis.Redis, keys: Keys) -> dict[str, Any]:
    """``live_state`` of every partition merged: what one partition would hold."""
    merged: dict[str, Any] = {}
    for part in keys.every_partition:
        for name, value in live_state(r, part).items():
            if isinstance(value, dict) and name != "queues":
                merged.setdefault(name, {}).update(value)
            elif name == "queues":
                for queue, members in value.items():
                    merged.setdefault(name, {}).setdefault(queue, []).extend(members)
            else:
                merged.setdefault(name, []).extend(value)
    for name, value in merged.items():
        if name == "queues":
            merged[name] = {queue: sorted(members) for queue, members in value.items()}
        elif isinstance(value, list):
            merged[name] = sorted(value)
    return merged


def one_partition_state(r: redis.Redis, keys: Keys) -> dict[str, Any]:
    """``live_state`` of a one-partition run, in the merged form's order."""
    return merged_state(r, Keys(keys.prefix, 1))


def summed_counts(r: redis.Redis, keys: Keys) -> dict[bytes, int]:
    total: dict[bytes, int] = {}
    for part in keys.every_partition:
        for name, value in hash_of(r, part.counts).items():
            total[name] = total.get(name, 0) + int(value)
    return total


def all_drained(r: redis.Redis, keys: Keys) -> bool:
    return all(drained(r, part) for part in keys.every_partition)


def holders(r: redis.Redis, keys: Keys) -> list[str | None]:
    """Each partition's lease holder by name (None: nobody holds it)."""
    values = [r.get(part.lease()) for part in keys.every_partition]
    return [None if value is None else lease_owner(value.decode()) for value in values]


def spread(r: redis.Redis, keys: Keys, names: Sequence[str]) -> bool:
    """Every partition held, by the named consumers, none holding more than its share."""
    held = holders(r, keys)
    share = -(-len(held) // len(names))
    return all(held) and set(held) <= set(names) and all(
        held.count(name) <= share for name in names)


def assert_equals_one_consumer(r: redis.Redis, keys: Keys, settings: Settings,
                               events: list[Event], prefix: str) -> None:
    """State and counts over the partitions equal one consumer's over one partition, each
    event applied once, nothing dead-lettered, and each entity in its own partition."""
    reference = reference_run(dataclasses.replace(settings, partitions=1), r, prefix, events)
    assert merged_state(r, keys) == one_partition_state(r, reference)
    assert summed_counts(r, keys) == {name: int(value) for name, value
                                      in hash_of(r, reference.counts).items()}
    assert sum(summed_counts(r, keys).values()) == len(events)
    assert all(r.xlen(part.deadletter) == 0 for part in keys.every_partition)
    for number, part in enumerate(keys.every_partition):
        for call_id in r.hkeys(part.calls):
            assert partition_of(call_id.decode(), keys.partitions) == number


def test_events_go_to_their_entitys_partition(parted: Settings, r: redis.Redis) -> None:
    """Every event of one entity is on one partition's stream, and all four are used."""
    keys = parted.keys
    events = generate_events(3, calls=40, units=6, fixes_per_unit=5, alerts=4, shares=2)
    asyncio.run(publish_events(parted.redis_url or "", keys, events))
    lengths = [sum(r.xlen(part.raw_stream(source)) for source in ("cad", "avl",
               "shotspotter", "mutualink") if r.exists(part.raw_stream(source)))
               for part in keys.every_partition]
    assert sum(lengths) == len(events) and all(lengths)


def test_three_consumers_over_four_partitions_equal_one(
        parted: Settings, r: redis.Redis, tmp_path: Path,
        other_prefix: Callable[[], str]) -> None:
    """Three consumer processes split four partitions (none above its share) while a few
    thousand events arrive; the live state equals one consumer's over one partition."""
    keys = parted.keys
    events = many_events()
    names = ["c0", "c1", "c2"]
    with consumers(parted, tmp_path, 3) as group:
        wait_for(lambda: spread(r, keys, names), "the partitions spread", group)
        for start in range(0, len(events), 250):
            asyncio.run(publish_events(parted.redis_url or "", keys, events[start:start + 250]))
        wait_for(lambda: all_drained(r, keys), "the streams to drain", group)
        assert len(set(holders(r, keys))) >= 2, "the partitions should be split"
        assert all(group.stop(name) == 0 for name in names)
    assert holders(r, keys) == [None] * PARTITIONS, "a clean stop releases every lease"
    counters = [group.counters(name) for name in names]
    assert sum(c["applied"] for c in counters) == len(events)
    assert_equals_one_consumer(r, keys, parted, events, other_prefix())


def test_a_joining_consumer_takes_its_share_and_a_leaving_one_hands_it_back(
        parted: Settings, r: redis.Redis, tmp_path: Path) -> None:
    """One consumer holds every partition; a second one joining gets half within a few
    lease periods; the first one stopping cleanly hands its half back at once."""
    keys = parted.keys
    with consumers(parted, tmp_path, 1) as group:
        wait_for(lambda: holders(r, keys) == ["c0"] * PARTITIONS, "c0 to hold all", group)
        group.start("c1")
        wait_for(lambda: sorted(map(str, holders(r, keys))) == ["c0", "c0", "c1", "c1"],
                 "c1 to take half", group)
        assert group.stop("c0") == 0
        stopped_at = time.monotonic()
        wait_for(lambda: holders(r, keys) == ["c1"] * PARTITIONS, "c1 to hold all", group)
        handed = time.monotonic() - stopped_at
        assert group.stop("c1") == 0
    assert handed < LEASE_MS / 1000 + 3 * TIMEOUT_SCALE, f"the hand-back took {handed:.1f} s"
    assert "to a consumer that has fewer" in group.log("c0")


def frozen_holder(r: redis.Redis, keys: Keys, group: Any) -> tuple[str, int] | None:
    """SIGSTOP the holder of partition 0; if it has entries read but not applied there,
    leave it stopped and return (its name, those entries), else let it go on."""
    holder = holders(r, keys)[0]
    if holder not in group.processes:
        return None
    process = group.processes[holder]
    process.send_signal(signal.SIGSTOP)
    pending = pending_count(r, keys.partition(0))
    if pending and holders(r, keys)[0] == holder:
        return holder, pending
    process.send_signal(signal.SIGCONT)
    return None


def test_kill_9_of_a_holder_loses_nothing_and_doubles_nothing(
        parted: Settings, r: redis.Redis, tmp_path: Path,
        other_prefix: Callable[[], str]) -> None:
    """A consumer SIGKILLed with a batch read but not applied: its partitions pass to the
    others within the lease's TTL, which apply that batch first; the final state equals
    one consumer's, each event applied once."""
    keys = parted.keys
    events = many_events(43)
    asyncio.run(publish_events(parted.redis_url or "", keys, events))
    with consumers(parted, tmp_path, 3) as group:
        wait_for(lambda: sum(summed_counts(r, keys).values()) >= 300, "some batches", group,
                 poll=0.001)
        victim, pending = wait_for(lambda: frozen_holder(r, keys, group),
                                   "a holder frozen with a batch in flight", group, poll=0.001)
        group.stopped.add(victim)
        group.processes[victim].send_signal(signal.SIGKILL)
        group.processes[victim].wait()
        survivors = [name for name in group.processes if name != victim]
        wait_for(lambda: all_drained(r, keys), "the streams to drain", group)
        assert victim not in holders(r, keys)
        assert all(group.stop(name) == 0 for name in survivors)
    assert pending > 0
    counters = [group.counters(name) for name in survivors]
    assert sum(c["reclaimed"] for c in counters) >= pending
    assert_equals_one_consumer(r, keys, parted, events, other_prefix())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_consumers_joining_and_leaving_at_random_equal_one(
        seed: int, parted: Settings, r: redis.Redis,
        other_prefix: Callable[[], str]) -> None:
    """In one event loop: events arrive in chunks of random size while consumers start
    and stop cleanly at random moments (always one running); the state equals one's."""
    keys = parted.keys
    events = generate_events(seed, calls=120, units=6, fixes_per_unit=30, alerts=8, shares=4)
    plan = random.Random(seed)

    async def go() -> None:
        running: dict[str, tuple[asyncio.Event, asyncio.Task[Any]]] = {}

        def start(name: str) -> None:
            stop = asyncio.Event()
            running[name] = (stop, asyncio.create_task(run_consumer(parted, name, stop)))

        async def stop_one() -> None:
            name = plan.choice(sorted(running))
            stop, task = running.pop(name)
            stop.set()
            await asyncio.wait_for(task, DEADLINE)

        start("c0")
        made, at = 1, 0
        while at < len(events):
            size = plan.randint(1, 120)
            await publish_events(parted.redis_url or "", keys, events[at:at + size])
            at += size
            move = plan.random()
            if move < 0.3 and len(running) < 3:
                start(f"c{made}")
                made += 1
            elif move < 0.45 and len(running) > 1:
                await stop_one()
            await asyncio.sleep(plan.uniform(0, 0.3))
        deadline = time.monotonic() + DEADLINE
        while not all_drained(r, keys):
            assert time.monotonic() < deadline, "the consumers did not drain the streams"
            await asyncio.sleep(0.05)
        while running:
            await stop_one()

    asyncio.run(go())
    assert_equals_one_consumer(r, keys, parted, events, other_prefix())


def test_a_consumer_refuses_another_partition_count(parted: Settings, r: redis.Redis) -> None:
    """The deployment's data was built with four partitions: a consumer set to two
    refuses to start and says why, touching nothing."""
    async def go(settings: Settings) -> None:
        client = async_client(settings.redis_url or "")
        try:
            await record_partition_count(client, settings.keys)
        finally:
            await client.aclose()

    asyncio.run(go(parted))
    with pytest.raises(PartitionCountMismatch, match="has 4 partitions"):
        asyncio.run(go(dataclasses.replace(parted, partitions=2)))
    assert r.get(parted.keys.partition_count) == b"4"


def test_a_deployment_from_before_partitions_counts_as_one(parted: Settings,
                                                           r: redis.Redis) -> None:
    """Live state written before the count was recorded was built with one partition: a
    consumer set to four records one and refuses, instead of stranding that state."""
    events = generate_events(5, calls=5, units=2, fixes_per_unit=2, alerts=0, shares=0)
    one = dataclasses.replace(parted, partitions=1)
    apply_sequence(one, r, events)
    r.delete(parted.keys.partition_count)  # as a deployment from before the count was kept

    async def go() -> None:
        client = async_client(parted.redis_url or "")
        try:
            await record_partition_count(client, parted.keys)
        finally:
            await client.aclose()

    with pytest.raises(PartitionCountMismatch, match="has 1 partitions"):
        asyncio.run(go())
    assert r.get(parted.keys.partition_count) == b"1"


@pytest.mark.parametrize("command", [["consume", "--name", "c9"], ["simulate"], ["history"]])
def test_every_process_refuses_another_partition_count(
        command: list[str], parted: Settings, r: redis.Redis, tmp_path: Path) -> None:
    """Consumers, publishers and readers alike exit with a configuration error naming
    both counts when DISPATCH_PARTITIONS is not the deployment's."""
    r.set(parted.keys.partition_count, 4)
    two = dataclasses.replace(parted, partitions=2, data_dir=tmp_path / "var")
    env = {**os.environ, **settings_env(two), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "streams", *command], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "this deployment has 4 partitions" in done.stderr
    assert "DISPATCH_PARTITIONS is 2" in done.stderr
    assert not any(r.exists(part.raw_stream("avl")) for part in two.keys.every_partition)


def test_a_quiet_partition_ages_its_alerts_by_the_deployments_clock(
        parted: Settings, r: redis.Redis) -> None:
    """An alert alone in its partition leaves the active set once the gunshot feed's clock
    (any partition's newest alert) is an hour past it, not at its partition's next alert."""
    keys = parted.keys
    when = START + timedelta(days=2)
    early, late = (next(f"A{n}" for n in range(1000)
                        if partition_of(f"A{n}", PARTITIONS) == number) for number in (0, 1))
    alerts = [ShotAlert(event_id=f"e-{alert_id}", event_time=at, alert_id=alert_id,
                        alert_type="single", lat=41.76, lon=-72.68, detected_time=at)
              for alert_id, at in ((early, when), (late, when + timedelta(hours=2)))]
    apply_sequence(dataclasses.replace(parted, max_event_age_seconds=10 * 365 * 86400),
                   r, alerts)

    async def prune_partition_0() -> None:
        client = async_client(parted.redis_url or "")
        try:
            await prune(client, keys.partition(0),
                        clocks=await feed_clocks(client, keys.every_partition))
        finally:
            await client.aclose()

    assert r.zrange(keys.partition(0).alerts_active, 0, -1) == [early.encode()]
    asyncio.run(prune_partition_0())
    assert r.zrange(keys.partition(0).alerts_active, 0, -1) == []
    assert r.zrange(keys.partition(1).alerts_active, 0, -1) == [late.encode()]
