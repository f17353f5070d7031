"""What the push service sends, per role: snapshot assembly, delta filtering, stream ids.

Pure: takes what was read from Redis (raw hash values, id lists) and returns the JSON-ready
messages of the push protocol (streams/state-contract.md, "Push protocol"). The read API's
``snapshot()`` can share ``assemble_snapshot`` so a page polling and a page pushed see the
same thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.core import access
from streams.core.keys import SOURCES

StreamId = tuple[int, int]


ViewGroup = tuple[str, str | None]
"""(view kind, district scope or None): clients of one group get byte-identical messages."""


def view_kind(role: str) -> str:
    """'tablet' or 'full': what a role may see of a call (``access.view_kind``)."""
    return access.view_kind(role)


def view_group(role: str, district: str | None) -> ViewGroup:
    """The group a client belongs to: its view kind and district scope (``access``)."""
    return (access.view_kind(role), access.district_scope(role, district))


def role_of_group(group: ViewGroup) -> str:
    """A role that stands for the group's view kind (views depend only on the kind)."""
    return "cso" if group[0] == "tablet" else "commander"


def public_call(call: Mapping[str, Any], role: str) -> dict[str, Any]:
    """A call as ``role`` may see it (``access.public_view``)."""
    return access.public_view(call, role)


def filter_change(change: Mapping[str, Any], role: str) -> dict[str, Any]:
    """One change object of the changes stream, with its call data filtered for ``role``."""
    if change.get("entity") != "call" or not isinstance(change.get("data"), Mapping):
        return dict(change)
    return {**change, "data": public_call(change["data"], role)}


def filter_changes(changes: Iterable[Mapping[str, Any]], role: str) -> list[dict[str, Any]]:
    return [filter_change(change, role) for change in changes]


NOWHERE = "\x00nowhere"
"""Previous district of a call that was not open before a change (a brand-new call)."""


class CallDistricts:
    """Where each open call is, kept by the push reader from every change it reads.

    A call moving from North to South arrives as a plain upsert with district "South";
    only by remembering it was in North can North's tablets be told to drop it. Seeded
    from the open calls when the reader starts, so a call it does not know is a new one.
    """

    def __init__(self, districts: Mapping[str, str | None] | None = None) -> None:
        self._districts: dict[str, str] = {
            call_id: district or "" for call_id, district in (districts or {}).items()}

    def __len__(self) -> int:
        return len(self._districts)

    def advance(self, changes: Sequence[Mapping[str, Any]]) -> list[str]:
        """The district each call change's call was in just before it (NOWHERE if it was
        not open; "" for other entities), updating what is known as it goes. A work change
        (an action on a call) gets the district its call is in now: where it belongs."""
        previous: list[str] = []
        for change in changes:
            if change.get("entity") == "work":
                previous.append(self.district_of(change))
                continue
            if change.get("entity") != "call":
                previous.append("")
                continue
            call_id = str(change.get("id"))
            previous.append(self._districts.get(call_id, NOWHERE))
            data = change.get("data")
            if change.get("op") == "remove":
                self._districts.pop(call_id, None)
            elif isinstance(data, Mapping):
                self._districts[call_id] = str(data.get("district") or "")
        return previous


    def district_of(self, work_change: Mapping[str, Any]) -> str:
        """The district of the call a work change is about: where that call is now, or, for
        a call not open, the district its work record names."""
        data = work_change.get("data")
        named = str(data.get("district") or "") if isinstance(data, Mapping) else ""
        return self._districts.get(str(work_change.get("id")), named)


def scope_changes(changes: Sequence[Mapping[str, Any]], previous: Sequence[str],
                  group: ViewGroup) -> list[dict[str, Any]]:
    """The changes as the clients of ``group`` receive them.

    For a district-scoped group a call outside the district never appears: its changes
    are dropped, except that a call leaving the district (moved, or closed after moving)
    becomes a bare removal with no data, so the page drops it. ``previous`` is
    ``CallDistricts.advance`` of the same changes.
    """
    role, district = role_of_group(group), group[1]
    if district is None:
        return filter_changes(changes, role)
    scoped: list[dict[str, Any]] = []
    for change, before in zip(changes, previous, strict=True):
        data = change.get("data")
        if change.get("entity") == "work":
            if before == district:
                scoped.append(dict(change))
        elif change.get("entity") != "call":
            scoped.append(dict(change))
        elif isinstance(data, Mapping) and data.get("district") == district:
            scoped.append(filter_change(change, role))
        elif before == district:
            scoped.append({"entity": "call", "op": "remove", "id": change.get("id"),
                           "data": {}})
    return scoped


