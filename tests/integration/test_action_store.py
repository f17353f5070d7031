"""Actions on calls in real Redis: one claim wins a race, ids apply once, CAD state untouched,
and POST /api/actions answers devices (dashboard.actionstore, dashboard.actionroutes)."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from dashboard import auth
from dashboard.actionstore import ActionStore
from dashboard.app import create_app
from streams.core import audit as audit_rules
from streams.core.actions import Action, Actor
from streams.core.keys import Keys
from streams.core.settings import Settings
from tests.integration import test_push
from tests.integration.test_push import (
    collect_changes,
    open_call,
    open_client,
    receive,
    write_changes,
)

push_settings, start_push = test_push.push_settings, test_push.start_push  # shared fixtures
sessions = test_push.sessions  # push checks each token's session: pages sign in first

PASSWORD = "test-password-1"
CSO = Actor("cso-north", "cso", "North")


def put_call(r: redis.Redis, keys: Keys, call_id: str = "C1", **fields: Any) -> dict[str, Any]:
    """A call's CAD state as the consumer stores it."""
    call = {"call_id": call_id, "category": "noise", "status": "pending", "district": "North",
            "neighborhood": "Blue Hills", "priority": 3, "received_time": 1.0e9,
            "caller_name": "Zebulon Callerton", "caller_phone": "860-555-1234",
            "applied": ["e1"], **fields}
    r.hset(keys.calls, call_id, json.dumps(call))
    return call


def action(kind: str = "claim", call_id: str = "C1", **fields: Any) -> Action:
    return Action(id=uuid.uuid4().hex, call_id=call_id, kind=kind,  # type: ignore[arg-type]
                  **fields)


