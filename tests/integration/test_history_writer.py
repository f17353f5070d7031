"""History on real Redis: the writer's Parquet files plus the stream's tail, as workers see it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from dashboard.history import HistoryStore, Selection
from streams import history as writer_module
from streams.core import history
from streams.core.keys import CLOSED_MAXLEN, Keys
from streams.core.livestate import closed_record
from streams.core.settings import Settings
from streams.seed import closed_records, seed_history, seed_reason_to_skip, seed_start
from tests.conftest import TIMEOUT_SCALE

T0 = 1_404_000_000.0  # 2014-06-29


def records(count: int, first: int = 0, left_every: int = 0) -> list[dict[str, str]]:
    """``count`` closed records, one a minute from T0, response 100 + n seconds."""
    out = []
    for n in range(first, first + count):
        out.append({**closed_record({
            "call_id": f"H{n:05d}", "category": "noise", "priority": 1 + n % 5,
            "district": ("North", "South")[n % 2], "received_time": T0 + 60 * n,
            "dispatched_time": T0 + 60 * n + 30, "on_scene_time": T0 + 60 * n + 100 + n,
            "closed_time": T0 + 60 * n + 900, "status": "closed", "source": "test"}),
            "left_feed": "1" if left_every and n % left_every == 0 else "0"})
    return out


def add(client: redis.Redis, keys: Keys, rows: list[dict[str, str]]) -> None:
    with client.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.xadd(keys.closed, row, maxlen=CLOSED_MAXLEN, approximate=True)
        pipe.execute()


class Writer:
    """The real history writer (run_history_writer) on a thread, stopped at teardown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.quit = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        stop = asyncio.Event()

        async def relay() -> None:
            while not self.quit.is_set():
                await asyncio.sleep(0.05)
            stop.set()

        relay_task = asyncio.create_task(relay())
        await writer_module.run_history_writer(self.settings, stop)
        await relay_task

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.quit.set()
        self.thread.join(timeout=30 * TIMEOUT_SCALE)


def folder(settings: Settings) -> Path:
    return history.folder_of(settings.resolved_history_dir, settings.key_prefix)


def manifest(settings: Settings) -> dict[str, Any]:
    path = folder(settings) / history.MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else history.new_manifest("")


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return replace(settings, history_flush_seconds=0.2)


@pytest.fixture
def store(fast: Settings, r: redis.Redis, keys: Keys) -> Iterator[HistoryStore]:
    yield HistoryStore(r, keys, folder(fast), fast.timezone, tail_limit=500)


def responses(store: HistoryStore, **selection: Any) -> list[float]:
    with store.select(Selection(0, 2e9, **selection)) as query:
        found = query.frame("SELECT response_s FROM sel ORDER BY response_s")
    return found["response_s"].tolist()


def test_writer_files_and_tail_give_every_call_once(fast: Settings, r: redis.Redis,
                                                     keys: Keys, store: HistoryStore) -> None:
    """Calls in the files and calls only in the stream are counted once each, and the
    figures equal numpy's over exactly those calls."""
    add(r, keys, records(300))
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 300, "the writer to write 300 rows")
    add(r, keys, records(40, first=300))  # not yet in any file: the tail
    state = store.state()
    assert state.file_rows == 300 and len(state.tail.table) == 40 and state.tail.complete
    expected = sorted(100.0 + n for n in range(340))
    assert sorted(responses(store)) == expected
    with store.select(Selection(0, 2e9)) as query:
        total = query.period_stats().iloc[0]
    assert total["response_n"] == 340
    assert list(total["response_q"]) == pytest.approx(
        [np.percentile(expected, 50), np.percentile(expected, 90)], abs=1e-6)


def test_writer_restarts_where_it_stopped_and_writes_nothing_twice(
        fast: Settings, r: redis.Redis, keys: Keys, store: HistoryStore) -> None:
    """A second writer run carries on from the manifest's last id; small files merge."""
    add(r, keys, records(50))
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 50, "the first 50 rows")
    first = manifest(fast)
    with Writer(fast):
        for batch in range(12):
            add(r, keys, records(10, first=50 + 10 * batch))
            wait_for(lambda b=batch: manifest(fast)["rows"] == 60 + 10 * b, "each batch")
    after = manifest(fast)
    assert after["rows"] == 170 and after["last_id"] != first["last_id"]
    assert len(after["files"]) <= writer_module.COMPACT_SMALL_FILES
    assert len(responses(store)) == 170
    assert len({row for row in store.closed_calls(0, 2e9)["call_id"]}) == 170


def test_a_second_writer_stands_by(fast: Settings, r: redis.Redis, keys: Keys) -> None:
    """Two writers on one folder: the second waits on the lock and writes nothing."""
    add(r, keys, records(20))
    with Writer(fast), Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 20, "20 rows")
        time.sleep(0.5)
    assert manifest(fast)["rows"] == 20


