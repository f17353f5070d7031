"""The status report over several partitions (streams/core/status.py), without a server."""

from __future__ import annotations

from streams.core import status as st
from streams.core.keys import SOURCES
from tests.unit.test_status_report import LIMITS, NOW, group, letter, replies, stream

LIVE = {"open_calls": 1, "closed_calls_recent": 0, "closed_records": 2, "units": 1,
        "active_alerts": 0, "active_shares": 0}


def part(number: int, **changes: object) -> st.PartitionReplies:
    values: dict[str, object] = {
        "partition": number, "key_prefix": f"p:p{number}", "live": LIVE,
        "deadletter_length": 0, "deadletters": [], "deadletter_codes": {}, "freshness": {},
        "counts": {}, "streams": [stream(s) for s in SOURCES], "lease": None}
    values.update(changes)
    return st.PartitionReplies(**values)  # type: ignore[arg-type]


def test_totals_sum_counts_merge_letters_and_take_the_newest_freshness() -> None:
    """Counters summed by field, dead letters newest first over partitions, freshness the
    newest of any, partition 0's lease as the deployment's."""
    parts = [part(0, counts={b"cad": b"3"}, freshness={b"cad": b"100", b"cad:seen": b"90"},
                  deadletter_length=1, deadletters=[(b"5-0", letter("a", "x")[1])],
                  deadletter_codes={b"a": b"1"}, lease=(b"c1/x", 900)),
             part(1, counts={b"cad": b"4", b"avl": b"1"}, freshness={b"cad": b"80",
                                                                    b"cad:seen": b"95"},
                  deadletter_length=2, deadletter_codes={b"a": b"1", b"b": b"1"},
                  deadletters=[(b"9-0", letter("b", "y")[1]), (b"2-0", letter("a", "z")[1])])]
    merged = st.totals(parts)
    assert merged["counts"] == {"cad": 7, "avl": 1}
    assert merged["freshness"] == {"cad": 100.0, "cad:seen": 95.0}
    assert [entry_id for entry_id, _ in merged["deadletters"]] == [b"9-0", b"5-0", b"2-0"]
    assert merged["deadletter_codes"] == {"a": 2, "b": 1}
    assert merged["live"]["closed_records"] == 4 and merged["lease"] == (b"c1/x", 900)
    assert len(merged["streams"]) == 2 * len(SOURCES)


def test_one_row_per_partition_with_its_lease_and_summed_lag() -> None:
    """A partition's lag is its streams' summed; unknown if any stream's is unknown."""
    behind = stream("cad", {"length": 5, "last-generated-id": b"5-0"}, (group("3-0"),),
                    undelivered=2)
    caught_up = [stream(s, {"length": 0, "last-generated-id": b"0-0"}, (group("0-0"),))
                 for s in SOURCES[1:]]
    parts = [part(0, streams=[behind, *caught_up], lease=(b"c1/x", 1500)), part(1)]
    report = st.build_report(replies(**st.totals(parts), partitions=parts,
                                     running=[(b"c1", NOW - 2)]), st.Expected(LIMITS))
    first, second = report.by_partition
    assert (first.holder, first.expires_in_s, first.lag, first.pending) == ("c1", 1.5, 2, 4)
    assert (second.holder, second.lag, second.pending) == (None, None, None)
    assert [(row.name, row.age_s) for row in report.consumers] == [("c1", 2.0)]
    text = st.report_text(report)
    assert "Partitions (2, each applied by the holder of its lease)" in text
    assert "consumers running: c1 (seen 2.0 s ago)" in text


def test_one_partition_reads_as_before() -> None:
    """Replies without partitions are the one partition's: one row, the old text."""
    report = st.build_report(replies(), st.Expected(LIMITS))
    assert [row.partition for row in report.by_partition] == [0] and report.consumers == []
    assert "one per raw stream" in st.report_text(report)
