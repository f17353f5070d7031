"""The synchronous read API the dashboard calls: live state out of Redis as plain data.

Only the consumer writes live state (streams/state-contract.md, "Writers"); this module
only reads. Entities come back as public views (internal fields dropped); pages that serve
tablet roles pass them through ``streams.core.access.public_view(entity, role)`` again to
drop caller details.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import redis

from streams.core.access import without_internals
from streams.core.events import CATEGORIES
from streams.core.keys import SOURCES, Keys
from streams.core.livestate import CLOSED_FIELDS

NUMERIC_CLOSED_FIELDS = (
    "priority", "received_time", "dispatched_time", "on_scene_time", "closed_time",
    "dispatch_s", "travel_s", "response_s", "on_scene_s", "first_time",
)
"""Closed-record fields returned as float columns (NaN where blank)."""
FLAG_CLOSED_FIELDS = ("qol", "cancelled", "left_feed")
"""Closed-record fields returned as bool columns."""
TEXT_CLOSED_FIELDS = tuple(name for name in CLOSED_FIELDS
                           if name not in NUMERIC_CLOSED_FIELDS + FLAG_CLOSED_FIELDS)
CATEGORICAL_CLOSED_FIELDS = ("category", "district", "neighborhood", "call_type", "source")
CLOSED_READ_CHUNK = 20_000
"""Entries per XRANGE while catching up on the closed stream."""

FIELD_SEPARATOR, RECORD_SEPARATOR = b"\x1f", b"\x1e"
"""ASCII unit/record separators: a chunk of records is joined with these and parsed by
pandas' C CSV reader (far quicker than numpy over object arrays). A value containing one
is detected by counting and that chunk takes the slower, separator-free path."""

log = logging.getLogger(__name__)
_json = msgspec.json.Decoder()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _decode_all(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    return [without_internals(_json.decode(value)) for value in values if value is not None]


class LiveReader:
    """Read live state (calls, units, alerts, shares, freshness, closed calls) from Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._closed = _ClosedCallsCache(keys.closed)

    # --- calls ----------------------------------------------------------------------
    def open_calls(self, category: str | None = None, district: str | None = None,
                   neighborhood: str | None = None, qol_only: bool = False,
                   ) -> list[dict[str, Any]]:
        """Open calls in queue order (priority, then oldest first), optionally filtered."""
        index = self.keys.queue(category) if category else self.keys.calls_open
        ids = self.client.zrange(index, 0, -1)
        calls = self._bodies(self.keys.calls, ids)
        return [call for call in calls
                if (district is None or call.get("district") == district)
                and (neighborhood is None or call.get("neighborhood") == neighborhood)
                and (not qol_only or call.get("qol"))]

    def queue_counts(self, district: str | None = None) -> dict[str, int]:
        """Open calls per category (every category present, zero when empty)."""
        if district is None:
            with self.client.pipeline(transaction=False) as pipe:
                for category in CATEGORIES:
                    pipe.zcard(self.keys.queue(category))
                sizes = pipe.execute()
            return {category: int(size) for category, size in zip(CATEGORIES, sizes,
                                                                   strict=True)}
        counts = dict.fromkeys(CATEGORIES, 0)
        for call in self.open_calls(district=district):
            counts[call["category"]] = counts.get(call["category"], 0) + 1
        return counts

    def call(self, call_id: str) -> dict[str, Any] | None:
        """One call (open or recently closed), or None."""
        body = self.client.hget(self.keys.calls, call_id)
        return None if body is None else without_internals(_json.decode(body))

    # --- units, alerts, shares -------------------------------------------------------
    def units(self) -> list[dict[str, Any]]:
        """Every known unit, sorted by unit id."""
        bodies = self.client.hvals(self.keys.units)
        return sorted(_decode_all(bodies), key=lambda unit: unit["unit_id"])

    def units_near(self, lat: float, lon: float, radius_m: float,
                   status: str | None = "available") -> list[dict[str, Any]]:
        """Units within ``radius_m`` of a point, nearest first, with "distance_m".

        ``status=None`` returns units of every status.
        """
        found = self.client.geosearch(self.keys.units_geo, longitude=lon, latitude=lat,
                                      radius=radius_m, unit="m", withdist=True, sort="ASC")
        if not found:
            return []
        ids = [member for member, _ in found]
        bodies = self.client.hmget(self.keys.units, ids)
        near = []
        for (_, distance), body in zip(found, bodies, strict=True):
            if body is None:
                continue
            unit = without_internals(_json.decode(body))
            if status is None or unit["status"] == status:
                unit["distance_m"] = float(distance)
                near.append(unit)
        return near

    def active_alerts(self, max_age_s: float = 3600,
                      now: float | None = None) -> list[dict[str, Any]]:
        """Gunshot alerts detected within ``max_age_s`` of ``now`` (default: wall clock),
        newest first."""
        now = time.time() if now is None else now
        ids = self.client.zrevrangebyscore(self.keys.alerts_active, "+inf", now - max_age_s)
        return self._bodies(self.keys.alerts, ids)

    def active_shares(self) -> list[dict[str, Any]]:
        """Open video/radio shares, oldest first."""
        ids = self.client.zrange(self.keys.shares_active, 0, -1)
        return self._bodies(self.keys.shares, ids)

    # --- feeds ----------------------------------------------------------------------
    def freshness(self) -> dict[str, dict[str, Any]]:
        """Per source: newest event time, when it was applied, applied and rejected counts."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.freshness)
            pipe.hgetall(self.keys.counts)
            raw_fresh, raw_counts = pipe.execute()
        fresh = {_text(name): float(value) for name, value in raw_fresh.items()}
        counts = {_text(name): int(value) for name, value in raw_counts.items()}
        return {
            source: {
                "event_time": fresh.get(source), "seen": fresh.get(f"{source}:seen"),
                "count": counts.get(source, 0), "rejected": counts.get(f"{source}:rejected", 0),
            }
            for source in SOURCES
        }

    def heartbeats(self) -> list[tuple[str, dict[str, Any], float]]:
        """(process, payload, seconds until it expires) of every live health key
        (Keys.health): which processes are alive, for feed health (dashboard.wallview)."""
        prefix = self.keys.health("")
        names = sorted(_text(name) for name in self.client.scan_iter(
            match=self.keys.health("*"), count=200))
        if not names:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
            replies = pipe.execute()
        beats = []
        for name, body, ttl_ms in zip(names, replies[::2], replies[1::2], strict=True):
            try:
                payload = _json.decode(body) if body is not None else None
            except msgspec.DecodeError:
                payload = None
            if isinstance(payload, dict) and isinstance(ttl_ms, int) and ttl_ms > 0:
                beats.append((name[len(prefix):], payload, ttl_ms / 1000))
        return beats

    def snapshot(self) -> dict[str, Any]:
        """Everything a live page needs, plus the changes-stream id it is consistent with."""
        # The id is taken first: replaying changes after it is safe because upserts are
        # idempotent, whereas taking it last could skip a change made while reading.
        newest = self.client.xrevrange(self.keys.changes, "+", "-", count=1)
        last_id = _text(newest[0][0]) if newest else "0-0"
        return {
            "last_id": last_id, "calls": self.open_calls(), "units": self.units(),
            "alerts": self.active_alerts(), "shares": self.active_shares(),
            "freshness": self.freshness(),
        }

    def deadletters(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead-lettered events: id, source, entry_id, reason, payload (text)."""
        entries = self.client.xrevrange(self.keys.deadletter, "+", "-", count=count)
        letters = []
        for entry_id, fields in entries:
            letter = {_text(name): _text(value) for name, value in fields.items()}
            letter["id"] = _text(entry_id)
            letters.append(letter)
        return letters

    # --- closed calls ---------------------------------------------------------------
    def closed_calls(self, start: float, end: float) -> pd.DataFrame:
        """Closed calls received in [start, end) (epoch s), one row each, CLOSED_FIELDS
        columns; numbers as floats (NaN when blank), qol/cancelled as bools."""
        frame = self._closed.refresh(self.client)
        received = frame["received_time"].to_numpy()
        mask = (received >= start) & (received < end)
        return frame.loc[mask].reset_index(drop=True)

    def prefetch_closed_calls(self) -> threading.Thread:
        """Load the closed stream in a background thread (a million rows take seconds
        once; call at process start so the first response-times page is quick). While a
        prefetch is running, calling again returns that thread instead of a second one."""
        return self._closed.prefetch(self.client)

    def closed_calls_ready(self, wait_s: float = 0.0) -> bool:
        """True once the closed stream has been read into the cache at least once
        (waiting up to ``wait_s`` for a load in progress)."""
        return self._closed.loaded.wait(wait_s) if wait_s > 0 else self._closed.loaded.is_set()

    def closed_calls_progress(self) -> tuple[int, int]:
        """(closed calls read so far, stream length when the first load began)."""
        return self._closed.progress

    def _bodies(self, hash_key: str, ids: Sequence[bytes | str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return _decode_all(self.client.hmget(hash_key, list(ids)))


class _ClosedCallsCache:
    """The closed stream as columns, extended by XRANGE from the last id read.

    Replies are read raw (no per-entry dicts) and turned into numpy columns a chunk at a
    time; text columns are kept as category codes against one growing dictionary, so a
    refresh with a few new rows costs milliseconds even at a million rows.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.last_id = "-"
        self.chunks: dict[str, list[np.ndarray]] = {name: [] for name in CLOSED_FIELDS}
        self.categories: dict[str, dict[str, int]] = {
            name: {} for name in CATEGORICAL_CLOSED_FIELDS}
        self.frame = self._build()
        self.lock = threading.Lock()
        self.loaded = threading.Event()
        self.progress = (0, 0)
        self.rows = 0
        self._prefetching: threading.Thread | None = None

    def prefetch(self, client: redis.Redis) -> threading.Thread:
        with self.lock:
            if self._prefetching is not None and self._prefetching.is_alive():
                return self._prefetching
            self._prefetching = threading.Thread(target=self._prefetch, args=(client,),
                                                 name="closed-calls-prefetch", daemon=True)
            self._prefetching.start()
            return self._prefetching

    def _prefetch(self, client: redis.Redis) -> None:
        started = time.perf_counter()
        try:
            frame = self.refresh(client)
        except redis.RedisError as error:
            log.warning("closed calls prefetch failed (the first query retries): %s", error)
            return
        log.info("closed calls loaded: %d rows in %.1f s", len(frame),
                 time.perf_counter() - started)

    def refresh(self, client: redis.Redis) -> pd.DataFrame:
        with self.lock:
            raw = _raw_client(client)
            if not self.loaded.is_set():
                self.progress = (self.rows, self.rows + int(client.xlen(self.stream)))
            grew = False
            while True:
                start = "-" if self.last_id == "-" else f"({self.last_id}"
                entries = raw.execute_command("XRANGE", self.stream, start, "+", "COUNT",
                                              CLOSED_READ_CHUNK)
                if not entries:
                    break
                self.last_id = _text(entries[-1][0])
                self._add(entries)
                self.rows += len(entries)
                self.progress = (self.rows, max(self.rows, self.progress[1]))
                grew = True
                if len(entries) < CLOSED_READ_CHUNK:
                    break
            if grew:
                self.frame = self._build()
            self.loaded.set()
            return self.frame

    def _add(self, entries: list[Any]) -> None:
        table = _csv_table(entries)
        if table is None:
            self._add_slowly(entries)
            return
        for name in CLOSED_FIELDS:
            column = table[name]
            if name in NUMERIC_CLOSED_FIELDS:
                self.chunks[name].append(column.to_numpy(dtype=np.float64))
            elif name in FLAG_CLOSED_FIELDS:
                self.chunks[name].append((column == "1").to_numpy(dtype=bool))
            elif name in CATEGORICAL_CLOSED_FIELDS:
                known = self.categories[name]
                mapping = np.array([known.setdefault(str(value), len(known))
                                    for value in column.cat.categories], dtype=np.int32)
                codes = column.cat.codes.to_numpy()
                self.chunks[name].append(mapping[codes] if len(mapping)
                                         else codes.astype(np.int32))
            else:
                self.chunks[name].append(column.to_numpy(dtype=object))

    def _add_slowly(self, entries: list[Any]) -> None:
        table = _field_table([_normalised(fields) for _, fields in entries])
        for position, name in enumerate(CLOSED_FIELDS):
            column = table[:, position]
            if name in NUMERIC_CLOSED_FIELDS:
                self.chunks[name].append(_floats(column))
            elif name in FLAG_CLOSED_FIELDS:
                self.chunks[name].append(column == b"1")
            elif name in CATEGORICAL_CLOSED_FIELDS:
                self.chunks[name].append(self._codes(name, column))
            else:
                self.chunks[name].append(np.array([_text(value) for value in column],
                                                  dtype=object))

    def _codes(self, name: str, column: np.ndarray) -> np.ndarray:
        local_codes, uniques = pd.factorize(column)
        known = self.categories[name]
        mapping = np.array([known.setdefault(_text(value), len(known)) for value in uniques],
                           dtype=np.int32)
        return mapping[local_codes] if len(mapping) else local_codes.astype(np.int32)

    def _build(self) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for name in CLOSED_FIELDS:
            parts = self.chunks[name]
            if name in CATEGORICAL_CLOSED_FIELDS:
                codes = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
                columns[name] = pd.Categorical.from_codes(
                    codes, categories=pd.Index(list(self.categories[name]), dtype=object))
            elif parts:
                columns[name] = np.concatenate(parts)
            else:
                columns[name] = np.empty(0, dtype=_empty_dtype(name))
        return pd.DataFrame(columns)


_CSV_DTYPES: dict[str, Any] = {
    name: (np.float64 if name in NUMERIC_CLOSED_FIELDS
           else "category" if name in CATEGORICAL_CLOSED_FIELDS else object)
    for name in CLOSED_FIELDS}


def _csv_table(entries: list[Any]) -> pd.DataFrame | None:
    """The chunk's values as a DataFrame parsed by pandas' C reader; None when a value is
    not bytes or contains a separator (the caller then parses it the slow way)."""
    if not entries or not isinstance(entries[0][1][1], bytes):
        return None
    try:
        text = RECORD_SEPARATOR.join([FIELD_SEPARATOR.join(_normalised(fields)[1::2])
                                      for _, fields in entries])
    except TypeError:  # a str value among bytes
        return None
    if (text.count(FIELD_SEPARATOR) != len(entries) * (len(CLOSED_FIELDS) - 1)
            or text.count(RECORD_SEPARATOR) != len(entries) - 1):
        return None
    return pd.read_csv(
        io.BytesIO(text), sep="\x1f", lineterminator="\x1e", header=None,
        names=list(CLOSED_FIELDS), quoting=csv.QUOTE_NONE, dtype=_CSV_DTYPES,
        keep_default_na=False, na_values={name: [""] for name in NUMERIC_CLOSED_FIELDS},
        skip_blank_lines=False, encoding="utf-8", encoding_errors="replace")


def _empty_dtype(name: str) -> Any:
    if name in NUMERIC_CLOSED_FIELDS:
        return np.float64
    return bool if name in FLAG_CLOSED_FIELDS else object


def _raw_client(client: redis.Redis) -> redis.Redis:
    """A client on the same pool whose XRANGE replies are left as hiredis built them."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("XRANGE", lambda response, **_: response)
    return raw


_EXPECTED_KEYS = [name.encode() for name in CLOSED_FIELDS]


def _normalised(fields: list[Any]) -> list[Any]:
    """Flat [k1, v1, ...] in CLOSED_FIELDS order (records are written in that order, so
    this is a cheap check except for a record written some other way)."""
    if len(fields) == 2 * len(CLOSED_FIELDS) and fields[0] in (b"call_id", "call_id"):
        return fields
    as_dict = {(key.encode() if isinstance(key, str) else key): value
               for key, value in zip(fields[::2], fields[1::2], strict=True)}
    flat: list[Any] = []
    for key in _EXPECTED_KEYS:
        flat.extend((key, as_dict.get(key, b"")))
    return flat


def _field_table(rows: list[list[Any]]) -> np.ndarray:
    """(rows, fields) array of bytes values."""
    table = np.empty((len(rows), len(CLOSED_FIELDS)), dtype=object)
    values = np.array(rows, dtype=object)
    table[:, :] = values[:, 1::2]
    for position in range(table.shape[1]):
        column = table[:, position]
        if column.size and isinstance(column[0], str):
            table[:, position] = [value.encode() for value in column]
    return table


def _floats(column: np.ndarray) -> np.ndarray:
    """Parse numeric bytes to float64 (C speed via a fixed-width array), blanks to NaN."""
    if not len(column):
        return np.empty(0, dtype=np.float64)
    text = column.astype("S")
    return np.where(text == b"", b"nan", text).astype(np.float64)
