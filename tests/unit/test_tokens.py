"""Websocket tokens and the push views (pure: no server)."""

from __future__ import annotations

import json

import pytest
from itsdangerous import URLSafeTimedSerializer

from streams.core import pushview
from streams.core.tokens import (
    ROLES,
    TokenClaims,
    TokenExpired,
    TokenInvalid,
    make_ws_token,
    sign_token,
    verify_token,
)

SECRET = "a-long-random-test-secret"
NOW = 1_750_000_000.0


def test_round_trip_keeps_user_role_and_district() -> None:
    """A fresh token verifies to exactly the claims it was made from."""
    token = make_ws_token(SECRET, "ana", "cso", "North", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW + 10) == TokenClaims("ana", "cso", "North")


def test_district_may_be_absent() -> None:
    """Roles without a district carry None."""
    token = make_ws_token(SECRET, "cmdr", "commander", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW).district is None


def test_token_is_the_documented_itsdangerous_format() -> None:
    """Any itsdangerous URLSafeTimedSerializer(secret, salt='ws') reads the payload."""
    token = make_ws_token(SECRET, "sup", "supervisor", sid="0123abcd")
    payload = URLSafeTimedSerializer(SECRET, salt="ws").loads(token, max_age=60)
    assert payload == {"user": "sup", "role": "supervisor", "district": None,
                       "sid": "0123abcd"}


def test_token_carries_the_session_id() -> None:
    """The sid a token was made with comes back from verification (push closes the socket
    when that session ends); a token without one verifies with sid None."""
    token = make_ws_token(SECRET, "ana", "cso", "North", now=NOW, sid="5f" * 16)
    assert verify_token(SECRET, token, 300, now=NOW).sid == "5f" * 16
    assert verify_token(SECRET, make_ws_token(SECRET, "ana", "cso", "North", now=NOW), 300,
                        now=NOW).sid is None


@pytest.mark.parametrize("sid", ["", 7, ["x"]])
def test_token_with_a_malformed_session_id_is_invalid(sid: object) -> None:
    """A signed payload whose sid is not text is refused."""
    from itsdangerous import URLSafeTimedSerializer as Serializer

    token = Serializer(SECRET, salt="ws").dumps({"user": "a", "role": "cso", "sid": sid})
    with pytest.raises(TokenInvalid, match="session id"):
        verify_token(SECRET, token, 300)


def test_token_at_its_max_age_is_still_valid() -> None:
    """A token exactly max_age seconds old verifies."""
    token = make_ws_token(SECRET, "ana", "sro", "South", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW + 300).user == "ana"


def test_expired_token_is_refused_as_expired() -> None:
    """A token older than its lifetime raises TokenExpired (the page fetches a new one)."""
    token = make_ws_token(SECRET, "ana", "cso", now=NOW)
    with pytest.raises(TokenExpired):
        verify_token(SECRET, token, 300, now=NOW + 301)


def test_token_signed_with_another_secret_is_invalid() -> None:
    """Another deployment's token is refused."""
    token = make_ws_token("another-secret", "ana", "admin", now=NOW)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300, now=NOW)


def test_tampered_payload_is_invalid() -> None:
    """Changing one character of the payload breaks the signature."""
    token = make_ws_token(SECRET, "ana", "cso", now=NOW)
    flipped = ("B" if token[3] != "B" else "C")
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token[:3] + flipped + token[4:], 300, now=NOW)


def test_role_escalation_by_resigning_without_secret_is_invalid() -> None:
    """A token claiming admin, signed with a guessed key, is refused."""
    forged = URLSafeTimedSerializer("guess", salt="ws").dumps(
        {"user": "ana", "role": "admin", "district": None})
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, forged, 300)


def test_other_salt_is_invalid() -> None:
    """A session-cookie style signature (another salt) is not a websocket token."""
    other = URLSafeTimedSerializer(SECRET, salt="cookie-session").dumps(
        {"user": "ana", "role": "admin", "district": None})
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, other, 300)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
def test_missing_or_garbage_token_is_invalid(token: str | None) -> None:
    """No token or a non-token string is refused."""
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300)


@pytest.mark.parametrize("payload", [
    ["ana"], {"role": "cso"}, {"user": "", "role": "cso"}, {"user": "ana", "role": "chief"},
    {"user": "ana", "role": "cso", "district": 3},
])
def test_signed_but_malformed_payload_is_invalid(payload: object) -> None:
    """Correctly signed payloads without a user, a known role or a text district are refused."""
    token = URLSafeTimedSerializer(SECRET, salt="ws").dumps(payload)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300)


