"""Where a record is: lat/lon columns, WKT, ``[lon, lat]``, GeoJSON or a centroid (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from streams.core.mapping.cells import Row, cell
from streams.core.mapping.lookups import Lookup
from streams.core.mapping.records import RowError

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_WKT_POINT = re.compile(
    rf"^\s*POINT\s*\(\s*({_NUMBER.pattern})\s+({_NUMBER.pattern})\s*\)\s*$", re.IGNORECASE)
_PAIR = re.compile(
    rf"^\s*[\[(]?\s*({_NUMBER.pattern})\s*[,\s]\s*({_NUMBER.pattern})\s*[\])]?\s*$")


@dataclass(frozen=True)
class LocationSpec:
    """Where a record is: lat/lon columns, WKT, ``[lon, lat]``, GeoJSON, or a centroid."""

    kind: str  # latlon | wkt | lonlat | geojson | centroid | none
    columns: tuple[str, ...]
    nulls: frozenset[str]
    required: bool
    bounds: tuple[float, float, float, float] | None
    centroid: Lookup | None = None
    centroid_by: tuple[str, ...] = ()

    def read(self, row: Row, fields: dict[str, Any]) -> tuple[float | None, float | None]:
        point = self._point(row, fields)
        if point is None:
            if self.required:
                raise RowError("missing_location", f"no location in "
                                                   f"{', '.join(self.columns) or self.kind}"
                                                   f"{self._geometry_hint(row)}")
            return None, None
        lat, lon = point
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RowError("bad_location", f"position lat {lat}, lon {lon} is not on Earth")
        if lat == 0 and lon == 0:
            raise RowError("missing_location", "position 0,0 is a missing fix")
        if self.bounds is not None:
            west, south, east, north = self.bounds
            if not (west <= lon <= east and south <= lat <= north):
                raise RowError("out_of_bounds", f"position lat {lat}, lon {lon} is outside "
                                                f"the mapping's bounds {list(self.bounds)}")
        return lat, lon

    def _geometry_hint(self, row: Row) -> str:
        """Where the row does have a position: the feature geometry a poller provides."""
        if "geometry" in self.columns or "geometry_lat" in self.columns:
            return ""
        if row.get("geometry_lat") not in (None, "") or row.get("geometry") not in (None, ""):
            return ("; the row has the feed's feature geometry: use [location] format = "
                    "\"latlon\" with lat = \"geometry_lat\", lon = \"geometry_lon\" (or "
                    "format = \"geojson\", column = \"geometry\")")
        return ("; an ArcGIS layer's feature geometry reaches the mapping as the columns "
                "geometry (GeoJSON), geometry_lat and geometry_lon")

    def _point(self, row: Row, fields: dict[str, Any]) -> tuple[float, float] | None:
        if self.kind == "none":
            return None
        if self.kind == "centroid":
            return self._centroid(fields)
        if self.kind == "latlon":
            lat_text = cell(row, self.columns[0], self.nulls)
            lon_text = cell(row, self.columns[1], self.nulls)
            if lat_text is None or lon_text is None:
                return None
            return _float(lat_text, self.columns[0]), _float(lon_text, self.columns[1])
        text = cell(row, self.columns[0], self.nulls)
        if text is None:
            return None
        if self.kind == "wkt":
            return _parse_wkt(text)
        if self.kind == "lonlat":
            return _parse_pair(text)
        return _parse_geojson(text)

    def _centroid(self, fields: dict[str, Any]) -> tuple[float, float] | None:
        assert self.centroid is not None
        for name in self.centroid_by:
            key = fields.get(name)
            if key is not None and key in self.centroid.points:
                return self.centroid.points[key]
        return None


def _float(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RowError("bad_location", f"{column} {text!r} is not a number") from None


def _parse_wkt(text: str) -> tuple[float, float]:
    match = _WKT_POINT.match(text)
    if match is None:
        raise RowError("bad_location", f"{text[:60]!r} is not WKT 'POINT (lon lat)'")
    return float(match.group(2)), float(match.group(1))


def _parse_pair(text: str) -> tuple[float, float]:
    match = _PAIR.match(text)
    if match is None:
        raise RowError("bad_location", f"{text[:60]!r} is not a '[lon, lat]' pair")
    return float(match.group(2)), float(match.group(1))


def _parse_geojson(text: str) -> tuple[float, float]:
    try:
        geometry = json.loads(text)
    except ValueError:
        raise RowError("bad_location", f"{text[:60]!r} is not GeoJSON") from None
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if isinstance(geometry, dict) and "coordinates" in geometry:
        coordinates = geometry["coordinates"]
    elif isinstance(geometry, dict) and {"latitude", "longitude"} <= set(geometry):
        coordinates = [geometry["longitude"], geometry["latitude"]]  # Socrata location
    else:
        raise RowError("bad_location", f"{text[:60]!r} is not a GeoJSON Point")
    try:
        lon, lat = float(coordinates[0]), float(coordinates[1])
    except (TypeError, ValueError, IndexError):
        raise RowError("bad_location", f"{text[:60]!r} has no numeric coordinates") from None
    return lat, lon

