"""Several consumers, one lease (issue 12): one applies at a time, in order; a standby takes
over from a dead holder and loses nothing; a holder that lost its lease commits nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.connections import connect
from streams.consumer import LEASED_READ, Decoded, Entry, PartitionConsumer, stream_entries
from streams.core.events import Event
from streams.core.keys import CONSUMER_GROUP, Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.lease import LeaseLost
from tests.browser.conftest import settings_env
from tests.conftest import TIMEOUT_SCALE
from tests.eventgen import generate_events
from tests.integration import test_consumer
from tests.integration.test_consumer import (
    apply_sequence,
    drained,
    live_state,
    pending_count,
    publish_events,
    settings_for,
)

other_prefix = test_consumer.other_prefix  # a fixture: fresh prefixes for reference runs

LEASE_MS = 1500
"""Short, so a takeover in these tests takes about two seconds, not the default's six."""
DEADLINE = 60 * TIMEOUT_SCALE


def many_events() -> list[Event]:
    """A few thousand events: calls with whole lifecycles, unit tracks, alerts, shares."""
    return generate_events(31, calls=300, units=10, fixes_per_unit=100, alerts=20, shares=10)


@dataclasses.dataclass
class Consumers:
    """``python -m streams consume`` subprocesses named c0, c1, ..., their stderr in files."""

    settings: Settings
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)
    stopped: set[str] = dataclasses.field(default_factory=set)

    def start(self, name: str) -> None:
        env = {**os.environ, **settings_env(self.settings), "PYTHONPATH": str(PROJECT_ROOT),
               "PYTHONUNBUFFERED": "1"}
        with (self.logs / f"{name}.log").open("wb") as output:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "streams", "consume", "--name", name],
                cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self) -> None:
        for name, process in self.processes.items():
            if name not in self.stopped:
                assert process.poll() is None, f"{name} exited:\n{self.log(name)[-2000:]}"

    def stop(self, name: str) -> int:
        process = self.processes[name]
        self.stopped.add(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(20 * TIMEOUT_SCALE)

    def counters(self, name: str) -> dict[str, int]:
        """The counters a stopped consumer logged on its way out."""
        found = re.search(r"consumer \S+ stopped: (\{.*\})", self.log(name))
        assert found, self.log(name)[-2000:]
        return dict(json.loads(found.group(1).replace("'", '"')))


@contextmanager
def consumers(settings: Settings, tmp_path: Path, count: int) -> Iterator[Consumers]:
    group = Consumers(dataclasses.replace(settings, consumer_lease_ms=LEASE_MS,
                                          consumer_batch=50), tmp_path)
    try:
        for number in range(count):
            group.start(f"c{number}")
        yield group
    finally:
        for process in group.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()


def wait_for(condition: Callable[[], Any], what: str, group: Consumers | None = None,
             timeout: float = DEADLINE, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if group is not None:
            group.alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


def holder_of(r: redis.Redis, keys: Keys) -> str | None:
    """The consumer name holding the lease (its value is name/random), or None."""
    value = r.get(keys.lease())
    return None if value is None else value.decode().rpartition("/")[0]


def roles(r: redis.Redis, keys: Keys, names: list[str]) -> list[str | None]:
    bodies = [r.get(keys.health(name)) for name in names]
    return [json.loads(body)["lease"] if body else None for body in bodies]


def frozen_holder(r: redis.Redis, keys: Keys, group: Consumers) -> tuple[str, int] | None:
    """SIGSTOP the holder; if it has a batch read but not applied, leave it stopped and
    return (its name, entries pending), else let it go on and return None."""
    holder = holder_of(r, keys)
    if holder not in group.processes:
        return None
    process = group.processes[holder]
    process.send_signal(signal.SIGSTOP)
    pending = pending_count(r, keys)
    if pending and holder_of(r, keys) == holder:
        return holder, pending
    process.send_signal(signal.SIGCONT)
    return None


def hash_of(r: redis.Redis, key: str) -> dict[Any, Any]:
    return dict(r.hgetall(key))


def reference_run(settings: Settings, r: redis.Redis, prefix: str,
                  events: list[Event]) -> Keys:
    """One undisturbed in-process consumer applying ``events`` under its own prefix."""
    reference = settings_for(settings, prefix)
    counters = apply_sequence(reference, r, events)
    assert counters.rejected == 0 and counters.applied == len(events)
    return reference.keys


def test_three_consumers_apply_in_order_like_one(
        settings: Settings, r: redis.Redis, keys: Keys, tmp_path: Path,
        other_prefix: Callable[[], str]) -> None:
    """Three consumer processes running while a few thousand events arrive: one holds the
    lease, the others stand by; the live state equals a single consumer's, nothing is
    rejected, each event is applied once, and a clean stop hands the lease on."""
    events = many_events()
    names = ["c0", "c1", "c2"]
    with consumers(settings, tmp_path, 3) as group:
        wait_for(lambda: sorted(map(str, roles(r, keys, names))) == [
            "holder", "standby", "standby"], "one holder and two standbys", group)
        for start in range(0, len(events), 250):  # arriving while they run
            asyncio.run(publish_events(settings.redis_url or "", keys,
                                       events[start:start + 250]))
        wait_for(lambda: drained(r, keys), "the streams to drain", group)
        holder = holder_of(r, keys)
        assert holder in names
        assert group.stop(holder) == 0
        assert holder_of(r, keys) != holder, "a clean stop must release the lease"
        wait_for(lambda: holder_of(r, keys) not in (None, holder), "a standby to take over",
                 group)
        assert all(group.stop(name) == 0 for name in names)
    counters = {name: group.counters(name) for name in names}
    assert sum(c["applied"] for c in counters.values()) == len(events)
    assert all(c["rejected"] == 0 for c in counters.values())
    assert "holds lease" in group.log(holder)
    assert sum("is standby" in group.log(name) for name in names) >= 2
    assert r.xlen(keys.deadletter) == 0
    reference = reference_run(settings, r, other_prefix(), events)
    assert live_state(r, keys) == live_state(r, reference)
    assert hash_of(r, keys.counts) == hash_of(r, reference.counts)


def test_kill_9_of_the_holder_loses_nothing(
        settings: Settings, r: redis.Redis, keys: Keys, tmp_path: Path,
        other_prefix: Callable[[], str]) -> None:
    """The holder is SIGKILLed with a batch read but not applied: a standby takes the lease
    within its TTL and a little, claims that batch, applies it before newer entries, and
    the final state and counts equal an undisturbed run's, with no dead letters."""
    events = many_events()
    asyncio.run(publish_events(settings.redis_url or "", keys, events))
    with consumers(settings, tmp_path, 3) as group:
        wait_for(lambda: sum(int(v) for v in r.hvals(keys.counts)) >= 500, "some batches",
                 group, poll=0.001)
        victim, pending = wait_for(lambda: frozen_holder(r, keys, group),
                                   "the holder frozen with a batch in flight", group, poll=0.001)
        group.stopped.add(victim)
        group.processes[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        group.processes[victim].wait()
        assert pending_count(r, keys) == pending
        heir = wait_for(lambda: holder_of(r, keys) not in (None, victim) and holder_of(r, keys),
                        "a standby to take over", group, poll=0.01)
        took = time.monotonic() - killed_at
        survivors = [name for name in group.processes if name != victim]
        wait_for(lambda: drained(r, keys), "the streams to drain", group)
        assert all(group.stop(name) == 0 for name in survivors)
    assert took < LEASE_MS / 1000 + 5 * TIMEOUT_SCALE, f"takeover took {took:.1f} s"
    assert heir in survivors
    assert pending > 0, "the kill should have landed with a batch read but not applied"
    counters = [group.counters(name) for name in survivors]
    assert sum(c["reclaimed"] for c in counters) >= pending
    assert all(c["rejected"] == 0 for c in counters)
    assert r.xlen(keys.deadletter) == 0
    reference = reference_run(settings, r, other_prefix(), events)
    assert live_state(r, keys) == live_state(r, reference)
    assert hash_of(r, keys.counts) == hash_of(r, reference.counts)
    assert sum(int(v) for v in r.hvals(keys.counts)) == len(events)
    names = {info["name"].decode() for info in r.xinfo_consumers(keys.raw_stream("cad"),
                                                                  CONSUMER_GROUP)}
    assert victim not in names, "the dead holder's name stays in the group"


class TakenOverMidBatch(PartitionConsumer):
    """A consumer whose lease passes to another between its check and its EXEC (as when it
    is paused mid-batch past the TTL and a standby acquires)."""

    thief: redis.Redis

    async def plan(self, pipe: Any, wanted: dict[str, set[str]], decoded: Decoded) -> Any:
        planned = await super().plan(pipe, wanted, decoded)
        self.thief.set(self.keys.lease(), "other/0000", px=60_000)
        return planned


async def read_as(consumer: PartitionConsumer, client: Any, count: int) -> list[Entry]:
    """Entries read for ``consumer`` straight from the group (now pending on it)."""
    reply = await client.xreadgroup(CONSUMER_GROUP, consumer.name,
                                    {stream: ">" for stream in consumer.streams.values()},
                                    count=count)
    return stream_entries(reply, consumer.source_of_stream)


@pytest.mark.parametrize("when", ["before_the_batch", "during_the_batch"])
def test_a_consumer_that_lost_its_lease_commits_nothing(
        when: str, settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """A holder whose lease another consumer took (before its batch, or between reading
    state and EXEC) raises LeaseLost: no state, count or ack is written, its entries stay
    pending for the new holder, and its fenced read and pending-claim take nothing."""
    events = generate_events(37, calls=10, units=2, fixes_per_unit=3, alerts=1, shares=1)
    asyncio.run(publish_events(settings.redis_url or "", keys, events))

    async def go() -> int:
        client = await connect(settings.redis_url or "")
        try:
            consumer = TakenOverMidBatch(settings, "stale")
            consumer.thief = r
            await consumer.ensure_groups(client)
            assert await consumer.take_lease(client)
            entries = await read_as(consumer, client, 5)
            if when == "before_the_batch":
                r.set(keys.lease(), "other/0000", px=60_000)
            with pytest.raises(LeaseLost):
                await consumer.apply_batch(client, entries)
            assert consumer.counters.watch_retries == (when == "during_the_batch")
            streams = list(consumer.streams.values())
            reply = await client.eval(LEASED_READ, 1 + len(streams), keys.lease(), *streams,
                                      consumer.lease.token, CONSUMER_GROUP, consumer.name, 100)
            assert reply is None  # the fenced read takes no new entry
            consumer.lease.valid_until = time.monotonic() + 60  # as if it still believed
            with pytest.raises(LeaseLost):  # claims its own pending, cannot apply them
                await consumer.apply_while_holding(client, asyncio.Event())
            return len(entries)
        finally:
            await client.aclose()

    read = asyncio.run(go())
    assert r.hlen(keys.calls) == r.hlen(keys.units) == r.hlen(keys.counts) == 0
    assert r.xlen(keys.changes) == 0
    assert pending_count(r, keys) == read < len(events)
    assert r.get(keys.lease()) == b"other/0000"
