"""Admission (time window, service area), total decoding and the dead-letter log (pure)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from streams.core.admission import Admission, Area, service_area
from streams.core.deadletter import DeadLetterLog, deadletter_entry
from streams.core.events import REASON_CODES, InvalidEvent, decode_event
from streams.core.mapping import TimeParser
from streams.core.settings import Settings

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC).timestamp()
HARTFORD = Area(41.72, -72.72, 41.81, -72.64)
ADMISSION = Admission(max_age_s=30 * 86400, history_max_age_s=50 * 365.25 * 86400,
                      max_ahead_s=300, area=HARTFORD.widened(10))


def call_json(event_time: str, received_time: str | None = None, **extra: object) -> bytes:
    body = {"type": "call", "event_id": "e1", "event_time": event_time, "kind": "created",
            "call_id": "C1", "category": "noise", "priority": 3,
            "received_time": received_time or event_time, **extra}
    return json.dumps(body).encode()


def verdict(payload: bytes, history: bool = False) -> str:
    """'ok' or the dead-letter code: the consumer's decode-then-admit in one call."""
    try:
        ADMISSION.check(decode_event(payload), NOW, history)
    except InvalidEvent as error:
        assert error.code in REASON_CODES
        return error.code
    return "ok"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_times_python_cannot_hold_in_utc_are_out_of_range(when: str) -> None:
    """The two times that once raised OverflowError are InvalidEvent time_out_of_range."""
    with pytest.raises(InvalidEvent) as caught:
        decode_event(call_json(when))
    assert caught.value.code == "time_out_of_range"
    assert "outside the years 1-9999" in caught.value.reason


@pytest.mark.parametrize(("event_time", "history", "expected"), [
    ("2026-12-01T19:59:00Z", False, "ok"),
    ("2026-12-01T20:04:59Z", False, "ok"),           # inside 5 minutes ahead
    ("2026-12-01T20:05:01Z", False, "time_out_of_range"),
    ("2099-01-01T00:00:00Z", True, "time_out_of_range"),  # history has the same future bound
    ("2026-11-02T20:00:01Z", False, "ok"),           # 30 days minus a second
    ("2026-10-01T00:00:00Z", False, "time_out_of_range"),
    ("2014-06-21T23:14:05Z", True, "ok"),            # a replay of the Summer Initiative
    ("1960-01-01T00:00:00Z", True, "time_out_of_range"),
])
def test_live_and_history_windows(event_time: str, history: bool, expected: str) -> None:
    """Live events may be 30 days old, history 50 years; nothing more than 5 minutes ahead."""
    assert verdict(call_json(event_time), history) == expected


def test_old_received_time_of_a_live_update_is_accepted() -> None:
    """A call received months ago and updated now is live news (only event_time is held to
    the live window); a received time past the history bound is not."""
    assert verdict(call_json("2026-12-01T19:00:00Z", "2026-06-01T00:00:00Z")) == "ok"
    assert verdict(call_json("2026-12-01T19:00:00Z", "1901-01-01T00:00:00Z")) == \
        "time_out_of_range"


@pytest.mark.parametrize(("lat", "lon", "expected"), [
    (41.7637, -72.6851, "ok"),                 # downtown
    (41.762, -72.742, "ok"),                   # West Hartford, inside the margin
    (-45.0, 170.0, "outside_service_area"),
    (-33.8688, 151.2093, "outside_service_area"),  # Sydney
    (41.95, -72.68, "outside_service_area"),   # Windsor Locks, beyond 10 km
])
def test_service_area(lat: float, lon: float, expected: str) -> None:
    """Positions inside the city box widened by the margin pass; far ones are refused."""
    assert verdict(call_json("2026-12-01T19:59:00Z", lat=lat, lon=lon)) == expected


def test_service_area_setting_forms() -> None:
    """Empty means the geography's box, a box is parsed, 'anywhere' turns the check off;
    a bad box says what is wrong."""
    assert service_area("", 0, HARTFORD) == HARTFORD
    assert service_area("37.6,-122.6,37.9,-122.3", 0, HARTFORD) == \
        Area(37.6, -122.6, 37.9, -122.3)
    assert service_area("anywhere", 10, HARTFORD) is None
    with pytest.raises(ValueError, match="south must be below north"):
        service_area("41.9,-72.7,41.7,-72.6", 0, None)
    with pytest.raises(ValueError, match="south,west,north,east"):
        service_area("Hartford", 0, None)


def test_admission_from_default_settings_uses_the_hartford_geography() -> None:
    """The default settings bound the area by the shipped Hartford neighborhoods."""
    from streams.core.admission import admission_from_settings

    admission = admission_from_settings(Settings())
    assert admission.area is not None
    assert admission.area.contains(41.7637, -72.6851)
    assert not admission.area.contains(40.7128, -74.0060)  # New York


EDGE_YEARS = st.sampled_from([1, 2, 1900, 1969, 1970, 2000, 2026, 2038, 9998, 9999])
OFFSETS = st.sampled_from(["Z", "+00:00", "+14:00", "-14:00", "+23:59", "-23:59", "+05:30",
                           "-0930", ""])


