"""Mapping files: turn any agency's rows into the project's records and events (pure).

A mapping file (TOML, documented in ``streams/mappings/README.md``) names the columns of
one feed, how its times are written, which lookup tables explain its codes, how call
types become categories, how priorities become 1-5 and where a call is. Reading the file
and its lookup tables is I/O and lives in ``streams.mapping_files``; everything here works
on values already read:

- ``schema``: the file's sections -> specs;
- ``times``: time strings -> UTC;
- ``lookups``: code tables;
- ``fields``: field, category and priority rules;
- ``location``: positions;
- ``cells``: raw cells, nulls, a row's shape and encoding;
- ``records``: the records rows become, rejected rows, ids;
- ``engine``: ``Mapping``, rows -> records;
- ``grouping``: one-row-per-unit rows -> calls in a bounded window;
- ``lifecycle``: records -> lifecycle events.
"""

from streams.core.mapping.cells import CSV_ERROR_KEY, DEFAULT_NULLS, raw_text
from streams.core.mapping.engine import Mapping
from streams.core.mapping.lifecycle import record_events
from streams.core.mapping.lookups import Lookup, build_lookup, table_rows
from streams.core.mapping.records import (
    REJECT_CODES,
    CallRecord,
    Record,
    Rejected,
    RowError,
    ShotRecord,
    UnitTimes,
    safe_id,
    shard_of,
)
from streams.core.mapping.times import TimeParser

__all__ = [
    "CSV_ERROR_KEY", "DEFAULT_NULLS", "REJECT_CODES", "CallRecord", "Lookup", "Mapping",
    "Record", "Rejected", "RowError", "ShotRecord", "TimeParser", "UnitTimes",
    "build_lookup", "raw_text", "record_events", "safe_id", "shard_of", "table_rows",
]
