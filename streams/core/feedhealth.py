"""Feed health and heartbeats (pure): is each feed live, and which processes vouch for it.

One rule for the wall (``dashboard.wallview`` re-exports these, ``assets/wall.js`` mirrors
``feed_health``) and for ``python -m streams status``. Heartbeats are the processes' health
keys (``Keys.health``): JSON with the time it was written, expiring after a TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from streams.core import display
from streams.core.keys import SOURCES
from streams.core.replies import reply_text

_json = msgspec.json.Decoder()

FEED_STATES = ("live", "quiet", "stale", "none")
"""LIVE: an event within the feed's limit. QUIET: nothing new, but its source says it is
alive (a heartbeat). STALE: neither, past the limit. NONE: never an event or a heartbeat."""


def feed_health(freshness: Mapping[str, Mapping[str, Any]], sources: Sequence[str],
                now: float, limits: Mapping[str, float],
                alive: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One entry per source: state (FEED_STATES) and the text the wall shows.

    ``limits`` is seconds per source (Settings.feed_stale_after). An event counts from when
    it was *received* ("seen"), falling back to its event time, so a replay of old data is
    live while it flows. ``alive`` is source -> {"heard", "until"} from the sources'
    heartbeats (``source_heartbeats``): a source alive until after ``now`` is QUIET, not
    STALE, when it has nothing to report (a sparse gunshot feed at 4 a.m.).
    """
    health = []
    for source in sources:
        entry = freshness.get(source) or {}
        last = entry.get("seen") or entry.get("event_time")
        beat = (alive or {}).get(source) or {}
        heard, until = beat.get("heard"), beat.get("until")
        if last is not None and now - float(last) < float(limits[source]):
            state, text = "live", "live"
        elif until is not None and now < float(until):
            state, text = "quiet", "quiet"
        elif last is None and heard is None:
            state, text = "none", "no data"
        else:
            newest = max(float(x) for x in (last, heard) if x is not None)
            state, text = "stale", "STALE " + display.short_duration(now - newest)
        health.append({"source": source, "state": state, "text": text})
    return health


def vouched_sources(process: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The feeds a process's heartbeat (Keys.health) says are alive: the simulator feeds all
    of them, the webhook ShotSpotter, a poller the source it polls while its polls work."""
    if process == "simulator":
        return tuple(SOURCES)
    if process == "webhook":
        return ("shotspotter",)
    if process.startswith("poll:") and payload.get("state") == "ok":
        source = payload.get("source")
        return (source,) if source in SOURCES else ()
    return ()


def source_heartbeats(beats: Iterable[tuple[str, Mapping[str, Any], float]],
                      now: float) -> dict[str, dict[str, float]]:
    """source -> {"heard": newest heartbeat time, "until": when the newest-lasting health
    key expires (epoch s)} from (process, payload, seconds left) of every health key."""
    alive: dict[str, dict[str, float]] = {}
    for process, payload, ttl_s in beats:
        written = heard_at(payload)
        heard = now if written is None else written
        for source in vouched_sources(process, payload):
            entry = alive.setdefault(source, {"heard": heard, "until": now + ttl_s})
            entry["heard"] = max(entry["heard"], heard)
            entry["until"] = max(entry["until"], now + ttl_s)
    return alive


def heartbeats(names: Sequence[bytes | str], prefix: str, bodies: Sequence[Any],
               ttls_ms: Sequence[Any]) -> list[tuple[str, dict[str, Any], float]]:
    """(process, payload, seconds until it expires) from health key names (sorted) with
    their GET and PTTL replies. A key without a TTL, or whose body is not a JSON object,
    is no heartbeat and is left out."""
    beats = []
    for name, body, ttl_ms in sorted(zip((reply_text(n) for n in names), bodies, ttls_ms,
                                         strict=True)):
        try:
            payload = _json.decode(body) if body is not None else None
        except msgspec.DecodeError:
            payload = None
        if isinstance(payload, dict) and isinstance(ttl_ms, int) and ttl_ms > 0:
            beats.append((name[len(prefix):], payload, ttl_ms / 1000))
    return beats


def heard_at(payload: Mapping[str, Any]) -> float | None:
    """When a heartbeat was written (epoch s): its ``time``, or the simulator's ``seen``."""
    heard = payload.get("time") or payload.get("seen")
    return float(heard) if isinstance(heard, int | float) else None