def test_a_recreated_stream_rebuilds_the_files(fast: Settings, r: redis.Redis, keys: Keys,
                                               store: HistoryStore) -> None:
    """When Redis is replaced (the stream ends before the files' last id), the writer
    starts over from the new stream instead of keeping calls that are not there."""
    add(r, keys, records(30))
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 30, "30 rows")
    r.delete(keys.closed)
    r.xadd(keys.closed, records(1)[0], id="1-1")
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 1, "the rebuild")
    assert responses(store) == [100.0]


def test_left_feed_closures_are_kept_out_unless_asked_for(
        fast: Settings, r: redis.Redis, keys: Keys, store: HistoryStore) -> None:
    """left_feed = "1" records (contract 7) are not in the figures by default."""
    add(r, keys, records(10, left_every=5))  # H00000 and H00005 left the feed
    assert len(responses(store)) == 8
    assert len(responses(store, include_left_feed=True)) == 10


def test_the_tail_is_bounded_and_says_when_it_is_cut(fast: Settings, r: redis.Redis,
                                                      keys: Keys) -> None:
    """With the writer down, a worker reads at most the tail limit and says the figures
    are incomplete rather than loading the whole stream."""
    add(r, keys, records(120))
    small = HistoryStore(r, keys, folder(fast), fast.timezone, tail_limit=100)
    state = small.state()
    assert len(state.tail.table) == 100 and state.tail.complete is False
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 120, "the writer to catch up")
    state = small.state()
    assert state.file_rows == 120 and len(state.tail.table) == 0 and state.tail.complete


def test_seeding_fills_an_empty_redis_once_and_never_with_a_real_feed(
        settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """Simulated weeks through apply_call and the backfill writer; a second start or a
    configured real feed seeds nothing."""
    real = replace(settings, poll_mappings=(Path("feed.toml"),))
    assert "real feed" in (seed_reason_to_skip(real, r, keys) or "")
    assert seed_history(real) is None and r.xlen(keys.closed) == 0
    # Judged as history: a live window of an hour would refuse every seeded call.
    week = replace(settings, seed_history_weeks=1.0, max_event_age_seconds=3600.0)
    started = time.monotonic()
    summary = seed_history(week, now=T0)
    took = time.monotonic() - started
    assert summary is not None and summary.loaded > 2000  # about 500 calls a day
    assert r.xlen(keys.closed) == summary.loaded and r.exists(keys.history_seeded)
    assert took < 60 * TIMEOUT_SCALE
    entries = r.xrange(keys.closed, count=50)
    table = history.table_of_entries(entries, settings.timezone)
    assert (table["source"] == "seed").all()
    assert table["received_time"].between(T0 - 6 * 3600 - 7 * 86400, T0).all()
    assert table["response_s"].notna().any() and (table["response_s"].dropna() > 0).all()
    assert seed_history(week, now=T0) is None


def test_seeding_is_judged_by_the_history_window_and_the_service_area(
        settings: Settings) -> None:
    """The seed never starts before DISPATCH_HISTORY_MAX_AGE_DAYS admits, and its events
    pass admission as history would (a service area elsewhere refuses all of them)."""
    end = datetime.fromtimestamp(T0, UTC)
    eight = replace(settings, seed_history_weeks=8.0)
    assert seed_start(eight, end, T0) == end - timedelta(weeks=8)
    narrow = replace(eight, history_max_age_days=3.0)
    assert seed_start(narrow, end, T0) == datetime.fromtimestamp(T0 - 3 * 86400, UTC)
    day = end - timedelta(days=1)
    assert len(list(closed_records(settings, day, end, T0))) > 100
    elsewhere = replace(settings, service_area="37.70,-122.52,37.82,-122.35")  # SF
    assert list(closed_records(elsewhere, day, end, T0)) == []


def test_cached_statistics_follow_new_closed_calls(fast: Settings, r: redis.Redis,
                                                    keys: Keys, store: HistoryStore) -> None:
    """The worker's result cache answers a repeated question from memory, and a closed
    call arriving in between (tail) or a new file changes the answer at once."""
    add(r, keys, records(100))

    def kpi() -> tuple[int, float]:
        with store.select(Selection(0, 2e9)) as query:
            row = query.period_stats().iloc[0]
        return int(row["response_n"]), float(row["response_q"][0])

    assert kpi() == (100, float(np.percentile([100.0 + n for n in range(100)], 50)))
    assert kpi() == (100, float(np.percentile([100.0 + n for n in range(100)], 50)))
    assert store.results.size > 0
    add(r, keys, records(20, first=100))  # into the tail: a new stamp
    assert kpi() == (120, float(np.percentile([100.0 + n for n in range(120)], 50)))
    with Writer(fast):
        wait_for(lambda: manifest(fast)["rows"] == 120, "the writer to write 120 rows")
    add(r, keys, records(5, first=120))
    assert kpi() == (125, float(np.percentile([100.0 + n for n in range(125)], 50)))
