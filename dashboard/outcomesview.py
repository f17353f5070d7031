"""Outcome counts of calls marked handled on tablets, as plain functions (no Dash, no Redis).

The records are the dashboard's own (``stream:outcomes``, one per handled call), not CAD
dispositions. ``/response`` shows them per category and district (layouts.response_outcomes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.core.actions import OUTCOMES
from streams.core.events import CATEGORY_LABELS, QOL_CATEGORIES


@dataclass(frozen=True)
class OutcomeTable:
    """Counts per (category, district) row and outcome column, with totals."""

    rows: list[tuple[str, str, dict[str, int], int]]
    """(category label, district, count per outcome code, row total), busiest first."""
    totals: dict[str, int]
    total: int


def outcome_table(records: Iterable[Mapping[str, str]],
                  districts: Sequence[str] = ()) -> OutcomeTable:
    """Count ``records`` (outcome entries) per category and district; ``districts`` limits
    the rows (empty: all). Unknown outcomes and categories are counted under their code."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for record in records:
        district = record.get("district") or "Unknown"
        if districts and district not in districts:
            continue
        counts[(record.get("category") or "", district, record.get("outcome") or "")] += 1
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for (category, district, outcome), count in counts.items():
        cells.setdefault((category, district), dict.fromkeys(OUTCOMES, 0))
        cells[(category, district)][outcome] = cells[(category, district)].get(outcome, 0) + count
    order = {category: index for index, category in enumerate(QOL_CATEGORIES)}
    rows = [(CATEGORY_LABELS.get(category, category or "Unknown"), district, by_outcome,
             sum(by_outcome.values()))
            for (category, district), by_outcome in sorted(
                cells.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1]))]
    totals = dict.fromkeys(OUTCOMES, 0)
    for _category, _district, by_outcome, _total in rows:
        for outcome, count in by_outcome.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return OutcomeTable(rows, totals, sum(totals.values()))
