"""The synchronous read API the dashboard calls: live state out of Redis as plain data.

Only the consumer writes live state (streams/state-contract.md, "Writers"); this module
only reads. Live state is in partitions (``streams.core.partitions``): each read goes to
every partition's keys (never one command across partitions: they are different slots on a
cluster) and the answers are merged as one index would hold them. Entities come back as
public views (internal fields dropped); pages that serve tablet roles pass them through
``streams.core.access.public_view(entity, role)`` again to drop caller details.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import redis

from streams.core import changefeed, feedhealth
from streams.core.access import without_internals
from streams.core.events import CATEGORIES
from streams.core.keys import Keys
from streams.core.livestate import CLOSED_FIELDS
from streams.core.partitions import stream_id_key
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
        self.partitions = keys.every_partition

    # --- calls ----------------------------------------------------------------------
    def open_calls(self, category: str | None = None, district: str | None = None,
                   neighborhood: str | None = None, qol_only: bool = False,
                   ) -> list[dict[str, Any]]:
        """Open calls in queue order (priority, then oldest first), optionally filtered."""
        calls = self._indexed(lambda keys: keys.queue(category) if category
                              else keys.calls_open, lambda keys: keys.calls)
        return [call for call in calls
                if (district is None or call.get("district") == district)
                and (neighborhood is None or call.get("neighborhood") == neighborhood)
                and (not qol_only or call.get("qol"))]

    def queue_counts(self, district: str | None = None) -> dict[str, int]:
        """Open calls per category (every category present, zero when empty)."""
        if district is None:
            counts = dict.fromkeys(CATEGORIES, 0)
            for keys in self.partitions:
                with self.client.pipeline(transaction=False) as pipe:
                    for category in CATEGORIES:
                        pipe.zcard(keys.queue(category))
                    sizes = pipe.execute()
                for category, size in zip(CATEGORIES, sizes, strict=True):
                    counts[category] += int(size)
            return counts
        counts = dict.fromkeys(CATEGORIES, 0)
        for call in self.open_calls(district=district):
            counts[call["category"]] = counts.get(call["category"], 0) + 1
        return counts

    def call(self, call_id: str) -> dict[str, Any] | None:
        """One call (open or recently closed), or None."""
        body = self.client.hget(self.keys.of_entity(call_id).calls, call_id)
        return None if body is None else without_internals(_json.decode(body))

    # --- units, alerts, shares -------------------------------------------------------
    def units(self) -> list[dict[str, Any]]:
        """Every known unit, sorted by unit id."""
        bodies = [body for keys in self.partitions for body in self.client.hvals(keys.units)]
        return sorted(_decode_all(bodies), key=lambda unit: unit["unit_id"])

    def units_near(self, lat: float, lon: float, radius_m: float,
                   status: str | None = "available") -> list[dict[str, Any]]:
        """Units within ``radius_m`` of a point, nearest first, with "distance_m".

        ``status=None`` returns units of every status.
        """
        near = []
        for keys in self.partitions:
            found = self.client.geosearch(keys.units_geo, longitude=lon, latitude=lat,
                                          radius=radius_m, unit="m", withdist=True, sort="ASC")
            if not found:
                continue
            bodies = self.client.hmget(keys.units, [member for member, _ in found])
            for (_, distance), body in zip(found, bodies, strict=True):
                if body is None:
                    continue
                unit = without_internals(_json.decode(body))
                if status is None or unit["status"] == status:
                    unit["distance_m"] = float(distance)
                    near.append(unit)
        return sorted(near, key=lambda unit: unit["distance_m"])

    def active_alerts(self, max_age_s: float = 3600,
                      now: float | None = None) -> list[dict[str, Any]]:
        """Gunshot alerts detected within ``max_age_s`` of ``now`` (default: wall clock),
        newest first."""
        now = time.time() if now is None else now
        return self._indexed(lambda keys: keys.alerts_active, lambda keys: keys.alerts,
                             since=now - max_age_s)

    def active_shares(self) -> list[dict[str, Any]]:
        """Open video/radio shares, oldest first."""
        return self._indexed(lambda keys: keys.shares_active, lambda keys: keys.shares)

    # --- feeds ----------------------------------------------------------------------
    def freshness(self) -> dict[str, dict[str, Any]]:
        """Per source: newest event time, when it was applied, applied and rejected counts."""
        fresh, counts = [], []
        for keys in self.partitions:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.freshness)
                pipe.hgetall(keys.counts)
                raw_fresh, raw_counts = pipe.execute()
            fresh.append(raw_fresh)
            counts.append(raw_counts)
        return changefeed.assemble_freshness(changefeed.merge_freshness(fresh),
                                             changefeed.merge_counts(counts))

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
        scored = len(self.partitions) > 1
        read, bodies = changefeed.merge_partitions([self._snapshot_of(keys, scored)
                                                    for keys in self.partitions])
        return changefeed.assemble_snapshot(read, bodies, "full")

    def _snapshot_of(self, keys: Keys, scored: bool,
                     ) -> tuple[changefeed.SnapshotRead, changefeed.Bodies]:
        """One partition's state and changes-stream tip, read in one MULTI of its keys."""
        with self.client.pipeline(transaction=True) as pipe:
            for command in changefeed.snapshot_reads(keys, time.time(), scored):
                pipe.execute_command(*command)
            read = changefeed.read_step_one(keys, pipe.execute(), scored)
        with self.client.pipeline(transaction=False) as pipe:
            for command in read.body_reads():
                pipe.execute_command(*command)
            return read, read.bodies(pipe.execute())

    def deadletters(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead-lettered events: id, source, entry_id, reason, payload (text)."""
        entries = sorted((entry for keys in self.partitions
                          for entry in self.client.xrevrange(keys.deadletter, "+", "-",
                                                             count=count)),
                         key=lambda entry: stream_id_key(reply_text(entry[0])),
                         reverse=True)[:count]
        letters = []
        for entry_id, fields in entries:
            letter = {reply_text(name): reply_text(value) for name, value in fields.items()}
            letter["id"] = reply_text(entry_id)
            letters.append(letter)
        return letters

    def _indexed(self, index: Callable[[Keys], str], bodies: Callable[[Keys], str],
                 since: float | None = None) -> list[dict[str, Any]]:
        """The bodies of every partition's members of an index, in its score order as one
        index would hold them (ties by id); ``since``: newest first, scores from it on."""
        scored: list[tuple[float, str, bytes]] = []
        for keys in self.partitions:
            if since is None:
                members = self.client.zrange(index(keys), 0, -1, withscores=True)
            else:
                members = self.client.zrevrangebyscore(index(keys), "+inf", since,
                                                       withscores=True)
            if members:
                found = self.client.hmget(bodies(keys), [member for member, _ in members])
                scored += [(score, reply_text(member), body) for (member, score), body
                           in zip(members, found, strict=True) if body is not None]
        scored.sort(key=lambda item: (item[0], item[1]), reverse=since is not None)
        return _decode_all(body for _, _, body in scored)