def decode_batch(raw: bytes | str) -> list[dict[str, Any]]:
    """The change objects of one changes-stream entry's "batch" field.

    Raises ValueError when the field is not a JSON list of objects (the entry is skipped).
    """
    try:
        batch = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"changes batch is not JSON: {error}") from None
    if not isinstance(batch, list) or not all(isinstance(item, dict) for item in batch):
        raise ValueError("changes batch must be a JSON list of change objects")
    return batch


def delta_message(last_id: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "delta", "last_id": last_id, "changes": changes}


def ping_message(now: float) -> dict[str, Any]:
    """The heartbeat a quiet page gets: the server's clock (epoch s), nothing to apply."""
    return {"type": "ping", "time": round(now, 3)}


def decode_json_values(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    """Parsed JSON objects of hash values, skipping missing (None) and unreadable ones."""
    parsed: list[dict[str, Any]] = []
    for value in values:
        if value is None:
            continue
        try:
            item = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(item, dict):
            parsed.append(item)
    return parsed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _number(value: bytes | str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def assemble_freshness(freshness: Mapping[bytes | str, bytes | str],
                       counts: Mapping[bytes | str, bytes | str],
                       ) -> dict[str, dict[str, float | int | None]]:
    """Per source: newest event time, when it was applied, applied and rejected counts."""
    fresh = {_text(name): value for name, value in freshness.items()}
    counted = {_text(name): value for name, value in counts.items()}
    view: dict[str, dict[str, float | int | None]] = {}
    for source in SOURCES:
        view[source] = {
            "event_time": _number(fresh.get(source)),
            "seen": _number(fresh.get(f"{source}:seen")),
            "count": int(_number(counted.get(source)) or 0),
            "rejected": int(_number(counted.get(f"{source}:rejected")) or 0),
        }
    return view


def assemble_snapshot(last_id: str, calls: Iterable[Mapping[str, Any]],
                      units: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]],
                      shares: Iterable[Mapping[str, Any]],
                      freshness: dict[str, dict[str, float | int | None]], role: str,
                      district: str | None = None,
                      work: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The snapshot message for ``role`` (calls in queue order, as read); with a
    ``district``, only that district's calls and their work records (units, alerts,
    shares: all of them). ``work``: the work records of the open calls (actions)."""
    shown = [public_call(call, role) for call in calls if access.in_scope(call, district)]
    shown_ids = {str(call.get("call_id")) for call in shown}
    return {
        "type": "snapshot", "last_id": last_id,
        "calls": shown,
        "work": [dict(record) for record in work if str(record.get("call_id")) in shown_ids],
        "units": sorted((dict(unit) for unit in units), key=lambda unit: str(unit.get("unit_id"))),
        "alerts": [dict(alert) for alert in alerts],
        "shares": [dict(share) for share in shares],
        "freshness": freshness,
    }


# --- stream ids ---------------------------------------------------------------------------
def parse_stream_id(text: str) -> StreamId:
    """'1700000000000-3' -> (1700000000000, 3); ValueError if it is not a stream id."""
    millis, _, sequence = text.partition("-")
    if not millis.isdigit() or (sequence and not sequence.isdigit()):
        raise ValueError(f"{text!r} is not a stream id like 1700000000000-0")
    return int(millis), int(sequence or 0)


def format_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def can_resync(since: str | None, first_id: str | None, last_id: str | None) -> bool:
    """True when every entry after ``since`` is still in the changes stream.

    ``first_id``/``last_id`` are the oldest and newest retained entries (None when the
    stream is empty). Anything doubtful (unreadable id, trimmed past it, an id from the
    future because the stream was reset) means a fresh snapshot instead: never a gap.
    """
    if since is None:
        return False
    try:
        seen = parse_stream_id(since)
    except ValueError:
        return False
    if first_id is None or last_id is None:
        return seen == (0, 0)
    return parse_stream_id(first_id) <= seen <= parse_stream_id(last_id)


def entries_changes(entries: Sequence[tuple[str, list[dict[str, Any]]]],
                    ) -> list[dict[str, Any]]:
    """All change objects of several entries, in stream order."""
    return [change for _, batch in entries for change in batch]


def lane_slot_after(moment: float, lane: int, lanes: int, gap: float) -> float:
    """The first time after ``moment`` at which ``lane`` may send: lanes take turns on a
    grid ``gap`` apart, lane k at k/lanes of it, so their pages do not all draw at once."""
    phase = gap * lane / lanes
    return phase + (math.floor((moment - phase) / gap) + 1) * gap