def changes(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [change for _, entry in r.xrange(keys.changes)
            for change in json.loads(entry[b"batch"])]


def test_many_concurrent_claimers_exactly_one_wins(r: redis.Redis, keys: Keys,
                                                   redis_factory: Callable[[], redis.Redis],
                                                   ) -> None:
    """24 officers on 24 connections claim one call at the same instant: one wins, every
    other is refused and told the winner's name; one work change is published."""
    put_call(r, keys)
    officers = [Actor(f"cso-{number:02d}", "cso", "North") for number in range(24)]
    stores = [ActionStore(redis_factory(), keys) for _ in officers]
    start = threading.Barrier(len(officers))
    answers: list[dict[str, Any]] = [{} for _ in officers]

    def claim(index: int) -> None:
        start.wait()
        answers[index], _ = stores[index].apply(action(), officers[index])

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(len(officers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [answer for answer in answers if answer["status"] == "applied"]
    assert len(winners) == 1
    winner = winners[0]["work"]["claimed_by"]
    refused = [answer for answer in answers if answer["status"] == "refused"]
    assert len(refused) == len(officers) - 1
    assert all(answer["code"] == "claimed_by_other" and winner in answer["message"]
               for answer in refused)
    stored = json.loads(r.get(keys.work("C1")))
    assert stored["claimed_by"] == winner
    published = [change for change in changes(r, keys) if change["entity"] == "work"]
    assert len(published) == 1 and published[0]["data"]["claimed_by"] == winner


def test_an_action_id_applies_once_however_often_it_is_sent(r: redis.Redis, keys: Keys,
                                                            redis_factory: Callable[[],
                                                                                    redis.Redis],
                                                            ) -> None:
    """The same note sent 5 times at once and 3 times after is stored once and answered
    the same each time; the actions stream and the changes stream get one entry."""
    put_call(r, keys)
    note = action("note", text="Music audible from the street")
    stores = [ActionStore(redis_factory(), keys) for _ in range(5)]
    start = threading.Barrier(len(stores))
    results: list[tuple[dict[str, Any], bool]] = []

    def send(store: ActionStore) -> None:
        start.wait()
        results.append(store.apply(note, CSO))

    threads = [threading.Thread(target=send, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results += [stores[0].apply(note, CSO) for _ in range(3)]
    assert [repeated for _, repeated in results].count(False) == 1
    assert len({json.dumps(answer, sort_keys=True) for answer, _ in results}) == 1
    work = json.loads(r.get(keys.work("C1")))
    assert [n["text"] for n in work["notes"]] == ["Music audible from the street"]
    assert r.xlen(keys.actions) == 1
    assert len(changes(r, keys)) == 1


def test_a_refused_id_stays_refused_and_another_user_cannot_replay_an_id(
        r: redis.Redis, keys: Keys) -> None:
    """A refused claim answers the same on a resend, even after the call is released; an id
    sent by someone else is refused without showing them the call's record."""
    put_call(r, keys)
    store = ActionStore(r, keys)
    store.apply(action(), CSO)
    late = action()
    first, _ = store.apply(late, Actor("cso-b", "cso", "North"))
    assert first["code"] == "claimed_by_other"
    store.apply(action("release"), CSO)
    again, repeated = store.apply(late, Actor("cso-b", "cso", "North"))
    assert repeated and again == first
    forged, _ = store.apply(late, Actor("cso-c", "cso", "North"))
    assert forged["code"] == "id_in_use" and forged["work"] is None


def test_actions_never_touch_cad_state(r: redis.Redis, keys: Keys) -> None:
    """Claim, note and handled leave the call's CAD record, open index and queues as they
    were; the outcome goes to the outcomes stream with category and district."""
    call = put_call(r, keys)
    r.zadd(keys.calls_open, {"C1": 3e11})
    before = (r.hget(keys.calls, "C1"), r.zrange(keys.calls_open, 0, -1, withscores=True))
    store = ActionStore(r, keys)
    for step in (action(), action("note", text="on it"), action("handled", outcome="cited")):
        answer, _ = store.apply(step, CSO)
        assert answer["status"] == "applied", answer
    assert (r.hget(keys.calls, "C1"), r.zrange(keys.calls_open, 0, -1, withscores=True)) \
        == before
    assert json.loads(r.hget(keys.calls, "C1")) == call
    outcomes = store.outcomes(0, 2e10)
    assert len(outcomes) == 1
    assert outcomes[0]["outcome"] == "cited" and outcomes[0]["category"] == "noise"
    assert outcomes[0]["district"] == "North"
    assert [entry[b"kind"] for _, entry in r.xrange(keys.actions)] == [b"claim", b"note",
                                                                       b"handled"]


def test_no_caller_detail_in_any_action_record(r: redis.Redis, keys: Keys) -> None:
    """A note typed with the caller's name and number is stored, logged and published
    without them."""
    put_call(r, keys)
    store = ActionStore(r, keys)
    answer, _ = store.apply(action("note", text="Zebulon Callerton 860-555-1234 called back"),
                            CSO)
    assert answer["status"] == "applied"
    written = [r.get(keys.work("C1")), *[json.dumps({k.decode(): v.decode() for k, v in
                                                      entry.items()})
                                         for _, entry in r.xrange(keys.actions)],
               json.dumps(changes(r, keys)), json.dumps(answer)]
    for text in written:
        assert text is not None
        as_text = text.decode() if isinstance(text, bytes) else text
        assert "Zebulon" not in as_text and "555-1234" not in as_text


def test_work_of_reads_records_for_the_calls_that_have_one(r: redis.Redis, keys: Keys) -> None:
    put_call(r, keys, "C1")
    put_call(r, keys, "C2")
    store = ActionStore(r, keys)
    store.apply(action(call_id="C2"), CSO)
    work = store.work_of(["C1", "C2", "C3"])
    assert list(work) == ["C2"] and work["C2"]["claimed_by"] == "cso-north"


# --- the HTTP endpoint -------------------------------------------------------------------

@pytest.fixture
def app_client(settings: Settings, r: redis.Redis) -> Callable[[str], Any]:
    """``client_for(name)``: a Flask test client signed in as that user (with CSRF)."""
    ready = dataclasses.replace(settings, secret_key="integration-secret")
    users = auth.open_users(ready)
    for name, role, district in (("cso-n", "cso", "North"), ("sro-s", "sro", "South"),
                                 ("boss", "commander", None)):
        users.add(name, role, PASSWORD, district)
    users.client.close()
    app = create_app(ready)

    def client_for(name: str) -> Any:
        client = app.server.test_client()
        page = client.get("/login").get_data(True)
        nonce = re.search(r'name="nonce" value="([^"]+)"', page)
        assert nonce
        client.post("/login", data={"name": name, "password": PASSWORD,
                                    "nonce": nonce.group(1), "next": "/"})
        client.get("/")
        cookie = client.get_cookie("_csrf_token")
        assert cookie is not None
        client.csrf = cookie.value
        return client

    return client_for


def post(client: Any, payload: Any) -> Any:
    return client.post("/api/actions", json=payload, headers={"X-CSRFToken": client.csrf})


def test_the_endpoint_applies_refuses_and_repeats(app_client: Callable[[str], Any],
                                                  r: redis.Redis, keys: Keys) -> None:
    """A cso claims over HTTP (200); a South sro is refused a North call (403); a resend of
    the same id answers the same with repeated=true; bad JSON is a 400 with a sentence."""
    put_call(r, keys)
    cso, sro = app_client("cso-n"), app_client("sro-s")
    claim = {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "claim"}
    first = post(cso, claim)
    assert first.status_code == 200 and first.json["work"]["claimed_by"] == "cso-n"
    again = post(cso, claim)
    assert again.status_code == 200 and again.json["repeated"] is True
    assert again.json["work"] == first.json["work"]
    outside = post(sro, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "note",
                         "text": "mine?"})
    assert outside.status_code == 403 and outside.json["code"] == "out_of_district"
    assert outside.json["work"] is None
    bad = post(cso, {"id": "x", "call_id": "C1", "kind": "claim"})
    assert bad.status_code == 400 and "id" in bad.json["message"]


def test_the_endpoint_refuses_commanders_and_requests_without_csrf(
        app_client: Callable[[str], Any], r: redis.Redis, keys: Keys) -> None:
    put_call(r, keys)
    boss = app_client("boss")
    refused = post(boss, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "claim"})
    assert refused.status_code == 403 and refused.json["code"] == "not_allowed"
    cso = app_client("cso-n")
    no_csrf = cso.post("/api/actions", json={"id": uuid.uuid4().hex, "call_id": "C1",
                                             "kind": "claim"})
    assert no_csrf.status_code == 403
    assert r.get(keys.work("C1")) is None


def audit_entries(r: redis.Redis, keys: Keys, action: str) -> list[dict[str, Any]]:
    return [audit_rules.decode(entry_id, fields) for entry_id, fields in r.xrange(keys.audit)
            if fields[b"action"] == action.encode()]


def test_every_action_leaves_its_audit_entry(app_client: Callable[[str], Any],
                                             r: redis.Redis, keys: Keys) -> None:
    """Claim, note, handled (applied), a South sro's refused note, a resend and a
    commander's refused claim each leave an audit entry with user, role, district, the
    call id and what the answer was; none holds the caller's name or phone."""
    put_call(r, keys)
    cso, sro, boss = app_client("cso-n"), app_client("sro-s"), app_client("boss")
    claim = {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "claim"}
    for client, payload in (
            (cso, claim), (cso, claim),
            (cso, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "note",
                   "text": "Zebulon Callerton says it stopped"}),
            (sro, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "note", "text": "x"}),
            (cso, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "handled",
                   "outcome": "warned"}),
            (boss, {"id": uuid.uuid4().hex, "call_id": "C1", "kind": "claim"})):
        post(client, payload)
    claims = audit_entries(r, keys, "claim")
    assert [(e["user"], e["role"], e["district"], e["call_id"], e["detail"].get("repeated"))
            for e in claims] == [("cso-n", "cso", "North", "C1", None),
                                 ("cso-n", "cso", "North", "C1", True)]
    assert claims[0]["detail"]["status"] == "applied"
    assert claims[0]["detail"]["action_id"] == claim["id"]
    notes = audit_entries(r, keys, "note")
    assert [(e["user"], e["detail"]["status"], e["detail"]["code"]) for e in notes] == [
        ("cso-n", "applied", "ok"), ("sro-s", "refused", "out_of_district")]
    (handled,) = audit_entries(r, keys, "handled")
    assert handled["detail"]["outcome"] == "warned" and handled["call_id"] == "C1"
    (refused,) = audit_entries(r, keys, "refused")
    assert refused["user"] == "boss" and refused["detail"]["why"] == "not_allowed"
    assert all(e["address"] for e in claims + notes)
    trail = b"".join(value for _, fields in r.xrange(keys.audit) for value in fields.values())
    assert b"Zebulon" not in trail and b"555-1234" not in trail


