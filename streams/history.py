"""The history writer (`python -m streams history`): the closed-calls stream as Parquet.

One writer per history folder tails every partition's ``keys.closed`` (XREAD from the last
id it wrote of each) and appends what it reads to Parquet files (DuckDB writes them, zstd,
sorted by ``anchor_time`` so a period query reads only the row groups it needs). Web
workers query those files with DuckDB instead of holding every closed call in memory, and
read the few entries the files do not hold yet straight from the streams (see
dashboard/history.py).

The folder holds immutable Parquet files and ``manifest.json`` (files, rows, the last
stream id they hold of each partition: ``last_ids``, ``last_id`` being partition 0's; a
one-partition manifest has only ``last_id``, as before partitions). Every change is: write
a new file under a temporary name, rename it, then replace the manifest by rename. A
reader therefore always sees a complete set; files merged away are listed as retired and
deleted only after RETIRE_GRACE_SECONDS, so a query that started before the merge can
finish. A crash between the two renames leaves an unlisted file, deleted at the next
start. Idempotent by stream id: nothing is written twice, and a restart carries on from
the manifest.

A second writer on the same folder waits on the folder's lock (``writer.lock``) and takes
over when the first stops. The folder is rebuilt from the stream when its time zone is not
the settings' (the wall-clock column would be wrong) or when the stream was recreated
(a partition's newest id is older than the manifest's: a flushed or replaced Redis).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from streams.connections import RETRYABLE, backoff_seconds, connect
from streams.core import history
from streams.core.keys import HEALTH_TTL_SECONDS
from streams.core.partitions import stream_id_key
from streams.core.replies import reply_text
from streams.core.settings import Settings
from streams.partition_count import check_partition_count

log = logging.getLogger(__name__)

READ_COUNT = 20_000
"""Entries per XREAD."""
CATCH_UP_FILE_ROWS = 250_000
"""While catching up, rows gathered into one file."""
COMPACT_SMALL_FILES = 8
"""More small files than this and they are merged into one."""
SMALL_FILE_ROWS = 100_000
RETIRE_GRACE_SECONDS = 120.0
"""Merged-away files are deleted this long after leaving the manifest."""
HEARTBEAT_SECONDS = 5.0
STANDBY_SECONDS = 5.0


class HistoryFolder:
    """The Parquet files and manifest of one deployment's history (synchronous I/O)."""

    def __init__(self, folder: Path, timezone: str, partitions: int = 1) -> None:
        self.folder = folder
        self.timezone = timezone
        self.partitions = partitions
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest = history.parse_manifest(self._read(history.MANIFEST_NAME), timezone)
        self.db = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    @property
    def last_id(self) -> str:
        """Partition 0's position (the only one with one partition)."""
        return str(self.manifest["last_id"])

    @property
    def positions(self) -> list[str]:
        """The last closed-stream id the files hold, per partition."""
        return history.manifest_positions(self.manifest, self.partitions)

    def clean_start(self) -> None:
        """Delete files no manifest lists (a crash between file and manifest renames)."""
        listed = {entry["name"] for entry in self.manifest["files"] + self.manifest["retired"]}
        for path in self.folder.glob("*.parquet*"):
            if path.name not in listed:
                path.unlink(missing_ok=True)

    def reset(self, reason: str) -> None:
        """Forget every file (kept until the grace passes) and read the stream afresh."""
        log.warning("history folder %s rebuilt from the stream: %s", self.folder, reason)
        retired = self.manifest["retired"] + [
            {"name": entry["name"], "at": time.time()} for entry in self.manifest["files"]]
        self.manifest = {**history.new_manifest(self.timezone), "retired": retired}
        self._save()

    def append(self, table: pd.DataFrame, positions: Sequence[str]) -> None:
        """Write ``table`` as one new file and move the manifest to ``positions`` (the
        last id read, per partition): the file and its positions change in one rename."""
        files = list(self.manifest["files"])
        if len(table):
            files.append({"name": self._write(table), "rows": int(len(table))})
        self.manifest = history.with_positions(
            {**self.manifest, "files": files,
             "rows": sum(int(entry["rows"]) for entry in files)}, positions)
        self._save()

    def compact(self) -> bool:
        """Merge the small files into one when there are too many; True if it did."""
        small = [e for e in self.manifest["files"] if e["rows"] < SMALL_FILE_ROWS]
        if len(small) <= COMPACT_SMALL_FILES:
            return False
        paths = [str(self.folder / entry["name"]) for entry in small]
        merged = self.db.read_parquet(paths).df()
        name = self._write(merged)
        gone = {entry["name"] for entry in small}
        files = [e for e in self.manifest["files"] if e["name"] not in gone]
        files.append({"name": name, "rows": int(len(merged))})
        retired = self.manifest["retired"] + [{"name": n, "at": time.time()} for n in gone]
        self.manifest = {**self.manifest, "files": files, "retired": retired}
        self._save()
        log.info("history: merged %d small files into %s (%d rows)", len(small), name,
                 len(merged))
        return True

    def delete_retired(self, now: float) -> None:
        keep = []
        for entry in self.manifest["retired"]:
            if now - float(entry["at"]) >= RETIRE_GRACE_SECONDS:
                (self.folder / entry["name"]).unlink(missing_ok=True)
            else:
                keep.append(entry)
        if len(keep) != len(self.manifest["retired"]):
            self.manifest = {**self.manifest, "retired": keep}
            self._save()

    def _write(self, table: pd.DataFrame) -> str:
        name = f"closed-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"
        temporary = self.folder / f"{name}.tmp"
        self.db.register("incoming", table)
        try:
            self.db.execute(
                f"COPY (SELECT * FROM incoming ORDER BY anchor_time) TO '{_quoted(temporary)}'"
                " (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 50000)")
        finally:
            self.db.unregister("incoming")
        os.replace(temporary, self.folder / name)
        return name

    def _save(self) -> None:
        self.manifest["written"] = time.time()
        temporary = self.folder / f"{history.MANIFEST_NAME}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(self.manifest, indent=1))
        os.replace(temporary, self.folder / history.MANIFEST_NAME)


