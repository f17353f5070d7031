"""The dashboard on a real Redis 7 Cluster (3 masters, 3 replicas), chosen by the URL: the
consumer builds the same live state as on one server, survives its master's failover, and
the read API reads it back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from dashboard import auth
from dashboard.actionstore import ActionStore
from dashboard.readapi import LiveReader
from streams.clients import sync_client
from streams.connections import RETRYABLE, connect
from streams.core.actions import Action, Actor
from streams.core.events import Event
from streams.core.keys import Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.publish import publish
from tests import redis_cluster
from tests.browser.conftest import settings_env
from tests.conftest import TIMEOUT_SCALE
from tests.eventgen import generate_events
from tests.integration import test_push
from tests.integration.test_consumer import (
    consume_until_drained,
    delete_prefix,
    drained,
    live_state,
    publish_events,
)
from tests.integration.test_status import status
from tests.redis_cluster import Cluster, wait_for

DEADLINE = 60 * TIMEOUT_SCALE
EVENTS = generate_events(seed=1207, calls=300, units=12, fixes_per_unit=60, alerts=20,
                         shares=10)
CHUNK = 100

pytestmark = [
    pytest.mark.skipif(not redis_cluster.available(),
                       reason=f"needs {redis_cluster.REDIS_SERVER} and {redis_cluster.REDIS_CLI} "
                              "(Debian's redis-server 7) for a cluster"),
    pytest.mark.standalone_only("starts its own cluster (and kills a master) to compare with "
                                "a run on the session's one server"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Six redis-server 7 nodes on 127.0.0.1 made one cluster; every node killed at the end."""
    with redis_cluster.running(tmp_path_factory.mktemp("cluster"),
                               20000 + os.getpid() % 5000 * 2) as made:
        yield made


@pytest.fixture(scope="module")
def reference(redis_url: str) -> dict[str, Any]:
    """Live state and counts after EVENTS on one (standalone) Redis, undisturbed."""
    prefix = f"test-clusterref-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    settings = Settings(redis_url=redis_url, key_prefix=prefix, consumer_block_ms=100,
                        claim_idle_ms=500)

    async def go() -> None:
        await publish_events(redis_url, Keys(prefix), EVENTS)
        await consume_until_drained(settings, client)

    asyncio.run(go())
    state = outcome(client, Keys(prefix))
    delete_prefix(client, prefix)
    client.close()
    return state


