"""Parsing a feed's time strings to UTC (pure): strptime-style formats, ISO, epoch."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Builder = Callable[[tuple[Any, ...]], datetime]


_DIRECTIVES: Final = {
    "Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d{2})", "m": r"(?P<m>\d{1,2})",
    "d": r"(?P<d>\d{1,2})", "H": r"(?P<H>\d{1,2})", "I": r"(?P<I>\d{1,2})",
    "M": r"(?P<M>\d{1,2})", "S": r"(?P<S>\d{1,2})", "f": r"(?P<f>\d{1,6})",
    "p": r"(?P<p>[AaPp][Mm])", "z": r"(?P<z>Z|[+-]\d{2}:?\d{2})", "%": "%",
}


def _format_regex(fmt: str) -> re.Pattern[str]:
    """Compile a strptime-style format to a regex with named groups (a fast strptime)."""
    parts, index = [], 0
    while index < len(fmt):
        char = fmt[index]
        if char == "%" and index + 1 < len(fmt):
            directive = fmt[index + 1]
            if directive not in _DIRECTIVES:
                raise ValueError(f"time format {fmt!r}: %{directive} is not supported; use "
                                 f"%Y %y %m %d %H %I %M %S %f %p %z, or 'iso'/'epoch'")
            parts.append(_DIRECTIVES[directive])
            index += 2
        else:
            parts.append(r"\s+" if char == " " else re.escape(char))
            index += 1
    return re.compile("^\\s*" + "".join(parts) + "\\s*$")


_PM: Final = frozenset({"PM", "pm", "Pm", "pM"})


def _builder(pattern: re.Pattern[str], zone: ZoneInfo, local_as_utc: bool,
             offsets: dict[tuple[int, int, int, int], timedelta]) -> Builder:
    """A function turning ``match.groups()`` into a UTC datetime, for one compiled format.

    Local times are converted with the zone's offset cached per local hour (offsets only
    change on the hour), which is several times cheaper than zoneinfo per value.
    """
    at = {name: index - 1 for name, index in pattern.groupindex.items()}
    year4, year2, month, day = at.get("Y"), at.get("y"), at.get("m"), at.get("d")
    hour24, hour12, meridiem = at.get("H"), at.get("I"), at.get("p")
    minute, second, fraction, stamp = at.get("M"), at.get("S"), at.get("f"), at.get("z")

    def build(groups: tuple[Any, ...]) -> datetime:
        year = int(groups[year4]) if year4 is not None else \
            2000 + int(groups[year2]) if year2 is not None else 2000
        if hour12 is not None:
            hour = int(groups[hour12])
            if not 1 <= hour <= 12:
                raise ValueError("12-hour clock hour out of range")
            hour %= 12
            if meridiem is not None and groups[meridiem] in _PM:
                hour += 12
        else:
            hour = int(groups[hour24]) if hour24 is not None else 0
        months = int(groups[month]) if month is not None else 1
        days = int(groups[day]) if day is not None else 1
        value = datetime(
            year, months, days, hour, int(groups[minute]) if minute is not None else 0,
            int(groups[second]) if second is not None else 0,
            int(groups[fraction].ljust(6, "0")) if fraction is not None else 0, tzinfo=UTC)
        if stamp is not None and not local_as_utc:
            return value - _offset(groups[stamp])
        key = (year, months, days, hour)
        offset = offsets.get(key)
        if offset is None:
            offset = value.replace(tzinfo=zone).utcoffset() or timedelta(0)
            if len(offsets) > 10_000:  # a bound, not a working-set size: refills are cheap
                offsets.clear()
            offsets[key] = offset
        return value - offset

    return build


def _offset(text: str) -> timedelta:
    if text == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


@dataclass(frozen=True)
class TimeParser:
    """Parses a feed's time strings to UTC datetimes.

    ``formats`` are tried in order: strptime-style patterns, ``iso``, ``epoch`` (seconds)
    or ``epoch_ms``. A time without an offset is local time in ``zone``. With
    ``local_as_utc`` the feed wrote local wall-clock time but stamped it UTC (``Z`` or
    ``+00:00``, or epoch of the wall clock): the offset is dropped and the wall clock is
    read in ``zone``.
    """

    formats: tuple[str, ...]
    zone: ZoneInfo
    local_as_utc: bool = False
    _compiled: tuple[tuple[str, re.Pattern[str] | None, Builder | None], ...] = field(
        default=(), repr=False)
    _cache: dict[str, datetime] = field(default_factory=dict, repr=False, compare=False)
    _offsets: dict[tuple[int, int, int, int], timedelta] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = []
        for fmt in self.formats:
            pattern = None if fmt in ("iso", "epoch", "epoch_ms") else _format_regex(fmt)
            build = _builder(pattern, self.zone, self.local_as_utc, self._offsets) \
                if pattern else None
            compiled.append((fmt, pattern, build))
        if not compiled:
            raise ValueError("[time] formats is empty; name at least one time format")
        object.__setattr__(self, "_compiled", tuple(compiled))

    def parse(self, text: str) -> datetime:
        """UTC datetime of ``text``; ValueError naming the expected formats."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        value = self._parse(text)
        if len(self._cache) > 50_000:  # rows of one call repeat times; keep it bounded
            self._cache.clear()
        self._cache[text] = value
        return value

    def _parse(self, text: str) -> datetime:
        for fmt, pattern, build in self._compiled:
            try:
                value = self._try(text, fmt, pattern, build)
            except (ValueError, OverflowError, OSError):  # OSError: an epoch past the C library
                continue
            if value is not None:
                return value
        raise ValueError(f"{text!r} is not a time like {' or '.join(self.formats)}")

    def _try(self, text: str, fmt: str, pattern: re.Pattern[str] | None,
             build: Builder | None) -> datetime | None:
        if fmt == "iso":
            return self._zoned(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
        if fmt in ("epoch", "epoch_ms"):
            seconds = float(text) / (1000 if fmt == "epoch_ms" else 1)
            stamp = datetime.fromtimestamp(seconds, UTC)
            return self._zoned(stamp)
        assert pattern is not None and build is not None
        match = pattern.match(text)
        if match is None:
            return None
        return build(match.groups())

    def _zoned(self, value: datetime) -> datetime:
        if value.tzinfo is not None and self.local_as_utc:
            value = value.replace(tzinfo=None) + (value.utcoffset() or timedelta(0))
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return value.replace(tzinfo=self.zone).astimezone(UTC)



def check_format(fmt: str) -> None:
    """ValueError if ``fmt`` is not a time format this parser understands."""
    if fmt not in ("iso", "epoch", "epoch_ms"):
        _format_regex(fmt)


def check_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming an example otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not an IANA zone like "
                         f"'America/New_York'") from None
