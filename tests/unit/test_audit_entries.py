"""Audit entries, queries, time parsing and formula-safe CSV (pure, no server)."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest

from streams.core import audit, csvsafe
from streams.core.audit import Actor, AuditQuery

ZONE = ZoneInfo("America/New_York")
CSO = Actor("cso-north", "cso", "North", "10.0.0.7")


def test_entry_holds_who_what_where_and_the_call() -> None:
    """An entry names the action, user, role, district, address and call; detail is JSON."""
    fields = audit.entry("call_detail", CSO, "C-17", {"page": "/queues", "n": 3})
    assert fields == {"action": "call_detail", "user": "cso-north", "role": "cso",
                      "district": "North", "address": "10.0.0.7", "call_id": "C-17",
                      "detail": '{"n":3,"page":"/queues"}'}
    assert set(fields) == set(audit.FIELDS)


def test_entry_without_call_or_detail_has_empty_fields() -> None:
    """Absent district, call and detail are stored as empty strings (Redis has no None)."""
    fields = audit.entry("sign_in", Actor("admin", "admin", None, "::1"))
    assert fields["district"] == fields["call_id"] == fields["detail"] == ""


def test_unknown_action_is_refused() -> None:
    """A typo in an action name is an error, not a silently unsearchable entry."""
    with pytest.raises(ValueError, match="unknown audit action 'cal_detail'"):
        audit.entry("cal_detail", CSO)


def test_long_text_is_clipped_and_detail_values_kept_small() -> None:
    """A huge user name or note is cut to MAX_TEXT; sets become sorted lists; objects text."""
    fields = audit.entry("note", Actor("x" * 5000, "cso", "North", "a"), "C-1",
                         {"text": "y" * 5000, "tags": {"b", "a"}, "when": object})
    assert len(fields["user"]) == audit.MAX_TEXT
    decoded = audit.decode("1000-0", fields)
    assert len(decoded["detail"]["text"]) == audit.MAX_TEXT
    assert decoded["detail"]["tags"] == ["a", "b"]
    assert decoded["detail"]["when"] == "<class 'object'>"


def test_entry_never_holds_caller_data() -> None:
    """Detail naming a caller (name, phone) is left out: the trail is shown on /admin and
    exported, and must not become a second copy of who called."""
    fields = audit.entry("call_detail", CSO, "C-9", {"caller_name": "Ann Smith",
                                                     "caller_phone": "860-555-0100",
                                                     "page": "/queues"})
    assert fields["detail"] == '{"page":"/queues"}'
    assert "Ann" not in str(fields) and "555" not in str(fields)


def test_decode_gives_time_from_the_id_and_detail_as_a_dict() -> None:
    """The stream id is the entry's time; bytes from Redis decode to text."""
    raw = {k.encode(): v.encode() for k, v in audit.entry("csv_export", CSO, None,
                                                           {"rows": 12}).items()}
    decoded = audit.decode(b"1718000000123-4", raw)
    assert decoded["time"] == 1718000000.123
    assert decoded["id"] == "1718000000123-4"
    assert decoded["detail"] == {"rows": 12}
    assert decoded["user"] == "cso-north"


def test_decode_survives_an_unreadable_detail() -> None:
    """An entry written by hand with broken JSON is still shown, not an error."""
    assert audit.decode("5-0", {"action": "sign_in", "detail": "{nope"})["detail"] == {
        "unreadable": "{nope"}


def test_trim_keeps_exactly_the_max_age() -> None:
    """MINID is now minus the age, in ms."""
    assert audit.trim_min_id(1_000_000.0, 86400.0) == str((1_000_000 - 86400) * 1000)
    assert audit.trim_min_id(10.0, 86400.0) == "0"


@pytest.mark.parametrize(("start", "end", "bounds"), [
    (None, None, ("-", "+")),
    (1.1, None, ("1100", "+")),
    (1.0, 2.0, ("1000", "(2000")),
    (1.0004, 2.0004, ("1001", "(2001")),
])
def test_query_bounds_are_inclusive_start_exclusive_end(
        start: float | None, end: float | None, bounds: tuple[str, str]) -> None:
    """A time range becomes a stream id range; the end is exclusive."""
    assert AuditQuery(start=start, end=end).id_bounds() == bounds


def test_query_matches_user_call_and_action() -> None:
    """Each given part must match exactly; empty parts match anything."""
    found = audit.decode("1-0", audit.entry("call_detail", CSO, "C-9"))
    assert AuditQuery().matches(found)
    assert AuditQuery(user="cso-north", call_id="C-9", action="call_detail").matches(found)
    assert not AuditQuery(user="cso").matches(found)
    assert not AuditQuery(call_id="C-90").matches(found)
    assert not AuditQuery(action="claim").matches(found)


def test_query_refuses_unknown_action_and_backwards_range() -> None:
    """Bad searches say what is wrong."""
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditQuery(action="delete_everything")
    with pytest.raises(ValueError, match="end of the time range"):
        AuditQuery(start=10.0, end=5.0)


def test_query_describes_only_what_was_asked() -> None:
    """The recorded search detail leaves out the empty parts."""
    assert AuditQuery(call_id="C-1", start=5.0).described() == {"call_id": "C-1", "start": 5.0}


def test_parse_time_reads_dates_and_local_or_zoned_times() -> None:
    """Bare dates are local midnight (end of day on request); naive times are local."""
    midnight = audit.parse_time("2024-06-30", ZONE)
    assert midnight == 1719720000.0  # 04:00 UTC
    assert audit.parse_time("2024-06-30", ZONE, end_of_day=True) == midnight + 86400
    assert audit.parse_time("2024-06-30T14:05", ZONE) == midnight + 14 * 3600 + 300
    assert audit.parse_time("2024-06-30T18:05:00+00:00", ZONE) == midnight + 14 * 3600 + 300
    with pytest.raises(ValueError, match="is not a date"):
        audit.parse_time("last tuesday", ZONE)


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1"])
def test_formula_cells_get_an_apostrophe(text: str) -> None:
    """Cells a spreadsheet would run start with an apostrophe; others are unchanged."""
    assert csvsafe.cell(text) == "'" + text
    assert csvsafe.cell("North = " + text) == "North = " + text
    assert csvsafe.cell(None) == ""
    # Numbers are not text: -42.5 stays a number a spreadsheet can sum (a number cannot
    # carry a formula); the same characters typed as text are escaped.
    assert csvsafe.cell(-42.5) == "-42.5" and csvsafe.cell(-3) == "-3"
    assert csvsafe.cell("-42.5") == "'-42.5" and csvsafe.cell(True) == "True"


def test_audit_csv_escapes_every_column() -> None:
    """A hostile user name, call id and detail come out as text in the export."""
    hostile = Actor("=cmd|' /C calc'!A0", "cso", "-North", "@evil")
    found = audit.decode("1718000000000-0", audit.entry("note", hostile, "+C1",
                                                        {"text": "=1+1"}))
    text = "".join(audit.csv_lines([found], ZONE))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(audit.CSV_COLUMNS)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["time"] == "2024-06-10T02:13:20.000-04:00"
    assert row["user"] == "'=cmd|' /C calc'!A0"
    assert row["district"] == "'-North"
    assert row["address"] == "'@evil"
    assert row["call_id"] == "'+C1"
    assert row["detail"] == '{"text": "=1+1"}'
    assert not any(cell.startswith(csvsafe.FORMULA_STARTS) for r in rows for cell in r)
