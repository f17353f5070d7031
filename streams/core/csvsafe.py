"""CSV cells a spreadsheet will not run: the one rule every export of this project uses.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading one of those) is read as a formula by Excel, LibreOffice
and Google Sheets: ``=HYPERLINK(...)`` in a typed-in note or user name would run on the
reader's machine. OWASP's advice is followed: such a cell gets a leading apostrophe, which
the spreadsheet shows as text and hides.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """``value`` as CSV cell text that no spreadsheet reads as a formula. A number stays a
    number (-42.0 is not a formula; only text can carry one)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def line(values: Sequence[object]) -> str:
    """One CSV line (quoted as needed, ending in a newline), every cell through ``cell``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([cell(value) for value in values])
    return buffer.getvalue()


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A whole CSV document, header first."""
    return line(header) + "".join(line(row) for row in rows)
