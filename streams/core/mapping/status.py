"""Status columns -> lifecycle times (pure).

A feed with a status column says *that* a call (or a unit) reached a step, not *when*.
``stamp_steps`` gives a step it reports a time: the row's own update time when the feed has
one (``[fields] updated_time``), else the poll's clock, and then the record lists the
stamped time in ``poll_times`` so every event and closed record built from it says so.
A time the record already has (from a time column, or stamped by an earlier poll) is never
moved: the first poll that saw a step is when it happened.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from streams.core.mapping.records import CallRecord, UnitTimes

CALL_STEP_TIME: Final = {"dispatched": "dispatched_time", "en_route": "en_route_time",
                         "on_scene": "on_scene_time", "closed": "closed_time",
                         "cancelled": "closed_time"}
"""The call time each call step (``[status]``) gives."""
UNIT_STEP_TIME: Final = ("assigned", "dispatched", "en_route", "on_scene", "cleared")


def unit_clock_key(unit_id: str, step: str) -> str:
    """How a unit time stamped with the poll's clock is named in ``poll_times``."""
    return f"unit:{unit_id}:{step}"


def stamp_steps(record: CallRecord, now: datetime | None = None) -> CallRecord:
    """``record`` with the steps its statuses report given a time (see the module)."""
    when = record.updated_time or now
    if when is None:
        return record
    by_poll = record.updated_time is None
    poll_times = list(record.poll_times)
    changes: dict[str, object] = {}
    name = CALL_STEP_TIME.get(record.step or "")
    if name is not None and getattr(record, name) is None \
            and (record.received_time is None or when >= record.received_time):
        changes[name] = when
        if by_poll:
            poll_times.append(name)
    if record.step == "cancelled":
        changes["cancelled"] = True
    units = tuple(_stamp_unit(unit, when, by_poll, poll_times) for unit in record.units)
    if units != record.units:
        changes["units"] = units
    if not changes:
        return record
    return replace(record, **changes, poll_times=tuple(dict.fromkeys(poll_times)))  # type: ignore[arg-type]


def _stamp_unit(unit: UnitTimes, when: datetime, by_poll: bool,
                poll_times: list[str]) -> UnitTimes:
    step = unit.step
    if step not in UNIT_STEP_TIME or getattr(unit, step) is not None:
        return unit
    known = [value for value in (getattr(unit, name) for name in UNIT_STEP_TIME)
             if value is not None]
    if known and when < max(known):
        return unit  # an update time older than a step already timed: not this step's
    if by_poll:
        poll_times.append(unit_clock_key(unit.unit_id, step))
    return replace(unit, **{step: when})  # type: ignore[arg-type]
