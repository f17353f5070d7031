"""Pollers for live open-data feeds: Socrata SODA and ArcGIS REST ``query``.

``python -m streams poll --mapping FILE`` reads the mapping file's ``[poll]`` table
(``streams/core/feeds.py`` documents it), then every ``interval_seconds``:

1. fetches every page of rows updated since the watermark (or the whole active feed);
2. maps rows to records with the mapping (rejected rows -> dead-letter stream, once);
3. compares each record with what was seen last time (kept in Redis, so a restart
   re-emits nothing) and publishes only the lifecycle events for what changed
   (``streams/core/changes.py``); statuses mapped to lifecycle steps get the row's update
   time, or this poll's clock where the feed has none (and the events say so); in an
   active-calls feed a call that disappeared is closed by the mapping's ``left_feed``
   policy at the last poll that showed it;
4. writes the seen records, the watermark and a health key ``poll:<feed>``.

The seen records are tied to the mapping's content (``Mapping.digest``): after the mapping
changed, the next poll re-reads the whole feed (no watermark), re-derives every call still
in it and sends corrections (changed fields and received times), and the health key and
log say how many calls were corrected.

HTTP errors, 429s (Retry-After honoured) and timeouts are retried with jittered backoff;
a poll that still fails leaves the feed stale (the health key says why) and the loop
carries on. Nothing here crashes on a bad feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streams.connections import backoff_seconds, connect
from streams.core.admission import Admission
from streams.core.changes import (
    close_from_units,
    closed_record,
    diff_events,
    dropped_events,
    dump_record,
    dump_seen,
    load_seen,
    merge_records,
    record_key,
)
from streams.core.deadletter import deadletter_entry
from streams.core.events import Event, InvalidEvent
from streams.core.feeds import (
    PollConfig,
    arcgis_params,
    arcgis_rows,
    newest,
    poll_config,
    retry_after_seconds,
    soda_params,
    soda_rows,
)
from streams.core.keys import HEALTH_TTL_SECONDS, Keys
from streams.core.mapping import CallRecord, Mapping, Rejected, ShotRecord, safe_id
from streams.core.mapping.status import stamp_steps
from streams.core.replies import reply_text
from streams.core.settings import Settings
from streams.mapping_files import admission_for, load_mapping
from streams.partition_count import check_partition_count
from streams.publish import publish, queue_deadletter

log = logging.getLogger(__name__)

FORGET_CLOSED_SECONDS = 24 * 3600
"""A closed call unchanged this long is forgotten by the seen-store."""
PRUNE_EVERY_SECONDS = 3600
REJECTED_MEMORY_SECONDS = 24 * 3600
MAX_RETRY_AFTER_SECONDS = 3600.0


class FeedError(Exception):
    """A page could not be fetched or understood; ``retry_after`` from a 429/503."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class PollStatus:
    """What the health key shows about a feed."""

    feed: str
    url: str
    polls: int = 0
    failures: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    rows: int = 0
    events: int = 0
    rejected: int = 0
    warnings: int = 0
    corrected: int = 0
    mapping_changed: float | None = None
    totals: dict[str, int] = field(default_factory=lambda: {"events": 0, "rejected": 0})


@dataclass
class PollResult:
    """Counts of one successful poll."""

    rows: int
    records: int
    events: int
    rejected: int
    dropped: int
    warnings: int = 0
    corrected: int = 0
    mapping_changed: bool = False


