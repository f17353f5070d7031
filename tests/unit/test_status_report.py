"""`python -m streams status`'s report (streams/core/status.py) from Redis-shaped replies.

Replies are written the way redis-py hands them over (bytes values, Redis 6.2 and 7
shapes); what Redis cannot tell must come out unknown (None), never 0.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.core import feedhealth
from streams.core import status as st
from streams.core.keys import CONSUMER_GROUP, SOURCES
from streams.core.settings import PROJECT_ROOT

NOW = 1_800_000_000.0
LIMITS = {"cad": 900.0, "avl": 120.0, "shotspotter": 3600.0, "mutualink": 3600.0}


def letter(code: str | None, reason: str, source: str = "cad") -> tuple[bytes, dict[bytes, bytes]]:
    fields = {b"source": source.encode(), b"reason": reason.encode(), b"payload": b"x"}
    if code is not None:
        fields[b"code"] = code.encode()
    return b"1-0", fields


def group(delivered: str = "5-0", **extra: Any) -> dict[str, Any]:
    return {"name": CONSUMER_GROUP.encode(), "consumers": 2, "pending": 1,
            "last-delivered-id": delivered.encode(), **extra}


def stream(source: str = "cad", info: dict[str, Any] | None = None,
           groups: tuple[dict[str, Any], ...] = (), consumers: tuple[dict[str, Any], ...] = (),
           undelivered: int | None = None) -> st.StreamReplies:
    return st.StreamReplies(source, f"p:stream:{source}", info, groups, consumers, undelivered)


def replies(**changes: Any) -> st.Replies:
    values: dict[str, Any] = {
        "now": NOW, "redis_url": "redis://:***@127.0.0.1:6390/0", "key_prefix": "p",
        "redis_version": "6.2.14",
        "live": {"open_calls": 3, "closed_calls_recent": 2, "closed_records": 40, "units": 7,
                 "active_alerts": 1, "active_shares": 0},
        "deadletter_length": 0, "deadletters": [], "deadletter_codes": {},
        "freshness": {}, "counts": {}, "streams": [stream(s) for s in SOURCES], "beats": []}
    values.update(changes)
    return st.Replies(**values)


# --- dead letters -----------------------------------------------------------------------------

def test_dead_letters_grouped_by_reason_code_newest_example_first() -> None:
    """Each code counted once per entry, with its sources and its newest reason sentence;
    a mapping row's code comes from its reason ('missing_field: ...'), else unknown."""
    newest = [letter("not_json", "event is not JSON (newest)"),
              letter("not_json", "event is not JSON (older)", "avl"),
              letter(None, "missing_field: RECEIVED is empty", "city"),
              letter(None, "no reason code here"),
              letter("time_out_of_range", "too far ahead")]
    report = st.dead_letters(5, newest, {b"not_json": b"2", b"time_out_of_range": b"1",
                                         b"missing_field": b"1"})
    assert [(r.code, r.count, r.sources, r.example) for r in report.by_code] == [
        ("not_json", 2, ["avl", "cad"], "event is not JSON (newest)"),
        ("missing_field", 1, ["city"], "missing_field: RECEIVED is empty"),
        ("time_out_of_range", 1, ["cad"], "too far ahead"),
        ("unknown", 1, ["cad"], "no reason code here")]
    assert (report.in_stream, report.scanned, report.sampled) == (5, 5, False)
    assert report.counted_by_code == {"not_json": 2, "time_out_of_range": 1,
                                      "missing_field": 1}


def test_a_long_dead_letter_stream_is_sampled_and_says_so() -> None:
    """Only the newest entries are grouped; the stream's length stays the true total."""
    newest = [letter("invalid", "bad")] * st.DEADLETTER_SCAN
    report = st.dead_letters(123_456, newest, {b"invalid": b"200000"})
    assert (report.in_stream, report.scanned, report.sampled) == (123_456, 1000, True)
    assert report.counted_by_code == {"invalid": 200_000}
    text = st.report_text(st.build_report(replies(
        deadletter_length=123_456, deadletters=newest, deadletter_codes={b"invalid": b"9"}),
        st.Expected(LIMITS)))
    assert "newest 1,000 of 123,456 (sampled)" in text


def test_dead_letter_counters_missing_are_unknown_not_zero() -> None:
    """No counters hash beside a non-empty stream: unknown; both empty: none."""
    assert st.dead_letters(3, [letter("invalid", "x")] * 3, {}).counted_by_code is None
    assert st.dead_letters(0, [], {}).counted_by_code == {}


# --- feeds ----------------------------------------------------------------------------------