@st.composite
def edge_iso_times(draw: st.DrawFn) -> str:
    year = draw(EDGE_YEARS)
    month = draw(st.sampled_from([1, 2, 12]))
    day = draw(st.sampled_from([1, 28, 31 if month != 2 else 28]))
    hour, minute, second = draw(st.sampled_from([(0, 0, 0), (23, 59, 59), (12, 30, 0)]))
    fraction = draw(st.sampled_from(["", ".5", ".123456"]))
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            f"{fraction}{draw(OFFSETS)}")


@given(event_time=edge_iso_times(), received=edge_iso_times(), history=st.booleans())
def test_decoding_and_admission_are_total_over_edge_times(event_time: str, received: str,
                                                          history: bool) -> None:
    """Whatever ISO times an event carries, at the edges of what datetime holds, decoding
    and admission answer an event or InvalidEvent, never another exception; what passes
    lies inside the window."""
    code = verdict(call_json(event_time, received), history)
    if code == "ok":
        event = decode_event(call_json(event_time, received))
        assert NOW - 50 * 365.25 * 86400 <= event.event_time.timestamp() <= NOW + 300


@given(number=st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**20, max_value=10**20),
    st.sampled_from([-62135596800, 253402300799, 253402300800, -62135596801])))
def test_epoch_times_at_the_edges_are_total(number: float) -> None:
    """Epoch numbers of any size, NaN and infinities included, decode or are refused."""
    payload = call_json("2026-12-01T19:59:00Z").replace(
        b'"event_time": "2026-12-01T19:59:00Z"', f'"event_time": {json.dumps(number)}'.encode())
    assert verdict(payload) in {"ok", "invalid", "time_out_of_range", "not_json"}


MAPPING_FORMATS = ("iso", "epoch", "epoch_ms", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %I:%M:%S %p",
                   "%Y-%m-%dT%H:%M:%S%z", "%d/%m/%y %H:%M")


@st.composite
def edge_feed_times(draw: st.DrawFn) -> tuple[str, str]:
    fmt = draw(st.sampled_from(MAPPING_FORMATS))
    if fmt in ("epoch", "epoch_ms"):
        value = draw(st.one_of(st.integers(-10**19, 10**19), st.floats()))
        return fmt, str(value)
    if fmt == "iso":
        return fmt, draw(edge_iso_times())
    year = draw(EDGE_YEARS)
    stamp = datetime(min(year, 9999), 12, 31, 23, 59, 59) if year > 5000 else \
        datetime(year, 1, 1, 0, 0, 0)
    text = stamp.strftime(fmt.replace("%z", "")) if "%y" not in fmt else \
        stamp.strftime(fmt)
    if "%z" in fmt:
        text += draw(st.sampled_from(["+1400", "-1400", "Z", "+00:00"]))
    return fmt, text


@given(case=edge_feed_times(), zone=st.sampled_from(["America/New_York", "Pacific/Kiritimati",
                                                     "Pacific/Pago_Pago", "UTC"]),
       local_as_utc=st.booleans())
@example(case=("epoch", "1e+17"), zone="UTC", local_as_utc=False)  # OSError from the C library
def test_every_mapping_time_format_is_total_at_the_edges(case: tuple[str, str], zone: str,
                                                         local_as_utc: bool) -> None:
    """Each format a mapping accepts turns edge times into a UTC datetime or ValueError
    (a row rejected with its reason), and admission then answers ok or time_out_of_range:
    no OverflowError escapes to stop a poller, a replay or a backfill."""
    fmt, text = case
    parser = TimeParser((fmt,), ZoneInfo(zone), local_as_utc)
    try:
        value = parser.parse(text)
    except ValueError:
        return
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    try:
        ADMISSION.check_times({"event_time": value}, NOW, history=True)
    except InvalidEvent as error:
        assert error.code == "time_out_of_range"


def test_deadletter_entry_shape() -> None:
    """One shape for every dead letter: source, code, reason, payload, and where it was."""
    assert deadletter_entry("cad", "poison", "why", b"x", entry_id=b"1-0") == {
        "source": "cad", "code": "poison", "reason": "why", "payload": b"x", "entry_id": b"1-0"}
    assert deadletter_entry("cad", "invalid", "why", "x", file="a.csv", row=7) == {
        "source": "cad", "code": "invalid", "reason": "why", "payload": "x", "file": "a.csv",
        "row": "7"}


def test_deadletter_log_sums_up_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    """10,000 refusals of one kind in a minute log two lines: the first, and one summary."""
    log = DeadLetterLog(logging.getLogger("test.deadletters"))
    with caplog.at_level(logging.WARNING, "test.deadletters"):
        for number in range(10_000):
            log.note("avl", "invalid", f"junk {number}", 1000.0 + number * 0.005)
        log.note("cad", "not_json", "other kind", 1030.0)
        log.flush(1061.0)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "dead-lettered avl entry (invalid): junk 0"
    assert lines[1] == "dead-lettered cad entry (not_json): other kind"
    assert lines[2].startswith("dead-lettered 9999 more avl entries (invalid) in the last 61 s")
    assert lines[2].endswith("junk 9999")
    assert len(lines) == 3
