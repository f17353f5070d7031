"""The typed change feed: one home for the change record and the snapshot.

What the consumer writes to the changes stream, what push reads from it, and the snapshot
push and the read API both hand to pages (streams/state-contract.md). Pure: Redis replies
come in, records and JSON-ready messages go out.

- The consumer builds changes with ``batch_changes``/``feed_clock`` (any other writer of
  entity state: ``upsert``/``remove``) and writes one entry per applied batch with
  ``encode_batch``; push reads entries with ``decode_batch``.
- A snapshot is read in two steps described here, not in each reader: ``snapshot_reads``
  (one MULTI: the stream's newest id, every live index, freshness and counts), then
  ``body_reads`` (the bodies of the indexed members), and ``assemble_snapshot`` turns the
  replies into the message for one view. With several partitions each partition's keys
  are read so (scored), and ``merge_partitions`` makes them one snapshot whose ``last_id``
  is the cursor of every partition's tip (``streams.core.partitions``).
- Entity kinds are a table (``KINDS``): a new kind (tablet actions, say) is one
  ``register(EntityKind(...))`` naming its keys; push scopes and filters it, both readers
  put it in snapshots, and pages learn the table from ``kinds_table`` (assets/live.js has
  no list of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

from streams.core import partitions
from streams.core.access import CALLER_FIELDS, INTERNAL_FIELDS
from streams.core.keys import ALERT_ACTIVE_SECONDS, SOURCES, Keys
from streams.core.livestate import BatchPlan
from streams.core.replies import reply_text

Op = Literal["upsert", "remove"]
View = Literal["full", "tablet"]
"""What a page may see: everything but internals, or (tablet roles) no private fields."""


class Change(msgspec.Struct, frozen=True):
    """One entity's new state after a batch (``upsert``) or its leaving the live view
    (``remove``; ``data`` is its final state, or empty)."""

    entity: str
    op: Op
    id: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class EntityKind:
    """How one kind of entity travels: its name in change records, its list in a
    snapshot (and in the page's ``window.dispatchLive``), its id field, who may see it,
    and where its live members are (names of ``Keys`` attributes, so a partitioned
    layout only changes ``Keys``)."""

    name: str
    plural: str
    id_field: str
    bodies: str
    """``Keys`` attribute of the hash id -> JSON body."""
    index: str | None = None
    """``Keys`` attribute of the sorted set of live ids in snapshot order; None: every
    body in the hash is live (sorted by id in a snapshot)."""
    newest_first: bool = False
    max_age_s: float | None = None
    """Members of an index scored by time count only while younger than this."""
    district_scoped: bool = False
    """District-scoped pages (cso/sro with a district) get only their district's."""
    private_fields: tuple[str, ...] = ()
    """Fields tablet roles never receive (caller details)."""
    follows: str | None = None
    """The kind whose members this kind's records are about, one record per member keyed
    by its id (a call's work record): ``bodies`` then names the ``Keys`` method of one
    member's key, a snapshot holds the records of the members it shows (read after step 1,
    in their order), and a district-scoped page gets those whose member is in its district
    now (or, for a member no longer live, whose record names it)."""


FRESHNESS: Final = "freshness"
"""The pseudo-entity of a feed's clock: id = source, data = {source, event_time, seen}."""

KINDS: Final[dict[str, EntityKind]] = {}
"""Every kind push and pages know, in snapshot order. Push never forwards a change of a
kind missing here: nobody has said who may see it."""


def register(kind: EntityKind) -> EntityKind:
    """Add a kind of entity to the feed (its writer, push and pages then carry it)."""
    if kind.name in KINDS or kind.name == FRESHNESS:
        raise ValueError(f"entity kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


for _kind in (
    EntityKind("call", "calls", "call_id", "calls", "calls_open", district_scoped=True,
               private_fields=CALLER_FIELDS),
    EntityKind("unit", "units", "unit_id", "units"),
    EntityKind("alert", "alerts", "alert_id", "alerts", "alerts_active", newest_first=True,
               max_age_s=ALERT_ACTIVE_SECONDS),
    EntityKind("share", "shares", "share_id", "shares", "shares_active"),
    # The dashboard's own records of actions on a call (claim, notes, outcome; never CAD
    # state), written by dashboard.actionstore: streams.core.actions.
    EntityKind("work", "work", "call_id", "work", follows="call"),
):
    register(_kind)


def visible(kind: EntityKind, data: Mapping[str, Any], view: View) -> dict[str, Any]:
    """An entity's state as a page with ``view`` may see it: never internal fields, and
    no private fields on tablets."""
    dropped = INTERNAL_FIELDS + kind.private_fields if view == "tablet" else INTERNAL_FIELDS
    return {name: value for name, value in data.items() if name not in dropped}


# --- building and encoding change records -------------------------------------------------

def upsert(entity: str, entity_id: str, state: Mapping[str, Any]) -> Change:
    """The change record of an entity's new state (internal fields dropped)."""
    return Change(entity, "upsert", entity_id, visible(KINDS[entity], state, "full"))


def remove(entity: str, entity_id: str, state: Mapping[str, Any] | None = None) -> Change:
    """The change record of an entity leaving the live view, with its final state if known."""
    data = visible(KINDS[entity], state, "full") if state is not None else {}
    return Change(entity, "remove", entity_id, data)


def batch_changes(plan: BatchPlan) -> list[Change]:
    """One change record per entity an applied batch changed, with its final state (one
    per entity, not per event: a batch moves a unit many times)."""
    return [remove(entity, entity_id, plan.states[entity][entity_id]) if removed
            else upsert(entity, entity_id, plan.states[entity][entity_id])
            for (entity, entity_id), removed in plan.removed.items()]


def feed_clock(source: str, event_time: float, seen: float) -> Change:
    """A feed's newest event time and when it was applied (the status lights)."""
    return Change(FRESHNESS, "upsert", source,
                  {"source": source, "event_time": event_time, "seen": seen})


_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(list[Change])
_object_decoder = msgspec.json.Decoder(dict[str, Any])


def encode(value: Any) -> bytes:
    """JSON bytes of a message or record (Changes included)."""
    return _encoder.encode(value)


def encode_batch(changes: Sequence[Change]) -> bytes:
    """The ``CHANGES_FIELD`` value of one changes-stream entry."""
    return _encoder.encode(changes)


def decode_batch(raw: bytes | str) -> list[Change]:
    """The changes of one entry's ``CHANGES_FIELD``; ValueError (with why) when it is not
    a JSON list of change records, so the reader skips that entry and goes on."""
    try:
        return _batch_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"changes batch is not a list of change records: {error}") from None


def decode_objects(values: Iterable[bytes | str | None]) -> list[dict[str, Any]]:
    """JSON objects of hash values, skipping missing (None) and unreadable ones."""
    parsed: list[dict[str, Any]] = []
    for value in values:
        if value is None:
            continue
        try:
            parsed.append(_object_decoder.decode(value))
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
    return parsed


# --- messages ---------------------------------------------------------------------------

def delta_message(last_id: str, changes: list[Change]) -> dict[str, Any]:
    return {"type": "delta", "last_id": last_id, "changes": changes}


def ping_message(now: float) -> dict[str, Any]:
    """The heartbeat a quiet page gets: the server's clock (epoch s), nothing to apply."""
    return {"type": "ping", "time": round(now, 3)}


def kinds_table() -> dict[str, dict[str, str]]:
    """What a page needs to apply snapshots and deltas of every kind: list name, id field
    and, for a kind that follows another, that kind (its member redraws with the record)."""
    return {kind.name: {"plural": kind.plural, "id": kind.id_field,
                        **({"follows": kind.follows} if kind.follows else {})}
            for kind in KINDS.values()}


# --- reading a snapshot -------------------------------------------------------------------

@dataclass(frozen=True)
class LiveSet:
    """Where the live members of one kind are: a hash of JSON bodies and, unless every
    body is live (``index`` None), a sorted set of the live ids in snapshot order."""

    kind: str
    bodies: str
    index: str | None = None
    newest_first: bool = False
    max_age_s: float | None = None
    """Members scored by time count only while younger than this."""
    follows: str | None = None
    member_key: Callable[[str], str] | None = None
    """For a kind that follows another: the key of the record of one of its members."""


def live_sets(keys: Keys) -> list[LiveSet]:
    """Every kind's live set, in ``KINDS`` order."""
    return [LiveSet(kind.name, "", follows=kind.follows, member_key=getattr(keys, kind.bodies))
            if kind.follows else
            LiveSet(kind.name, getattr(keys, kind.bodies),
                    getattr(keys, kind.index) if kind.index else None,
                    kind.newest_first, kind.max_age_s) for kind in KINDS.values()]


def _step_one_sets(keys: Keys) -> list[LiveSet]:
    """The live sets read in step 1 (a following kind is read in step 2, by member)."""
    return [live for live in live_sets(keys) if live.follows is None]


Command = tuple[Any, ...]
"""A Redis command as ``execute_command`` takes it."""


def snapshot_reads(keys: Keys, now: float, scored: bool = False) -> list[Command]:
    """Step 1, one MULTI so it is consistent: the changes stream's newest entry, then one
    read per live set, then freshness and counts. Replaying changes after that newest id
    onto what this reads is safe: upserts carry whole states. ``keys`` are one
    partition's (all in its hash tag); ``scored`` reads the indexes' scores too, which
    ``merge_partitions`` orders several partitions' members by."""
    scores = ("WITHSCORES",) if scored else ()
    commands: list[Command] = [("XREVRANGE", keys.changes, "+", "-", "COUNT", 1)]
    for live in _step_one_sets(keys):
        if live.index is None:
            commands.append(("HVALS", live.bodies))
        elif live.newest_first:
            low = "-inf" if live.max_age_s is None else now - live.max_age_s
            commands.append(("ZREVRANGEBYSCORE", live.index, "+inf", low, *scores))
        else:
            commands.append(("ZRANGE", live.index, 0, -1, *scores))
    commands += [("HGETALL", keys.freshness), ("HGETALL", keys.counts)]
    return commands


@dataclass(frozen=True)
class SnapshotRead:
    """What step 1 returned, and the step 2 reads it needs (HMGET of indexed bodies)."""

    last_id: str
    members: dict[str, list[Any]]
    """Per kind: its bodies (index None) or its member ids (to fetch in step 2)."""
    freshness: Mapping[Any, Any]
    counts: Mapping[Any, Any]
    sets: tuple[LiveSet, ...]
    scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per indexed kind, member id -> index score (read only when ``scored``)."""

    def body_reads(self) -> list[Command]:
        """Step 2: one HMGET per indexed kind with members and one MGET per following kind
        of the records of its followed kind's members (any order of execution). A record
        newer than step 1's last id is replayed onto the snapshot too: harmless."""
        commands: list[Command] = []
        for live in self._step_two_sets():
            if live.member_key is not None and live.follows is not None:
                commands.append(("MGET", *(live.member_key(reply_text(member))
                                           for member in self.members[live.follows])))
            else:
                commands.append(("HMGET", live.bodies, *self.members[live.kind]))
        return commands

    def _step_two_sets(self) -> list[LiveSet]:
        return [live for live in self.sets
                if (live.follows is not None and self.members[live.follows])
                or (live.follows is None and live.index is not None
                    and self.members[live.kind])]

    def bodies(self, replies: Sequence[Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
        """Per kind, the decoded bodies of its live members, in snapshot order."""
        answers = iter(replies)
        step_two = {live.kind for live in self._step_two_sets()}
        found: dict[str, list[dict[str, Any]]] = {}
        for live in self.sets:
            if live.kind in step_two:
                found[live.kind] = decode_objects(next(answers))
            elif live.index is None and live.follows is None:
                found[live.kind] = decode_objects(self.members[live.kind])
            else:
                found[live.kind] = []
        return found


def read_step_one(keys: Keys, replies: Sequence[Any], scored: bool = False) -> SnapshotRead:
    """Interpret the replies of ``snapshot_reads`` (same keys, same order, same ``scored``)."""
    sets, read_first = tuple(live_sets(keys)), _step_one_sets(keys)
    newest, *member_replies = replies[:1 + len(read_first)]
    freshness, counts = replies[1 + len(read_first):]
    last_id = reply_text(newest[0][0]) if newest else "0-0"
    members: dict[str, list[Any]] = {live.kind: [] for live in sets}
    scores: dict[str, dict[str, float]] = {}
    for live, reply in zip(read_first, member_replies, strict=True):
        if scored and live.index is not None:
            pairs = _score_pairs(reply or [])
            members[live.kind] = [member for member, _ in pairs]
            scores[live.kind] = {reply_text(member): score for member, score in pairs}
        else:
            members[live.kind] = list(reply or [])
    return SnapshotRead(last_id, members, freshness or {}, counts or {}, sets, scores)


def _score_pairs(reply: Sequence[Any]) -> list[tuple[Any, float]]:
    """(member, score) of a WITHSCORES reply: pairs (RESP3) or flat (RESP2, unparsed
    through ``execute_command``)."""
    if reply and isinstance(reply[0], list | tuple):
        return [(member, float(score)) for member, score in reply]
    return [(reply[at], float(reply[at + 1])) for at in range(0, len(reply), 2)]


def assemble_freshness(freshness: Mapping[Any, Any], counts: Mapping[Any, Any],
                       ) -> dict[str, dict[str, float | int | None]]:
    """Per source: newest event time, when it was applied, applied and rejected counts."""
    fresh = {reply_text(name): value for name, value in freshness.items()}
    counted = {reply_text(name): value for name, value in counts.items()}
    return {source: {
        "event_time": _number(fresh.get(source)), "seen": _number(fresh.get(f"{source}:seen")),
        "count": int(_number(counted.get(source)) or 0),
        "rejected": int(_number(counted.get(f"{source}:rejected")) or 0),
    } for source in SOURCES}


def assemble_snapshot(read: SnapshotRead, bodies: Mapping[str, list[dict[str, Any]]],
                      view: View, district: str | None = None) -> dict[str, Any]:
    """The snapshot message for pages with ``view`` (and, for a district-scoped page,
    ``district``): every kind's list as such a page may see it, then freshness."""
    message: dict[str, Any] = {"type": "snapshot", "last_id": read.last_id}
    shown: dict[str, set[str]] = {}
    for name, kind in KINDS.items():
        items = [visible(kind, item, view) for item in bodies.get(name, [])
                 if not (district and kind.district_scoped) or item.get("district") == district]
        if kind.follows is not None:
            items = [item for item in items
                     if str(item.get(kind.id_field)) in shown.get(kind.follows, set())]
        elif kind.index is None:
            items.sort(key=lambda item: str(item.get(kind.id_field)))
        shown[name] = {str(item.get(kind.id_field)) for item in items}
        message[kind.plural] = items
    message["freshness"] = assemble_freshness(read.freshness, read.counts)
    return message



# --- several partitions: one snapshot ------------------------------------------------------

Bodies = dict[str, list[dict[str, Any]]]


def merge_partitions(parts: Sequence[tuple[SnapshotRead, Bodies]]) -> tuple[SnapshotRead, Bodies]:
    """One snapshot of every partition's reads (in partition order, each read ``scored``
    unless there is one): ``last_id`` is the cursor of their tips, indexed kinds in their
    index's score order across partitions (as one index would hold them: ties by id),
    a following kind's records in their members' order, freshness the newest per source
    and counts summed. One partition comes back as it is."""
    if len(parts) == 1:
        return parts[0]
    reads = [read for read, _ in parts]
    merged: Bodies = {}
    for name, kind in KINDS.items():
        items = [item for _, bodies in parts for item in bodies.get(name, [])]
        if kind.index is not None and kind.follows is None:
            scores = {member: score for read in reads
                      for member, score in read.scores.get(name, {}).items()}
            items.sort(key=lambda item: (scores.get(str(item.get(kind.id_field)), math.inf),
                                         str(item.get(kind.id_field))),
                       reverse=kind.newest_first)
        merged[name] = items
    for name, kind in KINDS.items():
        if kind.follows is not None:
            order = {str(item.get(KINDS[kind.follows].id_field)): at
                     for at, item in enumerate(merged.get(kind.follows, []))}
            merged[name].sort(key=lambda item: order.get(str(item.get(kind.id_field)),
                                                         len(order)))
    cursor = partitions.encode_cursor([read.last_id for read in reads])
    return SnapshotRead(cursor, {}, merge_freshness([read.freshness for read in reads]),
                        merge_counts([read.counts for read in reads]), reads[0].sets), merged


def merge_freshness(hashes: Sequence[Mapping[Any, Any]]) -> dict[str, float]:
    """Partitions' freshness hashes as one: each field's newest time (a feed is as fresh
    as its freshest partition; unreadable values are left out)."""
    merged: dict[str, float] = {}
    for fields in hashes:
        for name, value in fields.items():
            number = _number(value)
            if number is not None:
                merged[reply_text(name)] = max(number, merged.get(reply_text(name), number))
    return merged


def merge_counts(hashes: Sequence[Mapping[Any, Any]]) -> dict[str, float]:
    """Partitions' counts hashes as one: each field summed."""
    merged: dict[str, float] = {}
    for fields in hashes:
        for name, value in fields.items():
            merged[reply_text(name)] = merged.get(reply_text(name), 0) + (_number(value) or 0)
    return merged


def _number(value: bytes | str | float | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