def test_feeds_reuse_the_wall_rule_and_the_consumer_counters() -> None:
    """Live, quiet (a heartbeat vouches), stale and no data, as on the wall; counters per
    source with duplicates and stale skips; age from when the newest event was applied."""
    freshness = {b"cad": b"1799999000", b"cad:seen": str(NOW - 5).encode(),
                 b"avl": str(NOW - 600).encode(), b"avl:seen": str(NOW - 600).encode(),
                 b"shotspotter": str(NOW - 7200).encode(),
                 b"shotspotter:seen": str(NOW - 7200).encode()}
    counts = {b"cad": b"10", b"cad:rejected": b"2", b"cad:duplicate": b"3", b"cad:stale": b"1",
              b"avl": b"4"}
    beats = [("webhook", {"time": NOW - 2}, 28.0)]
    rows = st.feeds(freshness, counts, beats, NOW, LIMITS)
    assert [(r.source, r.state, r.text) for r in rows] == [
        ("cad", "live", "live"), ("avl", "stale", "STALE 10 min"),
        ("shotspotter", "quiet", "quiet"), ("mutualink", "none", "no data")]
    cad, avl, _, mutualink = rows
    assert (cad.applied, cad.rejected, cad.duplicate, cad.stale_skipped) == (10, 2, 3, 1)
    assert cad.age_s == pytest.approx(5) and cad.event_time == 1_799_999_000.0
    assert (avl.applied, avl.rejected, avl.duplicate) == (4, 0, 0)
    assert (mutualink.age_s, mutualink.event_time, mutualink.seen) == (None, None, None)
    assert [r.state for r in rows] == [h["state"] for h in feedhealth.feed_health(
        {"cad": {"seen": NOW - 5}, "avl": {"seen": NOW - 600},
         "shotspotter": {"seen": NOW - 7200}}, SOURCES, NOW, LIMITS,
        feedhealth.source_heartbeats(beats, NOW))]


def test_feed_counters_are_unknown_when_nothing_ever_counted() -> None:
    """No counters hash at all (nothing consumed, or another key prefix): unknown, not 0."""
    rows = st.feeds({}, {}, [], NOW, LIMITS)
    assert {(r.applied, r.rejected, r.duplicate, r.stale_skipped, r.age_s) for r in rows} == \
        {(None, None, None, None, None)}
    assert {r.state for r in rows} == {"none"}


# --- partitions -----------------------------------------------------------------------------

def test_partition_without_a_group_or_stream_is_unknown_not_zero() -> None:
    """No consumer group: consumers, pending and lag unknown; no stream: 0 entries."""
    row = st.partition(stream("avl", info=None), 30_000)
    assert (row.length, row.group_exists, row.consumers, row.pending, row.lag) == \
        (0, False, None, None, None)
    assert "no consumer group yet" in st.report_text(st.build_report(
        replies(streams=[stream("avl")]), st.Expected(LIMITS)))


def test_redis_7_lag_is_taken_as_given() -> None:
    info = {"length": 10, "last-generated-id": b"9-0"}
    row = st.partition(stream(info=info, groups=(group(lag=4),)), 30_000)
    assert (row.lag, row.lag_at_least, row.pending, row.consumers) == (4, None, 1, 2)
    assert st.lag_count_start(stream(info=info, groups=(group(lag=4),))) is None


def test_redis_6_lag_is_zero_only_when_the_group_read_the_newest_entry() -> None:
    """6.2 has no lag field: up to date is 0; behind is counted; not counted is unknown."""
    current = stream(info={"length": 5, "last-generated-id": b"5-0"}, groups=(group("5-0"),))
    assert st.lag_count_start(current) is None and st.partition(current, 0).lag == 0
    behind = {"info": {"length": 9, "last-generated-id": b"9-0"}, "groups": (group("5-0"),)}
    assert st.lag_count_start(stream(**behind)) == "5-0"
    assert st.partition(stream(**behind), 0).lag is None  # not counted: unknown, never 0
    assert st.partition(stream(**behind, undelivered=4), 0).lag == 4
    far = st.partition(stream(**behind, undelivered=st.LAG_COUNT_LIMIT + 1), 0)
    assert (far.lag, far.lag_at_least) == (None, st.LAG_COUNT_LIMIT)


def test_redis_7_null_lag_is_counted() -> None:
    """Redis 7 leaves lag null after deletions: counted like 6.2."""
    row = stream(info={"last-generated-id": b"9-0"}, groups=(group("5-0", lag=None),))
    assert st.lag_count_start(row) == "5-0"


