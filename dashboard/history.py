"""Response-time history for web workers: DuckDB over the history writer's Parquet files.

A worker never holds the whole history. Each query reads the files listed in the folder's
manifest (``streams/history.py`` appends them) plus the *tail*: every partition's
closed-stream entries after the manifest's last id of that partition, read from Redis
(normally the last second or two; at most ``history_tail_limit`` of them in all, so memory
stays bounded even when the writer is down, and the page then says the figures are
behind). Both go through ``streams.core.history``'s one table shape, so the files and the
tail agree on every column.

Every statistic is computed by DuckDB in SQL (``quantile_cont`` is linear interpolation,
numpy's and pandas' default), on one selection per filter change: the rows of the period
and of the previous period that pass the filters and count, only the columns statistics
need, kept in a per-request temporary table.
Each request has its own DuckDB cursor (connections are not shared between threads);
the database is in memory with ``history_memory_mb`` as its limit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from streams.core import history
from streams.core.keys import Keys
from streams.core.partitions import stream_id_key
from streams.core.replies import reply_text
from streams.core.response import INTERVALS

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

SQL_TYPES = {**{name: "VARCHAR" for name in history.TEXT_FIELDS},
             **{name: "DOUBLE" for name in history.NUMBER_FIELDS + history.DERIVED_FIELDS},
             **{name: "BOOLEAN" for name in history.FLAG_FIELDS}}
_CAST = ", ".join(f"CAST({name} AS {SQL_TYPES[name]}) AS {name}"
                  for name in history.HISTORY_COLUMNS)
_FILE_COLUMNS = ", ".join(
    f"CAST(COALESCE({name}, FALSE) AS BOOLEAN) AS {name}" if name in history.FLAG_FIELDS
    else f"CAST({name} AS {SQL_TYPES[name]}) AS {name}" for name in history.HISTORY_COLUMNS)

GROUP_COLUMNS = ("district", "priority", "category")
"""Columns a selection may be split by (its ``grp``)."""


@dataclass(frozen=True)
class Selection:
    """Which closed calls a question is about: two periods (epoch s, half-open, by
    anchor time) and the filters. Cancelled calls and calls that left an active feed
    without the feed closing them are left out unless asked for."""

    start: float
    end: float
    previous_start: float | None = None
    previous_end: float | None = None
    districts: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    qol_only: bool = False
    include_cancelled: bool = False
    include_left_feed: bool = False
    group: str | None = None
    """The column the series are split by (GROUP_COLUMNS), kept in ``sel`` as ``grp``."""

    def __post_init__(self) -> None:
        if self.group is not None and self.group not in GROUP_COLUMNS:
            raise ValueError(f"group must be one of {', '.join(GROUP_COLUMNS)}")

    def counted(self) -> str:
        """SQL condition: the call counts in the statistics (literal TRUE/FALSE only)."""
        return (f"(NOT cancelled OR {str(self.include_cancelled).upper()}) "
                f"AND (NOT left_feed OR {str(self.include_left_feed).upper()})")

    def where(self) -> tuple[str, dict[str, Any]]:
        """SQL condition over the history columns and its parameters (no value is ever
        pasted into the SQL text)."""
        periods = ["(anchor_time >= $start AND anchor_time < $end)"]
        params: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.previous_start is not None and self.previous_end is not None:
            periods.append("(anchor_time >= $pstart AND anchor_time < $pend)")
            params.update(pstart=self.previous_start, pend=self.previous_end)
        parts = ["(" + " OR ".join(periods) + ")"]
        for column, values in (("district", self.districts), ("category", self.categories)):
            if values:
                parts.append(f"list_contains(${column}s, {column})")
                params[f"{column}s"] = list(values)
        if self.priorities:
            parts.append("list_contains($priorities, priority)")
            params["priorities"] = [float(p) for p in self.priorities]
        if self.qol_only:
            parts.append("qol")
        return " AND ".join(parts), params


@dataclass(frozen=True)
class Tail:
    """Closed-stream entries after the manifest's last ids, every partition's, as one
    table (rows in the order read: partition by partition, each in stream order)."""

    after: tuple[str, ...] = ("0-0",)
    """The manifest's ids (one per partition) these follow."""
    last_id: tuple[str, ...] = ("0-0",)
    """The last id read, per partition."""
    table: pd.DataFrame = field(default_factory=history.empty_table)
    ids: list[tuple[int, int, int]] = field(default_factory=list)
    """Per row: (partition, stream id as a pair)."""
    complete: bool = True
    """False when more than the tail limit is waiting: figures leave out the newest."""


