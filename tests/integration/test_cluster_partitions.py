"""Push, the read API and tablet actions over 3 partitions on a real Redis 7 Cluster: each
partition's keys are one hash tag, so every MULTI stays in one slot, and partitions land in
different slots."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from pathlib import Path

import redis

from dashboard.actionstore import ActionStore
from dashboard.readapi import LiveReader
from streams.clients import sync_client
from streams.core import partitions
from streams.core.actions import Action, Actor
from streams.core.keys import Keys
from streams.core.settings import Settings
from tests.integration import test_cluster, test_push
from tests.integration.test_cluster import (
    EVENTS,
    Cluster,
    cluster_settings,
    publish_confirmed,
    wait_for,
)
from tests.integration.test_consumer import delete_prefix
from tests.integration.test_consumer_lease import consumers, reference_run
from tests.integration.test_consumer_partitions import (
    all_drained,
    merged_state,
    one_partition_state,
    spread,
    summed_counts,
)

cluster, pytestmark = test_cluster.cluster, test_cluster.pytestmark  # its fixture and skip

# One open call per partition, priorities making queue order cross partitions.
CALLS = {"N6": (0, 2), "N3": (1, 1), "N0": (2, 3)}


def test_push_and_the_read_api_over_partitions_on_the_cluster(cluster: Cluster) -> None:
    """A snapshot merges every partition's slot, deltas of each partition reach the page,
    a resume from its cursor replays them, and a claim commits in its call's slot."""
    settings = dataclasses.replace(cluster_settings(cluster.url()), partitions=3,
                                   secret_key=test_push.SECRET, push_host="127.0.0.1")
    keys = settings.keys
    client = sync_client(settings.redis_address)
    store = test_push.session_store(client, keys)
    now = time.time()
    for call_id, (number, priority) in CALLS.items():
        part = keys.partition(number)
        assert keys.of_entity(call_id) == part
        call = {"call_id": call_id, "priority": priority, "status": "pending",
                "district": "North", "category": "noise", "received_time": now}
        client.hset(part.calls, call_id, json.dumps(call))
        client.zadd(part.calls_open, {call_id: priority * 1e11 + now})
    tips = [test_push.write_changes(client, part, [test_push.call_change(number)])[0]
            for number, part in enumerate(keys.every_partition)]
    assert len({client.keyslot(part.calls) for part in keys.every_partition}) == 3
    push = test_push.PushThread(settings).start()
    try:
        with test_push.open_client(push.port, store=store) as page:
            snapshot = test_push.receive(page)
            assert snapshot["last_id"] == partitions.encode_cursor(tips)
            assert [call["call_id"] for call in snapshot["calls"]] == ["N3", "N6", "N0"]
            for number, part in enumerate(keys.every_partition):
                test_push.write_changes(client, part, [test_push.call_change(10 + number)])
            changes, _ = test_push.collect_changes(page, 3)
        assert sorted(change["id"] for change in changes) == ["C10", "C11", "C12"]
        assert LiveReader(client, keys).snapshot()["calls"] == snapshot["calls"]
        answer, _ = ActionStore(client, keys).apply(
            Action(id=uuid.uuid4().hex, call_id="N3", kind="claim"),
            Actor("cso-north", "cso", "North"))
        assert answer["status"] == "applied"
        with test_push.open_client(push.port, store=store,
                                   since=partitions.encode_cursor(tips)) as page:
            replayed = [test_push.receive(page) for _ in range(3)]
        assert all(message["type"] == "delta" for message in replayed)
        got = [(change["entity"], change["id"]) for message in replayed
               for change in message["changes"]]
        assert sorted(got) == [("call", "C10"), ("call", "C11"), ("call", "C12"),
                               ("work", "N3")]
    finally:
        push.stop()
        client.close()



def applied_counts(client: redis.Redis, keys: Keys) -> dict[bytes, int]:
    """Events applied per feed, over every partition (not skipped or dead-lettered)."""
    return {name: count for name, count in summed_counts(client, keys).items()
            if b":" not in name}


def test_three_consumers_through_a_master_failover_equal_one(
        cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    """Three consumer processes over three partitions (three slots) while events arrive;
    kill -9 of the master serving partition 0's slot: its replica is promoted, the
    consumers reconnect and carry on, and the live state equals one consumer's over one
    partition on one server, each event applied once, nothing dead-lettered."""
    probe = dataclasses.replace(cluster_settings(cluster.url()), partitions=3)
    victim = cluster.owner(probe.keys.partition(0).calls)
    settings = dataclasses.replace(probe, redis_url=cluster.url(avoid=victim))
    keys = settings.keys
    client = sync_client(settings.redis_address)
    names = ["c0", "c1", "c2"]

    def applied() -> int:
        return sum(applied_counts(client, keys).values())

    def kill_master_once(chunk: int) -> None:
        if chunk == 8:  # once they are applying: they must live through the failover
            wait_for(lambda: applied() > 0, "the consumers' first batches")
            cluster.processes[victim].kill()
            cluster.processes[victim].wait()

    try:
        with consumers(settings, tmp_path, 3) as group:
            wait_for(lambda: spread(client, keys, names), "the partitions spread")
            asyncio.run(publish_confirmed(settings.redis_address, keys, EVENTS,
                                          kill_master_once))
            wait_for(lambda: victim not in cluster.alive() and cluster.healthy(),
                     "the replica's promotion")
            wait_for(lambda: all_drained(client, keys), "the streams to drain")
            group.alive()
            assert all(group.stop(name) == 0 for name in names)
        counters = [group.counters(name) for name in names]
        assert sum(c["reconnects"] for c in counters) >= 1, "the kill should reach a consumer"
        single = redis.Redis.from_url(redis_url)
        prefix = f"test-ref-{uuid.uuid4().hex[:8]}"
        try:
            reference = reference_run(Settings(redis_url=redis_url, key_prefix=prefix,
                                               consumer_block_ms=100), single, prefix,
                                      list(EVENTS))
            assert merged_state(client, keys) == one_partition_state(single, reference)
            assert applied_counts(client, keys) == applied_counts(single, Keys(prefix, 1))
        finally:
            delete_prefix(single, prefix)
            single.close()
        # Chunks the publisher could not confirm through the failover were sent again:
        # those are counted duplicate, never applied twice.
        assert sum(applied_counts(client, keys).values()) == len(EVENTS)
        assert all(client.xlen(part.deadletter) == 0 for part in keys.every_partition)
    finally:
        client.close()