class FeedReader:
    """Reads every page of one feed's query (``mapping check --url`` uses it alone)."""

    def __init__(self, config: PollConfig, http: httpx.AsyncClient,
                 stop: asyncio.Event | None = None) -> None:
        self.config = config
        self.http = http
        self.stop = stop or asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def fetch_rows(self, watermark: str | None) -> list[dict[str, str]]:
        """Every page of the query; FeedError if a page keeps failing."""
        rows: list[dict[str, str]] = []
        for _ in range(self.config.max_pages):
            if self.config.kind == "soda":
                payload = await self._get(soda_params(self.config, watermark, len(rows)))
                page = self._parse(soda_rows, payload)
                more = len(page) >= self.config.page_size
            else:
                payload = await self._get(arcgis_params(self.config, watermark, len(rows)))
                page, more = self._parse(
                    lambda data: arcgis_rows(data, self.config.format == "geojson"), payload)
            rows.extend(page)
            if not more or not page:
                return rows
        raise FeedError(f"more than {self.config.max_pages} pages; raise max_pages or "
                        f"narrow the where filter")

    @staticmethod
    def _parse(parser: Callable[[Any], Any], payload: Any) -> Any:
        try:
            return parser(payload)
        except ValueError as error:
            raise FeedError(str(error)) from None

    async def _get(self, params: dict[str, str]) -> Any:
        """GET one page, retrying errors with jittered backoff (Retry-After wins)."""
        attempts = self.config.page_retries
        for attempt in range(attempts):
            try:
                return await self._get_once(params)
            except FeedError as error:
                if attempt == attempts - 1 or self.stop.is_set():
                    raise
                delay = error.retry_after if error.retry_after is not None else \
                    backoff_seconds(attempt, base=self.config.backoff_base_seconds,
                                    cap=self.config.backoff_cap_seconds)
                log.warning("feed %s: %s; retry %d/%d in %.1fs", self.config.feed, error,
                            attempt + 1, attempts - 1, delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _get_once(self, params: dict[str, str]) -> Any:
        try:
            response = await self.http.get(self.config.url, params=params,
                                           timeout=self.config.timeout_seconds)
        except httpx.TimeoutException:
            raise FeedError(f"timed out after {self.config.timeout_seconds}s") from None
        except httpx.HTTPError as error:
            raise FeedError(f"request failed: {error!r}") from None
        if response.status_code != 200:
            retry_after = retry_after_seconds(response.headers.get("retry-after"),
                                              datetime.now(UTC))
            if retry_after is not None:
                retry_after = min(retry_after, MAX_RETRY_AFTER_SECONDS)
            raise FeedError(f"HTTP {response.status_code} from {self.config.url}",
                            retry_after if response.status_code in (429, 503) else None)
        try:
            return response.json()
        except ValueError:
            raise FeedError(f"answer from {self.config.url} is not JSON") from None



class Poller(FeedReader):
    """One feed: fetch pages, diff against the seen-store, publish changes."""

    def __init__(self, config: PollConfig, mapping: Mapping, client: aioredis.Redis,
                 keys: Keys, http: httpx.AsyncClient, stop: asyncio.Event | None = None,
                 clock: Callable[[], float] = time.time,
                 admission: Admission | None = None) -> None:
        super().__init__(config, http, stop)
        self.admission = admission  # time window and service area, judged at the source
        self.mapping = mapping
        self.client = client
        self.keys = keys
        self.clock = clock
        self.status = PollStatus(config.feed, config.url)
        self.source = "shotspotter" if mapping.kind == "shots" else "cad"
        self.closed_from_units = mapping.units is not None \
            and "closed_time" not in mapping.time_columns
        self._last_prune = 0.0

    # --- the loop ---------------------------------------------------------------------
    async def run(self, once: bool = False) -> bool:
        """Poll until stopped (or once); True if the last poll succeeded."""
        ok = False
        while True:
            ok, delay = await self.poll_and_record()
            if once or self.stop.is_set():
                return ok
            await self._sleep(delay)
            if self.stop.is_set():
                return ok

    async def poll_and_record(self) -> tuple[bool, float]:
        """One poll with its errors caught; (succeeded, seconds until the next poll)."""
        self.status.polls += 1
        try:
            result = await self.poll_once()
        except (FeedError, RedisError) as error:
            self.status.failures += 1
            self.status.last_error = str(error)[:300]
            self.status.last_error_time = self.clock()
            retry_after = error.retry_after if isinstance(error, FeedError) else None
            delay = max(retry_after or 0.0,
                        backoff_seconds(self.status.failures - 1,
                                        base=self.config.backoff_base_seconds,
                                        cap=self.config.backoff_cap_seconds))
            log.warning("poll of %s failed (%s); feed stale, next try in %.1fs",
                        self.config.feed, error, delay)
            await self._write_health()
            return False, delay
        self.status.failures = 0
        self.status.last_success = self.clock()
        self.status.rows, self.status.events = result.rows, result.events
        self.status.rejected = result.rejected
        self.status.warnings, self.status.corrected = result.warnings, result.corrected
        if result.mapping_changed:
            self.status.mapping_changed = self.clock()
            log.warning("feed %s: the mapping changed; %d calls still in the feed were "
                        "re-derived and %d corrected", self.config.feed, result.records,
                        result.corrected)
        self.status.totals["events"] += result.events
        self.status.totals["rejected"] += result.rejected
        log.info("poll of %s: %d rows, %d records, %d events, %d rejected, %d dropped",
                 self.config.feed, result.rows, result.records, result.events,
                 result.rejected, result.dropped)
        await self._write_health()
        return True, self.config.interval_seconds

    # --- one poll ---------------------------------------------------------------------
    async def poll_once(self) -> PollResult:
        """Fetch, diff and publish once; FeedError/RedisError when it could not finish."""
        feed = self.config.feed
        watermark_key = self.keys.poll_watermark(feed)
        stored, digest = await self.client.mget(watermark_key, self.keys.poll_mapping(feed))
        watermark = stored.decode() if isinstance(stored, bytes) else stored
        digest = digest.decode() if isinstance(digest, bytes) else digest
        changed = digest is not None and digest != self.mapping.digest
        rows = _unique(await self.fetch_rows(None if changed else watermark))
        now = datetime.fromtimestamp(self.clock(), UTC)
        records: list[CallRecord | ShotRecord] = []
        rejected: list[Rejected] = []
        for item in self.mapping.records(rows, file=self.config.url, first_row=1,
                                         stamp=False):
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                records.append(item)
        events, updates, bad, corrected = await self._diff(records, now, changed)
        rejected.extend(bad)
        dropped = 0
        complete = self.config.active_only and await self._confirmed_answer(rows)
        if complete:
            present = {record_key(record) for record in records} | self._ids_of(rejected, rows)
            dropped_events_, dropped_updates = await self._dropped(present, now)
            events.extend(dropped_events_)
            updates.update(dropped_updates)
            dropped = len(dropped_updates)
        await publish(self.client, self.keys, events)
        new_rejected = await self._dead_letter(rejected)
        await self._remember(updates, rows, watermark, now if complete else None)
        await self._prune()
        warnings = sum(len(record.warnings) for record in records)
        return PollResult(len(rows), len(records), len(events), new_rejected, dropped,
                          warnings, corrected, changed)

    async def _diff(self, records: list[CallRecord | ShotRecord], now: datetime,
                    corrections: bool = False,
                    ) -> tuple[list[Event], dict[str, bytes], list[Rejected], int]:
        seen_key = self.keys.poll_seen(self.config.feed)
        ids = [record_key(record) for record in records]
        stored = await self.client.hmget(seen_key, ids) if ids else []
        events: list[Event] = []
        updates: dict[str, bytes] = {}
        bad: list[Rejected] = []
        corrected = 0
        wall = self.clock()
        for record, data in zip(records, stored, strict=True):
            old = self._load(data)
            new = self._merged(old, record, now)
            if old is not None and dump_record(old) == dump_record(new):
                continue
            try:
                found = diff_events(old, new, now, corrections)
                for event in found if self.admission is not None else ():
                    self.admission.check(event, wall)  # type: ignore[union-attr]
            except InvalidEvent as error:  # outside the window or the service area
                bad.append(Rejected(record.file, record.row, f"{error.code}: {error.reason}",
                                    dump_record(record).decode()))
                continue
            except ValueError as error:  # the event model refused what the record says
                bad.append(Rejected(record.file, record.row, f"invalid_event: {error}",
                                    dump_record(record).decode()))
                continue
            corrected += corrections and old is not None and bool(found)
            events.extend(found)
            updates[record_key(record)] = dump_seen(new, wall)
        return events, updates, bad, corrected

    def _merged(self, old: CallRecord | ShotRecord | None, record: CallRecord | ShotRecord,
                now: datetime) -> CallRecord | ShotRecord:
        """The record completed by what earlier polls saw, its status steps timed."""
        if not isinstance(record, CallRecord) or not isinstance(old, CallRecord | None):
            return record
        new = merge_records(old, record, self.closed_from_units)
        if not self.mapping.has_status_steps:
            return new
        new = stamp_steps(new, now)
        return close_from_units(new) if self.closed_from_units else new

    def _load(self, data: bytes | str | None) -> CallRecord | ShotRecord | None:
        if data is None:
            return None
        try:
            return load_seen(data, shot=self.mapping.kind == "shots")[1]
        except ValueError as error:
            log.warning("feed %s: %s", self.config.feed, error)
            return None

    def _ids_of(self, rejected: list[Rejected], rows: list[dict[str, str]]) -> set[str]:
        """Ids of rejected rows: a call whose row went bad has not left the feed."""
        ids = set()
        for item in rejected:
            if 1 <= item.row <= len(rows):
                value = rows[item.row - 1].get(self.mapping.id_column, "").strip()
                if value:
                    ids.add(safe_id(value))
        return ids

    async def _confirmed_answer(self, rows: list[dict[str, str]]) -> bool:
        """False for a first empty answer in a row: from an active-calls feed that is more
        often a glitch upstream than a quiet city, so only a second one clears calls."""
        key = self.keys.poll_empty_answers(self.config.feed)
        if rows:
            await self.client.delete(key)
            return True
        return int(await self.client.incr(key)) > 1

    async def _dropped(self, present: set[str], now: datetime,
                       ) -> tuple[list[Event], dict[str, bytes]]:
        """Open calls remembered from earlier polls that this complete poll no longer has,
        closed as the ``left_feed`` policy says at the last poll that showed them."""
        feed = self.config.feed
        everything = await self.client.hgetall(self.keys.poll_seen(feed))
        missing = {reply_text(key): reply_text(value) for key, value in
                   (await self.client.hgetall(self.keys.poll_missing(feed))).items()}
        last = await self.client.get(self.keys.poll_last_complete(feed))
        shown_before = float(last) if last is not None else self.clock()
        events: list[Event] = []
        updates: dict[str, bytes] = {}
        still_missing: dict[str, str] = {}
        for raw_id, data in everything.items():
            call_id = reply_text(raw_id)
            if call_id in present:
                continue
            old = self._load(data)
            if not isinstance(old, CallRecord) or old.closed_time is not None:
                continue
            count, shown = _missing_entry(missing.get(call_id), shown_before)
            if not self._closes(count):
                still_missing[call_id] = f"{count}:{shown!r}"
                continue
            last_shown = datetime.fromtimestamp(shown, UTC)
            events.extend(dropped_events(old, last_shown))
            updates[call_id] = dump_seen(closed_record(old, last_shown), self.clock())
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.poll_missing(feed))
            if still_missing:
                pipe.hset(self.keys.poll_missing(feed), mapping=cast(Any, still_missing))
            await pipe.execute()
        return events, updates

    def _closes(self, polls_missing: int) -> bool:
        policy = self.config.left_feed
        if policy == "keep_open":
            return False
        return policy == "close" or polls_missing >= self.config.missing_polls

    async def _dead_letter(self, rejected: list[Rejected]) -> int:
        """Dead-letter rejected rows not already dead-lettered; return how many were new."""
        if not rejected:
            return 0
        memory = self.keys.poll_rejected(self.config.feed)
        wall = self.clock()
        digests = [hashlib.blake2b(f"{item.reason}\n{item.raw}".encode(), digest_size=10)
                   .hexdigest() for item in rejected]
        async with self.client.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.zadd(memory, {digest: wall}, nx=True)
            added = await pipe.execute()
        fresh = [item for item, is_new in zip(rejected, added, strict=True) if is_new]
        if fresh:
            async with self.client.pipeline(transaction=False) as pipe:
                for item in fresh:
                    queue_deadletter(pipe, self.keys, deadletter_entry(
                        self.source, item.code, item.reason, item.raw, file=self.config.url,
                        row=item.row, feed=self.config.feed))
                await pipe.execute()
            for item in fresh[:5]:
                log.warning("feed %s row %d rejected: %s", self.config.feed, item.row,
                            item.reason)
        return len(fresh)

    async def _remember(self, updates: dict[str, bytes], rows: list[dict[str, str]],
                        watermark: str | None, complete: datetime | None = None) -> None:
        """Store seen records, the advanced watermark, the mapping's digest and (for a
        complete answer of an active-calls feed) when it was read, together."""
        feed = self.config.feed
        field_name = self.config.updated_field
        advanced = newest([row.get(field_name, "") for row in rows], watermark) \
            if field_name else None
        async with self.client.pipeline(transaction=True) as pipe:
            if updates:
                pipe.hset(self.keys.poll_seen(feed), mapping=cast(Any, updates))
            if advanced is not None and advanced != watermark:
                pipe.set(self.keys.poll_watermark(feed), advanced)
            if complete is not None:
                pipe.set(self.keys.poll_last_complete(feed), repr(complete.timestamp()))
            pipe.set(self.keys.poll_mapping(feed), self.mapping.digest)
            pipe.hset(self.keys.feed_times, self.mapping.source,
                      ",".join(self.mapping.feed_times))
            pipe.zremrangebyscore(self.keys.poll_rejected(feed), "-inf",
                                  self.clock() - REJECTED_MEMORY_SECONDS)
            await pipe.execute()

    async def _prune(self) -> None:
        """Forget closed calls that have not changed for FORGET_CLOSED_SECONDS (hourly)."""
        wall = self.clock()
        if wall - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = wall
        seen_key = self.keys.poll_seen(self.config.feed)
        stale = []
        async for raw_id, data in self.client.hscan_iter(seen_key, count=1000):
            try:
                changed, record = load_seen(data, shot=self.mapping.kind == "shots")
            except ValueError:
                stale.append(raw_id)
                continue
            closed = isinstance(record, ShotRecord) or record.closed_time is not None
            if closed and changed < wall - FORGET_CLOSED_SECONDS:
                stale.append(raw_id)
        if stale:
            await self.client.hdel(seen_key, *stale)
            log.info("feed %s: forgot %d closed calls", self.config.feed, len(stale))

    async def _write_health(self) -> None:
        status = self.status
        ttl = int(max(HEALTH_TTL_SECONDS, 3 * self.config.interval_seconds
                      + self.config.timeout_seconds * self.config.page_retries))
        # "source": the feed it keeps alive on the wall (QUIET, not STALE, between events).
        payload = {"time": self.clock(), "feed": status.feed, "source": self.source,
                   "url": status.url,
                   "state": "ok" if status.failures == 0 and status.last_success else "error",
                   "polls": status.polls, "failures": status.failures,
                   "last_success": status.last_success, "last_error": status.last_error,
                   "last_error_time": status.last_error_time, "rows": status.rows,
                   "events": status.events, "rejected": status.rejected,
                   "warnings": status.warnings, "corrected": status.corrected,
                   "mapping_changed": status.mapping_changed,
                   "left_feed": self.config.left_feed,
                   "total_events": status.totals["events"],
                   "total_rejected": status.totals["rejected"]}
        with contextlib.suppress(RedisError):
            await self.client.set(self.keys.health(f"poll:{status.feed}"), json.dumps(payload),
                                  ex=ttl)



