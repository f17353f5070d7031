"""The live-state consumer: raw feed streams -> validated events -> live state in Redis.

One shape (house style point 5): connect with bounded retries; read with the consumer group;
apply idempotently; ack; reclaim what dead consumers left pending; on SIGTERM finish the
batch in flight; keep a health key; log counters on shutdown. A bad record is dead-lettered
with its reason and never stops the loop.

Each batch is applied with ONE MULTI/EXEC (state, indexes, closed records, changes entry,
freshness, counts, dead letters and the XACKs together) under WATCH of the entity hashes
it read, so a consumer killed mid-batch leaves nothing half-applied: its entries stay
pending and another consumer reclaims them with XAUTOCLAIM.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError, WatchError

from streams.connections import RETRYABLE, backoff_seconds, connect
from streams.core.events import Event, InvalidEvent, decode_event
from streams.core.keys import (
    ALERT_ACTIVE_SECONDS,
    CHANGES_MAXLEN,
    CLOSED_CALL_BODY_TTL_SECONDS,
    CLOSED_MAXLEN,
    CONSUMER_GROUP,
    DEADLETTER_MAXLEN,
    EVENT_FIELD,
    HEALTH_TTL_SECONDS,
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
from streams.core.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = HEALTH_TTL_SECONDS / 3
PRUNE_EVERY_SECONDS = 60.0
BATCH_GAP_SECONDS = 0.01
"""After a short batch, wait this long from its read before reading again: a feed writing
one event per XADD then costs one batch per 10 ms, not one per event (each batch pays a few
round trips), for at most 10 ms more latency. Full batches read on at once."""
MAX_WATCH_RETRIES = 50
"""Optimistic retries of one batch when another consumer changed the same hashes."""

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder().decode


@dataclass
class Counters:
    """What one consumer did, logged on shutdown and kept in its health key."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    rejected: int = 0
    batches: int = 0
    watch_retries: int = 0
    reclaimed: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class Entry:
    """One raw stream entry as read: which feed, its id and its payload (None if deleted)."""

    source: str
    entry_id: bytes
    payload: bytes | None


@dataclass
class Decoded:
    entries: list[Entry] = field(default_factory=list)
    events: list[tuple[Entry, Event]] = field(default_factory=list)
    invalid: list[tuple[Entry, str]] = field(default_factory=list)


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

