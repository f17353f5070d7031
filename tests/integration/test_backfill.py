"""Backfill of history exports into closed calls, against a real Redis."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from streams.backfill import Summary, backfill, call_state, run_backfill
from streams.clients import sync_client
from streams.core.keys import Keys
from streams.core.livestate import BatchPlan, closed_record
from streams.core.mapping import CallRecord, Rejected, record_events
from streams.core.settings import Settings
from streams.mapping_files import load_mapping, read_csv_rows
from tests.conftest import SHARED_DATA, close_client

MAPPINGS = Path(__file__).resolve().parents[2] / "streams" / "mappings"
SF_CSV = SHARED_DATA / "sf_fire_calls" / "data_sample.csv"
SD_DIR = SHARED_DATA / "sandiego_cfs"
SD_CSV = SD_DIR / "pd_calls_for_service_2023_datasd.csv"
SF_TIME_COLUMNS = ["Received DtTm", "Dispatch DtTm", "Response DtTm", "On Scene DtTm",
                   "Available DtTm"]


def run(redis_url: str, keys: Keys, mapping_name: str, *paths: Path) -> Summary:
    mapping = load_mapping(MAPPINGS / f"{mapping_name}.toml", SHARED_DATA)

    client = sync_client(redis_url)
    try:
        return asyncio.run(backfill(client, keys, mapping, paths, progress=False))
    finally:
        close_client(client)


def closed_frame(r: redis.Redis, keys: Keys) -> pd.DataFrame:
    records = [{key.decode(): value.decode() for key, value in fields.items()}
               for _, fields in r.xrange(keys.closed)]
    frame = pd.DataFrame(records)
    for column in ("priority", "dispatch_s", "response_s", "received_time"):
        frame[column] = pd.to_numeric(frame[column].replace("", None))
    return frame


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [{key.decode(): value.decode(errors="replace") for key, value in fields.items()}
            for _, fields in r.xrange(keys.deadletter)]


# --- SF Fire: response times against an independent pandas computation ---------------------

def sf_expected_per_call() -> pd.DataFrame:
    """Per-call dispatch delay and response time straight from the raw CSV, with pandas."""
    raw = pd.read_csv(SF_CSV, dtype=str, keep_default_na=False)
    for column in SF_TIME_COLUMNS:
        local = pd.to_datetime(raw[column].replace("null", None),
                               format="%m/%d/%Y %I:%M:%S %p")
        raw[column] = local.dt.tz_localize("America/Los_Angeles", ambiguous=True,
                                           nonexistent="shift_forward").dt.tz_convert("UTC")
    # A row whose unit times go backwards is impossible (the backfill dead-letters it).
    ordered = pd.Series(True, index=raw.index)
    previous = raw["Received DtTm"]
    for column in SF_TIME_COLUMNS[1:]:
        ok = raw[column].isna() | (raw[column] >= previous)
        ordered &= ok
        previous = raw[column].where(raw[column].notna(), previous)
    raw = raw[ordered]
    calls = raw.groupby("Call Number").agg(
        received=("Received DtTm", "first"), dispatched=("Dispatch DtTm", "min"),
        on_scene=("On Scene DtTm", "min"), priority=("Priority", "first"))
    calls["priority"] = calls["priority"].map({"E": 1, "3": 2, "2": 3})
    calls["dispatch_s"] = (calls["dispatched"] - calls["received"]).dt.total_seconds()
    calls["response_s"] = (calls["on_scene"] - calls["received"]).dt.total_seconds()
    return calls


def stats_by_priority(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby("priority")[["dispatch_s", "response_s"]]
    return pd.concat({"median": grouped.median(), "p90": grouped.quantile(0.9)}, axis=1)


def test_sf_backfill_response_times_match_pandas(redis_url: str, keys: Keys,
                                                 r: redis.Redis) -> None:
    """Per-priority medians and 90th percentiles of dispatch delay and response time from
    the backfilled closed calls equal a pandas computation on the raw CSV."""
    summary = run(redis_url, keys, "sf_fire_calls", SF_CSV)
    expected = sf_expected_per_call()
    loaded = closed_frame(r, keys)
    assert summary.calls == len(loaded) == len(expected) == 2406
    assert summary.rows == 4504 and dict(summary.rejected) == {"impossible_time": 1}
    mine = stats_by_priority(loaded).sort_index()
    theirs = stats_by_priority(expected).sort_index()
    assert list(mine.index) == [1, 2, 3]
    pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-9)
    # the figures the data README states, over rows with both times (a sanity anchor)
    assert theirs.loc[2, ("median", "dispatch_s")] > 0


def test_sf_backfill_twice_changes_nothing(redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """A second backfill of the same file writes nothing: streams and sets are identical."""
    first = run(redis_url, keys, "sf_fire_calls", SF_CSV)

    def snapshot() -> tuple[Any, ...]:
        return (r.xrange(keys.closed), r.xrange(keys.deadletter),
                sorted(r.smembers(keys.closed_ids)),
                sorted(r.smembers(keys.backfill_done("sf_fire"))))

    before = snapshot()
    second = run(redis_url, keys, "sf_fire_calls", SF_CSV)
    assert snapshot() == before
    assert (first.loaded, first.already_loaded) == (2406, 0)
    assert (second.loaded, second.already_loaded) == (0, 2406)
    assert len(before[1]) == 1


def test_backfill_skips_calls_the_live_consumer_already_closed(
        redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """A call already in closed_ids (closed live) is not written again by the backfill."""
    r.sadd(keys.closed_ids, "192910017")
    summary = run(redis_url, keys, "sf_fire_calls", SF_CSV)
    assert summary.already_loaded == 1 and summary.loaded == 2405
    assert "192910017" not in set(closed_frame(r, keys)["call_id"])


def test_backfill_record_equals_what_the_consumer_writes_from_replayed_events() -> None:
    """For every SF call, the backfilled closed record equals the consumer's record after
    applying the call's replay events in time order (one format, two paths)."""
    mapping = load_mapping(MAPPINGS / "sf_fire_calls.toml", SHARED_DATA)
    records = [item for item in mapping.records(read_csv_rows(SF_CSV), "sf")
               if isinstance(item, CallRecord)]
    events = sorted((event for record in records for event in record_events(record)),
                    key=lambda event: event.event_time)
    plan = BatchPlan({})
    for event in events:
        plan.apply(event)
    live = {record["call_id"]: record for record in plan.closed_records}
    assert len(live) == len(records) == 2406
    for record in records:
        assert closed_record(call_state(record)) == live[record.call_id]