def test_signing_refuses_unknown_role_and_empty_secret() -> None:
    """Tokens are never minted for a role nobody checks, or with no secret."""
    with pytest.raises(ValueError, match="unknown role"):
        sign_token(SECRET, TokenClaims("ana", "chief"))
    with pytest.raises(ValueError, match="empty secret"):
        make_ws_token("", "ana", "cso")


def test_roles_are_the_access_modules() -> None:
    """Token roles are the one list of roles in streams.core.access."""
    from streams.core import access

    assert ROLES is access.ROLES


# --- push views ---------------------------------------------------------------------------
CALL = {"call_id": "C1", "status": "pending", "caller_name": "Jo", "caller_phone": "555",
        "applied": ["e1"], "address": "1 Main St"}


@pytest.mark.parametrize("role", ["cso", "sro"])
def test_tablet_views_drop_caller_fields(role: str) -> None:
    """CSO/SRO views of a call have no caller name, phone or internal fields."""
    assert pushview.public_call(CALL, role) == {
        "call_id": "C1", "status": "pending", "address": "1 Main St"}


@pytest.mark.parametrize("role", ["commander", "supervisor", "admin"])
def test_full_views_keep_caller_fields(role: str) -> None:
    """Other roles see caller details but never the internal applied list."""
    view = pushview.public_call(CALL, role)
    assert view["caller_name"] == "Jo" and view["caller_phone"] == "555"
    assert "applied" not in view


def test_filter_changes_only_touches_call_data() -> None:
    """Unit changes pass unchanged; call changes lose caller fields for tablets."""
    unit = {"entity": "unit", "op": "upsert", "id": "U1", "data": {"unit_id": "U1",
                                                                   "caller_name": "n/a"}}
    call = {"entity": "call", "op": "remove", "id": "C1", "data": CALL}
    filtered = pushview.filter_changes([unit, call], "cso")
    assert filtered[0] == unit
    assert filtered[1]["data"] == {"call_id": "C1", "status": "pending", "address": "1 Main St"}
    assert CALL["caller_name"] == "Jo"  # the input is not mutated


def test_decode_batch_accepts_lists_of_objects_only() -> None:
    """A batch must be a JSON list of objects; anything else is a ValueError."""
    assert pushview.decode_batch(b'[{"entity":"unit"}]') == [{"entity": "unit"}]
    for bad in (b"", b"{}", b"[1]", b"\xff"):
        with pytest.raises(ValueError):
            pushview.decode_batch(bad)


def test_assemble_freshness_covers_every_source() -> None:
    """Freshness has every feed, with times, counts and rejections as numbers."""
    view = pushview.assemble_freshness({b"cad": b"100.5", b"cad:seen": b"101"},
                                       {b"cad": b"7", b"cad:rejected": b"2"})
    assert view["cad"] == {"event_time": 100.5, "seen": 101.0, "count": 7, "rejected": 2}
    assert view["avl"] == {"event_time": None, "seen": None, "count": 0, "rejected": 0}
    assert list(view) == ["cad", "avl", "shotspotter", "mutualink"]


def test_assemble_snapshot_filters_calls_for_role() -> None:
    """A snapshot for a CSO keeps call order and drops caller fields."""
    calls = [CALL, {**CALL, "call_id": "C2"}]
    snap = pushview.assemble_snapshot("5-1", calls, [{"unit_id": "B"}, {"unit_id": "A"}],
                                      [], [], {}, "cso")
    assert [call["call_id"] for call in snap["calls"]] == ["C1", "C2"]
    assert all("caller_name" not in call for call in snap["calls"])
    assert [unit["unit_id"] for unit in snap["units"]] == ["A", "B"]
    assert snap["type"] == "snapshot" and snap["last_id"] == "5-1"
    json.dumps(snap)


def test_decode_json_values_skips_missing_and_broken() -> None:
    """Missing hash fields and unreadable JSON are skipped, not fatal."""
    assert pushview.decode_json_values([b'{"a":1}', None, b"{", b"[1]"]) == [{"a": 1}]


@pytest.mark.parametrize(("since", "first", "last", "expected"), [
    (None, "1-0", "9-0", False),
    ("5-0", "1-0", "9-0", True),
    ("1-0", "1-0", "9-0", True),
    ("9-0", "1-0", "9-0", True),
    ("0-5", "1-0", "9-0", False),  # trimmed past it: a gap is possible
    ("10-0", "1-0", "9-0", False),  # from the future: the stream was reset
    ("0-0", None, None, True),
    ("5-0", None, None, False),
    ("nonsense", "1-0", "9-0", False),
    ("5", "1-0", "9-0", True),
])
def test_can_resync(since: str | None, first: str | None, last: str | None,
                    expected: bool) -> None:
    """Resync only when every entry after since is still retained."""
    assert pushview.can_resync(since, first, last) is expected