def test_holders_are_consumers_with_pending_entries_or_recent_reads() -> None:
    """Holders: consumers with pending entries, a recent read, or a heartbeat (a quiet
    stream's idle time grows while its consumer runs); the others are left out."""
    consumers = ({"name": b"busy", "pending": 3, "idle": 90_000},
                 {"name": b"reading", "pending": 0, "idle": 200},
                 {"name": b"quiet", "pending": 0, "idle": 600_000},
                 {"name": b"gone", "pending": 0, "idle": 900_000})
    row = st.partition(stream(info={"last-generated-id": b"5-0"}, groups=(group(),),
                              consumers=consumers), 30_000, {"quiet", "elsewhere"})
    assert [(h.name, h.pending, h.idle_s, h.beating) for h in row.holders] == [
        ("busy", 3, 90.0, False), ("reading", 0, 0.2, False), ("quiet", 0, 600.0, True)]


# --- processes ------------------------------------------------------------------------------

def test_processes_live_stale_never_seen_and_no_heartbeat() -> None:
    """A fresh heartbeat is LIVE, one past 2/3 of its key's lifetime STALE, an expected
    process without one NEVER SEEN (not healthy), push and web keep none."""
    beats = [("consumer-1", {"time": NOW - 3, "applied": 12, "rejected": 0, "batches": 2},
              27.0),
             ("history", {"time": NOW - 25}, 5.0),
             ("poll:sf", {"time": NOW - 30, "state": "error", "last_error": "HTTP 503"},
              150.0),
             ("simulator", {"seen": NOW - 1, "sim_time": "2026-12-02T12:00:00"}, 29.0)]
    rows = {row.name: row for row in st.processes(
        beats, {"consumer-1": {"pending": 0, "idle_s": 0.1}},
        st.expected_processes(True, True, ["sf", "dc"]), NOW)}
    assert [(name, row.kind, row.state) for name, row in rows.items()] == [
        ("consumer-1", "consumer", "live"), ("history", "history writer", "stale"),
        ("simulator", "simulator", "live"), ("webhook", "webhook", "never_seen"),
        ("poll:dc", "poller", "never_seen"), ("poll:sf", "poller", "live"),
        ("push", "push", "no_heartbeat"), ("web", "web", "no_heartbeat")]
    consumer = rows["consumer-1"]
    assert (consumer.age_s, consumer.limit_s, consumer.expires_in_s) == (3.0, 20.0, 27.0)
    assert consumer.detail == "applied 12, batches 2"
    assert rows["history"].limit_s == 20.0 and rows["history"].age_s == 25.0
    assert rows["poll:sf"].detail == "state error, last_error HTTP 503"
    assert (rows["webhook"].age_s, rows["webhook"].limit_s) == (None, None)


def test_a_consumer_whose_heartbeat_expired_is_stale_not_never_seen() -> None:
    """The group still names it: one holding entries is STALE, and so is the last to read
    when no consumer beats; old names without entries beside a live consumer are left
    out; no consumer at all is never seen."""
    consumers = {"old": {"pending": 4, "idle_s": 7200.0}, "older": {"pending": 0, "idle_s": 9e4},
                 "stopped": {"pending": 0, "idle_s": 50.0}, "live": {"pending": 0, "idle_s": 0.1}}
    beat = [("live", {"time": NOW - 1}, 29.0)]
    rows = st.processes(beat, consumers, [st.ANY_CONSUMER], NOW)
    assert [(r.name, r.state, r.age_s) for r in rows if r.kind == "consumer"] == [
        ("live", "live", 1.0), ("old", "stale", None)]
    assert rows[1].detail == \
        "heartbeat expired; pending entries 4, last read 2 h 00 min ago"
    del consumers["live"]
    rows = st.processes([], consumers, [st.ANY_CONSUMER], NOW)
    assert [(r.name, r.state) for r in rows if r.kind == "consumer"] == [
        ("old", "stale"), ("stopped", "stale")]
    assert rows[1].detail == "heartbeat expired; last read 50 s ago"
    nobody = st.processes([], {}, [st.ANY_CONSUMER], NOW)
    assert [(r.name, r.state) for r in nobody if r.kind == "consumer"] == [
        ("consumer", "never_seen")]


def test_a_heartbeat_without_a_time_is_live_with_unknown_age() -> None:
    row = st.heartbeat_row("webhook", {"accepted": 3}, 12.0, (), NOW)
    assert (row.state, row.age_s, row.limit_s, row.expires_in_s) == ("live", None, None, 12.0)


def test_group_consumers_sum_pending_over_streams() -> None:
    found = st.group_consumers([
        stream("cad", consumers=({"name": b"c1", "pending": 2, "idle": 500},)),
        stream("avl", consumers=({"name": b"c1", "pending": 1, "idle": 100},))])
    assert found == {"c1": {"pending": 3, "idle_s": 0.1}}


