"""Closed-call history as columns: what the history writer stores and the web reads.

Pure (pandas/numpy in, pandas out). The closed-calls stream (``keys.closed``, records
written by ``livestate.closed_record``) is turned into one typed table per chunk of
entries; the history writer (``streams.history``) appends those tables to Parquet files
and every web worker reads the few entries the files do not hold yet the same way, so
both sides agree on every column.

``anchor_time`` places a call in time: its received time, else the first time the feed
gave (a history export without received times is still in the right day). The
``anchor_local`` column is the same instant as seconds on the city's wall clock (epoch
seconds of the naive local time), so hour, day and week buckets are integer arithmetic in
SQL and match pandas' local-time flooring, DST included.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from streams.core.replies import reply_text

TEXT_FIELDS: Final = ("call_id", "category", "district", "neighborhood", "call_type",
                      "source")
NUMBER_FIELDS: Final = ("priority", "received_time", "dispatched_time", "on_scene_time",
                        "closed_time", "dispatch_s", "travel_s", "response_s", "on_scene_s")
FLAG_FIELDS: Final = ("qol", "cancelled", "left_feed")
"""``left_feed`` = "1": closed because the call left an active-calls feed (TEAM contract 7);
records written before that field existed read as "0"."""
RECORD_FIELDS: Final = (
    "call_id", "category", "qol", "priority", "district", "neighborhood", "call_type",
    "received_time", "dispatched_time", "on_scene_time", "closed_time",
    "dispatch_s", "travel_s", "response_s", "on_scene_s", "cancelled", "source", "left_feed",
)
"""The closed-record fields the history keeps, in the order records are written."""
DERIVED_FIELDS: Final = ("anchor_time", "anchor_local")
HISTORY_COLUMNS: Final = RECORD_FIELDS + DERIVED_FIELDS
"""Columns of every history table (Parquet file or in-memory tail), in this order."""
TIME_FIELDS: Final = ("received_time", "dispatched_time", "on_scene_time", "closed_time")

FIELD_SEPARATOR, RECORD_SEPARATOR = b"\x1f", b"\x1e"
"""ASCII unit/record separators: a chunk of records is joined with these and parsed by
pandas' C CSV reader (far quicker than Python over a million dicts). A value containing
one is detected by counting, and that chunk takes the slower, dict-by-dict path."""
_EXPECTED_KEYS: Final = [name.encode() for name in RECORD_FIELDS]


def table_of_entries(entries: Sequence[Any], timezone: str) -> pd.DataFrame:
    """XRANGE/XREAD entries ``[(id, [k1, v1, ...] | {k: v}), ...]`` of the closed stream as
    one table with HISTORY_COLUMNS: numbers float (NaN when blank), flags bool, text str."""
    rows = [_flat(fields) for _, fields in entries]
    table = _fast_table(rows)
    if table is None:
        table = _slow_table(rows)
    return with_anchor(table, timezone)


def table_of_records(records: Sequence[dict[str, str]], timezone: str) -> pd.DataFrame:
    """Closed records (dicts of strings, as ``closed_record`` makes them) as a table."""
    return table_of_entries([(str(n), record) for n, record in enumerate(records)], timezone)


def empty_table() -> pd.DataFrame:
    """A table with no rows and the history's column types."""
    columns: dict[str, Any] = {}
    for name in HISTORY_COLUMNS:
        if name in TEXT_FIELDS:
            columns[name] = pd.Series([], dtype=object)
        elif name in FLAG_FIELDS:
            columns[name] = pd.Series([], dtype=bool)
        else:
            columns[name] = pd.Series([], dtype=np.float64)
    return pd.DataFrame(columns)