# --- through the push service ----------------------------------------------------------------

def test_work_records_reach_the_calls_district_and_the_wall_only(
        start_push: Callable[..., Any], r: redis.Redis, keys: Keys) -> None:
    """A claim on a North call is pushed to North tablets and the wall, never to South's;
    a page connecting later finds it in its snapshot."""
    open_call(r, keys, "N1", "North")
    open_call(r, keys, "S1", "South")
    push = start_push()
    store = ActionStore(r, keys)
    with open_client(push.port, "cso", district="North") as north, \
            open_client(push.port, "sro", district="South") as south, \
            open_client(push.port) as wall:
        for page in (north, south, wall):
            assert receive(page)["work"] == []
        answer, _ = store.apply(action(call_id="N1"), CSO)
        assert answer["status"] == "applied"
        store.apply(action(call_id="S1"), Actor("sro-south", "sro", "South"))
        north_changes = collect_changes(north, 1)[0]
        wall_changes = collect_changes(wall, 2)[0]
        south_changes = collect_changes(south, 1)[0]
        write_changes(r, keys, [{"entity": "unit", "op": "upsert", "id": "U1", "data": {}}])
        north_changes += collect_changes(north, 1)[0]  # nothing of S1's arrived before U1
    assert [(change["entity"], change["id"]) for change in north_changes] == [
        ("work", "N1"), ("unit", "U1")]
    assert north_changes[0]["data"]["claimed_by"] == "cso-north"
    assert sorted(change["id"] for change in wall_changes) == ["N1", "S1"]
    assert [change["id"] for change in south_changes] == ["S1"]
    with open_client(push.port, "cso", district="North") as later:
        snapshot = receive(later)
    assert [record["call_id"] for record in snapshot["work"]] == ["N1"]

