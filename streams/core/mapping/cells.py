"""Reading one raw row: cells as text, nulls, the row's shape and encoding (pure).

Rows are dicts of strings (a CSV export) or of JSON values (an API); a row dict holding
``CSV_ERROR_KEY`` stands for a line the CSV reader could not parse.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping as MappingABC
from typing import Any, Final

from streams.core.mapping.records import RowError

DEFAULT_NULLS: Final = ("", "null", "NULL", "None", "NaN")
TEXT_LIMITS: Final = {"call_type_code": 40, "call_type": 200, "address": 200, "cross_street": 200,
                      "district": 40, "neighborhood": 60, "beat": 20, "disposition": 200}
CSV_ERROR_KEY: Final = "\x00csv_error"
"""A row dict holding this key stands for a line the csv module could not parse."""

BAD_TEXT = re.compile("[\udc80-\udcff\ufeff]")

Row = MappingABC[str, Any]


def raw_text(row: Row) -> str:
    """The row as one CSV line (what the dead-letter stream keeps as payload)."""
    out = io.StringIO()
    values = [as_text(value) or "" for key, value in row.items() if key is not None]
    extra = row.get(None)  # type: ignore[call-overload]
    if isinstance(extra, list):
        values.extend(str(value) for value in extra)
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue().encode("utf-8", "backslashreplace").decode("utf-8")


def as_text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def truncate(value: str | None, name: str) -> str | None:
    limit = TEXT_LIMITS.get(name)
    if value is None or limit is None or len(value) <= limit:
        return value
    return value[:limit]

def cell(row: Row, column: str, nulls: frozenset[str]) -> str | None:
    value = row.get(column)
    if type(value) is not str:
        value = as_text(value)
        if value is None:
            return None
    value = value.strip()
    return None if value in nulls else value

def check_shape(row: Row, fallback: str | None) -> None:
    if CSV_ERROR_KEY in row:
        raise RowError("malformed", f"the CSV reader stopped on this line: {row[CSV_ERROR_KEY]}")
    extra = row.get(None)  # type: ignore[call-overload]
    if extra:
        raise RowError("malformed", f"row has {len(extra)} more values than the header")
    try:
        joined = "\x1f".join(row.values())  # one regex pass over the row is the fast path
    except TypeError:  # a None (short row) or a JSON value
        missing = sum(1 for value in row.values() if value is None)
        if missing:
            raise RowError("truncated", f"row ends early: {missing} of {len(row)} columns "
                                        f"missing") from None
        joined = "\x1f".join(as_text(value) or "" for value in row.values())
    if BAD_TEXT.search(joined) is None:
        return
    for key, value in row.items():
        text = as_text(value) or ""
        if "\ufeff" in text:
            raise RowError("encoding", f"byte-order mark inside the row (column {key})")
        if fallback is None and BAD_TEXT.search(text):
            raise RowError("encoding", f"column {key} has bytes that are not UTF-8 "
                                       f"(Latin-1?); set encoding_fallback to accept them")


def repair_encoding(row: dict[str, str], fallback: str) -> dict[str, str]:
    """Re-decode values read with surrogateescape in the fallback encoding (e.g. latin-1)."""
    return {key: value.encode("utf-8", "surrogateescape").decode(fallback)
            if type(value) is str and BAD_TEXT.search(value) else value
            for key, value in row.items()}