def outcome(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """Live state (prefix-free), applied counts per source, and the dead letters."""
    counts = {key.decode(): int(value) for key, value in client.hgetall(keys.counts).items()
              if b":" not in key}
    return {"state": live_state(client, keys), "applied": counts,
            "deadletters": client.xlen(keys.deadletter)}


def without_clocks(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without what differs between two runs: its stream id, when feeds were seen."""
    assert snapshot.pop("last_id")
    for feed in snapshot["freshness"].values():
        feed.pop("seen")
    return snapshot


def cluster_settings(url: str) -> Settings:
    return Settings(redis_url=url, key_prefix=f"test-{uuid.uuid4().hex[:10]}",
                    consumer_block_ms=100, claim_idle_ms=500)


@dataclass
class ConsumerProcess:
    """``python -m streams consume`` on the cluster, stopped (SIGTERM, then SIGKILL)."""

    settings: Settings
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ConsumerProcess:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "consume", "--name", "c1"], env=env,
                cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(20 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wait_drained(self, client: redis.Redis, keys: Keys) -> None:
        def done() -> bool:
            assert self.process is not None and self.process.poll() is None, \
                self.log.read_text()[-3000:]
            return drained(client, keys)
        wait_for(done, f"the consumer to drain the streams:\n{self.log.read_text()[-2000:]}")


async def replicated(client: Any, keys: Keys) -> bool:
    """WAIT until the slot's master's replicas (if it has any left) have our writes."""
    node = client.get_node_from_key(keys.calls)
    replicas = (await client.info("replication", target_nodes=node))["connected_slaves"]
    return replicas == 0 or await client.execute_command(
        "WAIT", replicas, 2000, target_nodes=node) >= replicas


async def publish_confirmed(url: str, keys: Keys, events: Sequence[Event],
                            after_chunk: Callable[[int], None] = lambda _: None) -> int:
    """Publish in chunks, each confirmed on a replica (WAIT, on every partition's master)
    before the next; a chunk that fails or is not confirmed is published again (its events'
    ids dedupe). Returns retries."""
    client, retries = await connect(url), 0
    try:
        for number, start in enumerate(range(0, len(events), CHUNK)):
            deadline = time.monotonic() + DEADLINE
            while True:
                try:
                    await publish(client, keys, events[start:start + CHUNK])
                    if all([await replicated(client, part) for part in keys.every_partition]):
                        break
                except (*RETRYABLE, redis.RedisError):
                    await client.aclose()
                    client = await connect(url)
                retries += 1
                assert time.monotonic() < deadline, "could not publish through the failover"
                await asyncio.sleep(0.2)
            after_chunk(number)
    finally:
        await client.aclose()
    return retries


def test_consumer_on_cluster_builds_the_same_state(cluster: Cluster, reference: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """`streams consume` with a redis+cluster:// URL applies the events to the same live
    state (every key under the prefix's hash tag, one slot) as on one server."""
    settings = cluster_settings(cluster.url())
    keys = Keys(settings.keys_prefix)
    assert keys.prefix == "{" + settings.key_prefix + "}"
    client = sync_client(settings.redis_address)
    try:
        with ConsumerProcess(settings, tmp_path / "consumer.log") as consumer:
            asyncio.run(publish_confirmed(settings.redis_address, keys, EVENTS))
            consumer.wait_drained(client, keys)
        assert outcome(client, keys) == reference
        slots = {client.keyslot(key) for key in client.scan_iter(match=f"{keys.prefix}:*")}
        assert len(slots) == 1
        # The operator's view reads the same deployment through the cluster client.
        done = status(settings, "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["redis"]["key_prefix"] == keys.prefix
        assert report["live"]["open_calls"] == client.zcard(keys.calls_open)
        assert report["lease"]["holder"] is None  # released on the clean stop
    finally:
        client.close()


def test_read_api_reads_the_cluster(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    """LiveReader (the web's reader) reads open calls and a snapshot through the cluster
    client, the same as from one server."""
    events = EVENTS[: len(EVENTS) // 2]
    settings = cluster_settings(cluster.url())
    keys = Keys(settings.keys_prefix)
    client = sync_client(settings.redis_address)
    single = Settings(redis_url=redis_url, key_prefix=f"test-{uuid.uuid4().hex[:10]}",
                      consumer_block_ms=100, claim_idle_ms=500)
    single_client = redis.Redis.from_url(redis_url)
    try:
        with ConsumerProcess(settings, tmp_path / "consumer.log") as consumer:
            asyncio.run(publish_confirmed(settings.redis_address, keys, events))
            consumer.wait_drained(client, keys)

        async def reference_run() -> None:
            await publish_events(redis_url, Keys(single.keys_prefix), events)
            await consume_until_drained(single, single_client)

        asyncio.run(reference_run())
        on_cluster = LiveReader(client, keys)
        on_one = LiveReader(single_client, Keys(single.keys_prefix))
        assert on_cluster.open_calls() == on_one.open_calls()
        assert on_cluster.open_calls(), "the events leave calls open"
        assert on_cluster.queue_counts() == on_one.queue_counts()
        # the consumer's health key, found by a SCAN of every master
        assert [name for name, _, _ in on_cluster.heartbeats()] == ["c1"]
        snapshot, expected = (without_clocks(reader.snapshot()) for reader in (on_cluster, on_one))
        assert snapshot == expected
    finally:
        delete_prefix(single_client, single.key_prefix)
        single_client.close()
        client.close()


def test_web_writes_on_the_cluster(cluster: Cluster) -> None:
    """The web's scripts and transactions (users, sign-in limits, sessions, a tablet claim
    under WATCH) run through the cluster client on the deployment's slot."""
    settings = dataclasses.replace(cluster_settings(cluster.url()), secret_key="s" * 32)
    services = auth.Auth.open(settings)
    client, keys = services.users.client, services.keys
    try:
        services.users.add("cso-north", "cso", "cluster-password-1", district="North")
        verdict = services.gate.admit("form-1", "cso-north", "127.0.0.1", None)
        assert verdict.reason == "ok"
        record = services.users.authenticate("cso-north", "cluster-password-1")
        assert record is not None
        services.gate.succeeded(verdict)
        secret, session = services.sessions.create(record.user, "password", "127.0.0.1", "t")
        loaded = services.sessions.load(secret, active=True)  # the touch script
        assert loaded is not None and (loaded.sid, loaded.user) == (session.sid, record.user)
        call = {"call_id": "C1", "category": "noise", "status": "pending", "district": "North",
                "neighborhood": "Blue Hills", "priority": 3, "received_time": 1.0e9,
                "applied": ["e1"]}
        client.hset(keys.calls, "C1", json.dumps(call))
        store = ActionStore(client, keys)
        claim = Action(id=uuid.uuid4().hex, call_id="C1", kind="claim")
        answer, repeated = store.apply(claim, Actor("cso-north", "cso", "North"))
        assert (answer["status"], repeated) == ("applied", False)
        assert store.apply(claim, Actor("cso-north", "cso", "North"))[1] is True
        assert services.sessions.end(session.sid, "signed_out")
        assert services.sessions.load(secret, active=True) is None
        slots = {client.keyslot(key) for key in client.scan_iter(match=f"{keys.prefix}:*")}
        assert len(slots) == 1
    finally:
        client.close()


def test_push_serves_pages_from_the_cluster(cluster: Cluster) -> None:
    """The push service snapshots the cluster's live state for a signed-in page and then
    streams it the changes the consumer writes (its blocking reads on the changes and
    revocation streams go through the cluster client)."""
    settings = dataclasses.replace(cluster_settings(cluster.url()), secret_key=test_push.SECRET,
                                   push_host="127.0.0.1")
    keys = Keys(settings.keys_prefix)
    client = sync_client(settings.redis_address)
    store = test_push.session_store(client, keys)
    push = test_push.PushThread(settings).start()
    try:
        newest = test_push.seed_state(client, keys)
        with test_push.open_client(push.port, store=store) as page:
            snapshot = test_push.receive(page)
            assert (snapshot["type"], snapshot["last_id"]) == ("snapshot", newest)
            assert [call["call_id"] for call in snapshot["calls"]] == ["C1", "C2"]
            test_push.write_changes(client, keys, [test_push.call_change(n) for n in range(5)])
            changes, _ = test_push.collect_changes(page, 5)
        assert [change["id"] for change in changes] == [f"C{n}" for n in range(5)]
    finally:
        push.stop()
        client.close()


def test_master_failover_loses_and_doubles_nothing(cluster: Cluster, reference: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """kill -9 of the master owning the deployment's slot while events are published: its
    replica is promoted, the consumer reconnects, and the final state equals the reference
    (no dead letters, every event applied once)."""
    probe = cluster_settings(cluster.url())
    victim = cluster.owner(Keys(probe.keys_prefix).calls)
    settings = dataclasses.replace(probe, redis_url=cluster.url(avoid=victim))
    keys = Keys(settings.keys_prefix)
    replica = next(node["port"] for node in cluster.nodes()
                   if node["master"] == next(n["id"] for n in cluster.nodes()
                                             if n["port"] == victim))
    client = sync_client(settings.redis_address)
    applied_at_kill: list[int] = []

    def applied() -> int:
        return sum(outcome(client, keys)["applied"].values())

    def kill_master_once(chunk: int) -> None:
        if chunk == 8:  # once the consumer is applying: it must live through the failover
            wait_for(lambda: applied() > 0, "the consumer's first batch")
            applied_at_kill.append(applied())
            cluster.processes[victim].kill()
            cluster.processes[victim].wait()

    try:
        with ConsumerProcess(settings, tmp_path / "consumer.log") as consumer:
            asyncio.run(publish_confirmed(settings.redis_address, keys, EVENTS,
                                                    kill_master_once))
            wait_for(lambda: cluster.owner(keys.calls) == replica, "the replica's promotion")
            consumer.wait_drained(client, keys)
        assert 0 < applied_at_kill[0] < len(EVENTS)
        assert outcome(client, keys) == reference
    finally:
        client.close()
