"""Cursors over partitions (streams.core.partitions) against the one table of cases
(tests/cases/cursors.json) that assets/live.js is run against too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.core import partitions, pushview

CASES_FILE = Path(__file__).resolve().parents[1] / "cases" / "cursors.json"


def load_cases() -> list[tuple[str, str, bool]]:
    """[cursor, held, newer] rows (also run in the browser by tests/browser/test_cursors.py)."""
    table = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return [(cursor, held, newer) for cursor, held, newer in table["cursor_is_newer"]]


def load_merges() -> list[tuple[str, str, str]]:
    """[held, cursor, merged] rows (also run in the browser)."""
    table = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return [(held, cursor, merged) for held, cursor, merged in table["merge_cursors"]]


@pytest.mark.parametrize(("held", "cursor", "merged"), load_merges())
def test_merge_cursors_follows_the_table(held: str, cursor: str, merged: str) -> None:
    """A page keeps each partition's newer id; another length replaces what it held."""
    assert partitions.merge_cursors(held, cursor) == merged


@pytest.mark.parametrize(("cursor", "held", "newer"), load_cases())
def test_cursor_is_newer_follows_the_table(cursor: str, held: str, newer: bool) -> None:
    """Newer when any partition's id is ahead, or the lengths differ."""
    assert partitions.cursor_is_newer(cursor, held) is newer


def test_cursors_round_trip_as_positions() -> None:
    """A cursor parses to one (ms, seq) per partition and formats back; one partition's
    cursor is just its id; the wrong count or a malformed id is None (a snapshot)."""
    assert pushview.parse_cursor("5-1,0-0,7-2", 3) == ((5, 1), (0, 0), (7, 2))
    assert pushview.format_cursor(((5, 1), (0, 0), (7, 2))) == "5-1,0-0,7-2"
    assert pushview.format_cursor(((9, 3),)) == "9-3"
    for bad in ("5-1,0-0", "5-1,0-0,7-2,1-0", "5-1,x-0,7-2", "", "5-1,,7-2"):
        assert pushview.parse_cursor(bad, 3) is None


def test_covers_needs_every_partition_and_moved_to_only_goes_forward() -> None:
    """A read serves a page only if it is at or past its need in every partition."""
    assert pushview.covers(((5, 0), (7, 0)), ((5, 0), (6, 9)))
    assert not pushview.covers(((9, 0), (6, 0)), ((5, 0), (7, 0)))
    assert pushview.moved_to(((5, 0), (7, 0)), 1, (8, 0)) == ((5, 0), (8, 0))
    assert pushview.moved_to(((5, 0), (7, 0)), 1, (6, 0)) == ((5, 0), (7, 0))