def test_health_keys_parse_like_the_wall_reads_them() -> None:
    """Keys without a TTL or with a body that is not a JSON object are no heartbeat."""
    beats = feedhealth.heartbeats(
        [b"p:health:b", b"p:health:a", b"p:health:forever", b"p:health:junk"], "p:health:",
        [b'{"time": 1}', b'{"time": 2}', b'{"time": 3}', b"\xff"], [2000, 1000, -1, 5000])
    assert beats == [("a", {"time": 2}, 1.0), ("b", {"time": 1}, 2.0)]


# --- the whole report -----------------------------------------------------------------------

JSON_KEYS = {
    "": {"schema", "generated_at", "redis", "live", "dead_letters", "feeds", "partitions",
         "processes", "lease", "by_partition", "consumers"},
    "redis": {"url", "version", "key_prefix"},
    "live": {"open_calls", "closed_calls_recent", "closed_records", "units", "active_alerts",
             "active_shares"},
    "dead_letters": {"in_stream", "scanned", "sampled", "by_code", "counted_by_code"},
    "by_code": {"code", "count", "sources", "example"},
    "feeds": {"source", "state", "text", "applied", "rejected", "duplicate", "stale_skipped",
              "event_time", "seen", "age_s", "limit_s"},
    "partitions": {"name", "stream", "length", "group", "group_exists", "consumers",
                   "pending", "lag", "lag_at_least", "last_delivered_id", "holders",
                   "partition"},
    "by_partition": {"partition", "key_prefix", "holder", "expires_in_s", "pending", "lag",
                     "lag_at_least", "open_calls", "closed_records", "dead_letters"},
    "consumers": {"name", "heartbeat_at", "age_s"},
    "holders": {"name", "pending", "idle_s", "beating"},
    "lease": {"partition", "holder", "expires_in_s"},
    "processes": {"name", "kind", "state", "age_s", "limit_s", "expires_in_s", "detail",
                  "heartbeat"},
}
"""The JSON keys the README documents ("Operator's view")."""


def test_json_keys_are_the_documented_ones() -> None:
    """The JSON has exactly the documented keys, and an unknown is null."""
    beats = [("c1", {"time": NOW - 1, "batches": 1}, 29.0)]
    consumers = ({"name": b"c1", "pending": 1, "idle": 10},)
    report = st.build_report(replies(
        deadletter_length=1, deadletters=[letter("invalid", "x")],
        streams=[stream("cad", {"length": 3, "last-generated-id": b"3-0"}, (group("1-0"),),
                            consumers)], beats=beats, running=[(b"c1", NOW - 1)]),
        st.Expected(LIMITS))
    data = json.loads(json.dumps(st.report_json(report)))
    assert set(data) == JSON_KEYS[""] and data["schema"] == st.SCHEMA
    for section in ("redis", "live", "dead_letters", "lease"):
        assert set(data[section]) == JSON_KEYS[section]
    assert set(data["dead_letters"]["by_code"][0]) == JSON_KEYS["by_code"]
    for section in ("feeds", "partitions", "processes", "by_partition", "consumers"):
        assert all(set(row) == JSON_KEYS[section] for row in data[section])
    assert set(data["partitions"][0]["holders"][0]) == JSON_KEYS["holders"]
    assert data["partitions"][0]["lag"] is None  # 6.2, behind, not counted
    assert data["feeds"][0]["applied"] is None


def test_every_json_key_is_in_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Operator's view", 1)[1].split("\n## ", 1)[0]
    missing = sorted(key for keys in JSON_KEYS.values() for key in keys
                     if f"`{key}`" not in section)
    assert not missing, f"README's Operator's view does not document {missing}"


def test_text_names_every_section_and_prints_unknown() -> None:
    text = st.report_text(st.build_report(replies(redis_version=None), st.Expected(LIMITS)))
    positions = [text.index(f"\n{title}") for title in st.SECTIONS]
    assert positions == sorted(positions)
    assert "Redis unknown" in text and "  cad          NO DATA  unknown  unknown" in text
    assert " 0 " not in text.split("Feeds")[1].split("Partitions")[0]


def test_lease_names_its_holder_or_says_nobody_applies() -> None:
    """The lease's value is the holder's name and a random suffix; no lease, no applier."""
    held = st.build_report(replies(lease=(b"consumer-a-12/9f3c", 3400)), st.Expected(LIMITS))
    assert held.lease == st.LeaseHolder("0", "consumer-a-12", 3.4)
    assert "lease 0: held by consumer-a-12" in st.report_text(held)
    free = st.build_report(replies(), st.Expected(LIMITS))
    assert free.lease.holder is None and free.lease.expires_in_s is None
    assert "lease 0: free - no consumer is applying events" in st.report_text(free)
