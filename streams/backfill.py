"""Backfill: load a history export straight into closed calls (`python -m streams backfill`).

Rows go through the same mapping engine as replay and the pollers; each complete call
becomes one record on the closed-calls stream (``keys.closed``) in exactly the format the
consumer writes (``livestate.closed_record`` of a closed ``CallState``), which is what the
read API's response-time series are computed from. Gunshot files (a ``shots`` mapping)
become alert bodies in ``keys.alerts`` (history only: never in the active set).

Each call's record goes to its partition's closed stream (``keys.of_entity(call_id)``),
each alert to its partition's alerts. Idempotent: a chunk's call ids are checked against
their partition's ``closed_ids`` (calls already closed, by the live consumer or an earlier
backfill) and the deployment's ``backfill_done(source)`` before anything is written, and
each partition's share of a chunk is written in one MULTI/EXEC with its ``closed_ids``, so
re-running the same file (even after a crash mid-way) writes nothing twice. Rejected rows
go to the deployment's dead-letter stream once (their ``file:row`` is remembered too).

Memory stays flat: rows are streamed, grouped per call in the mapping's bounded window,
and written in chunks of ``CHUNK_ITEMS``; the next chunk is parsed while Redis applies the
previous one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import redis
from tqdm import tqdm  # type: ignore[import-untyped]

from streams.clients import close as close_client
from streams.clients import sync_client
from streams.connections import connect
from streams.core.admission import Admission
from streams.core.deadletter import deadletter_entry
from streams.core.events import InvalidEvent, is_qol
from streams.core.keys import CLOSED_MAXLEN, Keys
from streams.core.livestate import closed_record
from streams.core.mapping import CallRecord, Mapping, Rejected, ShotRecord
from streams.core.partitions import partition_of
from streams.core.settings import Settings
from streams.mapping_files import admission_for, load_mapping, read_csv_rows
from streams.partition_count import check_partition_count
from streams.publish import queue_deadletter

log = logging.getLogger(__name__)

CHUNK_ITEMS = 5000
"""Records (plus rejected rows) written per MULTI/EXEC."""

_encode = msgspec.json.Encoder().encode


class StopFlag(Protocol):
    """asyncio.Event or multiprocessing.Event: anything that says whether to stop."""

    def is_set(self) -> bool: ...


# --- pure conversions ---------------------------------------------------------------------

def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _first(values: Iterable[datetime | None]) -> float | None:
    known = [value for value in values if value is not None]
    return min(known).timestamp() if known else None


def call_state(record: CallRecord) -> dict[str, Any]:
    """The closed CallState (state contract) a history record ends in."""
    unit_times = {
        unit.unit_id: {"assigned": _epoch(unit.assigned), "dispatched": _epoch(unit.dispatched),
                       "en_route": _epoch(unit.en_route), "on_scene": _epoch(unit.on_scene)}
        for unit in record.units}
    closed = _epoch(record.closed_time)
    received = _epoch(record.received_time)
    return {
        "call_id": record.call_id, "status": "cancelled" if record.cancelled else "closed",
        "received_time": received, "call_type_code": record.call_type_code,
        "call_type": record.call_type, "category": record.category,
        "qol": is_qol(record.category), "priority": record.priority,
        "address": record.address, "lat": record.lat, "lon": record.lon,
        "district": record.district, "neighborhood": record.neighborhood,
        "beat": record.beat, "units": list(unit_times), "unit_times": unit_times,
        "dispatched_time": _first([record.dispatched_time,
                                   *(unit.dispatched for unit in record.units)]),
        "en_route_time": _first([record.en_route_time,
                                 *(unit.en_route for unit in record.units)]),
        "on_scene_time": _first([record.on_scene_time,
                                 *(unit.on_scene for unit in record.units)]),
        "closed_time": closed, "updated_time": closed if closed is not None else received,
        "caller_name": None, "caller_phone": None, "disposition": record.disposition,
        "source": record.source, "applied": [], "feed_status": record.status,
        "gunshot_origin": record.gunshot or None, "left_feed": False,
        "poll_times": list(record.poll_times), "received_estimated": False,
    }


def alert_state(record: ShotRecord) -> dict[str, Any]:
    """The AlertState (state contract) of a historical gunshot detection."""
    detected = record.detected_time.timestamp()
    return {
        "alert_id": record.alert_id, "alert_type": record.alert_type, "rounds": record.rounds,
        "lat": record.lat, "lon": record.lon, "address": record.address,
        "district": record.district, "neighborhood": record.neighborhood, "beat": record.beat,
        "detected_time": detected, "published_time": _epoch(record.published_time),
        "updated_time": detected, "applied": [],
    }


def event_count(record: CallRecord | ShotRecord) -> int:
    """How many events ``record_events(record)`` gives, without building them."""
    if isinstance(record, ShotRecord):
        return 1
    count = 1 + (record.closed_time is not None) + sum(
        value is not None for value in (record.dispatched_time, record.en_route_time,
                                        record.on_scene_time))
    count += bool(record.gunshot_alert) and record.lat is not None
    for unit in record.units:
        steps = sum(value is not None for value in (unit.dispatched, unit.en_route,
                                                    unit.on_scene))
        assigned = unit.assigned is not None or steps > 0
        count += assigned + 2 * steps + (unit.cleared is not None)
    return count


# --- summary ------------------------------------------------------------------------------

@dataclass
class Summary:
    """What a backfill read and wrote."""

    rows: int = 0
    calls: int = 0
    alerts: int = 0
    events: int = 0
    loaded: int = 0
    already_loaded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    first_time: float | None = None
    last_time: float | None = None

    def see_time(self, epoch: float) -> None:
        if self.first_time is None or epoch < self.first_time:
            self.first_time = epoch
        if self.last_time is None or epoch > self.last_time:
            self.last_time = epoch

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "calls": self.calls, "alerts": self.alerts,
                "events": self.events, "loaded": self.loaded,
                "already_loaded": self.already_loaded,
                "rejected": sum(self.rejected.values()),
                "rejected_by_reason": dict(sorted(self.rejected.items())),
                "warnings": dict(sorted(self.warnings.items())),
                "first_time": _iso(self.first_time), "last_time": _iso(self.last_time)}

    def text(self) -> str:
        data = self.as_dict()
        lines = [f"rows read       {data['rows']:>10,}",
                 f"calls           {data['calls']:>10,}",
                 f"alerts          {data['alerts']:>10,}",
                 f"events          {data['events']:>10,}",
                 f"loaded now      {data['loaded']:>10,}",
                 f"already loaded  {data['already_loaded']:>10,}",
                 f"rejected rows   {data['rejected']:>10,}"]
        lines += [f"  {reason:<14}{count:>10,}" for reason, count in
                  data["rejected_by_reason"].items()]
        lines += [f"fields left empty ({reason}) {count:,}" for reason, count in
                  data["warnings"].items()]
        lines.append(f"time span       {data['first_time']} .. {data['last_time']}")
        return "\n".join(lines)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


# --- writing --------------------------------------------------------------------------------

@dataclass
class _Chunk:
    items: dict[str, Any] = field(default_factory=dict)  # id -> closed record / alert state
    rejects: dict[str, Rejected] = field(default_factory=dict)  # "row:file:n" -> row

    def __len__(self) -> int:
        return len(self.items) + len(self.rejects)


class _Writer:
    """Writes chunks idempotently from a worker thread; one chunk in flight at a time.

    The thread uses the synchronous client on purpose: redis-py packs commands with
    hiredis (C) only there, about five times faster than the asyncio client's Python
    packing, and the thread lets Redis apply one chunk while the next is parsed.
    """

    def __init__(self, client: redis.Redis, keys: Keys, mapping: Mapping,
                 summary: Summary) -> None:
        self.client, self.keys, self.mapping, self.summary = client, keys, mapping, summary
        self.in_flight: asyncio.Future[None] | None = None

    async def submit(self, chunk: _Chunk) -> None:
        await self.drain()
        self.in_flight = asyncio.ensure_future(asyncio.to_thread(self._write, chunk))

    async def drain(self) -> None:
        if self.in_flight is not None:
            task, self.in_flight = self.in_flight, None
            await task

    def _write(self, chunk: _Chunk) -> None:
        ids, reject_keys = list(chunk.items), list(chunk.rejects)
        seen = self._seen(ids, reject_keys)
        new_ids = [item for item, was in zip(ids, seen[:len(ids)], strict=True) if not was]
        new_rejects = [key for key, was in zip(reject_keys, seen[len(ids):], strict=True)
                       if not was]
        self.summary.loaded += len(new_ids)
        self.summary.already_loaded += len(ids) - len(new_ids)
        if not new_ids and not new_rejects:
            return
        # Each partition's items in its own MULTI (one slot on a cluster); the deployment's
        # (partition 0's) last, with the dead letters and the done set: a crash before it
        # leaves calls in closed_ids, which count as loaded on the re-run.
        by_partition = self._by_partition(new_ids)
        for number in sorted(by_partition, reverse=True):
            with self.client.pipeline(transaction=True) as pipe:
                self._queue_items(pipe, self.keys.partition(number), chunk,
                                  by_partition[number])
                if number == 0:
                    self._queue_done(pipe, chunk, new_ids, new_rejects)
                pipe.execute()
        if 0 not in by_partition:
            with self.client.pipeline(transaction=True) as pipe:
                self._queue_done(pipe, chunk, new_ids, new_rejects)
                pipe.execute()

    def _by_partition(self, ids: list[str]) -> dict[int, list[str]]:
        """``ids`` grouped by their partition's number."""
        grouped: dict[int, list[str]] = {}
        for item in ids:
            grouped.setdefault(partition_of(item, self.keys.partitions), []).append(item)
        return grouped

    def _seen(self, ids: list[str], reject_keys: list[str]) -> list[bool]:
        """Per id, then per rejected row: loaded before (this source's done set, or, for
        calls, closed already in its partition, by the live consumer or an earlier run)."""
        keys, source = self.keys, self.mapping.source
        seen = [bool(flag) for flag in
                self.client.smismember(keys.backfill_done(source), ids + reject_keys)]
        if self.mapping.kind != "calls" or not ids:
            return seen
        closed = dict.fromkeys(ids, False)
        for number, members in self._by_partition(ids).items():
            flags = self.client.smismember(keys.partition(number).closed_ids, members)
            closed.update(zip(members, map(bool, flags), strict=True))
        return [was or closed[item] for item, was in zip(ids, seen, strict=False)] + \
            seen[len(ids):]

    def _queue_items(self, pipe: Any, keys: Keys, chunk: _Chunk, ids: list[str]) -> None:
        """One partition's new closed records (and closed ids) or alert bodies."""
        if self.mapping.kind == "calls":
            for call_id in ids:
                pipe.xadd(keys.closed, chunk.items[call_id], maxlen=CLOSED_MAXLEN,
                          approximate=True)
            pipe.sadd(keys.closed_ids, *ids)
        else:
            pipe.hset(keys.alerts, mapping={alert_id: _encode(chunk.items[alert_id])
                                            for alert_id in ids})

    def _queue_done(self, pipe: Any, chunk: _Chunk, new_ids: list[str],
                    new_rejects: list[str]) -> None:
        """The deployment's part: dead letters of rejected rows and the done set."""
        source = self.mapping.source
        for key in new_rejects:
            row = chunk.rejects[key]
            queue_deadletter(pipe, self.keys, deadletter_entry(
                source, row.code, row.reason, row.raw, file=row.file, row=row.row))
        pipe.sadd(self.keys.backfill_done(source), *new_ids, *new_rejects)


