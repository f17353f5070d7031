"""``python -m streams mapping check MAPPING [DATA... | --url URL]``: a dry run.

Reads the data files (CSV exports) or one complete answer of the feed (the mapping's
``[poll]`` table, its ``url`` replaced by ``--url`` when given), maps every row exactly as
backfill, replay and the pollers would, and prints ``CheckReport`` (see
``streams/core/mapping/check.py``). Nothing is written to Redis; the command does not even
connect to it. Exit code 0 when the mapping loads and the data could be read, 2 otherwise.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.core.feeds import poll_config
from streams.core.mapping import CallRecord, Mapping
from streams.core.mapping.check import Box, CheckReport
from streams.core.mapping.status import stamp_steps
from streams.core.settings import Settings
from streams.mapping_files import admission_for, load_mapping, read_csv_rows


def service_box(mapping: Mapping, settings: Settings) -> Box | None:
    """The area positions are checked against: the mapping's [service_area], else its
    [location] bounds, else DISPATCH_SERVICE_AREA when set (south,west,north,east)."""
    if mapping.service_area is not None:
        return mapping.service_area[0]
    if mapping.location.bounds is not None:
        return mapping.location.bounds
    text = str(getattr(settings, "service_area", "") or "").strip()
    try:
        south, west, north, east = (float(part) for part in text.split(","))
    except ValueError:
        return None
    return west, south, east, north


def check_rows(mapping: Mapping, rows: Iterable[dict[str, Any]], file: str,
               report: CheckReport, first_row: int = 2, live: bool = False) -> None:
    """Map ``rows`` into ``report``; ``live`` stamps status steps with the check's clock,
    as a poller would stamp them with its own."""
    def counted() -> Iterator[dict[str, Any]]:
        for row in rows:
            report.see_row(row)
            yield row

    for item in mapping.records(counted(), file, first_row=first_row):
        if live and isinstance(item, CallRecord) and mapping.has_status_steps:
            item = stamp_steps(item, report.now)
        report.add(item)


async def _fetch(mapping: Mapping, url: str | None, settings: Settings,
                 ) -> list[dict[str, str]]:
    from streams.poll import FeedError, FeedReader, http_client

    table = mapping.section("poll")
    if not table:
        raise ValueError("--url needs a [poll] table in the mapping (kind = \"soda\" or "
                         "\"arcgis\"); see streams/core/feeds.py")
    config = poll_config(table, default_feed=mapping.name)
    if url:
        config = replace(config, url=url)
    async with http_client(settings, config) as http:
        try:
            return await FeedReader(config, http).fetch_rows(None)
        except FeedError as error:
            raise ValueError(f"cannot read {config.url}: {error}") from None


def run_check(settings: Settings, mapping_path: Path, data: list[Path],
              url: str | None = None, now: datetime | None = None) -> int:
    """Print the report; return the exit code."""
    try:
        mapping = load_mapping(mapping_path, settings.shared_data_dir)
    except (OSError, ValueError) as error:
        print(f"mapping check: {error}", file=sys.stderr)
        return 2
    missing = [str(path) for path in data if not path.is_file()]
    if missing:
        print(f"mapping check: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    live = not data
    report = CheckReport(
        mapping, now or datetime.fromtimestamp(time.time(), UTC),
        max_ahead=timedelta(seconds=float(getattr(settings, "max_event_ahead_seconds", 300))),
        max_age=timedelta(seconds=float(getattr(settings, "max_event_age_seconds", 30 * 86400)))
        if live else timedelta(days=float(getattr(settings, "history_max_age_days",
                                                  50 * 365.25))),
        area=service_box(mapping, settings), admission=admission_for(settings, mapping),
        live=live)
    if live:
        try:
            rows = asyncio.run(_fetch(mapping, url, settings))
        except ValueError as error:
            print(f"mapping check: {error}", file=sys.stderr)
            return 2
        check_rows(mapping, rows, url or str(mapping.section("poll").get("url")), report,
                   first_row=1, live=True)
    for path in data:
        check_rows(mapping, read_csv_rows(path), path.name, report)
    print(report.text())
    return 0
