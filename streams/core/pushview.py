"""Who gets which changes from the push service: view groups, district scoping, stream
ids, resync and the lanes' turns.

Pure: works on the change records of ``streams.core.changefeed`` (the one home of the
record and of the snapshot); the protocol is streams/state-contract.md, "Push protocol".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec

from streams.core import access, partitions
from streams.core.changefeed import FRESHNESS, KINDS, Change, EntityKind, View, visible

StreamId = tuple[int, int]
Position = tuple[StreamId, ...]
"""Where a reader, a read or a page is: one changes-stream id per partition (a cursor,
parsed). Positions are only partly ordered: each partition's ids are, partitions are not."""


ViewGroup = tuple[View, str | None]
"""(view kind, district scope or None): clients of one group get byte-identical messages."""


def view_kind(role: str) -> View:
    """'tablet' or 'full': what a role may see of a call (``access.view_kind``)."""
    return "full" if access.view_kind(role) == "full" else "tablet"


def view_group(role: str, district: str | None) -> ViewGroup:
    """The group a client belongs to: its view kind and district scope (``access``)."""
    return (view_kind(role), access.district_scope(role, district))


NOWHERE = "\x00nowhere"
"""Previous district of a member that was not live before a change (a brand-new one)."""


class Districts:
    """Where each live member of a district-scoped kind (calls) is, and the newest record
    of each kind that follows it (a call's work), kept by the push reader from every change
    it reads.

    A call moving from North to South arrives as a plain upsert with district "South";
    only by remembering it was in North can North's tablets be told to drop it, and only by
    remembering its work record can South's tablets be given it (they never had it: it was
    sent to North). Seeded from the live members and records when the reader starts, so a
    member it does not know is new.
    """

    def __init__(self, districts: Mapping[tuple[str, str], str | None] | None = None,
                 followers: Sequence[Change] = ()) -> None:
        self._districts: dict[tuple[str, str], str] = {
            member: district or "" for member, district in (districts or {}).items()}
        self._followers: dict[tuple[str, str], dict[str, Change]] = {}
        for record in followers:
            self._remember(record)

    def __len__(self) -> int:
        return len(self._districts)

    def advance(self, changes: Sequence[Change]) -> list[str]:
        """The district each change's member was in just before it (NOWHERE if it was not
        live; "" for kinds that are not district-scoped), learning as it goes. A record
        of a following kind (a call's work) gets the district its member is in now, where
        it belongs, or for a member not live the district the record names."""
        return self.place(changes)[1]

    def place(self, changes: Sequence[Change]) -> tuple[list[Change], list[str]]:
        """``changes`` and their previous districts (``advance``), with the newest record
        of each following kind inserted after a member that moved to another district:
        addressed to the new district only, whose pages did not have it."""
        placed: list[Change] = []
        previous: list[str] = []
        for change in changes:
            before = self._step(change)
            placed.append(change)
            previous.append(before)
            kind = KINDS.get(change.entity)
            now = str(change.data.get("district") or "")
            if kind is not None and kind.district_scoped and change.op == "upsert" \
                    and before not in (NOWHERE, now):
                carried = list(self._followers.get((change.entity, change.id), {}).values())
                placed.extend(carried)
                previous.extend([now] * len(carried))
        return placed, previous

    def _step(self, change: Change) -> str:
        kind = KINDS.get(change.entity)
        if kind is not None and kind.follows is not None:
            self._remember(change)
            return self._districts.get((kind.follows, change.id),
                                       str(change.data.get("district") or ""))
        if kind is None or not kind.district_scoped:
            return ""
        member = (change.entity, change.id)
        before = self._districts.get(member, NOWHERE)
        if change.op == "remove":
            self._districts.pop(member, None)
            self._followers.pop(member, None)
        else:
            self._districts[member] = str(change.data.get("district") or "")
        return before

    def _remember(self, record: Change) -> None:
        kind = KINDS.get(record.entity)
        if kind is None or kind.follows is None:
            return
        member = (kind.follows, record.id)
        if record.op == "remove":
            self._followers.get(member, {}).pop(record.entity, None)
        elif member in self._districts:  # only live members' records: nothing to forget
            self._followers.setdefault(member, {})[record.entity] = record


