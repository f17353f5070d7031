"""The versioned event model shared by every producer and consumer.

Events travel as JSON in the ``event`` field of a stream entry. ``decode_event`` turns bytes
into one of four typed events or raises ``InvalidEvent`` with a sentence a person can act
on; ``encode_event`` is its inverse. Times are timezone-aware and normalised to UTC here,
so no interval computed downstream can straddle a DST change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import msgspec

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 16 * 1024

QOL_CATEGORIES: Final = (
    "noise", "dumping", "loitering", "public_drinking", "atv", "speeding",
    "theft", "narcotics", "other_qol",
)
"""Summer Initiative quality-of-life categories (dumping = littering/illegal dumping,
atv = ATVs and dirt bikes, speeding = speeding/motor vehicle racing, theft = theft of
property, narcotics = vice/narcotics)."""

OTHER_CLASSES: Final = ("violent", "property", "traffic", "medical", "other")
CATEGORIES: Final = QOL_CATEGORIES + OTHER_CLASSES

CATEGORY_LABELS: Final = {
    "noise": "Excessive noise", "dumping": "Littering / illegal dumping",
    "loitering": "Loitering", "public_drinking": "Public drinking",
    "atv": "ATVs / dirt bikes", "speeding": "Speeding / MV racing",
    "theft": "Theft of property", "narcotics": "Vice / narcotics", "other_qol": "Other QoL",
    "violent": "Violent", "property": "Property", "traffic": "Traffic",
    "medical": "Medical", "other": "Other",
}

CALL_KINDS: Final = (
    "created", "updated", "unit_assigned", "dispatched", "en_route", "on_scene",
    "cleared", "cancelled", "progressed",
)
UNIT_KINDS: Final = (
    "patrol", "cso", "sro", "conditions", "traffic", "mounted", "k9", "supervisor",
    "task_force",
)
UNIT_STATUSES: Final = ("available", "dispatched", "en_route", "on_scene", "out_of_service")
ALERT_TYPES: Final = ("single", "multiple", "probable")
PARTNER_KINDS: Final = ("school", "hospital", "arena", "business", "agency")
RESOURCE_KINDS: Final = ("camera", "radio")

Category = Literal[
    "noise", "dumping", "loitering", "public_drinking", "atv", "speeding", "theft",
    "narcotics", "other_qol", "violent", "property", "traffic", "medical", "other",
]
CallKind = Literal[
    "created", "updated", "unit_assigned", "dispatched", "en_route", "on_scene",
    "cleared", "cancelled", "progressed",
]
CallStep = Literal["dispatched", "en_route", "on_scene"]
"""Steps a ``progressed`` event reports for the call itself (a status feed naming no unit)."""
TimeSource = Literal["feed", "poll"]
"""Whose clock an event time is: the feed's own, or the poller's when the feed has none."""
UnitKind = Literal[
    "patrol", "cso", "sro", "conditions", "traffic", "mounted", "k9", "supervisor", "task_force",
]
UnitStatus = Literal["available", "dispatched", "en_route", "on_scene", "out_of_service"]
AlertType = Literal["single", "multiple", "probable"]
PartnerKind = Literal["school", "hospital", "arena", "business", "agency"]
ResourceKind = Literal["camera", "radio"]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Text = Annotated[str, msgspec.Meta(max_length=200)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=5)]
Time = Annotated[datetime, msgspec.Meta(tz=True)]


REASON_CODES: Final = (
    "invalid", "not_json", "not_utf8", "too_large", "time_out_of_range",
    "outside_service_area", "out_of_order", "conflict", "impossible_position", "poison",
    "apply_error",
)
"""The short codes a dead letter's ``code`` field takes (its ``reason`` is a sentence):
counted and shown per code on the status page and by ``python -m streams status``."""


class InvalidEvent(ValueError):
    """An event that cannot be applied; ``reason`` (a sentence) and ``code`` (one of
    REASON_CODES) are kept with it in the dead-letter stream."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class _Base(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True,
            omit_defaults=True, tag_field="type"):
    v: Literal[1] = 1
    event_id: Id
    event_time: Time
    source: Annotated[str, msgspec.Meta(max_length=40)] = "unknown"

    def __post_init__(self) -> None:
        _check_position(getattr(self, "lat", None), getattr(self, "lon", None))