@dataclass(frozen=True)
class State:
    """What one query reads: the listed files and the tail."""

    files: tuple[str, ...]
    file_rows: int
    tail: Tail
    manifest_written: float | None

    @property
    def stamp(self) -> tuple[Any, ...]:
        """What identifies the rows this state reads: the files and the tail's extent."""
        return (self.files, self.tail.after, self.tail.last_id, len(self.tail.table))


class HistoryStore:
    """Closed-call history questions, answered by DuckDB without loading it whole."""

    def __init__(self, client: redis.Redis, keys: Keys, folder: Path, timezone: str,
                 tail_limit: int = 50_000, memory_mb: int = 256) -> None:
        self.client = client
        self.keys = keys
        self.folder = folder
        self.timezone = timezone
        self.tail_limit = tail_limit
        self.db = duckdb.connect(config={"memory_limit": f"{memory_mb}MB", "threads": 2})
        self._lock = threading.Lock()
        self._manifest_stamp: tuple[int, int] | None = None
        self._manifest = history.new_manifest(timezone)
        nothing_read = ("0-0",) * keys.partitions
        self._tail = Tail(after=nothing_read, last_id=nothing_read)
        self.results = ResultCache()

    # --- what a query reads ---------------------------------------------------------------
    def state(self) -> State:
        """The manifest's files and a fresh tail (one short XRANGE when nothing changed)."""
        with self._lock:
            manifest = self._read_manifest()
            self._refresh_tail(tuple(history.manifest_positions(manifest,
                                                                self.keys.partitions)))
            files = tuple(str(self.folder / entry["name"]) for entry in manifest["files"])
            return State(files, int(manifest["rows"]), self._tail, manifest.get("written"))

    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / history.MANIFEST_NAME
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._manifest_stamp, self._manifest = None, history.new_manifest(self.timezone)
            return self._manifest
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._manifest_stamp:
            try:
                self._manifest = history.parse_manifest(path.read_bytes(), self.timezone)
                self._manifest_stamp = stamp
            except FileNotFoundError:  # replaced between stat and read: keep the last one
                pass
        return self._manifest

    def _refresh_tail(self, after: tuple[str, ...]) -> None:
        # A new Tail every time, never changed in place: a query in another thread keeps
        # the rows (and the stamp its cached results are filed under) it started with.
        tail = self._tail if self._tail.after == after else _tail_after(self._tail, after)
        tail = replace(tail, complete=True)
        for partition, keys in enumerate(self.keys.every_partition):
            tail = self._tail_of(tail, partition, keys.closed)
        self._tail = tail

    def _tail_of(self, tail: Tail, partition: int, stream: str) -> Tail:
        """``tail`` with one partition's newer entries, as many as the limit leaves room for
        (one XRANGE of one stream: a partition's own slot on a cluster)."""
        start = f"({tail.last_id[partition]}"
        room = self.tail_limit - len(tail.table)
        if room <= 0:
            complete = not self.client.xrange(stream, start, "+", count=1)
            return replace(tail, complete=tail.complete and complete)
        entries = self.client.xrange(stream, start, "+", count=room + 1)
        complete, entries = tail.complete and len(entries) <= room, entries[:room]
        if not entries:
            return replace(tail, complete=complete)
        new = history.table_of_entries(entries, self.timezone)
        last_id = list(tail.last_id)
        last_id[partition] = reply_text(entries[-1][0])
        return replace(
            tail, complete=complete, last_id=tuple(last_id),
            table=pd.concat([tail.table, new], ignore_index=True) if len(tail.table) else new,
            ids=tail.ids + [(partition, *stream_id_key(entry_id))
                            for entry_id, _ in entries])

    # --- queries ----------------------------------------------------------------------------
    @contextmanager
    def cursor(self, state: State | None = None) -> Iterator[Query]:
        """A DuckDB cursor with the view ``calls`` over this moment's files and tail."""
        state = state or self.state()
        cursor = self.db.cursor()
        try:
            parts = []
            if state.files:
                listed = ", ".join("'" + name.replace("'", "''") + "'" for name in state.files)
                parts.append(f"SELECT {_FILE_COLUMNS} FROM read_parquet([{listed}], "
                             "union_by_name = true)")
            # The tail is empty most of the time (the writer flushes every couple of
            # seconds), and a registered frame costs its binding on every statement that
            # reads calls, empty or not (about 4 ms each, three of them a filter change).
            if len(state.tail.table) or not parts:
                cursor.register("tail_rows", state.tail.table)
                parts.append(f"SELECT {_CAST} FROM tail_rows")
            cursor.execute("CREATE TEMP VIEW calls AS " + " UNION ALL ".join(parts))
            yield Query(cursor, state, cache=self.results)
        finally:
            cursor.close()

    @contextmanager
    def select(self, selection: Selection) -> Iterator[Query]:
        """``cursor()`` with ``sel``: the selection's counted calls (narrow: SELECTED,
        ``grp`` and ``cur``, true in the current period); see ``Query.frame``."""
        with self.cursor() as query:
            query.selection = selection
            yield query

    def closed_calls(self, start: float, end: float) -> pd.DataFrame:
        """Closed calls anchored in [start, end), one row each (HISTORY_COLUMNS), for
        callers that need rows rather than statistics (tests, small periods)."""
        with self.cursor() as query:
            return query.cursor.execute(
                "SELECT * FROM calls WHERE anchor_time >= $s AND anchor_time < $e "
                "ORDER BY anchor_time, call_id", {"s": start, "e": end}).df()

    def status(self) -> dict[str, Any]:
        """Rows in files, rows waiting in the tail, whether the tail is complete."""
        state = self.state()
        return {"file_rows": state.file_rows, "files": len(state.files),
                "tail_rows": len(state.tail.table), "complete": state.tail.complete,
                "manifest_written": state.manifest_written}


