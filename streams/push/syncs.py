"""A new page's first messages: a snapshot, or the deltas since its last id (a replay),
read from Redis once for every page that asks at the same time.

A herd of pages (push restarted, the station's network came back) must not cost one read
of live state and one ~1 MB encoding per page: pages that want the same snapshot share one
read and one encoding per view group, pages resyncing from the same id share one replay
(streams/state-contract.md, "Resync"). A shared result serves a page only if it reaches
the page's ``need`` (where the changes reader was when the page registered): everything
newer reaches the page through the lanes, so nothing falls in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from streams.core import changefeed, pushview
from streams.core.changefeed import Change, View
from streams.core.keys import CHANGES_FIELD, Keys
from streams.core.pushview import StreamId, ViewGroup
from streams.core.replies import reply_text

log = logging.getLogger(__name__)

T = TypeVar("T")
Message = tuple[StreamId, bytes]

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

    async def get(self, key: Hashable, need: StreamId, read: Callable[[], Awaitable[T]],
                  covers: Callable[[T], StreamId]) -> T:
        for _ in range(SHARED_TRIES):
            task = self._tasks.get(key)
            if task is None or (task.done() and (task.cancelled() or task.exception())):
                task = self._start(key, read)
            result = await asyncio.shield(task)  # one page leaving must not cancel it
            if covers(result) >= need:
                return result
            if self._tasks.get(key) is task:
                del self._tasks[key]  # older than this page needs: read again
        raise StaleRead(f"no read of {key!r} reached {pushview.format_stream_id(need)}")

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

    stream_id: StreamId
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
    """The changes after ``since`` as read once (None: the stream no longer holds them
    all), and their delta messages encoded once per view."""

    since: str
    covers: StreamId
    batches: list[tuple[str, list[Change]]] | None
    encoded: dict[View, list[Message]] = field(default_factory=dict)

    def messages(self, view: View) -> list[Message]:
        assert self.batches is not None
        if view not in self.encoded:
            self.encoded[view] = [
                (pushview.parse_stream_id(last_id), changefeed.encode(changefeed.delta_message(
                    last_id, pushview.scope_changes(changes, None, (view, None)))))
                for last_id, changes in self.batches]
            if not self.encoded[view]:
                # Nothing new: an empty delta still tells the page it is live and current.
                self.encoded[view] = [(pushview.parse_stream_id(self.since), changefeed.encode(
                    changefeed.delta_message(self.since, [])))]
        return self.encoded[view]


class Syncs:
    """Reads the first messages of new pages, sharing reads between pages."""

    def __init__(self, redis: Callable[[], aioredis.Redis], gate: asyncio.Semaphore,
                 keys: Keys, counters: Counter[str]) -> None:
        self._redis, self._gate, self.keys, self.counters = redis, gate, keys, counters
        self.snapshots: SharedReads[Snapshot] = SharedReads()
        self.replays: SharedReads[Replay] = SharedReads()

    def stream_moved(self) -> None:
        """New changes were read: no read made so far can serve a page registering now."""
        self.snapshots.clear()
        self.replays.clear()

    async def first_messages(self, since: str | None, group: ViewGroup,
                             need: StreamId) -> list[Message]:
        """A replay of the changes after ``since`` when the stream still holds them all,
        else a snapshot. District-scoped pages always get a snapshot (small: one
        district's calls): a replay could not tell which calls left their district."""
        view, district = group
        if since is not None and district is None and _readable(since):
            replay = await self.replays.get(since, need, lambda: self._read_replay(since),
                                            lambda replay: replay.covers)
            if replay.batches is not None:
                self.counters["resyncs"] += 1
                return replay.messages(view)
        snapshot = await self.shared_snapshot(need)
        self.counters["snapshots"] += 1
        return [(snapshot.stream_id, snapshot.message(group))]

    async def shared_snapshot(self, need: StreamId) -> Snapshot:
        return await self.snapshots.get("snapshot", need, self.read_snapshot,
                                        lambda snapshot: snapshot.stream_id)

    async def read_snapshot(self) -> Snapshot:
        """Live state in two round trips (changefeed's snapshot reads)."""
        async with self._gate:
            return await self._read_snapshot()

    async def _read_snapshot(self) -> Snapshot:
        redis = self._redis()
        async with redis.pipeline(transaction=True) as pipe:
            for command in changefeed.snapshot_reads(self.keys, time.time()):
                pipe.execute_command(*command)
            read = changefeed.read_step_one(self.keys, await pipe.execute())
        async with redis.pipeline(transaction=False) as pipe:
            for command in read.body_reads():
                pipe.execute_command(*command)
            bodies = read.bodies(await pipe.execute())
        return Snapshot(pushview.parse_stream_id(read.last_id), read, bodies)

    async def _read_replay(self, since: str) -> Replay:
        async with self._gate:
            return await self._read_replay_now(since)

    async def _read_replay_now(self, since: str) -> Replay:
        redis, stream = self._redis(), self.keys.changes
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, "-", "+", count=1)
            pipe.xrevrange(stream, "+", "-", count=1)
            oldest, newest = await pipe.execute()
        first, last = _first_id(oldest), _first_id(newest)
        covers = pushview.parse_stream_id(last) if last else (0, 0)
        if not pushview.can_resync(since, first, last):
            return Replay(since, covers, None)
        entries = entries_of(await redis.xrange(stream, f"({since}", "+",
                                                count=RESYNC_MAX_ENTRIES + 1))
        if len(entries) > RESYNC_MAX_ENTRIES:
            return Replay(since, covers, None)
        decoded = decode_entries(entries, self.counters)
        batches = [(decoded[min(start + MESSAGE_ENTRIES, len(decoded)) - 1][0],
                    pushview.entries_changes(decoded[start:start + MESSAGE_ENTRIES]))
                   for start in range(0, len(decoded), MESSAGE_ENTRIES)]
        if entries:
            covers = max(covers, pushview.parse_stream_id(entries[-1][0]))
        return Replay(since, covers, batches)


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


def _readable(since: str) -> bool:
    try:
        pushview.parse_stream_id(since)
    except ValueError:
        return False
    return True



