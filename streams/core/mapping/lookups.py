"""Code tables (``[lookups.NAME]``): key -> value, or key -> (lat, lon) centroids (pure)."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def table_rows(data: bytes, where: str) -> list[dict[str, str]]:
    """Rows of a small CSV lookup table's bytes: a UTF-8 BOM is dropped, Latin-1 is the
    fallback (``where`` names the table in the warning)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("lookup table %s is not UTF-8; reading it as Latin-1", where)
        text = data.decode("latin-1")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [{(key or "").strip(): (value or "").strip() for key, value in row.items()
             if key is not None} for row in reader]


@dataclass(frozen=True)
class Lookup:
    """A code table: key -> value, or key -> (lat, lon) for a centroid table."""

    name: str
    values: dict[str, str]
    points: dict[str, tuple[float, float]]
    conflicts: tuple[str, ...] = ()


def build_lookup(name: str, spec: dict[str, Any], rows: list[dict[str, str]],
                 where: str) -> Lookup:
    """One ``[lookups.NAME]`` table from its rows (``where`` names the file in errors)."""
    key = required(spec, "key", f"lookups.{name}")
    if rows and key not in rows[0]:
        raise ValueError(f"lookups.{name}: {where} has no column {key!r} "
                         f"(columns: {', '.join(rows[0])})")
    values: dict[str, str] = {}
    points: dict[str, tuple[float, float]] = {}
    conflicts: list[str] = []
    value_column = spec.get("value")
    for row in rows:
        code = row.get(key, "")
        if not code:
            continue
        if value_column:
            value = row.get(value_column, "")
            if code in values and values[code] != value:
                conflicts.append(f"{code}: {values[code]!r} kept, {value!r} ignored")
                continue
            values.setdefault(code, value)
        if "lat" in spec and "lon" in spec:
            try:
                points.setdefault(code, (float(row[spec["lat"]]), float(row[spec["lon"]])))
            except (KeyError, ValueError):
                continue
    for conflict in conflicts:
        log.warning("lookup %s has two values for %s", name, conflict)
    return Lookup(name, values, points, tuple(conflicts))


def required(spec: dict[str, Any], name: str, where: str) -> Any:
    if name not in spec:
        raise ValueError(f"mapping [{where}] needs {name!r}")
    return spec[name]