@dataclass(frozen=True)
class ClosedCallsTarget:
    """What ``_Writer`` needs of a mapping, for callers that write closed calls they made
    themselves (the first-start history seed)."""

    source: str
    kind: str = "calls"


def write_closed_records(client: redis.Redis, keys: Keys, source: str,
                         records: Iterable[dict[str, str]], summary: Summary) -> None:
    """Write closed-call records (``closed_record`` format) exactly as a backfill does:
    chunks of CHUNK_ITEMS, idempotent against ``closed_ids`` and this source's done set."""
    writer = _Writer(client, keys, ClosedCallsTarget(source), summary)  # type: ignore[arg-type]
    chunk = _Chunk()
    for record in records:
        summary.calls += 1
        summary.see_time(float(record["received_time"]))
        chunk.items[record["call_id"]] = record
        if len(chunk) >= CHUNK_ITEMS:
            writer._write(chunk)
            chunk = _Chunk()
    if len(chunk):
        writer._write(chunk)


# --- the run --------------------------------------------------------------------------------

def _counted(rows: Iterator[dict[str, str]], summary: Summary) -> Iterator[dict[str, str]]:
    for row in rows:
        summary.rows += 1
        yield row


def admitted(item: CallRecord | ShotRecord | Rejected, admission: Admission | None,
             now: float) -> CallRecord | ShotRecord | Rejected:
    """The item, or a Rejected with the code when its times fall outside the history
    window or its position outside the service area."""
    if admission is None or isinstance(item, Rejected):
        return item
    if isinstance(item, ShotRecord):
        times = {"detected_time": item.detected_time}
    else:
        times = {name: value for name in ("received_time", "dispatched_time",
                                          "on_scene_time", "closed_time")
                 if (value := getattr(item, name)) is not None}
        times.update((f"unit {unit.unit_id} {name}", value) for unit in item.units
                     for name in ("dispatched", "on_scene", "cleared")
                     if (value := getattr(unit, name)) is not None)
    try:
        admission.check_times(times, now, history=True)
        if item.lat is not None and item.lon is not None:
            admission.check_place(item.lat, item.lon)
    except InvalidEvent as error:
        return Rejected(item.file, item.row, f"{error.code}: {error.reason}", "")
    return item