def _as_is(response: Any, **_: Any) -> Any:
    return response


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class FolderLock:
    """An exclusive lock on the folder (flock): one writer at a time."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.handle = open(folder / "writer.lock", "a+")  # noqa: SIM115 - held for life

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Give the lock up (if held) and close the file."""
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


class HistoryWriter:
    """Tails the closed stream into a HistoryFolder."""

    def __init__(self, settings: Settings, folder: HistoryFolder) -> None:
        self.settings = settings
        self.keys = settings.keys
        self.folder = folder
        self.flush_seconds = settings.history_flush_seconds
        self.buffer: list[pd.DataFrame] = []
        self.buffered_rows = 0
        self.buffer_positions = folder.positions
        """Per partition, the last closed-stream id read (in the buffer or the files)."""
        self.buffer_since = 0.0
        self.written = 0
        self.last_heartbeat = 0.0

    async def check_stream(self, client: aioredis.Redis) -> None:
        """Rebuild when a partition's stream is older than what the files hold of it
        (Redis replaced)."""
        for keys, held in zip(self.keys.every_partition, self.folder.positions, strict=True):
            if held == "0-0":
                continue
            try:
                info = await client.xinfo_stream(keys.closed)
            except aioredis.ResponseError:  # no stream at all
                info = {"last-generated-id": b"0-0"}
            newest = info.get("last-generated-id") or b"0-0"
            if stream_id_key(newest) < stream_id_key(held):
                self.folder.reset(f"the closed stream {keys.closed} ends at "
                                  f"{reply_text(newest)}, before the files' {held}")
                self.buffer_positions = self.folder.positions
                return

    async def run(self, client: aioredis.Redis, stop: asyncio.Event) -> None:
        await self.check_stream(client)
        while not stop.is_set():
            caught_up = await self.read_round(client)
            if self.due(caught_up):
                await asyncio.to_thread(self.flush)
            await self.housekeeping(client)
        if self.buffered_rows or self.buffer_positions != self.folder.positions:
            await asyncio.to_thread(self.flush)

    async def read_round(self, client: aioredis.Redis) -> bool:
        """Read every partition's closed stream once into the buffer; True when caught up
        (each gave fewer than READ_COUNT). With several partitions each is read without
        blocking (one XREAD over streams of two partitions would span slots on a
        cluster), so a round that found nothing waits as one blocking read would."""
        caught_up, found = True, 0
        for partition in range(self.keys.partitions):
            entries = await self.read(client, partition)
            if entries:
                self.add(partition, entries)
            caught_up = caught_up and len(entries) < READ_COUNT
            found += len(entries)
        if not found and self.keys.partitions > 1:
            await asyncio.sleep(min(1.0, self.flush_seconds))
        return caught_up

    async def read(self, client: aioredis.Redis, partition: int = 0) -> list[Any]:
        """The next entries of one partition's closed stream after the buffer, as hiredis
        built them ([id, [k, v, ...]]): turning a million replies into dicts first would
        cost more than the parsing. Blocks for new entries only with one partition."""
        block = int(min(1.0, self.flush_seconds) * 1000) if self.keys.partitions == 1 \
            else None
        stream = self.keys.partition(partition).closed
        # XREAD's reply callback is _as_is on this client: the reply as hiredis built it.
        reply: Any = await client.xread({stream: self.buffer_positions[partition]},
                                        count=READ_COUNT, block=block)
        if not reply:
            return []
        # RESP3 answers a map {stream: entries}, RESP2 a list [[stream, entries]].
        streams = list(reply.values()) if isinstance(reply, dict) else [s[1] for s in reply]
        return list(streams[0])

    def add(self, partition: int, entries: Sequence[Any]) -> None:
        table = history.table_of_entries(entries, self.settings.timezone)
        if not self.buffered_rows:
            self.buffer_since = time.monotonic()
        self.buffer.append(table)
        self.buffered_rows += len(table)
        self.buffer_positions[partition] = reply_text(entries[-1][0])

    def due(self, caught_up: bool) -> bool:
        if not self.buffered_rows:
            return False
        if self.buffered_rows >= CATCH_UP_FILE_ROWS:
            return True
        return caught_up and time.monotonic() - self.buffer_since >= self.flush_seconds

    def flush(self) -> None:
        table = pd.concat(self.buffer, ignore_index=True) if self.buffer else \
            history.empty_table()
        self.folder.append(table, list(self.buffer_positions))
        self.written += len(table)
        self.buffer, self.buffered_rows = [], 0
        self.folder.compact()
        self.folder.delete_retired(time.time())

    async def housekeeping(self, client: aioredis.Redis) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        self.last_heartbeat = now
        body = {"name": "history", "pid": os.getpid(), "time": time.time(),
                "written": self.written, "rows": self.folder.manifest["rows"],
                "files": len(self.folder.manifest["files"]), "last_id": self.folder.last_id,
                "folder": str(self.folder.folder)}
        await client.set(self.keys.health("history"), json.dumps(body), ex=HEALTH_TTL_SECONDS)


