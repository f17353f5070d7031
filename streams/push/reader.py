"""The changes reader: one XREAD loop per partition's changes stream in each push process.

No consumer group: every push process fans out from Redis on its own, so several of them
serve the same pages. Each read becomes one ``Chunk`` for the lanes; ``Districts`` follows
where each district-scoped member is, so a call leaving a district can be removed from
that district's tablets. After an outage it checks that Redis still holds what it read:
a server that came back empty (no persistence, or a new one) makes every page resync.

Partitions are read apart, one blocking read each at the same time (an XREAD of several
streams would cross slots on a cluster); each read is a chunk of one partition, carrying
the reader's position in every partition (the cursor pages resume from).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from streams.connections import RETRYABLE, backoff_seconds
from streams.core import pushview
from streams.core.changefeed import KINDS, Change
from streams.core.keys import Keys
from streams.push.clients import Chunk
from streams.push.syncs import Entry, Snapshot, decode_entries, entries_of

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
READ_COUNT = 500
"""Changes entries per XREAD, queued together in every lane."""


class ChangesReader:
    """Reads every partition's changes stream from ``position`` on; hands each read to
    ``on_read``."""

    def __init__(self, redis: Callable[[], aioredis.Redis], keys: Keys, counters: Counter[str],
                 on_read: Callable[[Chunk | None], None],
                 on_reset: Callable[[], Awaitable[None]]) -> None:
        self._redis, self.keys, self.counters = redis, keys, counters
        self._on_read, self._on_reset = on_read, on_reset
        self.partitions = keys.every_partition
        self.position: pushview.Position = ((0, 0),) * len(self.partitions)
        self._generation = 0
        """Bumped by ``start_at``: a read begun before it is dropped (it read old ids)."""
        self._failing: set[int] = set()
        self.districts = pushview.Districts()
        self.redis_ok = False
        self.stop = asyncio.Event()
        """Set by the service before it closes the client: the loop then ends. (Cancelling
        a blocking XREAD is not reliable in redis-py: the cancellation can be swallowed.)"""

    @property
    def last_id(self) -> str:
        """The reader's position as a cursor."""
        return pushview.format_cursor(self.position)

    def start_at(self, snapshot: Snapshot) -> None:
        """Read on after ``snapshot``, knowing where its district-scoped members are.

        A member whose district changes between that snapshot and the next read is applied
        again from the stream with no harm: every page's first messages are newer."""
        self.position = snapshot.position
        self._generation += 1
        self.districts = pushview.Districts({
            (name, str(body.get(KINDS[name].id_field))): body.get("district")
            for name, bodies in snapshot.bodies.items() if KINDS[name].district_scoped
            for body in bodies}, [
            Change(name, "upsert", str(body.get(KINDS[name].id_field)), body)
            for name, bodies in snapshot.bodies.items() if KINDS[name].follows
            for body in bodies])

    async def run(self) -> None:
        """Read every partition's changes stream, each in its own loop, until ``stop``."""
        await asyncio.gather(*(self._run_partition(partition)
                               for partition in range(len(self.partitions))))

    async def _run_partition(self, partition: int) -> None:
        """XREAD forever from the last id read; on a Redis outage back off and go on."""
        stream, failures = self.partitions[partition].changes, 0
        while not self.stop.is_set():
            generation = self._generation
            try:
                if failures:
                    await self._check_stream_reset(partition)
                    generation = self._generation
                since = pushview.format_stream_id(self.position[partition])
                reply = await self._redis().xread({stream: since}, count=READ_COUNT,
                                                  block=READ_BLOCK_MS)
                entries = xread_entries(reply)
            except Exception as error:  # noqa: BLE001 - any failure: retry, never end
                # Not only outages: a refusal (NOPERM, WRONGTYPE) or a failed reset must not
                # end this task silently while pages are told they are live. Until a read
                # works again, redis_ok is False: /healthz says 503 and no pings go out, so
                # every page shows 'Live updates lost' within a heartbeat.
                if self.stop.is_set():
                    return
                self._failing.add(partition)
                self.redis_ok = False
                delay = backoff_seconds(failures, base=0.1, cap=2.0)
                failures += 1
                level = logging.WARNING if isinstance(error, RETRYABLE) else logging.ERROR
                log.log(level, "reading %s failed (%s: %s); retry %d in %.1fs from %s",
                        stream, type(error).__name__, error, failures, delay,
                        pushview.format_stream_id(self.position[partition]))
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("reading %s again after %d failed attempts", stream, failures)
                failures = 0
            self._failing.discard(partition)
            self.redis_ok = not self._failing
            if entries and generation == self._generation:
                self._deliver(partition, entries)

    def _deliver(self, partition: int, entries: list[Entry]) -> None:
        stream_id = pushview.parse_stream_id(entries[-1][0])
        self.position = pushview.moved_to(self.position, partition, stream_id)
        decoded = decode_entries(entries, self.counters)
        if not decoded:
            self._on_read(None)
            return
        changes, previous = self.districts.place(pushview.entries_changes(decoded))
        self._on_read(Chunk(partition, stream_id, self.position, changes, previous))

    async def _check_stream_reset(self, partition: int) -> None:
        """After an outage: if Redis came back without our entries, reading on from our
        id would wait for ever; start over (``on_reset`` makes every page resync: its
        since= is now ahead of the stream, so it gets a snapshot)."""
        stream = self.partitions[partition].changes
        newest = entries_of(await self._redis().xrevrange(stream, "+", "-", count=1))
        newest_id = newest[0][0] if newest else "0-0"
        if pushview.parse_stream_id(newest_id) >= self.position[partition]:
            return
        log.warning("%s was reset (newest %s, last read %s); every page resyncs",
                    stream, newest_id, pushview.format_stream_id(self.position[partition]))
        self.counters["stream_resets"] += 1
        await self._on_reset()


def xread_entries(reply: Any) -> list[Entry]:
    """Entries of a one-stream XREAD reply, RESP2 (list of pairs) or RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return entries_of(streams[0][0] if streams and streams[0] else [])
    return entries_of(reply[0][1])