SELECTED = ("TRY_CAST(priority AS INTEGER) AS priority", "anchor_local",
            *(spec.column for spec in INTERVALS.values()))
"""Columns kept in ``sel``: only what the statistics group and measure by, as narrow as
they go (a year against the year before is 600,000 rows: every extra column, text above
all, costs more than the statistics). Counts of what was left out (coverage) and the
slowest calls' rows are read from ``calls`` directly."""
def selection_sql(selection: Selection) -> tuple[str, dict[str, Any]]:
    """The query defining ``sel`` for ``selection`` (over the view ``calls``)."""
    where, params = selection.where()
    params.update(start_=selection.start, end_=selection.end)
    group = "NULL" if selection.group is None else selection.group
    return (f"SELECT {', '.join(SELECTED)}, {group} AS grp, "
            "(anchor_time >= $start_ AND anchor_time < $end_) AS cur "
            f"FROM calls WHERE {where} AND {selection.counted()}", params)


@contextmanager
def select_frame(table: pd.DataFrame, selection: Selection) -> Iterator[Query]:
    """A selection over an in-memory history table (``streams.core.history`` columns):
    the same SQL as the store's, for tests and for callers holding a few rows."""
    cursor = duckdb.connect()
    try:
        cursor.register("given_rows", table)
        cursor.execute(f"CREATE TEMP VIEW calls AS SELECT {_CAST} FROM given_rows")
        yield Query(cursor, State((), 0, Tail(table=table), None), selection)
    finally:
        cursor.close()


def _tail_after(tail: Tail, after: tuple[str, ...]) -> Tail:
    """The tail without the entries the files now hold (each partition's ids up to its
    id in ``after``). A tail of another partition count is dropped whole."""
    if len(tail.last_id) != len(after):
        return Tail(after=after, last_id=after)
    bounds = [stream_id_key(entry_id) for entry_id in after]
    keep = [index for index, (partition, *key) in enumerate(tail.ids)
            if tuple(key) > bounds[partition]]
    last_id = tuple(held if stream_id_key(held) > bound else entry_id
                    for held, bound, entry_id in zip(tail.last_id, bounds, after, strict=True))
    if not keep:
        return Tail(after=after, last_id=last_id)
    return Tail(after=after, last_id=last_id,
                table=tail.table.iloc[keep].reset_index(drop=True),
                ids=[tail.ids[index] for index in keep], complete=tail.complete)


