"""Replay a real data file into the raw streams (`python -m streams replay`).

Rows become records through the mapping, records become events (``record_events``), and
events are published in event-time order: every event of a completed call goes into a
min-heap of at most ``HEAP_EVENTS`` events, and the earliest is published whenever the heap
is full, so files that are roughly time-sorted come out sorted with bounded memory. An
event older than one already published (the file was further out of order than the heap
can absorb) is still published and counted as ``late``; a call's own events always keep
their order because they enter the heap together.

Speed: ``speed`` event-time seconds per wall second (0 = as fast as possible). A gap in the
data longer than ``MAX_WAIT_SECONDS`` of wall time is skipped, not waited out, so stray old
rows (the SF sample reaches back to 2001) do not stall a replay. ``rebase`` shifts every
time so the replay starts now (for demos on the live dashboard).

Rejected rows go to the dead-letter stream (fields source, reason, payload, file, row) and
the replay carries on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis

from streams.backfill import load_inputs
from streams.connections import connect
from streams.core.admission import Admission
from streams.core.deadletter import deadletter_entry
from streams.core.events import Event, InvalidEvent
from streams.core.keys import Keys
from streams.core.mapping import Mapping, Rejected, record_events
from streams.core.settings import Settings
from streams.mapping_files import admission_for, read_csv_rows
from streams.partition_count import check_partition_count
from streams.publish import publish, queue_deadletter

log = logging.getLogger(__name__)

HEAP_EVENTS = 50_000
"""Events held back to sort by event time (memory bound of the replay)."""
BATCH_EVENTS = 500
"""Events per publish pipeline when replaying as fast as possible."""
MAX_WAIT_SECONDS = 5.0
"""Longest wall-clock wait between two events; longer data gaps are skipped."""


@dataclass
class ReplaySummary:
    """What a replay read and published."""

    rows: int = 0
    records: int = 0
    published: int = 0
    late: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "records": self.records, "published": self.published,
                "late": self.late, "rejected": sum(self.rejected.values()),
                "rejected_by_reason": dict(sorted(self.rejected.items()))}


def shifted(event: Event, delta: timedelta) -> Event:
    """The event with every time moved by ``delta`` (for rebased replays)."""
    changes = {name: value + delta for name in event.__struct_fields__
               if isinstance(value := getattr(event, name), datetime)}
    return msgspec.structs.replace(event, **changes)


class _Pacer:
    """Publishes events in batches, waiting so event time runs at ``speed`` x wall time."""

    def __init__(self, client: aioredis.Redis, keys: Keys, speed: float, rebase: bool,
                 stop: asyncio.Event, summary: ReplaySummary) -> None:
        self.client, self.keys, self.speed, self.rebase = client, keys, speed, rebase
        self.stop, self.summary = stop, summary
        self.batch: list[Event] = []
        self.anchor: tuple[float, float] | None = None  # (event epoch, wall monotonic)
        self.delta: timedelta | None = None
        self.newest = float("-inf")

    async def send(self, event: Event) -> None:
        when = event.event_time.timestamp()
        if when < self.newest:
            self.summary.late += 1
        self.newest = max(self.newest, when)
        if self.rebase:
            if self.delta is None:
                self.delta = datetime.now(UTC) - event.event_time
            event = shifted(event, self.delta)
        if self.speed > 0:
            await self._wait_for(when)
        self.batch.append(event)
        if len(self.batch) >= BATCH_EVENTS:
            await self.flush()

    async def _wait_for(self, when: float) -> None:
        now = time.monotonic()
        if self.anchor is None:
            self.anchor = (when, now)
            return
        due = self.anchor[1] + (when - self.anchor[0]) / self.speed
        if due - now > MAX_WAIT_SECONDS:  # a gap in the data: skip it
            self.anchor = (when, now + MAX_WAIT_SECONDS)
            due = now + MAX_WAIT_SECONDS
        if due > now:
            await self.flush()
            try:
                await asyncio.wait_for(self.stop.wait(), due - now)
            except TimeoutError:
                pass

    async def flush(self) -> None:
        if self.batch:
            # Old data keeps its years-old times unless rebased: the history window judges it.
            self.summary.published += await publish(self.client, self.keys, self.batch,
                                                    history=not self.rebase)
            self.batch = []


async def _dead_letter(client: aioredis.Redis, keys: Keys, source: str,
                       rows: list[Rejected]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for row in rows:
            queue_deadletter(pipe, keys, deadletter_entry(source, row.code, row.reason, row.raw,
                                                          file=row.file, row=row.row))
        await pipe.execute()


async def replay(client: aioredis.Redis, keys: Keys, mapping: Mapping, paths: Iterable[Path],
                 speed: float, stop: asyncio.Event, rebase: bool = False,
                 heap_events: int = HEAP_EVENTS, admission: Admission | None = None,
                 ) -> ReplaySummary:
    """Replay every file in event-time order; return what was published.

    With ``admission`` a record whose events fall outside the history window or the
    mapping's service area is dead-lettered with its code (a rebased replay, whose times
    become now, is judged by its positions only)."""
    summary = ReplaySummary()
    await client.hset(keys.feed_times, mapping.source, ",".join(mapping.feed_times))
    pacer = _Pacer(client, keys, speed, rebase, stop, summary)
    heap: list[tuple[datetime, int, Event]] = []
    order = itertools.count()
    rejected: list[Rejected] = []
    for path in paths:
        for item in mapping.records(_counted(read_csv_rows(path), summary), path.name):
            if stop.is_set():
                break
            if isinstance(item, Rejected):
                summary.rejected[item.code] += 1
                rejected.append(item)
                if len(rejected) >= BATCH_EVENTS:
                    await _dead_letter(client, keys, mapping.source, rejected)
                    rejected = []
                continue
            try:
                events = record_events(item)
                if admission is not None:
                    _admit(admission, events, rebase)
            except InvalidEvent as error:
                summary.rejected[error.code] += 1
                rejected.append(Rejected(item.file, item.row, f"{error.code}: {error.reason}",
                                         ""))
                continue
            except ValueError as error:  # a call stating no time at all
                summary.rejected["invalid_event"] += 1
                rejected.append(Rejected(item.file, item.row, f"invalid_event: {error}", ""))
                continue
            summary.records += 1
            for event in events:
                heapq.heappush(heap, (event.event_time, next(order), event))
            while len(heap) > heap_events:
                await pacer.send(heapq.heappop(heap)[2])
    while heap and not stop.is_set():
        await pacer.send(heapq.heappop(heap)[2])
    await pacer.flush()
    if rejected:
        await _dead_letter(client, keys, mapping.source, rejected)
    return summary


def _admit(admission: Admission, events: list[Event], rebase: bool) -> None:
    now = time.time()
    for event in events:
        if rebase:
            lat, lon = getattr(event, "lat", None), getattr(event, "lon", None)
            if lat is not None and lon is not None:
                admission.check_place(lat, lon)
        else:
            admission.check(event, now, history=True)


def _counted(rows: Iterable[dict[str, str]], summary: ReplaySummary,
             ) -> Iterable[dict[str, str]]:
    for row in rows:
        summary.rows += 1
        yield row


async def run_replay(settings: Settings, mapping_path: Path, data: list[Path], speed: float,
                     stop: asyncio.Event, rebase: bool = False) -> int:
    """`python -m streams replay --mapping FILE [--speed N] DATA...`."""
    mapping = load_inputs("replay", settings, mapping_path, data)
    if mapping is None:
        return 2
    client = await connect(settings.redis_address)
    try:
        await check_partition_count(client, settings.keys)
        summary = await replay(client, settings.keys, mapping, data, speed, stop,
                               rebase=rebase, admission=admission_for(settings, mapping))
    finally:
        await client.aclose()
    log.info("replay of %s done: %s", mapping.name, summary.as_dict())
    print(summary.as_dict())
    return 0