def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stream_entries(reply: Any, source_of_stream: dict[str, str]) -> list[Entry]:
    """Flatten an XREADGROUP reply (list or dict shaped) into entries."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    entries: list[Entry] = []
    for stream, items in pairs:
        source = source_of_stream[_text(stream)]
        # RESP3 legacy wraps the entry list in one more list.
        if items and isinstance(items[0], list) and items[0] and isinstance(items[0][0], tuple):
            items = items[0]
        for entry_id, fields in items:
            if entry_id is None:
                continue
            entries.append(Entry(source, entry_id, _payload(fields)))
    return entries


def _payload(fields: Any) -> bytes | None:
    if not fields:
        return None
    value = fields.get(b"event", fields.get(EVENT_FIELD))
    if isinstance(value, str):
        return value.encode()
    return value if value is not None else b""


def autoclaim_reply(reply: Any) -> tuple[bytes, list[tuple[Any, Any]]]:
    """(next cursor, entries) from XAUTOCLAIM; 6.2 replies 2 elements, 7 replies 3."""
    cursor, claimed = reply[0], reply[1]
    return (cursor if isinstance(cursor, bytes) else str(cursor).encode()), list(claimed or [])


# --- the consumer ---------------------------------------------------------------------

class Consumer:
    """Applies batches of raw entries to live state; one instance per process."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.keys = Keys(settings.key_prefix)
        self.streams = {source: self.keys.raw_stream(source) for source in SOURCES}
        self.source_of_stream = {stream: source for source, stream in self.streams.items()}
        self.counters = Counters()
        self.last_heartbeat = 0.0
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
        """Consume until ``stop`` is set: own pending first, then reclaim, then new entries."""
        await self.ensure_groups(client)
        await self.drain_own_pending(client)
        await self.reclaim(client)
        last_reclaim = time.monotonic()
        while not stop.is_set():
            read_at = time.monotonic()
            reply = await client.xreadgroup(
                CONSUMER_GROUP, self.name, {stream: ">" for stream in self.streams.values()},
                count=self.settings.consumer_batch, block=self.settings.consumer_block_ms)
            entries = stream_entries(reply, self.source_of_stream)
            if entries:
                await self.apply_batch(client, entries)
                if len(entries) < self.settings.consumer_batch:
                    await asyncio.sleep(max(0.0, read_at + BATCH_GAP_SECONDS - time.monotonic()))
            now = time.monotonic()
            if now - last_reclaim > self.settings.claim_idle_ms / 2000:
                await self.reclaim(client)
                last_reclaim = now
            await self.housekeeping(client)

    async def drain_own_pending(self, client: aioredis.Redis) -> None:
        """Re-apply entries this consumer name read but never acked (after a reconnect)."""
        while True:
            reply = await client.xreadgroup(
                CONSUMER_GROUP, self.name, {stream: "0" for stream in self.streams.values()},
                count=self.settings.consumer_batch)
            entries = stream_entries(reply, self.source_of_stream)
            if not entries:
                return
            await self.apply_batch(client, entries)

    async def reclaim(self, client: aioredis.Redis) -> None:
        """XAUTOCLAIM entries idle longer than claim_idle_ms and apply them."""
        for source, stream in self.streams.items():
            cursor = b"0-0"
            while True:
                reply = await client.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, self.settings.claim_idle_ms,
                    start_id=cursor, count=self.settings.consumer_batch)
                cursor, claimed = autoclaim_reply(reply)
                entries = [Entry(source, entry_id, _payload(fields))
                           for entry_id, fields, *_ in claimed if entry_id is not None]
                if entries:
                    log.info("reclaimed %d idle entries from %s", len(entries), stream)
                    self.counters.reclaimed += len(entries)
                    await self.apply_batch(client, entries)
                if cursor in (b"0-0", b"0"):
                    break

    # --- one batch ----------------------------------------------------------------
    async def apply_batch(self, client: aioredis.Redis, entries: list[Entry]) -> None:
        decoded = decode_entries(entries)
        wanted: dict[str, set[str]] = {}
        for _, event in decoded.events:
            wanted.setdefault(ENTITY_OF_TYPE[type(event)], set()).add(entity_id_of(event))
        watched = [hash_key_of(self.keys, entity) for entity in sorted(wanted)]
        for _attempt in range(MAX_WATCH_RETRIES):
            async with client.pipeline(transaction=True) as pipe:
                try:
                    if watched:
                        await pipe.watch(*watched)
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
                rejected.append((entry, error.reason))
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
        for entry, reason in plan.rejected:
            log.warning("dead-lettered %s entry %s: %s", entry.source, _text(entry.entry_id),
                        reason)
            pipe.xadd(keys.deadletter, {"source": entry.source, "entry_id": entry.entry_id,
                                        "reason": reason, "payload": entry.payload or b""},
                      maxlen=DEADLETTER_MAXLEN, approximate=True)
        seen = time.time()
        changes = batch.changes()
        if batch.freshness:
            fresh: dict[str, float] = {}
            for source, event_time in batch.freshness.items():
                fresh[source] = max(event_time, plan.previous_freshness(source))
                fresh[f"{source}:seen"] = seen
                changes.append({"entity": "freshness", "op": "upsert", "id": source,
                                "data": {"source": source, "event_time": fresh[source],
                                         "seen": seen}})
            pipe.hset(keys.freshness, mapping=fresh)
        if changes:
            pipe.xadd(keys.changes, {"batch": _encode(changes)}, maxlen=CHANGES_MAXLEN,
                      approximate=True)
        counts = dict(plan.verdicts)
        for entry, _ in plan.rejected:
            counts[f"{entry.source}:rejected"] = counts.get(f"{entry.source}:rejected", 0) + 1
        for name, amount in counts.items():
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
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_SECONDS:
            await self.heartbeat(client)
            self.last_heartbeat = now
        if now - self.last_prune >= PRUNE_EVERY_SECONDS:
            await prune(client, self.keys)
            self.last_prune = now

    async def heartbeat(self, client: aioredis.Redis) -> None:
        body = {"name": self.name, "pid": os.getpid(), "time": time.time(),
                **asdict(self.counters)}
        await client.set(self.keys.health(self.name), json.dumps(body), ex=HEALTH_TTL_SECONDS)


@dataclass
class _Plan:
    batch: BatchPlan
    verdicts: dict[str, int]
    rejected: list[tuple[Entry, str]]
    freshness_before: dict[str, float] = field(default_factory=dict)

    def previous_freshness(self, source: str) -> float:
        return self.freshness_before.get(source, -math.inf)


def decode_entries(entries: Sequence[Entry]) -> Decoded:
    """Validate every entry; invalid ones keep their reason for the dead-letter stream."""
    decoded = Decoded(entries=list(entries))
    for entry in entries:
        if entry.payload is None:
            continue  # deleted from the stream while pending: nothing to apply, just ack
        try:
            decoded.events.append((entry, decode_event(entry.payload)))
        except InvalidEvent as error:
            decoded.invalid.append((entry, error.reason))
    return decoded


async def prune(client: aioredis.Redis, keys: Keys) -> None:
    """Drop closed call/share bodies after their TTL and old alerts from the active set.

    Ages are measured on the data's own clock (newest event time per feed), so replays of
    old data age the same way live feeds do.
    """
    clocks = await client.hmget(keys.freshness, ["cad", "shotspotter", "mutualink"])
    cad, shot, share = (float(value) if value is not None else None for value in clocks)
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
                changes = [{"entity": "alert", "op": "remove", "id": _text(alert_id),
                            "data": {}} for alert_id in removed_alerts]
                pipe.xadd(keys.changes, {"batch": _encode(changes)}, maxlen=CHANGES_MAXLEN,
                          approximate=True)
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