async def run_history_writer(settings: Settings, stop: asyncio.Event) -> int:
    """Hold the folder's lock (standing by while another writer has it) and tail the
    closed stream into it until ``stop``; Redis outages are retried with backoff."""
    path = history.folder_of(settings.resolved_history_dir, settings.key_prefix)
    lock = FolderLock(path)
    waited = False
    while not lock.try_acquire():
        if not waited:
            log.info("another history writer holds %s; standing by", path)
            waited = True
        try:
            await asyncio.wait_for(stop.wait(), STANDBY_SECONDS)
        except TimeoutError:
            continue
        lock.release()
        return 0
    try:
        folder = HistoryFolder(path, settings.timezone, settings.partitions)
        folder.clean_start()
        log.info("history writer on %s: %d rows in %d files, from stream id %s", path,
                 folder.manifest["rows"], len(folder.manifest["files"]), folder.last_id)
        attempt = 0
        while not stop.is_set():
            client = await connect(settings.redis_address)
            client.set_response_callback("XREAD", _as_is)
            try:
                await check_partition_count(client, settings.keys)
                writer = HistoryWriter(settings, folder)
                await writer.run(client, stop)
                attempt = 0
            except RETRYABLE as error:
                delay = backoff_seconds(attempt)
                attempt += 1
                log.warning("history writer lost Redis (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
            finally:
                await client.aclose()
        log.info("history writer stopped: %d rows in %d files, last id %s",
                 folder.manifest["rows"], len(folder.manifest["files"]), folder.last_id)
    finally:
        lock.release()
    return 0