@dataclass
class Query:
    """Statistics over one selection (``sel``); every method is one SQL statement.

    A filter change asks about six small results. Each is looked up in the store's
    result cache first (same rows, same selection, same SQL: the same answer), so a
    change of split, bucket or interval recomputes only what it changes. ``sel`` is
    made only for what the cache does not hold: as a temporary table when the first
    statement (``period_stats``, the same for every split, bucket and interval) misses
    too, else inline (a subquery) for the first statement that misses and as a table
    once a second one does. So the selection is read from the files once, or twice
    when one statement changed and then another."""

    cursor: duckdb.DuckDBPyConnection
    state: State
    selection: Selection | None = None
    cache: ResultCache | None = None
    _materialised: bool = False
    _misses: int = 0
    _hits: int = 0

    def frame(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The result of ``sql`` (which may read ``sel`` and ``calls``) as a frame."""
        params = dict(params or {})
        uses_sel = _SEL.search(sql) is not None
        key = None
        if self.cache is not None:
            selection = self.selection
            if selection is not None and "grp" not in sql:
                selection = replace(selection, group=None)
            key = (self.state.stamp, selection, sql, repr(sorted(params.items())))
            found = self.cache.get(key)
            if found is not None:
                self._hits += 1
                return found
        if uses_sel:
            sql, params = self._with_sel(sql, params)
        result = self.cursor.execute(sql, params).df()
        if key is not None and self.cache is not None:
            self.cache.put(key, result)
        return result

    def _with_sel(self, sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert self.selection is not None, "sel needs a selection"
        self._misses += 1
        definition, sel_params = selection_sql(self.selection)
        # Nothing found yet: a new selection, every statement will need sel.
        if self._materialised or self._misses >= 2 or not self._hits:
            if not self._materialised:
                self.cursor.execute(f"CREATE TEMP TABLE sel AS {definition}", sel_params)
                self._materialised = True
            return sql, params
        return _SEL.sub(f"FROM ({definition}) AS sel", sql), {**sel_params, **params}

    def period_stats(self) -> pd.DataFrame:
        """Per period (``cur`` true/false), all priorities: for every interval n and
        [median, p90] (``<name>_n``, ``<name>_q``)."""
        columns = []
        for name, spec in INTERVALS.items():
            columns.append(f"count({spec.column}) AS {name}_n")
            columns.append(f"quantile_cont({spec.column}, [0.5, 0.9]) AS {name}_q")
        return self.frame(f"SELECT cur, {', '.join(columns)} FROM sel GROUP BY cur "
                          "ORDER BY cur")

    def priority_stats(self, column: str, targets: Sequence[float] | None) -> pd.DataFrame:
        """Per priority over the current period, for one interval: n, [median, p90] (q)
        and, with P1..Pn ``targets`` (seconds), n within its own priority's target
        (``within``) and n that has a target (``judged``)."""
        extra = ""
        if targets:
            cases = " ".join(f"WHEN {p} THEN {float(t)!r}" for p, t in enumerate(targets, 1))
            extra = (f", count_if({column} <= CASE priority {cases} END) AS within, "
                     f"count_if({column} IS NOT NULL AND priority BETWEEN 1 AND "
                     f"{len(targets)}) AS judged")
        return self.frame(
            f"SELECT CAST(priority AS INTEGER) AS priority, count({column}) AS n, "
            f"quantile_cont({column}, [0.5, 0.9]) AS q{extra} FROM sel "
            "WHERE cur AND priority IS NOT NULL GROUP BY priority ORDER BY priority")

    def series(self, column: str, bucket: str) -> pd.DataFrame:
        """Per period, local bucket start (naive local seconds) and value of the
        selection's ``group`` (``grp``): n, median, p90 of ``column``."""
        split = self.selection is not None and self.selection.group is not None
        group, by = (", grp", ", grp") if split else (", NULL AS grp", "")
        return self.frame(
            f"SELECT cur, {BUCKET_SQL[bucket]} AS bucket{group}, count({column}) AS n, "
            f"quantile_cont({column}, 0.5) AS median, quantile_cont({column}, 0.9) AS p90 "
            f"FROM sel WHERE {column} IS NOT NULL GROUP BY cur, bucket{by} "
            f"ORDER BY cur, grp, bucket")

    def quantile(self, column: str, q: float) -> float | None:
        found = self.frame(f"SELECT quantile_cont({column}, $q) AS value FROM sel WHERE cur",
                           {"q": q})
        value = found["value"].iloc[0] if len(found) else None
        return None if value is None or pd.isna(value) else float(value)

    def histogram(self, column: str, width: float, last_start: float) -> pd.DataFrame:
        """Counts per ``width``-second bin from 0; values past ``last_start`` count in the
        bin starting there."""
        return self.frame(
            f"SELECT LEAST(floor({column} / $w) * $w, $last) AS bin, count(*) AS n FROM sel "
            f"WHERE cur AND {column} IS NOT NULL GROUP BY bin ORDER BY bin",
            {"w": width, "last": last_start})

    def slowest(self, column: str, targets: Sequence[float] | None, limit: int
                ) -> pd.DataFrame:
        """The ``limit`` calls of the current period furthest past their own priority's
        target (``past_s`` = interval - target), or with the longest interval where it has
        no target. Read from ``calls`` (every column) with the selection's conditions."""
        if targets:
            cases = " ".join(f"WHEN {p} THEN {float(t)!r}" for p, t in enumerate(targets, 1))
            target = f"CASE CAST(priority AS INTEGER) {cases} END"
        else:
            target = "CAST(NULL AS DOUBLE)"
        assert self.selection is not None, "slowest() needs a selection"
        current = replace(self.selection, previous_start=None, previous_end=None)
        where, params = current.where()
        return self.frame(
            f"SELECT {', '.join(SLOWEST_COLUMNS)}, {target} AS target_s, "
            f"{column} - {target} AS past_s FROM calls "
            f"WHERE {where} AND {current.counted()} AND {column} IS NOT NULL "
            f"ORDER BY past_s DESC NULLS LAST, {column} DESC, call_id LIMIT {int(limit)}",
            params)

    def coverage(self) -> pd.DataFrame:
        """Per source, over the current period with the selection's filters: calls, calls
        with each time, cancelled and left-feed calls (whether counted or not), so the
        page can say what a feed lacks and what was left out. Counts only: read from
        ``calls`` (``sel`` holds only counted calls)."""
        assert self.selection is not None, "coverage() needs a selection"
        current = replace(self.selection, previous_start=None, previous_end=None)
        where, params = current.where()
        times = ", ".join(f"count({name}) AS {name}" for name in history.TIME_FIELDS)
        return self.frame(
            f"SELECT source, count(*) AS calls, {times}, count_if(cancelled) AS cancelled, "
            f"count_if(left_feed) AS left_feed, count_if({current.counted()}) AS counted "
            f"FROM calls WHERE {where} GROUP BY source ORDER BY source", params)


_SEL = re.compile(r"\bFROM sel\b")


class ResultCache:
    """The last statement results of this worker (small frames: statistics, not rows),
    least recently used out first, at most ``max_bytes`` of them. Keys hold the state's
    stamp, so new files or new closed calls never return an old answer. Results are
    shared: read-only."""

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[Any, tuple[pd.DataFrame, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> pd.DataFrame | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Any, value: pd.DataFrame) -> None:
        size = estimated_bytes(value)
        if size > self.max_bytes // 4:
            return  # not worth holding
        with self._lock:
            old = self._items.pop(key, None)
            self.size += size - (old[1] if old else 0)
            self._items[key] = (value, size)
            while self.size > self.max_bytes:
                _, (_, gone) = self._items.popitem(last=False)
                self.size -= gone


OBJECT_CELL_BYTES = 64
"""What a text or list cell of a cached result is taken to hold (a short Python string)."""


def estimated_bytes(frame: pd.DataFrame) -> int:
    """About the memory ``frame`` holds, from its shape and column types: exact for numbers,
    OBJECT_CELL_BYTES a cell otherwise. Pandas' own deep count cost 1-2 ms for a two-row
    frame (40 ms for an hourly series by category), more than most statements it caches."""
    per_row = sum(dtype.itemsize if isinstance(dtype, np.dtype) and dtype.kind in "biufmM"
                  else OBJECT_CELL_BYTES for dtype in frame.dtypes)
    return 128 + len(frame) * per_row


SLOWEST_COLUMNS = ("call_id", "received_time", "district", "neighborhood", "category",
                   "priority", "call_type", "source",
                   *(spec.column for spec in INTERVALS.values()))
"""What the slowest-calls table shows of each call."""


DAY_S = 86400
BUCKET_SQL = {
    "hour": "floor(anchor_local / 3600) * 3600",
    "day": f"floor(anchor_local / {DAY_S}) * {DAY_S}",
    # 1970-01-01 was a Thursday: day number + 3 is 0 on Mondays.
    "week": f"(floor(anchor_local / {DAY_S}) - ((floor(anchor_local / {DAY_S}) + 3) % 7 + 7)"
            f" % 7) * {DAY_S}",
}
"""Start of the local hour/day/week (Monday), as naive local epoch seconds."""


def local_stamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Naive local epoch seconds -> naive local timestamps."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(seconds, dtype=float), unit="s"))


def now() -> float:
    return time.time()
