"""The live-state consumer: raw feed streams -> validated events -> live state in Redis.

One shape (house style point 5): connect with bounded retries; read with the consumer group;
apply idempotently; ack; reclaim what dead consumers left pending; on SIGTERM finish the
batch in flight; keep a health key; log counters on shutdown. A bad record is dead-lettered
with its reason and never stops the loop.

No input may stop it: decoding and admission (``streams.core.admission``: the time window
and the service area) are total, so any failure of an entry, of any exception type, dead-
letters that entry. What could still kill the process (a crash inside Redis's reply to one
entry, a bug) is caught by delivery counts: entries found pending after a restart or taken
over from a dead consumer are re-applied one at a time, and one already delivered
``POISON_DELIVERIES`` times is dead-lettered as ``poison`` without being applied again.

Each batch is applied with ONE MULTI/EXEC (state, indexes, closed records, changes entry,
freshness, counts, dead letters and the XACKs together) under WATCH of the entity hashes
it read, so a consumer killed mid-batch leaves nothing half-applied: its entries stay
pending and another consumer reclaims them with XAUTOCLAIM.

Live state is split in ``DISPATCH_PARTITIONS`` partitions (``streams.core.partitions``):
each entity's events are on its partition's raw streams, and each partition is applied by
one consumer at a time (``streams.lease``), the holder of its lease (``Keys.lease``), so a
call's lifecycle steps are applied in stream order. A process runs a PartitionConsumer per
partition; the processes register in ``Keys.consumers`` and each holds at most its fair
share of the leases: when one joins, the others give up their highest-numbered extras;
when one dies, its leases lapse and the others take them. The holder's reads
(``LEASED_READ``) and every batch's MULTI/EXEC check the lease, so a holder that lost it
takes and commits nothing more. A new holder first claims and applies every entry still
pending in the partition's group (its predecessor's unapplied batch) and only then reads
new ones; re-applying is idempotent (livestate). A batch writes only its partition's keys,
which share one hash tag on a Redis Cluster.

CLI: ``python -m streams consume [--name NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError, WatchError

from streams.connections import RETRYABLE, backoff_seconds, connect
from streams.core import changefeed
from streams.core.admission import Admission, admission_from_settings
from streams.core.deadletter import DeadLetterLog, deadletter_entry
from streams.core.events import Event, InvalidEvent, decode_event
from streams.core.keys import (
    ALERT_ACTIVE_SECONDS,
    CHANGES_FIELD,
    CHANGES_MAXLEN,
    CLOSED_CALL_BODY_TTL_SECONDS,
    CLOSED_MAXLEN,
    CONSUMER_GROUP,
    EVENT_FIELD,
    HEALTH_TTL_SECONDS,
    HISTORY_FIELD,
    SOURCES,
    Keys,
)
from streams.core.livestate import (
    ENTITY_OF_TYPE,
    INDEX_ALERTS,
    INDEX_CLOSED,
    INDEX_OPEN,
    INDEX_SHARES,
    INDEX_SHARES_CLOSED,
    QUEUE_PREFIX,
    BatchPlan,
    entity_id_of,
)
from streams.core.partitions import fair_share, given_up
from streams.core.replies import reply_text
from streams.core.settings import Settings
from streams.lease import Lease, LeaseLost
from streams.partition_count import record_partition_count
from streams.publish import queue_deadletters

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = HEALTH_TTL_SECONDS / 3
PRUNE_EVERY_SECONDS = 60.0
BATCH_GAP_SECONDS = 0.01
"""After a short batch, wait this long from its read before reading again: a feed writing
one event per XADD then costs one batch per 10 ms, not one per event (each batch pays a few
round trips), for at most 10 ms more latency. Full batches read on at once."""
MAX_WATCH_RETRIES = 50
"""Optimistic retries of one batch when another consumer changed the same hashes."""
POISON_DELIVERIES = 3
"""An entry delivered this many times without being acked crashed its consumer on each of
the tries before (the first in a batch, the second alone): it is dead-lettered unapplied."""

REGISTER = """
local now = redis.call('time')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('zadd', KEYS[1], seconds, ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', seconds - tonumber(ARGV[2]) / 1000)
return redis.call('zcard', KEYS[1])
"""
"""Register ARGV[1] in the running consumers (KEYS[1]) and count those heard from in the
last lease TTL (ARGV[2] ms), timed by the Redis server's clock: one host's clock running
fast or slow must not keep a dead consumer counted (its partitions' leases untaken) or
drop live ones."""

LEASED_READ = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return false end
local args = {'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS'}
for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
for i = 2, #KEYS do args[#args + 1] = '>' end
local reply = redis.call('xreadgroup', unpack(args))
if reply then return {1, reply} end
local tips = {}
for i = 2, #KEYS do
  local last = redis.call('xrevrange', KEYS[i], '+', '-', 'COUNT', 1)
  tips[#tips + 1] = last[1] and last[1][1] or '0-0'
end
return {0, tips}
"""
"""XREADGROUP of new entries only while KEYS[1] (the lease) holds ARGV[1] (our token):
nil when it does not; {1, entries}; or, when nothing is new, {0, newest id of each stream}
for a blocking XREAD to wait past (a script cannot block)."""

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder().decode


@dataclass
class Counters:
    """What one consumer did, logged on shutdown and kept in its health key."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    rejected: int = 0
    poison: int = 0
    batches: int = 0
    watch_retries: int = 0
    reclaimed: int = 0
    reconnects: int = 0
    leases_taken: int = 0
    leases_lost: int = 0


@dataclass(slots=True)
class Entry:
    """One raw stream entry as read: which feed, its id and its payload (None if deleted),
    and whether a replay of old data published it (``HISTORY_FIELD``)."""

    source: str
    entry_id: bytes
    payload: bytes | None
    history: bool = False


@dataclass(slots=True)
class Refusal:
    """An entry that will be dead-lettered, with its reason sentence and code."""

    entry: Entry
    reason: str
    code: str


@dataclass
class Decoded:
    entries: list[Entry] = field(default_factory=list)
    events: list[tuple[Entry, Event]] = field(default_factory=list)
    invalid: list[Refusal] = field(default_factory=list)


def hash_key_of(keys: Keys, entity: str) -> str:
    return {"call": keys.calls, "unit": keys.units, "alert": keys.alerts,
            "share": keys.shares}[entity]


def index_key_of(keys: Keys, index: str) -> str:
    """Map livestate's logical index names onto Redis keys."""
    if index.startswith(QUEUE_PREFIX):
        return keys.queue(index[len(QUEUE_PREFIX):])
    return {INDEX_OPEN: keys.calls_open, INDEX_CLOSED: keys.calls_closed_index,
            INDEX_ALERTS: keys.alerts_active, INDEX_SHARES: keys.shares_active,
            INDEX_SHARES_CLOSED: keys.shares_closed_index}[index]


# --- reply shapes (converted in one place: RESP2/RESP3, Redis 6.2/7) -------------------


def stream_entries(reply: Any, source_of_stream: dict[str, str]) -> list[Entry]:
    """Flatten an XREADGROUP reply (list or dict shaped) into entries."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    entries: list[Entry] = []
    for stream, items in pairs:
        source = source_of_stream[reply_text(stream)]
        # RESP3 legacy wraps the entry list in one more list.
        if items and isinstance(items[0], list) and items[0] and isinstance(items[0][0], tuple):
            items = items[0]
        for entry_id, fields in items:
            if entry_id is None:
                continue
            entries.append(entry_of(source, entry_id, fields))
    return entries


def entry_of(source: str, entry_id: bytes, fields: Any) -> Entry:
    """An Entry from a stream entry's fields (None or empty: deleted while pending)."""
    if not fields:
        return Entry(source, entry_id, None)
    value = fields.get(EVENT_FIELD.encode(), fields.get(EVENT_FIELD))
    history = fields.get(HISTORY_FIELD.encode(), fields.get(HISTORY_FIELD)) in (b"1", "1")
    if isinstance(value, str):
        value = value.encode()
    return Entry(source, entry_id, value if value is not None else b"", history)


def autoclaim_reply(reply: Any) -> tuple[bytes, list[tuple[Any, Any]]]:
    """(next cursor, entries) from XAUTOCLAIM; 6.2 replies 2 elements, 7 replies 3."""
    cursor, claimed = reply[0], reply[1]
    return (cursor if isinstance(cursor, bytes) else str(cursor).encode()), list(claimed or [])


def leased_read_reply(reply: Any, streams: Sequence[str], source_of_stream: dict[str, str],
                      ) -> tuple[list[Entry], dict[Any, Any]]:
    """(entries, {stream: newest id} to wait past) from LEASED_READ; LeaseLost on nil.

    A script's XREADGROUP reply is RESP2-shaped whatever the connection speaks: each
    entry's fields are one flat list."""
    if reply is None:
        raise LeaseLost("the lease is no longer ours: nothing read")
    found, body = int(reply[0]), reply[1]
    if not found:
        return [], dict(zip(streams, body, strict=True))
    entries = []
    for stream, items in body:
        source = source_of_stream[reply_text(stream)]
        for entry_id, flat in items:
            fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else None
            entries.append(entry_of(source, entry_id, fields))
    return entries, {}


# --- the consumer ---------------------------------------------------------------------

class PartitionConsumer:
    """Applies one partition's batches of raw entries to its live state while this process
    holds the partition's lease (``Keys.lease``); one per partition in each process."""

    def __init__(self, settings: Settings, name: str, partition: int = 0,
                 counters: Counters | None = None, share: Share | None = None,
                 admission: Admission | None = None) -> None:
        self.settings = settings
        self.name = name
        self.partition = partition
        self.keys = settings.keys.partition(partition)
        self.streams = {source: self.keys.raw_stream(source) for source in SOURCES}
        self.source_of_stream = {stream: source for source, stream in self.streams.items()}
        self.admission = admission_from_settings(settings) if admission is None else admission
        self.deadletter_log = DeadLetterLog(log)
        self.benign_deliveries: Counter[bytes] = Counter()
        """Deliveries of pending entries that ended in a Redis failure, not a crash."""
        self.counters = Counters() if counters is None else counters
        self.share = Share(settings.partitions) if share is None else share
        self.lease = Lease(self.keys.lease(), name, settings.consumer_lease_ms)
        self.share.leases[partition] = self.lease
        self.standby_logged = False
        # First prune one period after start, so short runs (tests) are not pruned mid-way.
        self.last_prune = time.monotonic()

    async def ensure_groups(self, client: aioredis.Redis) -> None:
        for stream in self.streams.values():
            try:
                await client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def run(self, client: aioredis.Redis, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set: apply while holding the lease, else stand by;
        give the lease up on a clean stop (a standby takes over at once) and when this
        process holds more than its share (a consumer joined)."""
        await self.ensure_groups(client)
        while not stop.is_set():
            if self.lease.held() or await self.take_lease(client):
                try:
                    await self.apply_while_holding(client, stop)
                except LeaseLost as lost:
                    self.counters.leases_lost += 1
                    log.warning("consumer %s stopped applying: %s", self.name, lost)
                    self.standby_logged = False
                except OverShare:
                    await self.give_up(client, "to a consumer that has fewer")
            else:
                await self.housekeeping(client)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.lease.renew_every)
        if self.lease.held():
            await self.give_up(client, "on stopping")

    async def give_up(self, client: aioredis.Redis, why: str) -> None:
        await self.lease.release(client)
        self.standby_logged = False
        log.info("consumer %s released lease %s %s", self.name, self.lease.key, why)

    async def take_lease(self, client: aioredis.Redis) -> bool:
        """Try to acquire the lease (only while this process holds less than its share);
        log when this consumer becomes holder or standby."""
        if self.share.may_take() and await self.lease.acquire(client):
            self.counters.leases_taken += 1
            log.info("consumer %s holds lease %s: applying", self.name, self.lease.key)
            return True
        if not self.standby_logged:
            holder = await self.lease.holder(client)
            log.info("consumer %s is standby for lease %s (held by %s)", self.name,
                     self.lease.key, holder)
            self.standby_logged = True
        return False

    async def apply_while_holding(self, client: aioredis.Redis, stop: asyncio.Event) -> None:
        """Every entry still pending first (a predecessor's or our own, in stream order),
        then new ones; raises LeaseLost as soon as the lease is not ours."""
        await self.reclaim(client, min_idle_ms=0)
        await self.forget_idle_consumers(client)
        last_reclaim = time.monotonic()
        wait_ms = max(1, min(self.settings.consumer_block_ms,
                             int(self.lease.renew_every * 1000)))
        streams = list(self.streams.values())
        while not stop.is_set():
            await self.lease.keep(client)
            if self.share.over(self.partition):
                raise OverShare
            read_at = time.monotonic()
            reply = await client.eval(
                LEASED_READ, 1 + len(streams), self.lease.key, *streams, self.lease.token,
                CONSUMER_GROUP, self.name, self.settings.consumer_batch)
            entries, tips = leased_read_reply(reply, streams, self.source_of_stream)
            if entries:
                await self.apply_batch(client, entries)
                if len(entries) < self.settings.consumer_batch:
                    await asyncio.sleep(max(0.0, read_at + BATCH_GAP_SECONDS - time.monotonic()))
            else:
                # Wake when anything newer than the newest entry is added (reads nothing).
                await client.xread(tips, count=1, block=wait_ms)
            now = time.monotonic()
            if now - last_reclaim > self.settings.claim_idle_ms / 2000:
                await self.reclaim(client)
                last_reclaim = now
            await self.housekeeping(client)

    async def forget_idle_consumers(self, client: aioredis.Redis) -> None:
        """Drop the group's other consumers that hold nothing pending (all of them, once we
        claimed everything): each process has its own name, so restarts would otherwise
        leave the group a name per pid forever. One still running is re-added when it reads."""
        forgotten = 0
        for stream in self.streams.values():
            for info in await client.xinfo_consumers(stream, CONSUMER_GROUP):
                name = reply_text(info["name"])
                if name != self.name and not int(info["pending"]):
                    await client.xgroup_delconsumer(stream, CONSUMER_GROUP, name)
                    forgotten += 1
        if forgotten:
            log.info("consumer %s removed %d idle consumer names from the group", self.name,
                     forgotten)

    async def reclaim(self, client: aioredis.Redis, min_idle_ms: int | None = None) -> None:
        """XAUTOCLAIM, one at a time, entries idle longer than ``min_idle_ms`` (default
        claim_idle_ms) and apply them. One at a time: an entry that crashes us again is the
        only one whose delivery count grows."""
        idle = self.settings.claim_idle_ms if min_idle_ms is None else min_idle_ms
        for source, stream in self.streams.items():
            cursor, taken = b"0-0", 0
            while True:
                reply = await client.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, idle, start_id=cursor, count=1)
                cursor, claimed = autoclaim_reply(reply)
                for entry_id, fields, *_ in claimed:
                    if entry_id is not None:
                        taken += 1
                        await self.apply_redelivered(client, stream,
                                                     entry_of(source, entry_id, fields))
                if cursor in (b"0-0", b"0"):
                    break
            if taken:
                log.info("reclaimed %d pending entries from %s", taken, stream)
                self.counters.reclaimed += taken

    async def apply_redelivered(self, client: aioredis.Redis, stream: str,
                                entry: Entry) -> None:
        """Apply one entry that was delivered before, or dead-letter it as poison."""
        delivered = await delivery_count(client, stream, entry.entry_id) \
            - self.benign_deliveries.pop(entry.entry_id, 0)
        if delivered < POISON_DELIVERIES:
            await self.apply_batch(client, [entry])
            return
        reason = (f"delivered {delivered} times without being acknowledged: it stopped a "
                  f"consumer each time, so it is set aside unapplied")
        decoded = Decoded(entries=[entry], invalid=[Refusal(entry, reason, "poison")])
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.lease.key)
                await self.lease.check(pipe)
                pipe.multi()  # type: ignore[no-untyped-call]
                self.queue_writes(pipe, _Plan(BatchPlan({}), {}, list(decoded.invalid)),
                                  decoded)
                await pipe.execute()
            except WatchError:
                raise LeaseLost(f"lease {self.lease.key} changed during a batch") from None
        self.counters.poison += 1
        self.counters.rejected += 1

    # --- one batch ----------------------------------------------------------------
    async def apply_batch(self, client: aioredis.Redis, entries: list[Entry]) -> None:
        """Apply entries in one fenced transaction; LeaseLost if the lease is not ours."""
        await self.lease.keep(client)
        try:
            await self._apply_batch(client, entries)
        except RETRYABLE:
            # Redis, not these entries, failed: their next delivery (after reconnecting)
            # must not count towards poison.
            self.benign_deliveries.update(entry.entry_id for entry in entries)
            raise

    async def _apply_batch(self, client: aioredis.Redis, entries: list[Entry]) -> None:
        decoded = decode_entries(entries, self.admission, time.time())
        wanted: dict[str, set[str]] = {}
        for _, event in decoded.events:
            wanted.setdefault(ENTITY_OF_TYPE[type(event)], set()).add(entity_id_of(event))
        # The lease is watched with the hashes: a batch commits only while it is ours.
        watched = [self.lease.key, *(hash_key_of(self.keys, entity) for entity in sorted(wanted))]
        for _attempt in range(MAX_WATCH_RETRIES):
            async with client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watched)
                    await self.lease.check(pipe)
                    plan = await self.plan(pipe, wanted, decoded)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self.queue_writes(pipe, plan, decoded)
                    await pipe.execute()
                except WatchError:
                    self.counters.watch_retries += 1
                    continue
            self.count(plan, decoded)
            return
        raise RuntimeError(f"batch of {len(entries)} entries lost the WATCH race "
                           f"{MAX_WATCH_RETRIES} times; is a consumer looping?")

    async def plan(self, pipe: Any, wanted: dict[str, set[str]],
                   decoded: Decoded) -> _Plan:
        """Read touched states (under WATCH) and run every event through a BatchPlan."""
        states: dict[str, dict[str, dict[str, Any]]] = {}
        for entity, ids in wanted.items():
            id_list = list(ids)
            bodies = await pipe.hmget(hash_key_of(self.keys, entity), id_list)
            states[entity] = {entity_id: _decode_state(body)
                              for entity_id, body in zip(id_list, bodies, strict=True)
                              if body is not None}
        closed: set[str] = set()
        unknown_calls = [call_id for call_id in wanted.get("call", ())
                         if call_id not in states.get("call", {})]
        if unknown_calls:
            flags = await pipe.execute_command("SMISMEMBER", self.keys.closed_ids,
                                               *unknown_calls)
            closed = {call_id for call_id, flag in zip(unknown_calls, flags, strict=True)
                      if int(flag)}
        sources = sorted({entry.source for entry, _ in decoded.events})
        before = await pipe.hmget(self.keys.freshness, sources) if sources else []
        freshness_before = {source: float(value) for source, value
                            in zip(sources, before, strict=True) if value is not None}
        batch = BatchPlan(states, closed)
        verdicts: dict[str, int] = {}
        rejected = list(decoded.invalid)
        for entry, event in decoded.events:
            try:
                verdict = batch.apply(event)
            except InvalidEvent as error:
                rejected.append(Refusal(entry, error.reason, error.code))
                continue
            except Exception as error:  # noqa: BLE001 - no event may stop the consumer
                log.exception("applying %s entry %s failed", entry.source,
                              reply_text(entry.entry_id))
                rejected.append(Refusal(entry, _failure("applying it failed", error),
                                        "apply_error"))
                continue
            key = f"{entry.source}:{verdict}" if verdict != "applied" else entry.source
            verdicts[key] = verdicts.get(key, 0) + 1
        return _Plan(batch, verdicts, rejected, freshness_before)

    def queue_writes(self, pipe: Any, plan: _Plan, decoded: Decoded) -> None:
        """Queue every write of the batch inside the MULTI."""
        keys, batch = self.keys, plan.batch
        for entity, states in batch.upserts.items():
            pipe.hset(hash_key_of(keys, entity),
                      mapping={entity_id: _encode(state) for entity_id, state in states.items()})
        for index, members in batch.indexes.items():
            key = index_key_of(keys, index)
            adds = {member: score for member, score in members.items() if score is not None}
            removes = [member for member, score in members.items() if score is None]
            if removes:
                pipe.zrem(key, *removes)
            if adds:
                pipe.zadd(key, adds)
        if batch.geo:
            flat: list[Any] = []
            for unit_id, (lon, lat) in batch.geo.items():
                flat.extend((lon, lat, unit_id))
            pipe.geoadd(keys.units_geo, flat)
        for record in batch.closed_records:
            pipe.xadd(keys.closed, record, maxlen=CLOSED_MAXLEN, approximate=True)
        if batch.closed_records:
            pipe.sadd(keys.closed_ids, *(record["call_id"] for record in batch.closed_records))
        seen = time.time()
        for refusal in plan.rejected:
            self.deadletter_log.note(refusal.entry.source, refusal.code, refusal.reason, seen)
        queue_deadletters(pipe, keys, [deadletter_entry(
            refusal.entry.source, refusal.code, refusal.reason, refusal.entry.payload or b"",
            entry_id=refusal.entry.entry_id) for refusal in plan.rejected])
        changes = changefeed.batch_changes(batch)
        if batch.freshness:
            fresh: dict[str, float] = {}
            for source, event_time in batch.freshness.items():
                # Never ahead of the receiving clock: one event timed in the future (inside
                # the admission window) must not make a feed look newer than it is.
                fresh[source] = max(min(event_time, seen), plan.previous_freshness(source))
                fresh[f"{source}:seen"] = seen
                changes.append(changefeed.feed_clock(source, fresh[source], seen))
            pipe.hset(keys.freshness, mapping=fresh)
        if changes:
            pipe.xadd(keys.changes, {CHANGES_FIELD: changefeed.encode_batch(changes)},
                      maxlen=CHANGES_MAXLEN, approximate=True)
        for name, amount in plan.verdicts.items():
            pipe.hincrby(keys.counts, name, amount)
        by_stream: dict[str, list[bytes]] = {}
        for entry in decoded.entries:
            by_stream.setdefault(self.streams[entry.source], []).append(entry.entry_id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, CONSUMER_GROUP, *ids)

    def count(self, plan: _Plan, decoded: Decoded) -> None:
        self.counters.batches += 1
        self.counters.rejected += len(plan.rejected)
        for name, amount in plan.verdicts.items():
            verdict = name.rpartition(":")[2] if ":" in name else "applied"
            setattr(self.counters, verdict, getattr(self.counters, verdict) + amount)

    # --- upkeep -------------------------------------------------------------------
    async def housekeeping(self, client: aioredis.Redis) -> None:
        self.deadletter_log.flush(time.time())
        now = time.monotonic()
        if now - self.last_prune >= PRUNE_EVERY_SECONDS and self.lease.held():
            clocks = await feed_clocks(client, self.settings.keys.every_partition)
            await prune(client, self.keys, clocks=clocks)
            self.last_prune = now


class OverShare(Exception):
    """This process holds more partitions than its share: give this one up."""


@dataclass
class Share:
    """Which partitions this process holds (its parts' leases), and how many it may
    (``partitions.fair_share`` of the consumers heard from in the last lease TTL)."""

    partitions: int
    consumers: int = 1
    leases: dict[int, Lease] = field(default_factory=dict)

    @property
    def held(self) -> set[int]:
        return {partition for partition, lease in self.leases.items() if lease.held()}

    def may_take(self) -> bool:
        return len(self.held) < fair_share(self.partitions, self.consumers)

    def over(self, partition: int) -> bool:
        return partition in given_up(list(self.held), fair_share(self.partitions,
                                                                 self.consumers))


class Consumer:
    """One consumer process: a PartitionConsumer per partition, sharing a client and the
    counters, a registration in ``Keys.consumers`` (how the processes split the
    partitions) and one health key."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.keys = settings.keys
        self.counters = Counters()
        self.share = Share(settings.partitions)
        admission = admission_from_settings(settings)  # reads the geography files: once
        self.parts = [PartitionConsumer(settings, name, partition, self.counters, self.share,
                                        admission) for partition in range(settings.partitions)]
        self.ttl_ms = settings.consumer_lease_ms
        self.last_heartbeat = 0.0

    async def run(self, client: aioredis.Redis, stop: asyncio.Event) -> None:
        """Apply the partitions this process gets until ``stop``; on a clean stop leave
        the registry so the others take its share at once."""
        await record_partition_count(client, self.keys)
        await self.register(client)
        tasks = [asyncio.create_task(part.run(client, stop)) for part in self.parts]
        try:
            while not stop.is_set() and not any(task.done() for task in tasks):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.ttl_ms / 3000)
                await self.register(client)
        finally:
            if not stop.is_set():  # one part failed (Redis went away): stop the others too
                for task in tasks:
                    task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if stop.is_set():  # the last heartbeat carries the final counters
                with contextlib.suppress(*RETRYABLE):
                    await client.zrem(self.keys.consumers, self.name)
                    await self.heartbeat(client)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError):
                raise result

    async def register(self, client: aioredis.Redis) -> None:
        """Say this process is running and count those that are: the share follows."""
        running = await client.eval(REGISTER, 1, self.keys.consumers, self.name, self.ttl_ms)
        self.share.consumers = max(1, int(running))
        if time.monotonic() - self.last_heartbeat >= HEARTBEAT_SECONDS:
            await self.heartbeat(client)

    async def heartbeat(self, client: aioredis.Redis) -> None:
        self.last_heartbeat = time.monotonic()
        held = sorted(self.share.held)
        body = {"name": self.name, "pid": os.getpid(), "time": time.time(),
                "lease": "holder" if held else "standby", "partitions": held,
                "lease_key": self.keys.partition(held[0] if held else 0).lease(),
                "consumers": self.share.consumers, **asdict(self.counters)}
        await client.set(self.keys.health(self.name), json.dumps(body), ex=HEALTH_TTL_SECONDS)


@dataclass
class _Plan:
    batch: BatchPlan
    verdicts: dict[str, int]
    rejected: list[Refusal]
    freshness_before: dict[str, float] = field(default_factory=dict)

    def previous_freshness(self, source: str) -> float:
        return self.freshness_before.get(source, -math.inf)


def decode_entries(entries: Sequence[Entry], admission: Admission | None = None,
                   now: float | None = None) -> Decoded:
    """Validate and admit every entry; refused ones keep their reason and code for the
    dead-letter stream. Total: no payload, of any shape, raises out of here."""
    decoded = Decoded(entries=list(entries))
    received = time.time() if now is None else now
    for entry in entries:
        if entry.payload is None:
            continue  # deleted from the stream while pending: nothing to apply, just ack
        try:
            event = decode_event(entry.payload)
            if admission is not None:
                admission.check(event, received, entry.history)
        except InvalidEvent as error:
            decoded.invalid.append(Refusal(entry, error.reason, error.code))
        except Exception as error:  # noqa: BLE001 - total: no payload may stop the consumer
            decoded.invalid.append(Refusal(entry, _failure("decoding it failed", error),
                                           "invalid"))
        else:
            decoded.events.append((entry, event))
    return decoded


def _failure(what: str, error: Exception) -> str:
    return f"{what} ({type(error).__name__}: {error})"[:300]


async def delivery_count(client: aioredis.Redis, stream: str, entry_id: bytes) -> int:
    """How many times the group delivered one pending entry (1 if XPENDING has no record)."""
    reply = await client.xpending_range(stream, CONSUMER_GROUP, min=entry_id, max=entry_id,
                                        count=1)
    for item in reply or []:
        count: Any = item.get("times_delivered") if isinstance(item, dict) else item[3]
        return int(count)
    return 1


def prune_clock(feed_clock: float | None, now: float) -> float | None:
    """The clock a feed's bodies age by: its newest event time, never ahead of ``now``.

    Replays of old data then age the way live feeds do (their clock is years back), while
    no event, however far ahead its time, can make real data look old.
    """
    return None if feed_clock is None else min(feed_clock, now)


PRUNED_BY = ("cad", "shotspotter", "mutualink")
"""The feeds whose clocks age closed calls, alerts and closed shares."""


async def feed_clocks(client: aioredis.Redis, partitions: Sequence[Keys],
                      ) -> dict[str, float | None]:
    """Each of PRUNED_BY's newest event time over ``partitions`` (one read each: their keys
    are in different slots on a cluster), None for a feed never heard from. A partition
    ages by the deployment's clock: a quiet partition's own would keep its alerts active
    until its next alert, however late."""
    newest: dict[str, float | None] = dict.fromkeys(PRUNED_BY)
    for part in partitions:
        for source, value in zip(PRUNED_BY, await client.hmget(part.freshness, PRUNED_BY),
                                 strict=True):
            if value is not None:
                newest[source] = max(float(value), newest[source] or -math.inf)
    return newest


async def prune(client: aioredis.Redis, keys: Keys, now: float | None = None,
                clocks: dict[str, float | None] | None = None) -> None:
    """Drop closed call/share bodies after their TTL and old alerts from the active set.

    Ages are measured on ``prune_clock``: the feeds' ``clocks`` (default: this partition's
    own, ``feed_clocks``), held back to the receiving clock ``now`` (default: this
    machine's).
    """
    received = time.time() if now is None else now
    if clocks is None:
        clocks = await feed_clocks(client, [keys])
    cad, shot, share = (prune_clock(clocks[source], received) for source in PRUNED_BY)
    async with client.pipeline(transaction=True) as pipe:
        if cad is not None:
            await _drop_older(client, pipe, keys.calls_closed_index, keys.calls,
                              cad - CLOSED_CALL_BODY_TTL_SECONDS)
        if share is not None:
            await _drop_older(client, pipe, keys.shares_closed_index, keys.shares,
                              share - CLOSED_CALL_BODY_TTL_SECONDS)
        if shot is not None:
            removed_alerts: list[Any] = await client.zrangebyscore(keys.alerts_active, "-inf",
                                                        shot - ALERT_ACTIVE_SECONDS)
            if removed_alerts:
                pipe.zrem(keys.alerts_active, *removed_alerts)
                changes = [changefeed.remove("alert", reply_text(alert_id))
                           for alert_id in removed_alerts]
                pipe.xadd(keys.changes, {CHANGES_FIELD: changefeed.encode_batch(changes)},
                          maxlen=CHANGES_MAXLEN, approximate=True)
        await pipe.execute()


async def _drop_older(client: aioredis.Redis, pipe: Any, index: str, bodies: str,
                      cutoff: float) -> None:
    ids = await client.zrangebyscore(index, "-inf", cutoff)
    if ids:
        pipe.hdel(bodies, *ids)
        pipe.zrem(index, *ids)
        log.info("pruned %d bodies from %s older than %.0f", len(ids), bodies, cutoff)


# --- runtime --------------------------------------------------------------------------

async def run_consumer(settings: Settings, name: str, stop: asyncio.Event) -> Counters:
    """Consume until ``stop`` is set, reconnecting with backoff when Redis goes away."""
    consumer = Consumer(settings, name)
    url = settings.redis_address
    attempt = 0
    try:
        while not stop.is_set():
            client: aioredis.Redis | None = None
            try:
                client = await connect(url)
                attempt = 0
                await consumer.run(client, stop)
            except RETRYABLE as error:
                consumer.counters.reconnects += 1
                delay = backoff_seconds(attempt)
                attempt += 1
                log.warning("consumer %s lost redis (%s); reconnecting in %.1fs",
                            name, error, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            finally:
                if client is not None:
                    with contextlib.suppress(*RETRYABLE):
                        await client.aclose()
    finally:
        log.info("consumer %s stopped: %s", name, asdict(consumer.counters))
    return consumer.counters


def default_name() -> str:
    return f"consumer-{socket.gethostname()}-{os.getpid()}"


def main(settings: Settings, argv: Sequence[str]) -> int:
    """``python -m streams consume [--name NAME]``: run one consumer until SIGTERM/Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m streams consume",
                                     description="Apply raw feed events to live state.")
    parser.add_argument("--name", default=default_name(),
                        help="consumer name in the group (default: host and pid)")
    args = parser.parse_args(list(argv))
    asyncio.run(_main(settings, args.name))
    return 0


async def _main(settings: Settings, name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_consumer(settings, name, stop)


