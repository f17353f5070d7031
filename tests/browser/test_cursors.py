"""assets/live.js's cursorIsNewer in a real browser against the one table of cases
(tests/cases/cursors.json) that streams.core.partitions.cursor_is_newer passes too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import Stack
from tests.unit.test_cursors import load_cases, load_merges

pytestmark = pytest.mark.browser


def test_browser_cursor_rule_matches_the_shared_table(stack: Stack,
                                                      page_for: Callable[..., Any]) -> None:
    """The page skips a delta, and keeps its place after one, by the very rules push and
    Python use."""
    page = page_for("commander", path="/wall")
    page.wait_for_function("() => window.dispatchLive && window.dispatchLive.cursorIsNewer")
    cases = load_cases()
    got = page.evaluate("rows => rows.map(([cursor, held]) => "
                        "window.dispatchLive.cursorIsNewer(cursor, held))",
                        [[cursor, held] for cursor, held, _ in cases])
    assert got == [newer for _, _, newer in cases]
    merges = load_merges()
    merged = page.evaluate("rows => rows.map(([held, cursor]) => "
                           "window.dispatchLive.mergeCursors(held, cursor))",
                           [[held, cursor] for held, cursor, _ in merges])
    assert merged == [expected for _, _, expected in merges]
