"""Outcome counts per category and district (dashboard.outcomesview)."""

from __future__ import annotations

from dashboard.outcomesview import outcome_table


def record(category: str, district: str, outcome: str) -> dict[str, str]:
    return {"call_id": "C", "category": category, "district": district, "outcome": outcome}


def test_outcomes_are_counted_per_category_and_district_with_totals() -> None:
    table = outcome_table([record("noise", "North", "warned"), record("noise", "North", "warned"),
                           record("noise", "North", "cited"), record("atv", "South", "warned"),
                           record("noise", "South", "unfounded")])
    assert [(category, district, total) for category, district, _, total in table.rows] == [
        ("Excessive noise", "North", 3), ("Excessive noise", "South", 1),
        ("ATVs / dirt bikes", "South", 1)]
    assert table.rows[0][2]["warned"] == 2 and table.rows[0][2]["cited"] == 1
    assert table.totals["warned"] == 3 and table.total == 5


def test_a_district_filter_keeps_only_its_rows() -> None:
    table = outcome_table([record("noise", "North", "warned"), record("atv", "South", "cited")],
                          ("South",))
    assert [row[1] for row in table.rows] == ["South"] and table.total == 1


def test_no_records_is_an_empty_table() -> None:
    table = outcome_table([])
    assert table.rows == [] and table.total == 0