def _add(chunk: _Chunk, item: CallRecord | ShotRecord | Rejected, summary: Summary) -> None:
    if isinstance(item, Rejected):
        summary.rejected[item.code] += 1
        chunk.rejects[f"row:{item.file}:{item.row}"] = item
        return
    summary.events += event_count(item)
    summary.warnings.update(warning.split(":", 1)[0] for warning in item.warnings)
    if isinstance(item, ShotRecord):
        summary.alerts += 1
        summary.see_time(item.detected_time.timestamp())
        chunk.items[item.alert_id] = alert_state(item)
        return
    summary.calls += 1
    record = closed_record(call_state(item))
    if record["first_time"]:
        summary.see_time(float(record["first_time"]))
    chunk.items[item.call_id] = record


async def backfill(client: redis.Redis, keys: Keys, mapping: Mapping,
                   paths: Iterable[Path], stop: StopFlag | None = None,
                   progress: bool = True, summary: Summary | None = None,
                   shard: tuple[int, int] = (0, 1),
                   admission: Admission | None = None) -> Summary:
    """Load every file in this process; return the summary.

    With ``admission`` a call or alert timed outside the history window or placed outside
    the service area is dead-lettered with its code (``admitted``).

    Stops between chunks when ``stop`` is set. Pass ``summary`` to watch the counts from
    elsewhere while it runs; ``shard`` loads only that shard's calls (see
    ``Mapping.records``), as the worker processes of ``backfill_files`` do.
    """
    summary = summary if summary is not None else Summary()
    now = time.time()
    if mapping.kind == "calls":  # which intervals this source can have, for /response
        await asyncio.to_thread(client.hset, keys.feed_times, mapping.source,
                                ",".join(mapping.feed_times))
    writer = _Writer(client, keys, mapping, summary)
    for path in paths:
        with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, file=sys.stderr,
                  desc=path.name, disable=not progress, mininterval=0.5) as bar:
            rows = _counted(read_csv_rows(path, bar.update), summary)
            chunk = _Chunk()
            for item in mapping.records(rows, path.name, shard=shard):
                _add(chunk, admitted(item, admission, now), summary)
                if len(chunk) >= CHUNK_ITEMS:
                    await writer.submit(chunk)
                    chunk = _Chunk()
                    if stop is not None and stop.is_set():
                        break
            if len(chunk):
                await writer.submit(chunk)
            await writer.drain()
        if stop is not None and stop.is_set():
            log.warning("backfill stopped by signal after %d rows; re-run to finish "
                        "(loaded calls are skipped)", summary.rows)
            break
    return summary