class CallEvent(_Base, tag="call", kw_only=True, frozen=True):
    """One step of a CAD call's lifecycle. Unit-level kinds carry ``unit_id``."""

    kind: CallKind
    call_id: Id
    received_time: Time | None = None
    call_type_code: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    call_type: Text | None = None
    category: Category | None = None
    priority: Priority | None = None
    address: Text | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    district: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    neighborhood: Annotated[str, msgspec.Meta(max_length=60)] | None = None
    beat: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    units: list[Id] | None = None
    unit_id: Id | None = None
    caller_name: Text | None = None
    caller_phone: Annotated[str, msgspec.Meta(max_length=30)] | None = None
    disposition: Text | None = None
    step: CallStep | None = None  # progressed: the step the call reached
    time_source: TimeSource | None = None  # "poll": event_time is the poller's clock
    feed_status: Text | None = None  # the feed's own status text
    gunshot_origin: bool | None = None  # opened by the gunshot detection system
    left_feed: bool | None = None  # cleared: the call left an active-calls feed
    received_estimated: bool | None = None  # the feed has no received time; this is
    #                                         the first time the call was seen

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "progressed" and self.step is None:
            raise ValueError("a progressed event needs step")
        if self.kind == "created":
            missing = [name for name in ("received_time", "category", "priority")
                       if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a created call needs {', '.join(missing)}")
        if self.kind in {"unit_assigned", "dispatched", "en_route", "on_scene"} \
                and not self.unit_id:
            raise ValueError(f"a {self.kind} event needs unit_id")
        if self.received_time is not None and self.received_time > self.event_time:
            raise ValueError("received_time is after event_time")


class UnitEvent(_Base, tag="unit", kw_only=True, frozen=True):
    """Status and position (AVL) of one unit."""

    unit_id: Id
    unit_kind: UnitKind
    status: UnitStatus
    lat: Lat | None = None
    lon: Lon | None = None
    heading: Annotated[float, msgspec.Meta(ge=0, lt=360)] | None = None
    speed_kmh: Annotated[float, msgspec.Meta(ge=0, le=300)] | None = None
    call_id: Id | None = None
    district: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    callsign: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    time_source: TimeSource | None = None


class ShotAlert(_Base, tag="shot", kw_only=True, frozen=True):
    """A ShotSpotter-style gunshot detection."""

    alert_id: Id
    alert_type: AlertType
    rounds: Annotated[int, msgspec.Meta(ge=1, le=500)] = 1
    lat: Lat
    lon: Lon
    address: Text | None = None
    district: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    neighborhood: Annotated[str, msgspec.Meta(max_length=60)] | None = None
    beat: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    detected_time: Time
    published_time: Time | None = None
    from_cad: bool | None = None  # made from a CAD call the gunshot system opened
    call_id: Id | None = None  # that call

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.published_time is not None and self.published_time < self.detected_time:
            raise ValueError("published_time is before detected_time")


class ShareEvent(_Base, tag="share", kw_only=True, frozen=True):
    """A Mutualink-style share of a partner's camera or radio opened or closed."""

    kind: Literal["opened", "closed"]
    share_id: Id
    partner: Text
    partner_kind: PartnerKind
    resource_kind: ResourceKind
    resource_id: Id
    resource_name: Text
    lat: Lat | None = None
    lon: Lon | None = None
    stream_url: Annotated[str, msgspec.Meta(max_length=500, pattern=r"^(https?|rtsp|wss?)://")] \
        | None = None
    call_id: Id | None = None
    start_time: Time | None = None
    end_time: Time | None = None


Event = CallEvent | UnitEvent | ShotAlert | ShareEvent

SOURCE_OF_TYPE: Final[dict[type[Event], str]] = {
    CallEvent: "cad", UnitEvent: "avl", ShotAlert: "shotspotter", ShareEvent: "mutualink",
}

_TIME_FIELDS: Final = {
    kind: tuple(f.name for f in msgspec.structs.fields(kind) if "datetime" in str(f.type))
    for kind in SOURCE_OF_TYPE
}
"""Names of the datetime fields of each event type (checked once, not per event)."""

_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


def _check_position(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise ValueError("lat and lon must be given together")
    if lat == 0 and lon == 0:
        raise ValueError("position 0,0 is a missing fix, not a place")


def decode_event(payload: bytes | str) -> Event:
    """Parse and validate one event; raise InvalidEvent with a readable reason.

    Total over its input: whatever the bytes, the answer is an event or InvalidEvent
    (the consumer still guards against the unforeseen, see ``streams.consumer``).
    """
    if len(payload) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}",
                           "too_large")
    if isinstance(payload, bytes):
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidEvent(f"event is not UTF-8 (byte {error.start})", "not_utf8") from None
    try:
        event = _decoder.decode(payload)
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"invalid event: {error}") from None
    except msgspec.DecodeError as error:
        raise InvalidEvent(f"event is not JSON: {error}", "not_json") from None
    return utc(event)


def encode_event(event: Event) -> bytes:
    """Serialise an event to the JSON bytes stored in a stream entry."""
    return _encoder.encode(event)


def source_of(event: Event) -> str:
    """The raw stream an event belongs on."""
    return SOURCE_OF_TYPE[type(event)]


def utc(event: Event) -> Event:
    """Return the event with every datetime converted to UTC.

    A time whose UTC instant falls outside what Python can hold (0001-01-01T00:00:00+14:00,
    9999-12-31T23:59:59-14:00) raises InvalidEvent ``time_out_of_range``, not OverflowError.
    """
    changes = {}
    for name in _TIME_FIELDS[type(event)]:
        value = getattr(event, name)
        if value is None or not value.utcoffset():
            continue
        try:
            changes[name] = value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise InvalidEvent(f"{name} {value.isoformat()} is outside the years 1-9999 in UTC",
                               "time_out_of_range") from None
    return msgspec.structs.replace(event, **changes) if changes else event


def event_times(event: Event) -> dict[str, datetime]:
    """Every time an event states, by field name (event_time always among them)."""
    return {name: value for name in _TIME_FIELDS[type(event)]
            if (value := getattr(event, name)) is not None}


def is_qol(category: str) -> bool:
    """True for the Summer Initiative quality-of-life categories."""
    return category in QOL_CATEGORIES