def _missing_entry(entry: str | None, shown_before: float) -> tuple[int, float]:
    """(polls missing in a row including this one, epoch the feed last showed the call)."""
    if entry is None:
        return 1, shown_before
    count, _, shown = entry.partition(":")
    try:
        return int(count) + 1, float(shown)
    except ValueError:
        return 1, shown_before


def _unique(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop exact repeats (offset paging over a changing feed can serve a row twice)."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    unique = []
    for row in rows:
        key = tuple(sorted(row.items()))
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def load_feed(settings: Settings, mapping_path: Path) -> tuple[Mapping, PollConfig]:
    """The mapping and its ``[poll]`` table; ValueError says what to fix."""
    mapping = load_mapping(mapping_path, settings.shared_data_dir)
    table = mapping.section("poll")
    if not table:
        raise ValueError(f"{mapping_path} has no [poll] table; see streams/core/feeds.py")
    return mapping, poll_config(table, default_feed=mapping_path.stem)


def http_client(settings: Settings, config: PollConfig) -> httpx.AsyncClient:
    """The HTTP client of one feed (SODA app token header when configured)."""
    headers = {"User-Agent": "hartford-dispatch-poller/0.1", "Accept": "application/json"}
    if config.kind == "soda" and config.app_token and settings.soda_app_token:
        headers["X-App-Token"] = settings.soda_app_token
    return httpx.AsyncClient(headers=headers, follow_redirects=True,
                             timeout=config.timeout_seconds)


async def run_poll(settings: Settings, mapping_path: Path, stop: asyncio.Event,
                   once: bool = False) -> int:
    """``python -m streams poll``: poll until ``stop`` (or once); return the exit code."""
    try:
        mapping, config = load_feed(settings, mapping_path)
    except (ValueError, OSError) as error:
        log.error("cannot poll %s: %s", mapping_path, error)
        return 2
    client = await connect(settings.redis_address)
    try:
        await check_partition_count(client, settings.keys)
        async with http_client(settings, config) as http:
            poller = Poller(config, mapping, client, settings.keys, http, stop,
                            admission=admission_for(settings, mapping))
            log.info("polling %s (%s) every %.0fs as feed %s", config.url, config.kind,
                     config.interval_seconds, config.feed)
            ok = await poller.run(once=once)
            log.info("poller %s stopped: %s", config.feed, poller.status)
    finally:
        await client.aclose()
    return 0 if ok or not once else 1