# --- several processes ------------------------------------------------------------------

_worker_stop: Any = None
_worker_rows: list[Any] = []


def _init_worker(stop: Any, rows: list[Any]) -> None:
    # Shared flags and counters can only reach a worker when it starts. Ctrl-C reaches
    # the whole process group: workers ignore it and stop between chunks when the parent
    # sets ``stop``, so no chunk is cut in half.
    global _worker_stop, _worker_rows
    _worker_stop, _worker_rows = stop, rows
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load_shard(url: str, prefix: str, partitions: int, mapping_path: str, base_dir: str,
                paths: list[str], shard: int, shards: int, progress: bool,
                admission: Admission | None = None) -> Summary:
    """Worker process: load one shard of the calls, publishing rows read as it goes."""
    rows = _worker_rows[shard]
    mapping = load_mapping(Path(mapping_path), Path(base_dir))
    client = sync_client(url)
    summary = Summary()
    done = threading.Event()

    def report() -> None:
        while not done.wait(0.2):
            rows.value = summary.rows

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        asyncio.run(backfill(client, Keys(prefix, partitions), mapping,
                             [Path(p) for p in paths], _worker_stop, progress, summary,
                             (shard, shards), admission))
    finally:
        done.set()
        reporter.join()
        rows.value = summary.rows
        close_client(client)
    return summary


