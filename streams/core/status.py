"""An operator's view of one deployment (pure): Redis replies in, a report out.

``streams/status.py`` (``python -m streams status [--json]``) reads Redis into ``Replies``;
``build_report`` makes the ``Report``; ``report_json`` and ``report_text`` show it. A value
Redis cannot tell is None: "unknown" in the text, null in the JSON, never 0. The JSON's
keys are listed in the README ("Operator's view") and only ever added to (``SCHEMA``).

The rules are the ones the pages use: feed health is ``streams.core.feedhealth`` (the
wall's), the counters are the consumer's (``Keys.counts``, ``Keys.freshness``,
``Keys.rejected_codes``), kept per partition and summed here (``totals``); each partition
has its lease and its four raw streams read by the consumer group.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.core import changefeed, display, feedhealth
from streams.core.keys import (
    ALERT_ACTIVE_SECONDS,
    CONSUMER_GROUP,
    DEADLETTER_MAXLEN,
    HEALTH_TTL_SECONDS,
    SOURCES,
    lease_owner,
)
from streams.core.partitions import stream_id_key
from streams.core.replies import reply_text

SCHEMA = 2
"""Version of the JSON report; a change that removes or renames a key raises it, and so
does a change in what a key means. 2: partitions (``by_partition``, one row each; the
``partitions`` rows, one per raw stream, gained ``partition``), ``consumers``."""
DEADLETTER_SCAN = 1000
"""Newest dead letters grouped by reason code; past this the grouping says it is sampled
(the stream's length and the all-time counters by code stay exact)."""
LAG_COUNT_LIMIT = 1000
"""Undelivered entries counted one by one where Redis gives no lag (6.2 has no ``lag`` in
XINFO GROUPS; 7 leaves it null after deletions); past this the lag is "at least" it."""
STALE_SHARE = 2 / 3
"""A heartbeat older than this share of its key's lifetime is STALE: every process writes
its health key with a TTL of about three beats, so it has missed two."""
NO_HEARTBEAT = ("push", "web")
"""Processes `make run` supervises that keep no health key (ask their /healthz)."""
ANY_CONSUMER = "consumer"
"""In the expected processes: at least one consumer of the group, whatever its name."""
UNKNOWN = "unknown"
_DETAIL_SKIP = frozenset({"time", "seen", "pid", "name", "url", "folder", "last_id"})
_KIND_ORDER = ("consumer", "history writer", "simulator", "webhook", "poller", "other",
               "push", "web")


# --- what streams/status.py reads ---------------------------------------------------------

@dataclass(frozen=True)
class StreamReplies:
    """One raw stream: XINFO STREAM (None: no such stream), XINFO GROUPS, XINFO CONSUMERS of
    the consumer group, and the undelivered entries counted (``lag_count_start``)."""

    source: str
    stream: str
    info: Mapping[str, Any] | None
    groups: Sequence[Mapping[str, Any]] = ()
    consumers: Sequence[Mapping[str, Any]] = ()
    undelivered: int | None = None
    partition: int = 0


@dataclass(frozen=True)
class PartitionReplies:
    """One partition's keys as Redis answered (read in one pipeline: on a cluster each
    partition's keys share one hash tag, so one slot)."""

    partition: int
    key_prefix: str
    live: Mapping[str, int]
    deadletter_length: int
    deadletters: Sequence[tuple[Any, Mapping[Any, Any]]]
    deadletter_codes: Mapping[Any, Any]
    freshness: Mapping[Any, Any]
    counts: Mapping[Any, Any]
    streams: Sequence[StreamReplies]
    lease: tuple[Any, int] | None = None


@dataclass(frozen=True)
class Replies:
    """Everything the report is made of, as Redis answered (bytes or str alike)."""

    now: float
    redis_url: str
    """Already redacted (no password)."""
    key_prefix: str
    redis_version: str | None
    live: Mapping[str, int]
    """open_calls, closed_calls_recent, closed_records, units, active_alerts, active_shares."""
    deadletter_length: int
    deadletters: Sequence[tuple[Any, Mapping[Any, Any]]]
    """XREVRANGE of the dead-letter stream: newest first, at most DEADLETTER_SCAN."""
    deadletter_codes: Mapping[Any, Any]
    freshness: Mapping[Any, Any]
    counts: Mapping[Any, Any]
    streams: Sequence[StreamReplies]
    beats: Sequence[tuple[str, Mapping[str, Any], float]]
    """``feedhealth.heartbeats``: (process, payload, seconds left) of every health key."""
    lease: tuple[Any, int] | None = None
    """The consumers' lease (``Keys.lease``): its value and PTTL, None when nobody holds it."""
    partitions: Sequence[PartitionReplies] = ()
    """Each partition's own replies (``totals`` made the fields above of them); empty: the
    fields above are the one partition's."""
    running: Sequence[tuple[Any, float]] = ()
    """``Keys.consumers``: (consumer name, epoch s of its last heartbeat)."""


def totals(parts: Sequence[PartitionReplies]) -> dict[str, Any]:
    """The deployment's ``Replies`` fields from its partitions': counts summed, dead
    letters merged newest first, freshness the newest of any partition, every raw stream,
    and partition 0's lease (``lease``, as with one partition)."""
    newest = sorted((entry for part in parts for entry in part.deadletters),
                    key=lambda entry: stream_id_key(_text(entry[0])), reverse=True)
    return {
        "live": {name: sum(int(part.live[name]) for part in parts)
                 for name in (parts[0].live if parts else {})},
        "deadletter_length": sum(part.deadletter_length for part in parts),
        "deadletters": newest[:DEADLETTER_SCAN],
        "deadletter_codes": _summed(part.deadletter_codes for part in parts),
        "freshness": _newest(part.freshness for part in parts),
        "counts": _summed(part.counts for part in parts),
        "streams": [stream for part in parts for stream in part.streams],
        "lease": parts[0].lease if parts else None,
    }


def _summed(hashes: Iterable[Mapping[Any, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for fields in hashes:
        total.update({_text(name): int(value) for name, value in fields.items()})
    return dict(total)


def _newest(hashes: Iterable[Mapping[Any, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for fields in hashes:
        for name, value in fields.items():
            try:
                number = float(value)
            except ValueError:  # not a time: as assemble_freshness, not known
                continue
            found[_text(name)] = max(found.get(_text(name), number), number)
    return found


@dataclass(frozen=True)
class Expected:
    """What this deployment should run (from its settings) and its limits."""

    feed_limits: Mapping[str, float]
    """Seconds per source after which a feed without a vouching heartbeat is STALE."""
    processes: Sequence[str] = (ANY_CONSUMER, "history")
    """Health key names that should exist; ANY_CONSUMER stands for any consumer."""
    recent_ms: int = 30_000
    """A consumer idle less than this holds its partition (DISPATCH_CLAIM_IDLE_MS: after
    that its pending entries are taken over)."""


def expected_processes(simulate: bool, webhook: bool, poll_feeds: Iterable[str]) -> list[str]:
    """The health keys `make run` with these settings keeps (streams/launcher.py)."""
    names = [ANY_CONSUMER, "history"] + (["simulator"] if simulate else [])
    return names + [f"poll:{feed}" for feed in poll_feeds] + (["webhook"] if webhook else [])


def lag_count_start(stream: StreamReplies) -> str | None:
    """The id after which to count undelivered entries (XRANGE ``(id``), when Redis gives no
    lag and the group is behind; None when nothing needs counting."""
    group = consumer_group(stream.groups)
    if group is None or stream.info is None or isinstance(group.get("lag"), int):
        return None
    delivered = _text(group.get("last-delivered-id"))
    return None if delivered == _text(stream.info.get("last-generated-id")) else delivered


# --- the report -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Live:
    """Counts from the live-state keys."""

    open_calls: int
    closed_calls_recent: int
    """Closed calls whose bodies live state still keeps (CLOSED_CALL_BODY_TTL_SECONDS)."""
    closed_records: int
    """Entries of the closed-calls stream: the record response times come from."""
    units: int
    active_alerts: int
    """Gunshot alerts detected within ALERT_ACTIVE_SECONDS of now."""
    active_shares: int


@dataclass(frozen=True)
class ReasonCount:
    """Dead letters of one reason code among those scanned."""

    code: str
    count: int
    sources: list[str]
    example: str
    """The newest reason sentence of this code."""


@dataclass(frozen=True)
class DeadLetters:
    """The dead-letter stream: its length, the newest by code, the all-time counts."""

    in_stream: int
    """XLEN: entries kept (the stream is capped near DEADLETTER_MAXLEN)."""
    scanned: int
    sampled: bool
    """True when ``by_code`` covers only the newest ``scanned`` of ``in_stream``."""
    by_code: list[ReasonCount]
    counted_by_code: dict[str, int] | None
    """Every dead letter ever written, by code (Keys.rejected_codes); None: not counted."""


@dataclass(frozen=True)
class Feed:
    """One feed's health (the wall's rule) and the consumer's counters for it."""

    source: str
    state: str
    """feedhealth.FEED_STATES: live, quiet, stale, none."""
    text: str
    applied: int | None
    rejected: int | None
    duplicate: int | None
    stale_skipped: int | None
    event_time: float | None
    seen: float | None
    age_s: float | None
    """Since the newest event was applied (else its event time)."""
    limit_s: float


@dataclass(frozen=True)
class Holder:
    """A consumer holding a partition: pending entries, or reading lately."""

    name: str
    pending: int | None
    idle_s: float | None
    """Since Redis last saw it read this stream (XINFO CONSUMERS ``idle``)."""
    beating: bool
    """It has a heartbeat (a quiet stream's idle time grows while its consumer runs)."""


@dataclass(frozen=True)
class Partition:
    """One raw stream of one partition as the consumer group reads it (the JSON's
    ``partitions``, named before partitions held several raw streams)."""

    name: str
    stream: str
    length: int | None
    group: str
    group_exists: bool
    consumers: int | None
    pending: int | None
    lag: int | None
    lag_at_least: int | None
    """Set (and ``lag`` None) when counting stopped at LAG_COUNT_LIMIT."""
    last_delivered_id: str | None
    holders: list[Holder]
    partition: int = 0
    """The partition this raw stream belongs to (``Keys.partition``)."""


@dataclass(frozen=True)
class LeaseHolder:
    """Which consumer applies the partition's events (``streams.lease``), if any."""

    partition: str
    holder: str | None
    """None: nobody holds it, so no consumer is applying events."""
    expires_in_s: float | None


def lease_holder(reply: tuple[Any, int] | None, partition: int = 0) -> LeaseHolder:
    """A partition lease's holder by the name the group shows (``keys.lease_owner``)."""
    if reply is None or reply[0] is None:
        return LeaseHolder(str(partition), None, None)
    value, pttl_ms = reply
    owner = lease_owner(_text(value))
    return LeaseHolder(str(partition), owner, pttl_ms / 1000 if pttl_ms >= 0 else None)


@dataclass(frozen=True)
class PartitionRow:
    """One partition (``streams.core.partitions``): who applies it and how far behind."""

    partition: int
    key_prefix: str
    holder: str | None
    """The lease holder; None: nobody applies this partition's events."""
    expires_in_s: float | None
    pending: int | None
    """Entries delivered to a consumer and not yet acked, over its raw streams."""
    lag: int | None
    """Entries not yet delivered, over its raw streams (None: not known)."""
    lag_at_least: int | None
    """Set (and ``lag`` None) when a stream's count stopped at LAG_COUNT_LIMIT."""
    open_calls: int
    closed_records: int
    dead_letters: int


@dataclass(frozen=True)
class RunningConsumer:
    """A consumer in ``Keys.consumers``, by its last heartbeat there."""

    name: str
    heartbeat_at: float
    age_s: float


def partition_row(part: PartitionReplies, recent_ms: int) -> PartitionRow:
    """One partition's row: its lease, and its raw streams' pending and lag summed."""
    lease = lease_holder(part.lease, part.partition)
    streams = [partition(stream, recent_ms) for stream in part.streams]
    pending = [row.pending for row in streams if row.pending is not None]
    lag, at_least = _summed_lag(streams)
    return PartitionRow(
        partition=part.partition, key_prefix=part.key_prefix, holder=lease.holder,
        expires_in_s=lease.expires_in_s, pending=sum(pending) if pending else None,
        lag=lag, lag_at_least=at_least, open_calls=int(part.live["open_calls"]),
        closed_records=int(part.live["closed_records"]),
        dead_letters=int(part.deadletter_length))


def _summed_lag(streams: Sequence[Partition]) -> tuple[int | None, int | None]:
    """(lag, at least) over raw streams: unknown if any is, "at least" if any counted
    stopped short."""
    if not streams or any(row.lag is None and row.lag_at_least is None for row in streams):
        return None, None
    total = sum(row.lag if row.lag is not None else row.lag_at_least or 0 for row in streams)
    if any(row.lag_at_least is not None for row in streams):
        return None, total
    return total, None


def running_consumers(running: Sequence[tuple[Any, float]], now: float
                      ) -> list[RunningConsumer]:
    """``Keys.consumers`` newest heartbeat first."""
    rows = [RunningConsumer(_text(name), float(at), max(0.0, now - float(at)))
            for name, at in running]
    return sorted(rows, key=lambda row: (row.age_s, row.name))


@dataclass(frozen=True)
class Process:
    """One process's heartbeat, or why there is none."""

    name: str
    kind: str
    state: str
    """live, stale, never_seen or no_heartbeat."""
    age_s: float | None
    limit_s: float | None
    expires_in_s: float | None
    detail: str
    heartbeat: dict[str, Any] | None


@dataclass(frozen=True)
class Report:
    """Everything ``python -m streams status`` prints."""

    generated_at: float
    redis: dict[str, str | None]
    live: Live
    dead_letters: DeadLetters
    feeds: list[Feed]
    partitions: list[Partition]
    processes: list[Process]
    lease: LeaseHolder
    schema: int = SCHEMA
    by_partition: list[PartitionRow] = dataclasses.field(default_factory=list)
    """One row per partition (``partitions`` has one per raw stream of each)."""
    consumers: list[RunningConsumer] = dataclasses.field(default_factory=list)


def build_report(replies: Replies, expected: Expected) -> Report:
    """The whole report, from what Redis answered."""
    consumers = group_consumers(replies.streams)
    return Report(
        generated_at=replies.now,
        redis={"url": replies.redis_url, "version": replies.redis_version,
               "key_prefix": replies.key_prefix},
        live=Live(**{name.name: int(replies.live[name.name])
                     for name in dataclasses.fields(Live)}),
        dead_letters=dead_letters(replies.deadletter_length, replies.deadletters,
                                  replies.deadletter_codes),
        feeds=feeds(replies.freshness, replies.counts, replies.beats, replies.now,
                    expected.feed_limits),
        partitions=[partition(stream, expected.recent_ms, {name for name, _, _ in replies.beats})
                    for stream in replies.streams],
        processes=processes(replies.beats, consumers, expected.processes, replies.now),
        lease=lease_holder(replies.lease),
        by_partition=[partition_row(part, expected.recent_ms)
                      for part in replies.partitions or [_only_partition(replies)]],
        consumers=running_consumers(replies.running, replies.now),
    )


def _only_partition(replies: Replies) -> PartitionReplies:
    """The one partition whose replies are the deployment's own."""
    return PartitionReplies(0, replies.key_prefix, replies.live, replies.deadletter_length,
                            replies.deadletters, replies.deadletter_codes, replies.freshness,
                            replies.counts, replies.streams, replies.lease)


# --- dead letters ---------------------------------------------------------------------------

def dead_letters(length: int, newest: Sequence[tuple[Any, Mapping[Any, Any]]],
                 codes: Mapping[Any, Any]) -> DeadLetters:
    """Dead letters by reason code over the newest entries, with the exact totals."""
    counted: Counter[str] = Counter()
    sources: dict[str, set[str]] = {}
    example: dict[str, str] = {}
    for _, raw in newest:
        fields = {_text(name): _text(value) for name, value in raw.items()}
        code = reason_code(fields)
        counted[code] += 1
        sources.setdefault(code, set()).add(fields.get("source") or UNKNOWN)
        example.setdefault(code, fields.get("reason", ""))
    by_code = [ReasonCount(code, count, sorted(sources[code]), example[code])
               for code, count in sorted(counted.items(), key=lambda item: (-item[1], item[0]))]
    all_time = {_text(code): int(value) for code, value in codes.items()}
    return DeadLetters(in_stream=length, scanned=len(newest), sampled=length > len(newest),
                       by_code=by_code,
                       counted_by_code=all_time if all_time or not length else None)


def reason_code(fields: Mapping[str, str]) -> str:
    """A dead letter's reason code: its ``code`` field, else the ``code:`` its reason
    sentence starts with (mapping rows), else "unknown"."""
    if fields.get("code"):
        return fields["code"]
    head, colon, _ = fields.get("reason", "").partition(":")
    return head if colon and head.isidentifier() else UNKNOWN


# --- feeds ----------------------------------------------------------------------------------

def feeds(freshness: Mapping[Any, Any], counts: Mapping[Any, Any],
          beats: Sequence[tuple[str, Mapping[str, Any], float]], now: float,
          limits: Mapping[str, float]) -> list[Feed]:
    """Per source: the wall's feed health, and the consumer's counters (None while the
    counters hash does not exist: nothing counted them, perhaps another key prefix)."""
    fresh = changefeed.assemble_freshness(freshness, counts)
    health = feedhealth.feed_health(fresh, SOURCES, now, limits,
                                    feedhealth.source_heartbeats(beats, now))
    counted = {_text(name): int(value) for name, value in counts.items()}

    def count(name: str) -> int | None:
        return counted.get(name, 0) if counted else None

    rows = []
    for source, judged in zip(SOURCES, health, strict=True):
        entry = fresh[source]
        last = entry["seen"] or entry["event_time"]
        rows.append(Feed(
            source=source, state=judged["state"], text=judged["text"],
            applied=count(source), rejected=count(f"{source}:rejected"),
            duplicate=count(f"{source}:duplicate"), stale_skipped=count(f"{source}:stale"),
            event_time=entry["event_time"], seen=entry["seen"],
            age_s=None if last is None else max(0.0, now - last),
            limit_s=float(limits[source])))
    return rows


# --- partitions -----------------------------------------------------------------------------

def consumer_group(groups: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The live-state group's XINFO GROUPS entry, if the group exists."""
    return next((group for group in groups if _text(group.get("name")) == CONSUMER_GROUP),
                None)


def partition(stream: StreamReplies, recent_ms: int,
              beating: Collection[str] = ()) -> Partition:
    """One raw stream and the consumer group's hold on it: its holders are the consumers
    with pending entries, a recent read, or a heartbeat (a consumer reads every stream at
    once, but Redis may not count a read that found nothing in a quiet one as activity)."""
    group = consumer_group(stream.groups)
    lag, at_least = _lag(stream, group)
    holders = [Holder(_text(c.get("name")), _int(c.get("pending")), _seconds(c.get("idle")),
                      _text(c.get("name")) in beating) for c in stream.consumers]
    holders = [holder for holder in holders if (holder.pending or 0) > 0 or holder.beating
               or (holder.idle_s or 0.0) * 1000 < recent_ms]
    return Partition(
        name=stream.source, stream=stream.stream,
        length=0 if stream.info is None else _int(stream.info.get("length")),
        group=CONSUMER_GROUP, group_exists=group is not None,
        consumers=None if group is None else _int(group.get("consumers")),
        pending=None if group is None else _int(group.get("pending")),
        lag=lag, lag_at_least=at_least,
        last_delivered_id=None if group is None else _text(group.get("last-delivered-id")),
        holders=holders, partition=stream.partition)


def _lag(stream: StreamReplies, group: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """(lag, at least): Redis's own lag, else 0 when the group has read the newest entry,
    else the entries counted after its last delivered one; (None, None) when unknown."""
    if group is None:
        return None, None
    if isinstance(group.get("lag"), int):
        return int(group["lag"]), None
    if lag_count_start(stream) is None:
        return 0, None
    if stream.undelivered is None:
        return None, None
    if stream.undelivered > LAG_COUNT_LIMIT:
        return None, LAG_COUNT_LIMIT
    return stream.undelivered, None


# --- processes ------------------------------------------------------------------------------

def group_consumers(streams: Sequence[StreamReplies]) -> dict[str, dict[str, float]]:
    """Consumer name -> {"pending": over every stream, "idle_s": the least} (XINFO CONSUMERS)."""
    found: dict[str, dict[str, float]] = {}
    for stream in streams:
        for consumer in stream.consumers:
            entry = found.setdefault(_text(consumer.get("name")),
                                     {"pending": 0, "idle_s": float("inf")})
            entry["pending"] += _int(consumer.get("pending")) or 0
            entry["idle_s"] = min(entry["idle_s"], _seconds(consumer.get("idle")) or 0.0)
    return found


def process_kind(name: str, payload: Mapping[str, Any], consumers: Iterable[str]) -> str:
    """What a health key belongs to, from its name (a consumer's is its name in the group)."""
    if name.startswith("poll:"):
        return "poller"
    if name in ("history", "simulator", "webhook"):
        return {"history": "history writer"}.get(name, name)
    if name in consumers or "batches" in payload:
        return "consumer"
    return "other"


def processes(beats: Sequence[tuple[str, Mapping[str, Any], float]],
              consumers: Mapping[str, Mapping[str, float]], expected: Sequence[str],
              now: float) -> list[Process]:
    """Every heartbeat, every expected process without one, and the consumers the group
    knows whose heartbeat expired: those holding entries, and the last to read when no
    consumer beats (so a stopped consumer is STALE, not never seen)."""
    rows = [heartbeat_row(name, payload, ttl_s, consumers, now) for name, payload, ttl_s in beats]
    beating = {row.name for row in rows}
    gone = {name: held for name, held in consumers.items() if name not in beating}
    shown = [name for name, held in gone.items() if held["pending"] > 0]
    rest = [name for name in gone if name not in shown]
    if rest and not any(row.kind == "consumer" for row in rows):
        shown.append(min(rest, key=lambda name: gone[name]["idle_s"]))
    rows += [Process(name, "consumer", "stale", None, None, None,
                     expired_detail(gone[name]), None) for name in shown]
    rows += never_seen(expected, rows)
    rows += [Process(name, name, "no_heartbeat", None, None, None,
                     "keeps no heartbeat in Redis: ask its /healthz", None)
             for name in NO_HEARTBEAT]
    return sorted(rows, key=lambda row: (_KIND_ORDER.index(row.kind), row.name))


def never_seen(expected: Sequence[str], rows: Sequence[Process]) -> list[Process]:
    """The expected processes no row stands for (any consumer stands for ANY_CONSUMER)."""
    names, kinds = {row.name for row in rows}, {row.kind for row in rows}
    missing = [name for name in expected if name not in names
               and not (name == ANY_CONSUMER and "consumer" in kinds)]
    return [Process(name, "consumer" if name == ANY_CONSUMER else process_kind(name, {}, ()),
                    "never_seen", None, None, None,
                    f"no heartbeat in Redis (a health key lives about {HEALTH_TTL_SECONDS} s "
                    f"after the last beat)", None) for name in missing]


def expired_detail(held: Mapping[str, float]) -> str:
    """What the group says of a consumer whose heartbeat expired."""
    holds = f"pending entries {display.count(held['pending'])}, " if held["pending"] else ""
    return f"heartbeat expired; {holds}last read {display.short_duration(held['idle_s'])} ago"


def heartbeat_row(name: str, payload: Mapping[str, Any], ttl_s: float,
                  consumers: Iterable[str], now: float) -> Process:
    """A live health key: LIVE unless it is older than STALE_SHARE of its lifetime."""
    written = feedhealth.heard_at(payload)
    age = None if written is None else max(0.0, now - written)
    limit = None if age is None else STALE_SHARE * round(age + ttl_s)
    state = "stale" if age is not None and limit is not None and age > limit else "live"
    return Process(name, process_kind(name, payload, consumers), state, age, limit, ttl_s,
                   heartbeat_detail(payload), dict(payload))


def heartbeat_detail(payload: Mapping[str, Any], most: int = 6) -> str:
    """A short line of what a heartbeat says: its non-zero numbers and short texts."""
    parts = []
    for name, value in payload.items():
        if name in _DETAIL_SKIP or value in (None, "", 0) or isinstance(value, bool):
            continue
        if isinstance(value, int):  # counters (floats are times: left out)
            parts.append(f"{name} {display.count(value)}")
        elif isinstance(value, str) and len(value) <= 60:
            parts.append(f"{name} {value}")
    return ", ".join(parts[:most])


# --- showing it -----------------------------------------------------------------------------

def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: stable keys, None for unknown."""
    return dataclasses.asdict(report)


SECTIONS = ("Live state", "Dead letters", "Feeds", "Partitions", "Processes")
"""The text report's section titles, in order."""


def report_text(report: Report) -> str:
    """The report as the terminal shows it."""
    when = datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    redis = report.redis
    head = (f"Dispatch status at {when}: {redis['url']} (Redis {redis['version'] or UNKNOWN}, "
            f"key prefix {redis['key_prefix']})")
    parts = [head, _live_text(report.live), _deadletter_text(report.dead_letters),
             _feeds_text(report.feeds),
             _partitions_text(report),
             _processes_text(report.processes)]
    return "\n\n".join(parts) + "\n"


def _live_text(live: Live) -> str:
    minutes = ALERT_ACTIVE_SECONDS // 60
    return _table(SECTIONS[0], ("what", "count", "counted as"), [
        ("open calls", _n(live.open_calls), "in the open-calls queue"),
        ("closed calls", _n(live.closed_calls_recent), "closed, still in live state (24 h)"),
        ("closed records", _n(live.closed_records), "closed-calls stream (response times)"),
        ("units", _n(live.units), "every unit ever reported"),
        ("gunshot alerts", _n(live.active_alerts), f"detected in the last {minutes} min"),
        ("video/radio shares", _n(live.active_shares), "open"),
    ])


def _deadletter_text(letters: DeadLetters) -> str:
    scope = (f"newest {_n(letters.scanned)} of {_n(letters.in_stream)} (sampled)"
             if letters.sampled else f"all {_n(letters.scanned)}")
    rows = [(item.code, _n(item.count), ",".join(item.sources), _cut(item.example, 60))
            for item in letters.by_code] or [("none", "", "", "")]
    counted = letters.counted_by_code
    totals = UNKNOWN if counted is None else (
        ", ".join(f"{code} {_n(n)}" for code, n in sorted(counted.items())) or "none")
    title = (f"{SECTIONS[1]}: {_n(letters.in_stream)} in the stream (capped near "
             f"{DEADLETTER_MAXLEN:,}); by reason code over {scope}")
    return _table(title, ("reason code", "count", "sources", "newest reason"), rows) + \
        f"\n  ever written, by code: {totals}"


def _feeds_text(rows: Sequence[Feed]) -> str:
    return _table(SECTIONS[2], ("feed", "state", "applied", "rejected", "duplicate",
                                "stale-skipped", "last applied", "limit"), [
        (row.source, row.text.upper(), _n(row.applied), _n(row.rejected), _n(row.duplicate),
         _n(row.stale_skipped), _ago(row.age_s), display.short_duration(row.limit_s))
        for row in rows])


def _partitions_text(report: Report) -> str:
    """One partition: its raw streams and its lease, as before partitions; several: a row
    per partition, then every raw stream with its partition's number."""
    if len(report.by_partition) <= 1:
        text = _streams_text(report.partitions) + "\n" + _lease_text(report.lease)
    else:
        text = _partition_rows_text(report.by_partition) + "\n" + _streams_text(
            report.partitions, "  Raw streams")
    return text + _running_text(report.consumers)


def _lag_text(row: Partition | PartitionRow) -> str:
    return f">= {_n(row.lag_at_least)}" if row.lag_at_least is not None else _n(row.lag)


def _partition_rows_text(rows: Sequence[PartitionRow]) -> str:
    def holder(row: PartitionRow) -> str:
        if row.holder is None:
            return "free - nobody applies its events"
        return f"{row.holder} (expires in {_duration(row.expires_in_s)} unless renewed)"

    title = f"{SECTIONS[3]} ({len(rows)}, each applied by the holder of its lease)"
    return _table(title, ("partition", "key prefix", "open calls", "closed records",
                          "dead letters", "pending", "lag", "lease"), [
        (str(row.partition), row.key_prefix, _n(row.open_calls), _n(row.closed_records),
         _n(row.dead_letters), _n(row.pending), _lag_text(row), holder(row)) for row in rows])


def _running_text(rows: Sequence[RunningConsumer]) -> str:
    if not rows:
        return ""
    return "\n  consumers running: " + ", ".join(
        f"{row.name} (seen {_ago(row.age_s)})" for row in rows)


def _streams_text(rows: Sequence[Partition], title: str = "") -> str:
    def holders(row: Partition) -> str:
        if not row.group_exists:
            return "no consumer group yet"
        return "; ".join(f"{holder.name} ({_n(holder.pending)} pending, idle "
                         f"{_duration(holder.idle_s)})" for holder in row.holders) or "none"

    if not title:  # one partition: a row per raw stream, as before partitions
        title = f"{SECTIONS[3]} (one per raw stream, consumer group {CONSUMER_GROUP})"
        return _table(title, ("partition", "entries", "consumers", "pending", "lag",
                              "holders"), [
            (row.name, _n(row.length), _n(row.consumers), _n(row.pending), _lag_text(row),
             holders(row)) for row in rows])
    return _table(f"{title} (consumer group {CONSUMER_GROUP})", (
        "partition", "stream", "entries", "consumers", "pending", "lag", "holders"), [
        (str(row.partition), row.name, _n(row.length), _n(row.consumers), _n(row.pending),
         _lag_text(row), holders(row)) for row in rows])


def _lease_text(lease: LeaseHolder) -> str:
    if lease.holder is None:
        return f"  lease {lease.partition}: free - no consumer is applying events"
    return (f"  lease {lease.partition}: held by {lease.holder} "
            f"(expires in {_duration(lease.expires_in_s)} unless renewed)")


def _processes_text(rows: Sequence[Process]) -> str:
    def heard(row: Process) -> str:
        if row.age_s is not None:
            return _ago(row.age_s)
        return {"never_seen": "never", "no_heartbeat": "none kept"}.get(
            row.state, "expired" if row.state == "stale" else UNKNOWN)

    return _table(SECTIONS[4], ("process", "kind", "state", "heartbeat", "limit", "detail"), [
        (row.name, row.kind, row.state.replace("_", " ").upper(), heard(row),
         _duration(row.limit_s), row.detail) for row in rows])


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A title and aligned columns (the last column is not padded)."""
    table = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  " + "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths,
                                                                         strict=False)),
                               row[-1]]).rstrip() for row in table]
    return "\n".join([title, *lines])


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."


def _n(value: float | None) -> str:
    return UNKNOWN if value is None else display.count(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return UNKNOWN
    return f"{seconds:.1f} s" if seconds < 10 else display.short_duration(seconds)


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_duration(seconds)} ago"


def _text(value: Any) -> str:
    return "" if value is None else reply_text(value) if isinstance(value, bytes | str) \
        else str(value)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _seconds(milliseconds: Any) -> float | None:
    value = _int(milliseconds)
    return None if value is None else value / 1000

