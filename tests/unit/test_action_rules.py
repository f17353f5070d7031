"""The rules of actions on calls: claim, release, note, handled (streams.core.actions)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core import actions
from streams.core.actions import Action, Actor, decide, parse_action, redact_caller

NOW = 1_750_000_000.0
CSO = Actor("cso-north", "cso", "North")
OTHER_CSO = Actor("cso-north-2", "cso", "North")
SOUTH_SRO = Actor("sro-south", "sro", "South")
SUPERVISOR = Actor("supervisor", "supervisor")
COMMANDER = Actor("commander", "commander")


def call(**fields: Any) -> dict[str, Any]:
    base = {"call_id": "C1", "category": "noise", "status": "pending", "district": "North",
            "neighborhood": "Blue Hills", "priority": 3, "caller_name": "Zebulon Callerton",
            "caller_phone": "(860) 555-1234"}
    return {**base, **fields}


def act(kind: str, number: int = 1, **fields: Any) -> Action:
    return Action(id=f"action-{number:04d}", call_id="C1", kind=kind,  # type: ignore[arg-type]
                  **fields)


def claimed(by: Actor = CSO) -> dict[str, Any]:
    decision = decide(None, call(), act("claim"), by, NOW)
    assert decision.status == "applied" and decision.work is not None
    return decision.work


def test_a_claim_on_a_free_call_takes_it_with_who_and_when() -> None:
    """Claiming a free call records the claimer, their role and the time."""
    decision = decide(None, call(), act("claim"), CSO, NOW)
    assert decision.status == "applied" and decision.changed
    assert decision.work is not None
    assert decision.work["claimed_by"] == "cso-north"
    assert decision.work["claimed_role"] == "cso"
    assert decision.work["claimed_at"] == NOW
    assert decision.work["district"] == "North"


def test_a_second_claimer_is_refused_and_told_who_has_it() -> None:
    """The call is taken: another officer's claim is refused with the holder's name."""
    decision = decide(claimed(), call(), act("claim", 2), OTHER_CSO, NOW + 1)
    assert decision.status == "refused" and decision.code == "claimed_by_other"
    assert "cso-north" in decision.message
    assert decision.work is not None and decision.work["claimed_by"] == "cso-north"
    assert not decision.changed


def test_claiming_your_own_call_again_changes_nothing() -> None:
    decision = decide(claimed(), call(), act("claim", 2), CSO, NOW + 1)
    assert decision.status == "applied" and decision.code == "already_yours"
    assert not decision.changed


@pytest.mark.parametrize(("who", "status"), [(CSO, "applied"), (OTHER_CSO, "refused"),
                                             (SUPERVISOR, "applied")])
def test_only_the_claimer_or_a_supervisor_releases_a_claim(who: Actor, status: str) -> None:
    decision = decide(claimed(), call(), act("release", 2), who, NOW + 1)
    assert decision.status == status
    if status == "applied":
        assert decision.work is not None and decision.work["claimed_by"] is None


def test_a_released_call_can_be_claimed_by_someone_else() -> None:
    released = decide(claimed(), call(), act("release", 2), CSO, NOW + 1).work
    decision = decide(released, call(), act("claim", 3), OTHER_CSO, NOW + 2)
    assert decision.status == "applied"
    assert decision.work is not None and decision.work["claimed_by"] == "cso-north-2"


def test_notes_keep_who_when_and_text_in_order() -> None:
    work = claimed()
    for number, text in enumerate(["Arrived, music audible", "Spoke to resident"], 2):
        decision = decide(work, call(), act("note", number, text=text), CSO, NOW + number)
        assert decision.status == "applied"
        work = decision.work
    assert work is not None
    assert [note["text"] for note in work["notes"]] == ["Arrived, music audible",
                                                        "Spoke to resident"]
    assert work["notes"][0]["by"] == "cso-north" and work["notes"][1]["at"] == NOW + 3


def test_anyone_in_scope_may_add_a_note_to_a_claimed_call() -> None:
    decision = decide(claimed(), call(), act("note", 2, text="Seen it too"), OTHER_CSO, NOW)
    assert decision.status == "applied"


def test_notes_past_the_limit_are_refused() -> None:
    work = claimed()
    for number in range(actions.NOTES_KEPT):
        work = decide(work, call(), act("note", number + 2, text=f"n{number}"), CSO, NOW).work
    decision = decide(work, call(), act("note", 999, text="one more"), CSO, NOW)
    assert decision.status == "refused" and decision.code == "note_limit"


def test_handled_records_the_outcome_and_then_refuses_claims() -> None:
    handled = decide(claimed(), call(), act("handled", 2, outcome="warned"), CSO, NOW + 60)
    assert handled.status == "applied" and handled.work is not None
    assert handled.work["handled"]["outcome"] == "warned"
    assert handled.work["handled"]["by"] == "cso-north"
    again = decide(handled.work, call(), act("claim", 3), OTHER_CSO, NOW + 61)
    assert again.status == "refused" and again.code == "already_handled"
    twice = decide(handled.work, call(), act("handled", 4, outcome="cited"), CSO, NOW + 62)
    assert twice.status == "refused" and twice.code == "already_handled"


def test_a_call_claimed_by_another_officer_cannot_be_closed_by_you() -> None:
    decision = decide(claimed(), call(), act("handled", 2, outcome="unfounded"), OTHER_CSO, NOW)
    assert decision.status == "refused" and decision.code == "claimed_by_other"
    by_supervisor = decide(claimed(), call(), act("handled", 3, outcome="unfounded"),
                           SUPERVISOR, NOW)
    assert by_supervisor.status == "applied"


def test_an_unclaimed_call_can_be_marked_handled_directly() -> None:
    decision = decide(None, call(), act("handled", outcome="gone_on_arrival"), CSO, NOW)
    assert decision.status == "applied"


@pytest.mark.parametrize(("actor", "the_call", "code"), [
    (SOUTH_SRO, call(), "out_of_district"),
    (COMMANDER, call(), "not_allowed"),
    (CSO, None, "unknown_call"),
    (CSO, call(category="violent"), "not_qol"),
    (CSO, call(status="closed"), "call_closed"),
])
def test_claims_are_refused_outside_scope(actor: Actor, the_call: dict[str, Any] | None,
                                          code: str) -> None:
    """District scope, role, unknown calls, non-QoL calls and closed calls are refused."""
    decision = decide(None, the_call, act("claim"), actor, NOW)
    assert decision.status == "refused" and decision.code == code
    assert not decision.changed


def test_a_supervisor_acts_in_any_district() -> None:
    decision = decide(None, call(district="South"), act("claim"), SUPERVISOR, NOW)
    assert decision.status == "applied"


def test_a_call_closed_in_cad_can_still_get_its_outcome_and_notes() -> None:
    """An officer who handled a call offline still records how, after CAD closed it."""
    closed = call(status="closed")
    assert decide(claimed(), closed, act("handled", 2, outcome="cited"), CSO, NOW).status \
        == "applied"
    assert decide(None, closed, act("note", 3, text="late note"), CSO, NOW).status == "applied"


def test_the_work_record_follows_the_call_into_another_district() -> None:
    moved = call(district="Central")
    decision = decide(claimed(), moved, act("note", 2, text="moved"), SUPERVISOR, NOW)
    assert decision.work is not None and decision.work["district"] == "Central"


@pytest.mark.parametrize(("made_at", "expected"), [
    (None, NOW), (NOW - 300, NOW - 300), (NOW + 30, NOW + 30), (NOW + 3600, NOW),
    (NOW - 10 * 86400, NOW - actions.MADE_AT_MAX_AGE_S)])
def test_offline_actions_keep_the_device_time_within_reason(made_at: float | None,
                                                            expected: float) -> None:
    assert actions.action_time(made_at, NOW) == expected


def test_the_device_time_of_an_offline_claim_is_kept() -> None:
    decision = decide(None, call(), act("claim", made_at=NOW - 120), CSO, NOW)
    assert decision.work is not None and decision.work["claimed_at"] == NOW - 120


@pytest.mark.parametrize(("text", "expected"), [
    ("Zebulon Callerton says loud music", "[caller] says loud music"),
    ("call back zebulon callerton at 860-555-1234", "call back [caller] at [caller]"),
    ("phone 8605551234 no answer", "phone [caller] no answer"),
    ("phone (860) 555 1234", "phone [caller]"),
    ("tried 555-1234 again", "tried [caller] again"),
    ("unit 5551234999 nearby", "unit 5551234999 nearby"),
    ("music from 1234 Main St", "music from 1234 Main St"),
])
def test_caller_details_typed_into_a_note_are_redacted(text: str, expected: str) -> None:
    assert redact_caller(text, call()) == expected


def test_a_stored_note_never_holds_the_callers_name() -> None:
    decision = decide(None, call(), act("note", text="Zebulon Callerton was rude"), CSO, NOW)
    assert decision.work is not None
    assert "Zebulon" not in str(decision.work)


@pytest.mark.parametrize(("payload", "problem"), [
    ([], "JSON object"),
    ({"call_id": "C1", "kind": "claim"}, "id"),
    ({"id": "short", "call_id": "C1", "kind": "claim"}, "id"),
    ({"id": "a" * 10, "kind": "claim"}, "call_id"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "assign"}, "kind"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "note"}, "text"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "note", "text": "x" * 501}, "500"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "handled"}, "outcome"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "handled", "outcome": "shot"}, "outcome"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "claim", "outcome": "warned"}, "outcome"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "claim", "made_at": "yesterday"}, "made_at"),
    ({"id": "a" * 10, "call_id": "C1", "kind": "note", "text": 5}, "text"),
])
def test_malformed_actions_get_a_sentence_saying_what_is_wrong(payload: Any,
                                                               problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_action(payload)


def test_a_well_formed_action_parses_with_its_whitespace_tidied() -> None:
    action = parse_action({"id": "4f1c2b3a-0000", "call_id": " C1 ", "kind": "note",
                           "text": "  two\n lines ", "made_at": NOW})
    assert action == Action("4f1c2b3a-0000", "C1", "note", None, "two lines", NOW)


def test_records_of_a_handled_call_name_its_outcome_category_and_district() -> None:
    action = act("handled", outcome="community_court", text="Referred")
    decision = decide(None, call(), action, CSO, NOW)
    written = actions.records(action, decision, CSO, call(), NOW)
    assert written.outcome is not None
    assert written.outcome["outcome"] == "community_court"
    assert written.outcome["category"] == "noise" and written.outcome["district"] == "North"
    assert written.action["kind"] == "handled" and written.action["text"] == "Referred"
    assert all(isinstance(value, str) for value in written.action.values())
    assert "Zebulon" not in str(written) and "555" not in str(written)


def test_the_change_record_is_a_work_upsert_keyed_by_call() -> None:
    change = actions.work_change(claimed())
    assert (change.entity, change.op, change.id) == ("work", "upsert", "C1")


def test_push_scopes_work_changes_by_where_the_call_is_now() -> None:
    """A work change goes to the tablets of its call's current district (the push reader's
    map, not the record's possibly older district); wall pages get every one."""
    from streams.core import changefeed, pushview  # noqa: PLC0415

    districts = pushview.Districts({("call", "C1"): "North", ("call", "C2"): "South"})
    moved = {**claimed(), "district": "North"}
    changes = changefeed.decode_batch(changefeed.encode_batch([
        changefeed.Change("call", "upsert", "C1", {"call_id": "C1", "district": "South"}),
        actions.work_change(moved),
        actions.work_change({**claimed(), "call_id": "C2", "district": "South"}),
        actions.work_change({**claimed(), "call_id": "C9", "district": "North"}),
    ]))
    previous = districts.advance(changes)
    north = pushview.scope_changes(changes, previous, pushview.view_group("cso", "North"))
    south = pushview.scope_changes(changes, previous, pushview.view_group("sro", "South"))
    wall = pushview.scope_changes(changes, previous, pushview.view_group("commander", None))
    assert [(c.entity, c.id, c.op) for c in north] == [
        ("call", "C1", "remove"), ("work", "C9", "upsert")]
    assert [(c.entity, c.id) for c in south] == [("call", "C1"), ("work", "C1"),
                                                 ("work", "C2")]
    assert len(wall) == 4


def test_snapshots_carry_the_work_of_the_calls_they_show() -> None:
    from streams.core import changefeed, pushview  # noqa: PLC0415

    calls = [call(), call(call_id="C2", district="South")]
    work = [claimed(), {**claimed(), "call_id": "C2"}, {**claimed(), "call_id": "C3"}]
    read = changefeed.SnapshotRead("1-0", {}, {}, {}, ())
    bodies = {"call": calls, "work": work}
    north = changefeed.assemble_snapshot(read, bodies, *pushview.view_group("cso", "North"))
    everyone = changefeed.assemble_snapshot(read, bodies,
                                            *pushview.view_group("commander", None))
    assert [record["call_id"] for record in north["work"]] == ["C1"]
    assert [record["call_id"] for record in everyone["work"]] == ["C1", "C2"]
