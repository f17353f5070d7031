"""Reading mapping files, their lookup tables and CSV exports (the I/O half of mappings).

``streams.core.mapping`` is pure: it maps rows it is given. This module reads what it
needs from disk: ``load_mapping`` reads a TOML mapping file and its lookup tables,
``read_csv_rows`` streams a CSV export's rows; ``admission_for`` is the time window and
service area a source judges a mapping's events by (the geography is read from disk when
the mapping names no area of its own).
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from streams.core.admission import Admission, Area, admission_from_settings
from streams.core.mapping import CSV_ERROR_KEY, Lookup, Mapping, build_lookup, table_rows
from streams.core.mapping.schema import validate_mapping


def load_mapping(path: Path, base_dir: Path) -> Mapping:
    """Read a mapping file; lookup files resolve against ``base_dir``, then the file's
    folder. ValueError (MappingError for the file's own mistakes) says what to fix."""
    text = path.read_bytes().decode("utf-8", "replace")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"mapping {path} is not valid TOML: {error}") from None
    model = validate_mapping(raw, text, str(path))
    lookups = {name: load_lookup(name, spec.model_dump(), _resolve(spec.file, name, base_dir,
                                                                   path.parent))
               for name, spec in model.lookups.items()}
    return Mapping.from_model(model, lookups, raw, path)


def read_text_table(path: Path) -> list[dict[str, str]]:
    """Rows of a small CSV lookup table: a UTF-8 BOM is dropped, Latin-1 is the fallback."""
    return table_rows(path.read_bytes(), str(path))


def load_lookup(name: str, spec: dict[str, Any], path: Path) -> Lookup:
    """Load one ``[lookups.NAME]`` table from ``path``."""
    return build_lookup(name, spec, read_text_table(path), str(path))


def _resolve(file_name: str, name: str, base_dir: Path, mapping_dir: Path) -> Path:
    file = Path(file_name)
    for candidate in (file, base_dir / file, mapping_dir / file):
        if candidate.is_file():
            return candidate
    raise ValueError(f"lookups.{name}: {file} is neither in {base_dir} nor in {mapping_dir}")


def read_csv_rows(path: Path, progress: Callable[[int], None] | None = None,
                  ) -> Iterator[dict[str, str]]:
    """Stream a CSV export's rows as dicts (header from line 1).

    A UTF-8 BOM at the start is dropped. Bytes that are not UTF-8 are kept as surrogates
    (``surrogateescape``) so the mapping can reject the row, or repair it when the mapping
    names an ``encoding_fallback``; one bad row never stops the file. ``progress`` is
    called with the number of bytes read since its last call (for a progress bar).
    """
    with path.open("rb") as handle:
        reader = csv.DictReader(_decoded_lines(handle, progress))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield {CSV_ERROR_KEY: str(error)}
                continue
            yield row


def _decoded_lines(handle: io.BufferedReader, progress: Callable[[int], None] | None,
                   ) -> Iterator[str]:
    pending = 0
    first = True
    for line in handle:
        if first:
            line = line.removeprefix(b"\xef\xbb\xbf")
            first = False
        pending += len(line)
        if progress is not None and pending >= 1 << 18:
            progress(pending)
            pending = 0
        yield line.decode("utf-8", "surrogateescape")
    if progress is not None and pending:
        progress(pending)



def admission_for(settings: Any, mapping: Mapping) -> Admission:
    """The admission a source judges this mapping's events by: the dashboard's window, and
    the mapping's own service area ([service_area], else its [location] bounds) when it
    names one, else the dashboard's (DISPATCH_SERVICE_AREA or the city's neighborhoods,
    which reads the geography files)."""
    area = mapping_area(mapping, settings.service_area_margin_km)
    if area is None:
        return admission_from_settings(settings)
    return replace(Admission.from_settings(replace(settings, service_area="anywhere"), None),
                   area=area)


def mapping_area(mapping: Mapping, default_margin_km: float) -> Area | None:
    """The box a mapping's events must fall in, widened by its margin (None: no own area)."""
    if mapping.service_area is not None:
        (west, south, east, north), margin = mapping.service_area
    elif mapping.location.bounds is not None:
        (west, south, east, north), margin = mapping.location.bounds, default_margin_km
    else:
        return None
    return Area(south, west, north, east).widened(margin)
