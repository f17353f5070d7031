"""A new page's first messages: a snapshot, or the deltas since its last id (a replay),
read from Redis once for every page that asks at the same time.

A herd of pages (push restarted, the station's network came back) must not cost one read
of live state and one ~1 MB encoding per page: pages that want the same snapshot share one
read and one encoding per view group, pages resyncing from the same id share one replay
(streams/state-contract.md, "Resync"). A shared result serves a page only if it reaches
the page's ``need`` (where the changes reader was when the page registered) in every
partition: everything newer reaches the page through the lanes, so nothing falls in between.
Each partition's state and changes-stream tip are read in one MULTI of its own keys (one
hash tag: one slot on a cluster), and the partitions' snapshots merged
(``changefeed.merge_partitions``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from streams.core import changefeed, pushview
from streams.core.changefeed import Change, View
from streams.core.keys import CHANGES_FIELD, Keys
from streams.core.pushview import Position, StreamId, ViewGroup
from streams.core.replies import reply_text

log = logging.getLogger(__name__)

T = TypeVar("T")
Message = tuple[Position, bytes]

KEEP_SECONDS = 5.0
"""A finished read serves later pages this long (unless the stream moves on first):
long enough for a herd, short enough that its memory is soon given back."""
RESYNC_MAX_ENTRIES = 20_000
"""A page further behind than this gets a snapshot instead of a replay."""
MESSAGE_ENTRIES = 500
"""Changes entries per replayed delta message."""
SHARED_TRIES = 3
"""Reads one page may wait for before giving up (each newer than the last)."""
_FIELD = CHANGES_FIELD.encode()


class StaleRead(RuntimeError):
    """No read a page waited for reached its need (the stream went back: it was reset)."""


class SharedReads(Generic[T]):
    """One read in flight per key; its result serves every page whose need it covers,
    until ``clear()`` (the stream moved on: no new page can use it) or KEEP_SECONDS."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self.reads = 0
        self._tasks: dict[Hashable, asyncio.Task[T]] = {}

    async def get(self, key: Hashable, need: Position, read: Callable[[], Awaitable[T]],
                  covers: Callable[[T], Position]) -> T:
        for _ in range(SHARED_TRIES):
            task = self._tasks.get(key)
            if task is None or (task.done() and (task.cancelled() or task.exception())):
                task = self._start(key, read)
            result = await asyncio.shield(task)  # one page leaving must not cancel it
            if pushview.covers(covers(result), need):
                return result
            if self._tasks.get(key) is task:
                del self._tasks[key]  # older than this page needs: read again
        raise StaleRead(f"no read of {key!r} reached {pushview.format_cursor(need)}")

    def clear(self) -> None:
        self._tasks.clear()

    def __len__(self) -> int:
        return len(self._tasks)

    def _start(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        async def run() -> T:
            return await read()

        task = asyncio.create_task(run(), name=f"push-read-{key}")
        self._tasks[key] = task
        self.reads += 1
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if task.cancelled() or task.exception() is not None:  # marks it retrieved, too
            if self._tasks.get(key) is task:
                del self._tasks[key]
            return
        asyncio.get_running_loop().call_later(self.keep_seconds, self._expire, key, task)

    def _expire(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]


@dataclass
class Snapshot:
    """Live state as read once, and its snapshot message encoded once per view group."""

    position: Position
    read: changefeed.SnapshotRead
    bodies: dict[str, list[dict[str, Any]]]
    encoded: dict[ViewGroup, bytes] = field(default_factory=dict)

    def message(self, group: ViewGroup) -> bytes:
        if group not in self.encoded:
            self.encoded[group] = changefeed.encode(
                changefeed.assemble_snapshot(self.read, self.bodies, *group))
        return self.encoded[group]


@dataclass
class Replay:
    """The changes after ``since`` as read once (None: a partition's stream no longer
    holds them all), and their delta messages encoded once per view; each batch's
    position is where the page is once it applied it (and the ones before)."""

    since: Position
    covers: Position
    batches: list[tuple[Position, list[Change]]] | None
    encoded: dict[View, list[Message]] = field(default_factory=dict)

    def messages(self, view: View) -> list[Message]:
        assert self.batches is not None
        if view not in self.encoded:
            self.encoded[view] = [
                (position, changefeed.encode(changefeed.delta_message(
                    pushview.format_cursor(position),
                    pushview.scope_changes(changes, None, (view, None)))))
                for position, changes in self.batches]
            if not self.encoded[view]:
                # Nothing new: an empty delta still tells the page it is live and current.
                self.encoded[view] = [(self.since, changefeed.encode(changefeed.delta_message(
                    pushview.format_cursor(self.since), [])))]
        return self.encoded[view]


class Syncs:
    """Reads the first messages of new pages, sharing reads between pages."""

    def __init__(self, redis: Callable[[], aioredis.Redis], gate: asyncio.Semaphore,
                 keys: Keys, counters: Counter[str]) -> None:
        self._redis, self._gate, self.keys, self.counters = redis, gate, keys, counters
        self.partitions = keys.every_partition
        self.snapshots: SharedReads[Snapshot] = SharedReads()
        self.replays: SharedReads[Replay] = SharedReads()

    def stream_moved(self) -> None:
        """New changes were read: no read made so far can serve a page registering now."""
        self.snapshots.clear()
        self.replays.clear()

    async def first_messages(self, since: str | None, group: ViewGroup,
                             need: Position) -> list[Message]:
        """A replay of the changes after ``since`` (a cursor) when every partition's stream
        still holds them all, else a snapshot (so too for a cursor of another partition
        count, or none). District-scoped pages always get a snapshot (small: one
        district's calls): a replay could not tell which calls left their district."""
        view, district = group
        start = None if since is None else pushview.parse_cursor(since, len(self.partitions))
        if start is not None and district is None:
            replay = await self.replays.get(start, need, lambda: self._read_replay(start),
                                            lambda replay: replay.covers)
            if replay.batches is not None:
                self.counters["resyncs"] += 1
                return replay.messages(view)
        snapshot = await self.shared_snapshot(need)
        self.counters["snapshots"] += 1
        return [(snapshot.position, snapshot.message(group))]

    async def shared_snapshot(self, need: Position) -> Snapshot:
        return await self.snapshots.get("snapshot", need, self.read_snapshot,
                                        lambda snapshot: snapshot.position)

    async def read_snapshot(self) -> Snapshot:
        """Live state in two round trips (changefeed's snapshot reads)."""
        async with self._gate:
            return await self._read_snapshot()

    async def _read_snapshot(self) -> Snapshot:
        scored = len(self.partitions) > 1
        parts = await asyncio.gather(*(self._read_partition(keys, scored)
                                       for keys in self.partitions))
        read, bodies = changefeed.merge_partitions(parts)
        return Snapshot(tuple(pushview.parse_stream_id(part.last_id) for part, _ in parts),
                        read, bodies)

    async def _read_partition(self, keys: Keys, scored: bool,
                              ) -> tuple[changefeed.SnapshotRead, changefeed.Bodies]:
        redis = self._redis()
        async with redis.pipeline(transaction=True) as pipe:
            for command in changefeed.snapshot_reads(keys, time.time(), scored):
                pipe.execute_command(*command)
            read = changefeed.read_step_one(keys, await pipe.execute(), scored)
        async with redis.pipeline(transaction=False) as pipe:
            for command in read.body_reads():
                pipe.execute_command(*command)
            return read, read.bodies(await pipe.execute())

    async def _read_replay(self, since: Position) -> Replay:
        async with self._gate:
            return await self._read_replay_now(since)

    async def _read_replay_now(self, since: Position) -> Replay:
        """Each partition's entries after its id in ``since``, one partition after another
        (a page's partitions are independent: only each one's order matters)."""
        position, covers = since, since
        batches: list[tuple[Position, list[Change]]] = []
        budget = RESYNC_MAX_ENTRIES
        for partition, keys in enumerate(self.partitions):
            read = await self._read_partition_replay(keys.changes, since[partition], budget)
            if read is None:
                # No page can resync from here: the answer (a snapshot) serves every need.
                return Replay(since, ((sys.maxsize, 0),) * len(since), None)
            tip, decoded, taken = read
            budget -= taken
            covers = pushview.moved_to(covers, partition, tip)
            for start in range(0, len(decoded), MESSAGE_ENTRIES):
                batch = decoded[start:start + MESSAGE_ENTRIES]
                position = pushview.moved_to(position, partition,
                                             pushview.parse_stream_id(batch[-1][0]))
                batches.append((position, pushview.entries_changes(batch)))
        return Replay(since, covers, batches)

    async def _read_partition_replay(self, stream: str, since: StreamId, budget: int,
                                     ) -> tuple[StreamId, list[tuple[str, list[Change]]],
                                                int] | None:
        """(tip, decoded entries after ``since``, entries read) of one partition's changes
        stream, or None when it no longer holds them all or holds more than ``budget``."""
        redis, since_id = self._redis(), pushview.format_stream_id(since)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, "-", "+", count=1)
            pipe.xrevrange(stream, "+", "-", count=1)
            oldest, newest = await pipe.execute()
        first, last = _first_id(oldest), _first_id(newest)
        if not pushview.can_resync(since_id, first, last):
            return None
        entries = entries_of(await redis.xrange(stream, f"({since_id}", "+",
                                                count=budget + 1))
        if len(entries) > budget:
            return None
        tip = max(pushview.parse_stream_id(last) if last else (0, 0),
                  pushview.parse_stream_id(entries[-1][0]) if entries else (0, 0))
        return tip, decode_entries(entries, self.counters), len(entries)


Entry = tuple[str, dict[bytes, bytes]]


def entries_of(reply: Any) -> list[Entry]:
    """XRANGE/XREVRANGE entries as (id text, fields); the one place reply shapes are read."""
    return [(reply_text(entry_id), dict(fields or {})) for entry_id, fields in reply or []]


def decode_entries(entries: list[Entry], counters: Counter[str],
                   ) -> list[tuple[str, list[Change]]]:
    """Each entry's change records; an unreadable entry is logged, counted and skipped."""
    decoded = []
    for entry_id, fields in entries:
        try:
            decoded.append((entry_id, changefeed.decode_batch(fields.get(_FIELD, b""))))
        except ValueError as error:
            log.warning("skipping changes entry %s: %s", entry_id, error)
            counters["bad_entries"] += 1
    return decoded


def _first_id(reply: Any) -> str | None:
    entries = entries_of(reply)
    return entries[0][0] if entries else None




