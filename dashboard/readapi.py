"""The synchronous read API the dashboard calls: live state out of Redis as plain data.

Only the consumer writes live state (see notes/state-contract.md); this module only reads.
Entities come back as public views (internal fields dropped); pages that serve tablet roles
pass them through ``public_view(entity, role)`` again to drop caller details.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import redis

from streams.core.events import CATEGORIES
from streams.core.keys import SOURCES, Keys
from streams.core.livestate import CLOSED_FIELDS, public_view

NUMERIC_CLOSED_FIELDS = (
    "priority", "received_time", "dispatched_time", "on_scene_time", "closed_time",
    "dispatch_s", "travel_s", "response_s", "on_scene_s",
)
"""Closed-record fields returned as float columns (NaN where blank)."""
FLAG_CLOSED_FIELDS = ("qol", "cancelled")
"""Closed-record fields returned as bool columns."""
TEXT_CLOSED_FIELDS = tuple(name for name in CLOSED_FIELDS
                           if name not in NUMERIC_CLOSED_FIELDS + FLAG_CLOSED_FIELDS)
CATEGORICAL_CLOSED_FIELDS = ("category", "district", "neighborhood", "call_type", "source")
CLOSED_READ_CHUNK = 20_000
"""Entries per XRANGE while catching up on the closed stream."""

_json = msgspec.json.Decoder()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _decode_all(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    return [public_view(_json.decode(value), "all") for value in values if value is not None]


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
        return None if body is None else public_view(_json.decode(body), "all")

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
            unit = public_view(_json.decode(body), "all")
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

    def _bodies(self, hash_key: str, ids: Sequence[bytes | str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return _decode_all(self.client.hmget(hash_key, list(ids)))


class _ClosedCallsCache:
    """The closed stream as a DataFrame, extended by XRANGE from the last id read."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.last_id = "-"
        self.frame = _closed_frame([])
        self.lock = threading.Lock()

    def refresh(self, client: redis.Redis) -> pd.DataFrame:
        with self.lock:
            parts = []
            while True:
                start = "-" if self.last_id == "-" else f"({self.last_id}"
                entries = client.xrange(self.stream, start, "+", count=CLOSED_READ_CHUNK)
                if not entries:
                    break
                self.last_id = _text(entries[-1][0])
                parts.append(_closed_frame(entries))
                if len(entries) < CLOSED_READ_CHUNK:
                    break
            if parts:
                self.frame = _concat([self.frame, *parts])
            return self.frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat([part for part in frames if len(part)] or frames[:1], ignore_index=True)
    for name in CATEGORICAL_CLOSED_FIELDS:
        frame[name] = frame[name].astype("category")
    return frame


def _closed_frame(entries: Sequence[tuple[Any, dict[Any, Any]]]) -> pd.DataFrame:
    """Columns built from whole arrays at once: fast enough for a million rows."""
    rows = [fields for _, fields in entries]
    byte_keys = bool(rows) and isinstance(next(iter(rows[0])), bytes)
    columns: dict[str, Any] = {}
    for name in CLOSED_FIELDS:
        key: bytes | str = name.encode() if byte_keys else name
        values = [row.get(key, b"") for row in rows]
        if name in NUMERIC_CLOSED_FIELDS:
            columns[name] = _floats(values)
        elif name in FLAG_CLOSED_FIELDS:
            columns[name] = np.array([value in (b"1", "1") for value in values], dtype=bool)
        else:
            columns[name] = np.array([_text(value) for value in values], dtype=object)
    return pd.DataFrame(columns)


def _floats(values: list[Any]) -> np.ndarray:
    """Parse numeric strings/bytes to float64, blanks to NaN."""
    if not values:
        return np.empty(0, dtype=np.float64)
    text = np.array(values)  # fixed-width bytes/str array: numpy parses it in C
    blank = text == (b"" if text.dtype.kind == "S" else "")
    if blank.any():
        text = np.where(blank, b"nan" if text.dtype.kind == "S" else "nan", text)
    return text.astype(np.float64)


