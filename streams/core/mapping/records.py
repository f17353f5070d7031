"""What rows become: call and gunshot records, rejected rows, and their ids (pure)."""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

REJECT_CODES: Final = (
    "only_id", "missing_id", "missing_field", "bad_time", "impossible_time", "bad_code",
    "unknown_code", "bad_priority", "missing_location", "bad_location", "out_of_bounds",
    "encoding", "truncated", "malformed", "duplicate", "late_row",
)
"""Every reason code ``Rejected.reason`` can start with."""

ID_LIMIT: Final = 64
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")


# --- records ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnitTimes:
    """One unit's timestamps on one call (UTC; None where the feed has none)."""

    unit_id: str
    unit_kind: str = "patrol"
    assigned: datetime | None = None
    dispatched: datetime | None = None
    en_route: datetime | None = None
    on_scene: datetime | None = None
    cleared: datetime | None = None
    status: str | None = None  # the feed's own status text for this unit
    step: str | None = None  # the unit step [unit_status] maps that status to
    lat: float | None = None  # the unit's own position, where the feed gives one
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call for service as the feed describes it, every time in UTC."""

    call_id: str
    received_time: datetime | None
    call_type_code: str | None
    call_type: str | None
    category: str
    priority: int
    address: str | None
    lat: float | None
    lon: float | None
    district: str | None
    neighborhood: str | None
    beat: str | None
    status: str | None
    disposition: str | None
    closed_time: datetime | None
    units: tuple[UnitTimes, ...]
    source: str
    file: str
    row: int
    cancelled: bool = False
    dispatched_time: datetime | None = None  # call-level times (feeds without [units])
    en_route_time: datetime | None = None
    on_scene_time: datetime | None = None
    updated_time: datetime | None = None  # when the feed last changed this row
    step: str | None = None  # the lifecycle step [status] maps the status to
    gunshot: bool = False  # opened by the gunshot detection system ([gunshot])
    gunshot_alert: str | None = None  # the alert type to make from it (create_alert)
    poll_times: tuple[str, ...] = ()  # times stamped with the poll's clock, not the feed's
    warnings: tuple[str, ...] = ()  # fields left empty or kept after a failed check


@dataclass(frozen=True, slots=True)
class ShotRecord:
    """One gunshot detection, the fields of ``ShotAlert``."""

    alert_id: str
    alert_type: str
    rounds: int
    lat: float
    lon: float
    address: str | None
    district: str | None
    neighborhood: str | None
    beat: str | None
    detected_time: datetime
    published_time: datetime | None
    source: str
    file: str
    row: int
    warnings: tuple[str, ...] = ()
    from_cad: str | None = None  # the CAD call this alert was made from ([gunshot])


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that cannot become a record, with why (``code: sentence``) and the raw row."""

    file: str
    row: int
    reason: str
    raw: str

    @property
    def code(self) -> str:
        """The reason code (``bad_time``, ``duplicate``...) summaries count by."""
        return self.reason.split(":", 1)[0]


Record = CallRecord | ShotRecord


class RowError(ValueError):
    """A row cannot be mapped; ``reason`` is ``code: sentence``."""

    def __init__(self, code: str, sentence: str) -> None:
        super().__init__(f"{code}: {sentence}")
        self.reason = f"{code}: {sentence}"

# --- small helpers ------------------------------------------------------------------------

def safe_id(value: str) -> str:
    """An id that fits the event model's Id pattern: unsafe characters become '_'."""
    cleaned = _ID_UNSAFE.sub("_", value.strip())
    if len(cleaned) > ID_LIMIT:
        digest = hashlib.sha1(cleaned.encode()).hexdigest()[:16]
        cleaned = f"{cleaned[:ID_LIMIT - 17]}~{digest}".replace("~", "-")
    return cleaned


def shard_of(value: Any, count: int) -> int:
    """Which of ``count`` shards a row with this id belongs to (stable across processes)."""
    if type(value) is not str or not value.strip():
        return 0
    return zlib.crc32(value.strip().encode("utf-8", "surrogateescape")) % count

