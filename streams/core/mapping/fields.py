"""Field rules: how one record field, the category and the priority are read (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.core.mapping.cells import TEXT_LIMITS, Row, cell, truncate
from streams.core.mapping.lookups import Lookup
from streams.core.mapping.records import RowError


@dataclass(frozen=True)
class FieldSpec:
    """How one record field is read: columns, nulls, extraction, lookup, checks."""

    name: str
    columns: tuple[str, ...]
    nulls: frozenset[str]
    skip: frozenset[str] = frozenset()
    separator: str = " "
    extract: re.Pattern[str] | None = None
    pattern: re.Pattern[str] | None = None
    lookup: Lookup | None = None
    unknown: str = "reject"  # reject | null | keep
    required: bool = False
    on_mismatch: str = "null"  # a failed extract/pattern: null | reject | keep

    def __post_init__(self) -> None:
        simple = len(self.columns) == 1 and self.extract is None and self.pattern is None \
            and self.lookup is None and not self.required
        object.__setattr__(self, "_simple", self.columns[0] if simple else None)
        object.__setattr__(self, "_limit", TEXT_LIMITS.get(self.name, 10_000))

    def read(self, row: Row, warnings: list[str] | None = None) -> str | None:
        """The field's value (None when null); RowError on junk or an unknown code.

        A value failing ``extract``/``pattern`` follows ``on_mismatch``: ``null`` (the
        field is left empty) and ``keep`` (the raw value is kept) append a ``bad_code``
        warning to ``warnings``; ``reject`` raises."""
        column = self._simple  # type: ignore[attr-defined]
        if column is not None:  # a plain column: the common case, kept short
            value = row.get(column)
            if type(value) is str:
                value = value.strip()
                if value in self.nulls:
                    return None
                return value if len(value) <= self._limit else value[:self._limit]  # type: ignore[attr-defined]
            return cell(row, column, self.nulls)
        return truncate(self._read(row, warnings), self.name)

    def _read(self, row: Row, warnings: list[str] | None) -> str | None:
        if len(self.columns) == 1:
            value = cell(row, self.columns[0], self.nulls)
        else:
            parts = [cell(row, column, self.nulls) for column in self.columns]
            joined = self.separator.join(part for part in parts
                                         if part is not None and part not in self.skip)
            value = " ".join(joined.split()) or None
        if value is None:
            if self.required:
                raise RowError("missing_field", f"{self._where()} is empty")
            return None
        if self.extract is not None:
            match = self.extract.search(value)
            if match is None:
                return self._mismatch(value, f"{self._where()} {value!r} does not match "
                                             f"{self.extract.pattern!r}", warnings)
            value = match.group(1) if match.groups() else match.group(0)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return self._mismatch(value, f"{self._where()} {value!r} is not a valid code "
                                         f"(expected {self.pattern.pattern!r})", warnings)
        if self.lookup is not None:
            return self._look_up(value)
        return value

    def _mismatch(self, value: str, sentence: str, warnings: list[str] | None) -> str | None:
        if self.on_mismatch == "reject":
            raise RowError("bad_code", sentence)
        if warnings is not None:
            warnings.append(f"bad_code: {sentence}; "
                            f"{'kept as is' if self.on_mismatch == 'keep' else 'left empty'}")
        return value if self.on_mismatch == "keep" else None

    def _look_up(self, code: str) -> str | None:
        assert self.lookup is not None
        found = self.lookup.values.get(code)
        if found is not None:
            return found or code
        if self.unknown == "keep":
            return code
        if self.unknown == "null":
            return None
        raise RowError("unknown_code", f"{self._where()} {code!r} is not in lookup "
                                       f"{self.lookup.name!r}")

    def _where(self) -> str:
        return "+".join(self.columns)


@dataclass(frozen=True)
class CategoryRule:
    """Call types -> a category: exact codes, exact descriptions, or a regex."""

    category: str
    codes: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    def matches(self, code: str | None, description: str | None) -> bool:
        if code is not None and code in self.codes:
            return True
        if description is not None and description in self.types:
            return True
        if self.pattern is not None:
            return any(self.pattern.search(text) for text in (code, description) if text)
        return False


@dataclass(frozen=True)
class PriorityMap:
    """A feed's priority value -> 1-5: exact map, then ranges, then number + offset."""

    column: str | None
    values: dict[str, int]
    ranges: tuple[tuple[float, float, int], ...]
    numeric: bool
    offset: int
    default: int | None
    nulls: frozenset[str]

    def read(self, row: Row) -> int:
        raw = cell(row, self.column, self.nulls) if self.column else None
        if raw is None:
            if self.default is None:
                raise RowError("missing_field", f"priority column {self.column} is empty")
            return self.default
        if raw in self.values:
            return self.values[raw]
        try:
            number = float(raw)
        except ValueError:
            raise RowError("bad_priority", f"priority {raw!r} is not in the priority map "
                                           f"({', '.join(self.values) or 'numbers'})") from None
        for low, high, priority in self.ranges:
            if low <= number <= high:
                return priority
        if self.numeric:
            return min(5, max(1, int(number) + self.offset))
        raise RowError("bad_priority", f"priority {raw!r} is not in the priority map")

