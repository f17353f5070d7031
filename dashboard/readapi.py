"""The synchronous read API the dashboard calls: live state out of Redis as plain data.

Only the consumer writes live state (streams/state-contract.md, "Writers"); this module
only reads. Entities come back as public views (internal fields dropped); pages that serve
tablet roles pass them through ``streams.core.access.public_view(entity, role)`` again to
drop caller details.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import redis

from streams.core import changefeed, feedhealth
from streams.core.access import without_internals
from streams.core.events import CATEGORIES
from streams.core.keys import SOURCES, Keys
from streams.core.livestate import CLOSED_FIELDS
from streams.core.replies import reply_text

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



def _decode_all(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    return [without_internals(_json.decode(value)) for value in values if value is not None]


class LiveReader:
    """Read live state (calls, units, alerts, shares, freshness) from Redis. Closed-call
    history is ``dashboard.history.HistoryStore``'s."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

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
        fresh = {reply_text(name): float(value) for name, value in raw_fresh.items()}
        counts = {reply_text(name): int(value) for name, value in raw_counts.items()}
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
        names = sorted(reply_text(name) for name in self.client.scan_iter(
            match=self.keys.health("*"), count=200))
        if not names:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
            replies = pipe.execute()
        return feedhealth.heartbeats(names, prefix, replies[::2], replies[1::2])

    def snapshot(self) -> dict[str, Any]:
        """Everything a live page needs, plus the changes-stream id it is consistent with:
        the push service's snapshot message (``streams.core.changefeed``) for a full view,
        so a polling page and a pushed page see the same thing."""
        with self.client.pipeline(transaction=True) as pipe:
            for command in changefeed.snapshot_reads(self.keys, time.time()):
                pipe.execute_command(*command)
            read = changefeed.read_step_one(self.keys, pipe.execute())
        with self.client.pipeline(transaction=False) as pipe:
            for command in read.body_reads():
                pipe.execute_command(*command)
            bodies = read.bodies(pipe.execute())
        return changefeed.assemble_snapshot(read, bodies, "full")

    def deadletters(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead-lettered events: id, source, entry_id, reason, payload (text)."""
        entries = self.client.xrevrange(self.keys.deadletter, "+", "-", count=count)
        letters = []
        for entry_id, fields in entries:
            letter = {reply_text(name): reply_text(value) for name, value in fields.items()}
            letter["id"] = reply_text(entry_id)
            letters.append(letter)
        return letters

    def _bodies(self, hash_key: str, ids: Sequence[bytes | str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return _decode_all(self.client.hmget(hash_key, list(ids)))
