"""The audit trail's rules, without I/O: what can be recorded, what an entry holds, how the
trail is searched, trimmed by age and exported.

Who did what is appended to one Redis stream (``Keys.audit``) by the web workers
(``dashboard/audit.py``) and the push service (``streams/audit.py``); both build their entries
here. The stream id is the entry's time (the Redis server's clock, in ms, strictly
increasing), so a time range is an id range. Nothing removes entries except the age cap:
every append trims with ``MINID`` to the oldest id still inside
``DISPATCH_AUDIT_MAX_AGE_DAYS``. This follows the FBI CJIS Security Policy's audit and
accountability controls (what happened, when, by whom, from where, on which record).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from streams.core import csvsafe
from streams.core.access import CALLER_FIELDS
from streams.core.replies import reply_text

ACTIONS: dict[str, str] = {
    "sign_in": "signed in",
    "sign_in_failed": "sign-in failed (see detail: wrong password or disabled)",
    "sign_in_limited": "sign-in refused by the rate limit",
    "sign_out": "signed out",
    "password_changed": "changed their own password",
    "page_view": "opened a page",
    "refused": "refused: the role may not use this page, callback or socket",
    "call_detail": "opened a call's detail",
    "csv_export": "exported a CSV file",
    "claim": "claimed a call",
    "release": "released a call",
    "note": "added a note to a call",
    "handled": "marked a call handled",
    "socket_open": "opened a live-updates connection",
    "socket_refused": "a live-updates connection was refused (see detail: reason)",
    "socket_closed": "a live-updates connection ended (see detail: by, reason, open_s)",
    "admin_user_add": "added a user",
    "admin_user_disable": "disabled a user",
    "admin_user_enable": "enabled a user",
    "admin_user_change": "changed a user's role or district",
    "admin_password_reset": "reset a user's password",
    "admin_session_end": "ended a session",
    "audit_search": "searched the audit trail",
    "audit_export": "exported the audit trail",
}
"""Every action the trail knows (name -> what it means); recording any other is a bug."""

FIELDS = ("action", "user", "role", "district", "address", "call_id", "detail")
"""Fields of every stream entry, all strings ("" when there is nothing to say)."""
CSV_COLUMNS = ("time", "id", *FIELDS)

MAX_TEXT = 512
"""Longest stored text of one field or detail value; longer text is cut and marked."""
MAX_DETAIL_ITEMS = 32
SHELL_ROLE = "shell"
"""Role recorded for commands run on the server (``python -m dashboard ...``)."""


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where."""

    user: str
    role: str
    district: str | None
    address: str


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "\u2026"


def _plain(value: Any) -> Any:
    """A detail value as small JSON: scalars as they are, lists of scalars, else text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_plain(item) for item in list(items)[:MAX_DETAIL_ITEMS]]
    return _clip(str(value))


def entry(action: str, actor: Actor, call_id: str | None = None,
          detail: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The stream fields recording that ``actor`` did ``action`` (on ``call_id``)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to streams.core.audit.ACTIONS")
    # The trail is read on /admin and exported: it never holds who called (a caller's name
    # or phone number), whatever a caller of this function passes.
    items = sorted((str(name), value) for name, value in (detail or {}).items()
                   if str(name) not in CALLER_FIELDS)[:MAX_DETAIL_ITEMS]
    return {
        "action": action, "user": _clip(actor.user), "role": _clip(actor.role),
        "district": _clip(actor.district or ""), "address": _clip(actor.address),
        "call_id": _clip(call_id or ""),
        "detail": json.dumps({k: _plain(v) for k, v in items}, sort_keys=True,
                             separators=(",", ":")) if items else "",
    }



def id_time(entry_id: str) -> float:
    """Epoch seconds of a stream id (``<ms>-<seq>``)."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


def decode(entry_id: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    """A stream entry as a dict: id, time (epoch s), every field, detail as a dict."""
    found = {reply_text(name): reply_text(value) for name, value in fields.items()}
    decoded: dict[str, Any] = {name: found.get(name, "") for name in FIELDS}
    decoded["id"] = reply_text(entry_id)
    decoded["time"] = id_time(decoded["id"])
    try:
        detail = json.loads(decoded["detail"]) if decoded["detail"] else {}
    except ValueError:
        detail = {"unreadable": decoded["detail"]}
    decoded["detail"] = detail if isinstance(detail, dict) else {"value": detail}
    return decoded


def trim_min_id(now: float, max_age_s: float) -> str:
    """The oldest stream id an append at ``now`` keeps (XADD ... MINID ~ this)."""
    return str(max(0, int((now - max_age_s) * 1000)))


@dataclass(frozen=True)
class AuditQuery:
    """What an audit search asks for; every part is optional ("" or None: any)."""

    user: str = ""
    call_id: str = ""
    action: str = ""
    start: float | None = None
    """Epoch seconds, inclusive."""
    end: float | None = None
    """Epoch seconds, exclusive."""

    def __post_init__(self) -> None:
        if self.action and self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("the end of the time range must be after its start")

    def id_bounds(self) -> tuple[str, str]:
        """(lowest, highest) stream ids to read, for XRANGE / XREVRANGE (the highest is
        exclusive, written with Redis 6.2's "(" prefix)."""
        low = "-" if self.start is None else str(_ms_at_or_after(self.start))
        high = "+" if self.end is None else f"({_ms_at_or_after(self.end)}"
        return low, high

    def matches(self, found: Mapping[str, Any]) -> bool:
        """True when a decoded entry is one this query asks for."""
        return ((not self.user or found["user"] == self.user)
                and (not self.call_id or found["call_id"] == self.call_id)
                and (not self.action or found["action"] == self.action))

    def described(self) -> dict[str, Any]:
        """The query as audit detail (what was searched for is itself recorded)."""
        parts = {"user": self.user, "call_id": self.call_id, "action": self.action,
                 "start": self.start, "end": self.end}
        return {name: value for name, value in parts.items() if value not in ("", None)}


def _ms_at_or_after(epoch: float) -> int:
    # Rounded to the microsecond first, so 1.1 s is 1100 ms, not 1101.
    return math.ceil(round(epoch * 1000, 3))


def parse_time(text: str, zone: ZoneInfo, end_of_day: bool = False) -> float:
    """Epoch seconds of an ISO date or date-time; naive times are in ``zone``.

    A bare date means its first second, or with ``end_of_day`` the start of the next day,
    so ``--until 2024-06-30`` includes all of 30 June.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day, time(), zone)
            return moment.timestamp() + (86400 if end_of_day else 0)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2024-06-30) or date-time "
                         "(2024-06-30T14:05)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).timestamp()


def local_time(epoch: float, zone: ZoneInfo) -> str:
    """ISO 8601 with the zone's offset and milliseconds: unambiguous and readable."""
    return datetime.fromtimestamp(epoch, UTC).astimezone(zone).isoformat(
        timespec="milliseconds")


def csv_row(found: Mapping[str, Any], zone: ZoneInfo) -> list[Any]:
    """One decoded entry's values in ``CSV_COLUMNS`` order."""
    detail = found["detail"]
    return [local_time(found["time"], zone), found["id"], *(found[name] for name in FIELDS[:-1]),
            json.dumps(detail, sort_keys=True) if detail else ""]


def csv_lines(entries: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> Iterator[str]:
    """A formula-safe CSV document, header first, one line at a time (an export may hold
    millions of entries)."""
    yield csvsafe.line(CSV_COLUMNS)
    for found in entries:
        yield csvsafe.line(csv_row(found, zone))