def scope_changes(changes: Sequence[Change], previous: Sequence[str] | None,
                  group: ViewGroup) -> list[Change]:
    """The changes as the clients of ``group`` receive them.

    Kinds this module does not know are never passed on (nobody said who may see them).
    Each kind's data is filtered for the group's view. For a district-scoped group a
    member of a district-scoped kind outside the district never appears: its changes are
    dropped, except that one leaving the district (moved, or closed after moving) becomes
    a bare removal with no data, so the page drops it; a record of a following kind goes
    only where its member is (``previous`` holds that district for it). ``previous`` is
    ``Districts.advance`` of the same changes (None will do for groups without a district).
    """
    view, district = group
    if previous is None:
        if district is not None:
            raise ValueError("a district-scoped group needs each change's previous district")
        previous = [""] * len(changes)
    scoped: list[Change] = []
    for change, before in zip(changes, previous, strict=True):
        if change.entity == FRESHNESS:
            scoped.append(change)
            continue
        kind = KINDS.get(change.entity)
        if kind is None:
            continue
        if kind.follows is not None:
            if district is None or before == district:
                scoped.append(_viewed(kind, change, view))
            continue
        if district is None or not kind.district_scoped \
                or change.data.get("district") == district:
            scoped.append(_viewed(kind, change, view))
        elif before == district:
            scoped.append(Change(change.entity, "remove", change.id))
    return scoped


def _viewed(kind: EntityKind, change: Change, view: View) -> Change:
    data = visible(kind, change.data, view)
    return change if len(data) == len(change.data) else msgspec.structs.replace(change,
                                                                               data=data)


# --- stream ids ---------------------------------------------------------------------------
def parse_stream_id(text: str) -> StreamId:
    """'1700000000000-3' -> (1700000000000, 3); ValueError if it is not a stream id."""
    millis, _, sequence = text.partition("-")
    if not millis.isdigit() or (sequence and not sequence.isdigit()):
        raise ValueError(f"{text!r} is not a stream id like 1700000000000-0")
    return int(millis), int(sequence or 0)


def format_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def parse_cursor(cursor: str, count: int) -> Position | None:
    """A cursor (``partitions.encode_cursor``) as a position; None when it is not one of
    ``count`` well-formed ids (``partitions.decode_cursor``: the page gets a snapshot)."""
    ids = partitions.decode_cursor(cursor, count)
    return None if ids is None else tuple(parse_stream_id(entry_id) for entry_id in ids)


def format_cursor(position: Position) -> str:
    return partitions.encode_cursor([format_stream_id(stream_id) for stream_id in position])


def covers(position: Position, need: Position) -> bool:
    """True when ``position`` is at or past ``need`` in every partition."""
    return all(have >= wanted for have, wanted in zip(position, need, strict=True))


def moved_to(position: Position, partition: int, stream_id: StreamId) -> Position:
    """``position`` with ``partition`` at ``stream_id`` if that is further on."""
    return tuple(max(held, stream_id) if number == partition else held
                 for number, held in enumerate(position))


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


def entries_changes(entries: Sequence[tuple[str, list[Change]]]) -> list[Change]:
    """All change objects of several entries, in stream order."""
    return [change for _, batch in entries for change in batch]


def lane_slot_after(moment: float, lane: int, lanes: int, gap: float) -> float:
    """The first time after ``moment`` at which ``lane`` may send: lanes take turns on a
    grid ``gap`` apart, lane k at k/lanes of it, so their pages do not all draw at once."""
    phase = gap * lane / lanes
    return phase + (math.floor((moment - phase) / gap) + 1) * gap