def with_anchor(table: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Add anchor_time (first known of received, dispatched, on scene, closed) and
    anchor_local (that instant on the city's wall clock, epoch seconds)."""
    anchor = table["received_time"].to_numpy(dtype=float).copy()
    for name in TIME_FIELDS[1:]:
        missing = np.isnan(anchor)
        if not missing.any():
            break
        anchor[missing] = table[name].to_numpy(dtype=float)[missing]
    table["anchor_time"] = anchor
    table["anchor_local"] = local_wall_seconds(anchor, timezone)
    return table[list(HISTORY_COLUMNS)]


def local_wall_seconds(epochs: np.ndarray, timezone: str) -> np.ndarray:
    """UTC epoch seconds -> epoch seconds of the same instant's naive local time."""
    values = np.asarray(epochs, dtype=float)
    known = ~np.isnan(values)
    out = np.full(values.shape, np.nan)
    if known.any():
        stamps = pd.to_datetime(np.round(values[known] * 1000).astype(np.int64), unit="ms",
                                utc=True)
        local = stamps.tz_convert(timezone).tz_localize(None)
        out[known] = local.as_unit("ms").asi8 / 1000.0
    return out


def _flat(fields: Any) -> list[Any]:
    """Values in RECORD_FIELDS order (bytes or str), missing fields blank."""
    if isinstance(fields, dict):
        names, values = list(fields), list(fields.values())
    else:
        names, values = fields[0::2], fields[1::2]
    if names == _EXPECTED_KEYS:
        return list(values)
    return [values[p] if p >= 0 else b"" for p in _positions(tuple(names))]


_LAYOUTS: dict[tuple[Any, ...], list[int]] = {}


def _positions(names: tuple[Any, ...]) -> list[int]:
    """Where each RECORD_FIELDS value sits in a record with fields ``names`` (-1: absent);
    records come in very few layouts, so this is worked out once per layout."""
    found = _LAYOUTS.get(names)
    if found is None:
        where = {(n.encode() if isinstance(n, str) else n): i for i, n in enumerate(names)}
        found = [where.get(key, -1) for key in _EXPECTED_KEYS]
        if len(_LAYOUTS) < 64:
            _LAYOUTS[names] = found
    return found


_CSV_DTYPES: Final[dict[str, Any]] = {
    name: (np.float64 if name in NUMBER_FIELDS else object) for name in RECORD_FIELDS}


def _fast_table(rows: list[list[Any]]) -> pd.DataFrame | None:
    """The rows parsed by pandas' C reader; None when a value is not bytes or holds a
    separator (the caller then parses them one by one)."""
    if not rows:
        return None
    try:
        text = RECORD_SEPARATOR.join([FIELD_SEPARATOR.join(row) for row in rows])
    except TypeError:  # a str among the bytes
        return None
    if (text.count(FIELD_SEPARATOR) != len(rows) * (len(RECORD_FIELDS) - 1)
            or text.count(RECORD_SEPARATOR) != len(rows) - 1):
        return None
    table = pd.read_csv(
        io.BytesIO(text), sep="\x1f", lineterminator="\x1e", header=None,
        names=list(RECORD_FIELDS), quoting=csv.QUOTE_NONE, dtype=_CSV_DTYPES,
        keep_default_na=False, na_values={name: [""] for name in NUMBER_FIELDS},
        skip_blank_lines=False, encoding="utf-8", encoding_errors="replace")
    for name in FLAG_FIELDS:
        table[name] = (table[name] == "1").to_numpy(dtype=bool)
    return table


def _slow_table(rows: list[list[Any]]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for position, name in enumerate(RECORD_FIELDS):
        values = [reply_text(row[position]) for row in rows]
        if name in NUMBER_FIELDS:
            columns[name] = np.array([_float(value) for value in values], dtype=np.float64)
        elif name in FLAG_FIELDS:
            columns[name] = np.array([value == "1" for value in values], dtype=bool)
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def _float(text: str) -> float:
    try:
        return float(text) if text else float("nan")
    except ValueError:
        return float("nan")


# --- the history folder's manifest --------------------------------------------------------

MANIFEST_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"


def folder_of(history_dir: Path, key_prefix: str) -> Path:
    """The history folder of one deployment (key prefix) under ``DISPATCH_HISTORY_DIR``."""
    return history_dir / key_prefix


def new_manifest(timezone: str) -> dict[str, Any]:
    """The manifest of an empty history: no files, nothing read from the stream yet."""
    return {"version": MANIFEST_VERSION, "timezone": timezone, "last_id": "0-0",
            "rows": 0, "files": [], "retired": [], "written": None}


def manifest_positions(manifest: dict[str, Any], partitions: int) -> list[str]:
    """The last closed-stream id the files hold, per partition: ``last_ids`` (one per
    partition), else the single ``last_id`` of a one-partition manifest as partition 0's;
    a partition the manifest does not name has nothing in the files yet."""
    held = manifest.get("last_ids")
    if not isinstance(held, list):
        held = [manifest.get("last_id", "0-0")]
    positions = [str(entry_id) for entry_id in held[:partitions]]
    return positions + ["0-0"] * (partitions - len(positions))


def with_positions(manifest: dict[str, Any], positions: Sequence[str]) -> dict[str, Any]:
    """``manifest`` holding ``positions`` (one id per partition). ``last_id`` stays partition
    0's, and a one-partition manifest keeps only it, exactly as before partitions."""
    moved = {**manifest, "last_id": positions[0]}
    if len(positions) > 1:
        moved["last_ids"] = list(positions)
    else:
        moved.pop("last_ids", None)
    return moved


def parse_manifest(text: bytes | str | None, timezone: str) -> dict[str, Any]:
    """The manifest in ``text``; an empty one when there is none or it is not ours (other
    version, other time zone: its wall-clock columns would be wrong, so it is rebuilt)."""
    if not text:
        return new_manifest(timezone)
    try:
        manifest = json.loads(text)
    except ValueError:
        return new_manifest(timezone)
    if (not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION
            or manifest.get("timezone") != timezone):
        return new_manifest(timezone)
    return manifest
