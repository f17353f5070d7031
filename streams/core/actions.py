"""Actions on a call (claim, release, note, handled): the rules, as pure functions.

These are the dashboard's own records of work done on a call, kept beside the CAD state
and never written into it: a claim does not assign a unit, a "handled" does not close the
call in CAD. ``decide(work, call, action, actor, now)`` says what one action does to a
call's work record (``Work``): applied with the new record, or refused with a reason code
and a sentence the officer can act on. ``dashboard.actionstore.ActionStore.apply`` runs it
inside one Redis transaction, which makes a claim race have exactly one winner and makes
every action id apply once.

Nothing here talks to Redis, Dash or the network. A work record holds no caller details:
notes are redacted of the call's caller name and phone before they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from streams.core import access
from streams.core.access import User
from streams.core.changefeed import Change
from streams.core.events import QOL_CATEGORIES

KINDS: Final = ("claim", "release", "note", "handled")
OUTCOMES: Final = {
    "warned": "Warned",
    "cited": "Cited",
    "community_court": "Referred to Community Court",
    "cleaned_up": "Cleaned up / towed",
    "gone_on_arrival": "Gone on arrival",
    "unfounded": "Unfounded",
}
"""Quality-of-life outcomes of a handled call: code -> label (the codes are stored)."""

NOTE_MAX_CHARS: Final = 500
NOTES_KEPT: Final = 50
"""A call's work record keeps at most this many notes; later ones are refused."""
ACTION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
"""Device-made action ids (a UUID or similar): the key each action applies once under."""
MADE_AT_SLACK_S: Final = 60.0
"""A device clock this far ahead of the server is trusted; more, and the server's time
is used instead."""
MADE_AT_MAX_AGE_S: Final = 24 * 3600.0
"""An action made offline longer ago than this is dated this long ago at most."""
OPEN_STATUSES: Final = frozenset({"pending", "assigned", "dispatched", "en_route", "on_scene"})

Kind = Literal["claim", "release", "note", "handled"]
Status = Literal["applied", "refused"]


Actor = User
"""Who acts: the signed-in user (name, role, district); who may act, override a claim and
in which district is ``streams.core.access``'s rule."""


@dataclass(frozen=True)
class Action:
    """One action as a device sent it; ``made_at`` is the device's clock (epoch s)."""

    id: str
    call_id: str
    kind: Kind
    outcome: str | None = None
    text: str = ""
    made_at: float | None = None


@dataclass(frozen=True)
class Decision:
    """What an action did: applied (``work`` is the new record) or refused (``code``,
    ``message``; ``work`` is the record as it stands, so the device can show who has it)."""

    status: Status
    code: str
    message: str
    work: dict[str, Any] | None = None
    changed: bool = False
    """True when ``work`` differs from before (a change to store and push)."""

    def answer(self, action: Action) -> dict[str, Any]:
        """The JSON reply to the device (also what a repeat of the same id gets)."""
        return {"id": action.id, "call_id": action.call_id, "kind": action.kind,
                "status": self.status, "code": self.code, "message": self.message,
                "work": self.work}


def parse_action(payload: Any) -> Action:
    """An ``Action`` from a device's JSON object; ValueError with a sentence if it is not."""
    if not isinstance(payload, Mapping):
        raise ValueError("an action must be a JSON object")
    action_id, call_id = payload.get("id"), payload.get("call_id")
    kind, outcome, text = payload.get("kind"), payload.get("outcome"), payload.get("text")
    if not isinstance(action_id, str) or not ACTION_ID.match(action_id):
        raise ValueError("an action needs an id of 8-64 letters, digits, '-' or '_'")
    if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 100:
        raise ValueError("an action needs the call_id of the call it is about")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    text = " ".join(text.split())
    if len(text) > NOTE_MAX_CHARS:
        raise ValueError(f"a note is at most {NOTE_MAX_CHARS} characters")
    if kind == "note" and not text:
        raise ValueError("a note needs some text")
    if kind == "handled" and outcome not in OUTCOMES:
        raise ValueError(f"a handled call needs an outcome: one of {', '.join(OUTCOMES)}")
    if kind != "handled" and outcome is not None:
        raise ValueError("only a handled action has an outcome")
    return Action(action_id, call_id.strip(), kind, outcome, text,
                  _made_at(payload.get("made_at")))


