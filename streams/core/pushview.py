"""What the push service sends, per role: snapshot assembly, delta filtering, stream ids.

Pure: takes what was read from Redis (raw hash values, id lists) and returns the JSON-ready
messages of the push protocol (see notes/state-contract.md). The read API's ``snapshot()``
can share ``assemble_snapshot`` so a page polling and a page pushed see the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.core.keys import SOURCES
from streams.core.livestate import TABLET_ROLES, public_view

StreamId = tuple[int, int]


def view_kind(role: str) -> str:
    """'tablet' or 'full': roles of one kind receive byte-identical messages."""
    return "tablet" if role in TABLET_ROLES else "full"


def public_call(call: Mapping[str, Any], role: str) -> dict[str, Any]:
    """A call as ``role`` may see it: never internal fields, no caller details on tablets."""
    return public_view(dict(call), role)


def filter_change(change: Mapping[str, Any], role: str) -> dict[str, Any]:
    """One change object of the changes stream, with its call data filtered for ``role``."""
    if change.get("entity") != "call" or not isinstance(change.get("data"), Mapping):
        return dict(change)
    return {**change, "data": public_call(change["data"], role)}


def filter_changes(changes: Iterable[Mapping[str, Any]], role: str) -> list[dict[str, Any]]:
    return [filter_change(change, role) for change in changes]


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
                      ) -> dict[str, Any]:
    """The snapshot message for ``role`` (calls in queue order, as read)."""
    return {
        "type": "snapshot", "last_id": last_id,
        "calls": [public_call(call, role) for call in calls],
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