# --- San Diego: lookups and beats -----------------------------------------------------------

def sd_tables() -> tuple[pd.DataFrame, dict[str, str], dict[str, str], dict[str, str]]:
    calls = pd.read_csv(SD_CSV, dtype=str, keep_default_na=False)
    def table(name: str, key: str, value: str) -> dict[str, str]:
        frame = pd.read_csv(SD_DIR / name, dtype=str, keep_default_na=False,
                            encoding="utf-8-sig").drop_duplicates(key, keep="first")
        # the engine keeps the first of two values (FP) and trims trailing blanks
        return dict(zip(frame[key], frame[value].str.strip(), strict=True))
    return (calls, table("pd_cfs_calltypes_datasd.csv", "call_type", "description"),
            table("pd_dispo_codes_datasd.csv", "dispo_code", "description"),
            table("pd_beat_codes_list_datasd.csv", "beat", "neighborhood"))


def test_sandiego_codes_resolve_and_the_exceptions_are_dead_lettered(
        redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """Every call type and disposition code resolves through the lookups except the ones
    missing from the tables ('' and 1016P; DEF), whose rows are dead-lettered."""
    calls, types, dispositions, _ = sd_tables()
    unresolved_types = set(calls["call_type"]) - set(types)
    unresolved_dispositions = set(calls["disposition"]) - set(dispositions) - {""}
    assert unresolved_types == {"", "1016P"}
    assert unresolved_dispositions == {"DEF"}
    summary = run(redis_url, keys, "sandiego_cfs", SD_CSV)
    bad = calls["call_type"].isin(unresolved_types) | \
        calls["disposition"].isin(unresolved_dispositions)
    expected_rows = {str(index + 2) for index in calls.index[bad]}
    letters = dead_letters(r, keys)
    assert {letter["row"] for letter in letters} == expected_rows
    assert summary.calls == len(calls) - bad.sum() == 26573
    loaded = closed_frame(r, keys).set_index("call_id")
    good = calls[~bad].set_index("incident_num")
    assert (loaded.loc[good.index, "call_type"] == good["call_type"].map(types)).all()


def test_sandiego_address_only_calls_land_on_their_beats_neighborhood(
        redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """Each San Diego call's neighborhood is its beat's, from the beat table; beat -1 has none."""
    calls, _, _, beats = sd_tables()
    run(redis_url, keys, "sandiego_cfs", SD_CSV)
    loaded = closed_frame(r, keys).set_index("call_id")
    source = calls.set_index("incident_num").loc[loaded.index]
    expected = source["beat"].map(beats).fillna("")
    assert (loaded["neighborhood"] == expected).all()
    assert (expected != "").sum() > 26_000
    assert set(loaded.loc[source["beat"] == "-1", "neighborhood"]) == {""}


# --- bad input ------------------------------------------------------------------------------

def sf_rows() -> tuple[list[str], list[list[str]]]:
    with SF_CSV.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [next(reader) for _ in range(12)]


def test_bad_input_file_dead_letters_each_defect_and_loads_the_rest(
        tmp_path: Path, redis_url: str, keys: Keys, r: redis.Redis) -> None:
    """Only-id, bad and impossible times, junk priorities, BOM, Latin-1 bytes, missing
    coordinates, a duplicated row and a truncated last line: each is dead-lettered with
    file, row and reason; every valid row is loaded, and a junk district (failing its
    pattern) leaves the call loaded with that field empty and a warning counted."""
    header, rows = sf_rows()
    col = {name: index for index, name in enumerate(header)}

    def variant(base: list[str], call: str, **changes: str) -> list[str]:
        new = list(base)
        new[col["Call Number"]] = call
        for name, value in changes.items():
            new[col[name.replace("_", " ")]] = value
        return new

    good = [variant(rows[0], "900000001"), variant(rows[3], "900000002"),
            variant(rows[4], "900000003"), variant(rows[5], "900000003"),
            variant(rows[0], "900000014", Battalion="B#?")]  # junk district: left empty
    defects = [  # (row, expected reason code)
        ([ "900000010"] + ["null"] * (len(header) - 1), "only_id"),
        (variant(rows[0], "900000011", Received_DtTm="31/31/2019 99:00:00 XM"), "bad_time"),
        (variant(rows[0], "900000012", **{"On Scene DtTm": "10/17/2019 11:00:00 PM"}),
         "impossible_time"),
        (variant(rows[0], "900000013", Priority="!!"), "bad_priority"),
        (variant(rows[0], "900000015", Address="\ufeff24TH ST"), "encoding"),
        (variant(rows[0], "900000016", Address="LATIN1_PLACEHOLDER"), "encoding"),
        (variant(rows[0], "900000017", Location="null"), "missing_location"),
        (list(good[0]), "duplicate"),
    ]
    lines = [",".join(header)]
    lines += [",".join(f'"{value}"' for value in line) for line in good]
    lines += [",".join(f'"{value}"' for value in line) for line, _ in defects]
    body = "\n".join(lines) + "\n"
    truncated = ",".join(f'"{value}"' for value in variant(rows[6], "900000018"))[:60]
    data = b"\xef\xbb\xbf" + body.encode().replace(b"LATIN1_PLACEHOLDER", b"CAF\xc9 ST") \
        + truncated.encode()
    path = tmp_path / "bad_sf.csv"
    path.write_bytes(data)

    summary = run(redis_url, keys, "sf_fire_calls", path)

    expected = {str(len(good) + 2 + index): code for index, (_, code) in enumerate(defects)}
    expected[str(len(good) + 2 + len(defects))] = "truncated"
    letters = dead_letters(r, keys)
    assert {letter["row"]: letter["reason"].split(":")[0] for letter in letters} == expected
    assert {letter["file"] for letter in letters} == {"bad_sf.csv"}
    assert all(letter["source"] == "sf_fire" and letter["payload"] for letter in letters)
    loaded = closed_frame(r, keys)
    assert sorted(loaded["call_id"]) == ["900000001", "900000002", "900000003", "900000014"]
    assert loaded.set_index("call_id").loc["900000014", "district"] == ""
    assert summary.warnings == {"bad_code": 1}
    assert summary.rows == len(good) + len(defects) + 1
    assert sum(summary.rejected.values()) == len(defects) + 1


def test_cli_backfill_prints_the_summary(redis_url: str, key_prefix: str, keys: Keys,
                                         r: redis.Redis, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    """run_backfill loads the DC file and prints rows, alerts, rejects by reason, span."""
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix,
                        shared_data_dir=SHARED_DATA)
    code = asyncio.run(run_backfill(settings, MAPPINGS / "dc_shotspotter.toml",
                                    [SHARED_DATA / "dc_shotspotter" / "shotspotter.csv"],
                                    asyncio.Event()))
    out = capsys.readouterr().out
    assert code == 0
    assert "rows read           39,066" in out and "alerts              39,065" in out
    assert "out_of_bounds" in out
    assert "2006-01-27T08:35:11+00:00 .. 2013-06-24T16:53:11+00:00" in out
    assert r.hlen(keys.alerts) == 39065 and r.zcard(keys.alerts_active) == 0


def test_cli_backfill_refuses_a_bad_mapping(tmp_path: Path, settings: Settings,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A mapping that does not parse ends the command with code 2 and a readable error."""
    path = tmp_path / "bad.toml"
    path.write_text("[dataset\nname=")
    code = asyncio.run(run_backfill(settings, path, [SF_CSV], asyncio.Event()))
    assert code == 2 and "not valid TOML" in capsys.readouterr().err


def test_rejected_rows_carry_file_and_row(tmp_path: Path) -> None:
    """Rejected items from the engine name the file and the data row (header = row 1)."""
    path = tmp_path / "x.csv"
    path.write_text("Call Number,Unit ID\n1,\n")
    mapping = load_mapping(MAPPINGS / "sf_fire_calls.toml", SHARED_DATA)
    [item] = list(mapping.records(read_csv_rows(path), "x.csv"))
    assert isinstance(item, Rejected) and (item.file, item.row) == ("x.csv", 2)


def test_shards_together_load_exactly_what_one_pass_loads(redis_url: str, keys: Keys,
                                                          r: redis.Redis) -> None:
    """Two id shards loaded one after the other give the same calls and dead letters as
    one pass, with no call in both shards."""
    mapping = load_mapping(MAPPINGS / "sf_fire_calls.toml", SHARED_DATA)
    client = sync_client(redis_url)
    try:
        parts = [asyncio.run(backfill(client, keys, mapping, [SF_CSV], progress=False,
                                      shard=(index, 2))) for index in range(2)]
    finally:
        close_client(client)
    assert [part.rows for part in parts] == [4504, 4504]
    assert all(part.calls > 1000 for part in parts)
    assert sum(part.calls for part in parts) == 2406
    assert sum(part.already_loaded for part in parts) == 0
    assert len(set(closed_frame(r, keys)["call_id"])) == 2406
    assert [letter["row"] for letter in dead_letters(r, keys)] == ["4028"]


def test_cli_backfill_with_worker_processes(redis_url: str, key_prefix: str, keys: Keys,
                                            r: redis.Redis,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """run_backfill with 2 worker processes loads every SF call once and merges the summary."""
    settings = Settings(redis_url=redis_url, key_prefix=key_prefix,
                        shared_data_dir=SHARED_DATA)
    code = asyncio.run(run_backfill(settings, MAPPINGS / "sf_fire_calls.toml", [SF_CSV],
                                    asyncio.Event(), workers=2))
    out = capsys.readouterr().out
    assert code == 0
    assert "rows read            4,504" in out and "calls                2,406" in out
    assert "impossible_time         1" in out
    assert r.xlen(keys.closed) == 2406 and r.scard(keys.closed_ids) == 2406