def _made_at(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError("made_at must be epoch seconds")
    return float(value)


def action_time(made_at: float | None, now: float) -> float:
    """When the action was made, trusting the device's clock within reason."""
    if made_at is None or made_at > now + MADE_AT_SLACK_S:
        return now
    return max(made_at, now - MADE_AT_MAX_AGE_S)


# --- the rules ----------------------------------------------------------------------------

def decide(work: Mapping[str, Any] | None, call: Mapping[str, Any] | None, action: Action,
           actor: Actor, now: float) -> Decision:
    """Apply ``action`` by ``actor`` to a call's work record (None: nothing done yet).

    ``call`` is the call's CAD state (None when unknown or its body was pruned): actions
    are refused on calls the actor may not see, that are not quality-of-life calls, or
    (claims) that CAD has closed. ``now`` is the server's clock (epoch s).
    """
    refusal = _gate(call, action, actor)
    if refusal is not None:  # nothing of the record for someone who may not act on it
        return _refused(refusal[0], refusal[1], None)
    assert call is not None
    current = dict(work) if work else new_work(call)
    current["district"] = call.get("district")  # follows the call if CAD moves it
    return _RULES[action.kind](current, call, action, actor, now)


def _gate(call: Mapping[str, Any] | None, action: Action, actor: Actor,
          ) -> tuple[str, str] | None:
    if not access.may_act(actor):
        return "not_allowed", f"The {actor.role} role cannot take actions on calls."
    if call is None:
        return "unknown_call", f"Call {action.call_id} is not open (or no longer kept)."
    locked = access.district_scope(actor.role, actor.district)
    if not access.in_scope(call, locked):
        return "out_of_district", f"Call {action.call_id} is not in your district ({locked})."
    if call.get("category") not in QOL_CATEGORIES:
        return "not_qol", "Only quality-of-life calls take dashboard actions."
    if action.kind == "claim" and call.get("status") not in OPEN_STATUSES:
        return "call_closed", f"CAD has closed call {action.call_id}; it cannot be taken."
    return None


def new_work(call: Mapping[str, Any]) -> dict[str, Any]:
    """The empty work record of a call."""
    return {"call_id": str(call.get("call_id")), "district": call.get("district"),
            "claimed_by": None, "claimed_role": None, "claimed_at": None,
            "notes": [], "handled": None, "updated_at": None}


def _refused(code: str, message: str, work: Mapping[str, Any] | None) -> Decision:
    return Decision("refused", code, message, dict(work) if work else None)


def _applied(work: dict[str, Any], message: str, now: float) -> Decision:
    work["updated_at"] = now
    return Decision("applied", "ok", message, work, changed=True)


def _stamp(actor: Actor, action: Action, now: float) -> dict[str, Any]:
    return {"by": actor.name, "role": actor.role, "at": action_time(action.made_at, now),
            "received_at": now, "action_id": action.id}


def _claim(work: dict[str, Any], _call: Mapping[str, Any], action: Action, actor: Actor,
           now: float) -> Decision:
    if work["handled"]:
        return _refused("already_handled", _handled_sentence(work["handled"]), work)
    holder = work["claimed_by"]
    if holder == actor.name:
        return Decision("applied", "already_yours", "You already have this call.", work)
    if holder:
        return _refused("claimed_by_other", f"{holder} has this call.", work)
    stamp = _stamp(actor, action, now)
    work.update(claimed_by=actor.name, claimed_role=actor.role, claimed_at=stamp["at"])
    return _applied(work, "You have this call.", now)


def _release(work: dict[str, Any], _call: Mapping[str, Any], _action: Action, actor: Actor,
             now: float) -> Decision:
    holder = work["claimed_by"]
    if not holder:
        return Decision("applied", "not_claimed", "Nobody has this call.", work)
    if holder != actor.name and not access.may_override(actor):
        return _refused("claimed_by_other", f"{holder} has this call; only they or a "
                        "supervisor can release it.", work)
    work.update(claimed_by=None, claimed_role=None, claimed_at=None)
    return _applied(work, f"Released (was {holder}'s).", now)


def _note(work: dict[str, Any], call: Mapping[str, Any], action: Action, actor: Actor,
          now: float) -> Decision:
    if len(work["notes"]) >= NOTES_KEPT:
        return _refused("note_limit", f"This call already has {NOTES_KEPT} notes.", work)
    note = {**_stamp(actor, action, now), "text": redact_caller(action.text, call)}
    work["notes"] = [*work["notes"], note]
    return _applied(work, "Note added.", now)


def _handled(work: dict[str, Any], call: Mapping[str, Any], action: Action, actor: Actor,
             now: float) -> Decision:
    if work["handled"]:
        return _refused("already_handled", _handled_sentence(work["handled"]), work)
    holder = work["claimed_by"]
    if holder and holder != actor.name and not access.may_override(actor):
        return _refused("claimed_by_other", f"{holder} has this call; only they or a "
                        "supervisor can mark it handled.", work)
    assert action.outcome is not None  # parse_action checks handled has one
    work["handled"] = {**_stamp(actor, action, now), "outcome": action.outcome}
    if action.text:
        work["handled"]["text"] = redact_caller(action.text, call)
    return _applied(work, f"Marked handled: {OUTCOMES[action.outcome]}.", now)


_RULES = {"claim": _claim, "release": _release, "note": _note, "handled": _handled}


def _handled_sentence(handled: Mapping[str, Any]) -> str:
    label = OUTCOMES.get(str(handled.get("outcome")), str(handled.get("outcome")))
    return f"{handled.get('by')} already marked this call handled ({label})."


# --- caller details never stored -------------------------------------------------------------

_DIGITS = re.compile(r"\d")


def redact_caller(text: str, call: Mapping[str, Any]) -> str:
    """``text`` with the call's caller name and phone number (any punctuation) replaced by
    "[caller]": a note typed from a screen that shows them must not carry them to tablets."""
    name = str(call.get("caller_name") or "").strip()
    if len(name) >= 3:
        text = re.sub(re.escape(name), "[caller]", text, flags=re.IGNORECASE)
    digits = "".join(_DIGITS.findall(str(call.get("caller_phone") or "")))
    if len(digits) >= 7:
        # The digits in order with up to 3 non-digits between any two: 860-555-1234,
        # (860) 555 1234, 8605551234 and 555-1234 all match; 5551234999 does not.
        gap = r"\D{0,3}"
        local = gap.join(re.escape(digit) for digit in digits[-7:])
        area = gap.join(re.escape(digit) for digit in digits[-10:-7])
        prefix = rf"(?:\+?1{gap})?(?:\(?{area}{gap})?" if area else ""
        text = re.sub(rf"(?<!\d){prefix}{local}(?!\d)", "[caller]", text)
    return text


# --- records --------------------------------------------------------------------------------

def work_change(work: Mapping[str, Any]) -> Change:
    """The change record that tells every page about a call's work record."""
    return Change("work", "upsert", str(work["call_id"]), dict(work))


@dataclass(frozen=True)
class Records:
    """What an applied action appends besides the work record: the action log entry (what a
    department forwards to its CAD) and, for a handled call, its outcome record."""

    action: dict[str, str]
    outcome: dict[str, str] | None = None


def records(action: Action, decision: Decision, actor: Actor, call: Mapping[str, Any],
            now: float) -> Records:
    """The stream entries (all values strings) of an applied action."""
    when = action_time(action.made_at, now)
    entry = {
        "action_id": action.id, "call_id": action.call_id, "kind": action.kind,
        "outcome": action.outcome or "", "text": _stored_text(action, decision),
        "by": actor.name, "role": actor.role, "district": str(call.get("district") or ""),
        "at": repr(round(when, 3)), "received_at": repr(round(now, 3)),
    }
    outcome = None
    if action.kind == "handled" and decision.changed:
        outcome = {
            "call_id": action.call_id, "outcome": action.outcome or "",
            "category": str(call.get("category") or ""),
            "district": str(call.get("district") or ""),
            "neighborhood": str(call.get("neighborhood") or ""),
            "priority": str(call.get("priority") or ""), "by": actor.name,
            "role": actor.role, "at": repr(round(when, 3)),
        }
    return Records(entry, outcome)


def _stored_text(action: Action, decision: Decision) -> str:
    work = decision.work or {}
    if action.kind == "note" and work.get("notes"):
        return str(work["notes"][-1]["text"])
    if action.kind == "handled" and work.get("handled"):
        return str(work["handled"].get("text", ""))
    return ""