def test_stream_ids_parse_and_order_numerically() -> None:
    """Stream ids compare as numbers, not text."""
    assert pushview.parse_stream_id("10-0") > pushview.parse_stream_id("9-5")
    assert pushview.format_stream_id(pushview.parse_stream_id("17-3")) == "17-3"
    with pytest.raises(ValueError, match="not a stream id"):
        pushview.parse_stream_id("x-1")


# --- district scoping -------------------------------------------------------------------
def change(call_id: str, district: str | None, op: str = "upsert") -> dict[str, object]:
    data = {**CALL, "call_id": call_id, "district": district}
    return {"entity": "call", "op": op, "id": call_id, "data": data}


@pytest.mark.parametrize(("role", "district", "group"), [
    ("cso", "North", ("tablet", "North")),
    ("sro", "South", ("tablet", "South")),
    ("cso", None, ("tablet", None)),
    ("commander", "North", ("full", None)),
    ("supervisor", None, ("full", None)),
    ("admin", "Central", ("full", None)),
])
def test_view_group_scopes_only_tablets_with_a_district(
        role: str, district: str | None, group: tuple[str, str | None]) -> None:
    """Only a cso/sro with a district is scoped to it; everyone else sees every district."""
    assert pushview.view_group(role, district) == group


def test_call_districts_reports_where_each_call_was_before_each_change() -> None:
    """advance() gives the district before each change (NOWHERE for new calls) and learns."""
    known = pushview.CallDistricts({"A": "North", "B": None})
    unit = {"entity": "unit", "op": "upsert", "id": "U1", "data": {}}
    previous = known.advance([change("A", "South"), unit, change("A", "Central"),
                              change("N", "North"), change("B", "South", op="remove"),
                              change("B", "South")])
    assert previous == ["North", "", "South", pushview.NOWHERE, "", pushview.NOWHERE]
    assert known.advance([change("A", "North"), change("N", "North")]) == ["Central", "North"]
    assert len(known) == 3


def test_scope_changes_keeps_the_district_and_removes_calls_that_leave_it() -> None:
    """A North group gets North calls (no caller), units, and a bare removal for a call
    that moved away; other districts' calls never appear."""
    unit = {"entity": "unit", "op": "upsert", "id": "U1", "data": {"district": "South"}}
    changes = [change("A", "North"), change("B", "South"), unit, change("C", "South"),
               change("D", "South", op="remove"), change("E", "North", op="remove")]
    previous = ["North", pushview.NOWHERE, "", "North", "North", "North"]
    scoped = pushview.scope_changes(changes, previous, ("tablet", "North"))
    assert [(c["id"], c["op"]) for c in scoped] == [
        ("A", "upsert"), ("U1", "upsert"), ("C", "remove"), ("D", "remove"), ("E", "remove")]
    assert scoped[0]["data"] == {"call_id": "A", "status": "pending", "address": "1 Main St",
                                 "district": "North"}
    assert scoped[2]["data"] == {} and scoped[3]["data"] == {}
    assert scoped[4]["data"]["district"] == "North" and "caller_name" not in scoped[4]["data"]
    assert scoped[1] == unit
    assert "South" not in json.dumps([c for c in scoped if c["entity"] == "call"])


@pytest.mark.parametrize(("group", "caller"), [(("full", None), "Jo"), (("tablet", None), None)])
def test_scope_changes_without_a_district_passes_every_call(
        group: tuple[str, str | None], caller: str | None) -> None:
    """Unscoped groups get every call; tablets still without caller details."""
    scoped = pushview.scope_changes([change("A", "North"), change("B", "South")],
                                    ["", ""], group)
    assert [c["id"] for c in scoped] == ["A", "B"]
    assert scoped[0]["data"].get("caller_name") == caller


def test_scope_changes_needs_one_previous_district_per_change() -> None:
    """Mismatched lengths are a programming error, not a silent truncation."""
    with pytest.raises(ValueError):
        pushview.scope_changes([change("A", "North")], [], ("tablet", "North"))


def test_assemble_snapshot_for_a_district_keeps_only_its_calls() -> None:
    """A district snapshot drops other districts' calls but keeps every unit."""
    calls = [{**CALL, "district": "North"}, {**CALL, "call_id": "C2", "district": "South"}]
    snap = pushview.assemble_snapshot("5-1", calls, [{"unit_id": "A", "district": "South"}],
                                      [], [], {}, "cso", "North")
    assert [call["call_id"] for call in snap["calls"]] == ["C1"]
    assert snap["units"] == [{"unit_id": "A", "district": "South"}]