def merge(summaries: list[Summary]) -> Summary:
    """One summary of shards that each read every row but loaded only their calls."""
    total = Summary(rows=max((part.rows for part in summaries), default=0))
    for part in summaries:
        total.calls += part.calls
        total.alerts += part.alerts
        total.events += part.events
        total.loaded += part.loaded
        total.already_loaded += part.already_loaded
        total.rejected.update(part.rejected)
        total.warnings.update(part.warnings)
        for epoch in (part.first_time, part.last_time):
            if epoch is not None:
                total.see_time(epoch)
    return total


def default_workers() -> int:
    """Worker processes for a backfill: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


async def backfill_files(url: str, keys: Keys, mapping_path: Path, base_dir: Path,
                         paths: list[Path], stop: asyncio.Event, workers: int,
                         progress: bool = True, rows: Any = None,
                         admission: Admission | None = None) -> Summary:
    """Backfill with ``workers`` processes, each loading the calls of one id shard.

    Mapping is CPU-bound Python, so shards in separate processes use every core; calls
    never straddle shards (all rows of a call share its id), and each chunk is its own
    MULTI, so shards need no coordination. ``rows`` (a shared counter) tracks progress.
    """
    context = multiprocessing.get_context("spawn")
    flag = context.Event()
    counters = [context.Value("q", 0) for _ in range(workers)]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(flag, counters)) as pool:
        futures = [loop.run_in_executor(
            pool, _load_shard, url, keys.prefix, keys.partitions, str(mapping_path),
            str(base_dir), [str(path) for path in paths], shard, workers,
            progress and shard == 0, admission)
            for shard in range(workers)]
        relay = asyncio.create_task(_relay_stop(stop, flag, counters, rows))
        try:
            parts = await asyncio.gather(*futures)
        finally:
            relay.cancel()
    return merge(list(parts))


async def _relay_stop(stop: asyncio.Event, flag: Any, counters: list[Any], rows: Any) -> None:
    while True:
        if stop.is_set():
            flag.set()
        if rows is not None:
            rows.value = min(counter.value for counter in counters)
        await asyncio.sleep(0.1)


def load_inputs(command: str, settings: Settings, mapping_path: Path,
                data: list[Path]) -> Mapping | None:
    """The mapping, once it loads and every data file exists; else None, said on stderr."""
    try:
        mapping = load_mapping(mapping_path, settings.shared_data_dir)
    except (OSError, ValueError) as error:
        print(f"{command}: {error}", file=sys.stderr)
        return None
    missing = [str(path) for path in data if not path.is_file()]
    if missing:
        print(f"{command}: no such file: {', '.join(missing)}", file=sys.stderr)
        return None
    return mapping


async def run_backfill(settings: Settings, mapping_path: Path, data: list[Path],
                       stop: asyncio.Event, workers: int | None = None) -> int:
    """`python -m streams backfill --mapping FILE [--workers N] DATA...`: load, then print
    the summary. ``workers`` defaults to one process per core (at most 4)."""
    mapping = load_inputs("backfill", settings, mapping_path, data)
    if mapping is None:
        return 2
    admission = admission_for(settings, mapping)
    url = settings.redis_address
    keys = settings.keys
    waited = await connect(url)  # waits, with backoff, until Redis answers
    try:
        await check_partition_count(waited, keys)
    finally:
        await waited.aclose()
    workers = default_workers() if workers is None else max(1, workers)
    if workers > 1:
        summary = await backfill_files(url, keys, mapping_path, settings.shared_data_dir,
                                       data, stop, workers, admission=admission)
    else:
        client = sync_client(url)
        try:
            summary = await backfill(client, keys, mapping, data, stop, admission=admission)
        finally:
            close_client(client)
    print(summary.text())
    log.info("backfill of %s done: %s", mapping.name, summary.as_dict())
    return 0
