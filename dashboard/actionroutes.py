"""``POST /api/actions``: a device sends one action on a call; the answer says what it did.

A plain JSON endpoint rather than a Dash callback so a tablet's offline queue
(``assets/queues.js``) can resend by id whatever it is not sure arrived: the server
applies each id once and answers a repeat with the same answer. Every answer with a
``status`` is final (applied or refused) and the device drops the action from its queue;
anything else (no network, a 5xx, a sign-in wall) leaves it queued. The app's guard has
already refused anonymous requests and POSTs without the CSRF header.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
import redis

from dashboard import audit, runtime
from dashboard.actionstore import ActionBusy, ActionStore
from streams.core import access, actions
from streams.core.keys import Keys

log = logging.getLogger(__name__)

PATH = "/api/actions"
_stores: dict[str, ActionStore] = {}


def store() -> ActionStore:
    """This process's action store (``install`` made it)."""
    return _stores["store"]


def install(server: flask.Flask, client: redis.Redis, keys: Keys) -> None:
    """Add ``POST /api/actions`` to the Flask server, writing through ``client``."""
    _stores["store"] = ActionStore(client, keys)
    server.add_url_rule(PATH, "actions", post_action, methods=["POST"])


def post_action() -> Any:
    user = runtime.current_user()
    if user is None:  # the guard answers first; kept so this route is safe on its own
        return flask.jsonify(error="sign in first"), 403
    if not access.may_act(user):
        log.warning("%s (%s) may not take actions on calls", user.name, user.role)
        audit.record("refused", path=PATH, why="not_allowed")
        return flask.jsonify(status="refused", code="not_allowed",
                             message=f"The {user.role} role cannot take actions on calls."), 403
    try:
        action = actions.parse_action(flask.request.get_json(silent=True))
    except ValueError as error:
        return flask.jsonify(status="refused", code="invalid", message=str(error)), 400
    try:
        answer, repeated = store().apply(action, user)
        record(action, answer, repeated)
    except ActionBusy as error:
        log.warning("%s", error)
        return flask.jsonify(error=str(error)), 503
    except (redis.ConnectionError, redis.TimeoutError) as error:
        # Not applied, or applied but not yet audited: either way the device resends it.
        log.warning("action %s not answered: redis unreachable (%s)", action.id, error)
        return flask.jsonify(error="the server cannot reach its database; try again"), 503
    if answer.get("code") == "out_of_district":
        log.warning("%s asked to %s call %s outside their district", user.name, action.kind,
                    action.call_id)
    return flask.jsonify({**answer, "repeated": repeated}), status_of(answer)


def record(action: actions.Action, answer: dict[str, Any], repeated: bool) -> None:
    """Audit the action (contract 6) before the device hears the answer: applied or refused
    and why. A resend is recorded too, marked repeated: if recording failed the first time
    (the device was answered 503 and resent), the trail still gets the action."""
    detail: dict[str, Any] = {"status": answer.get("status"), "code": answer.get("code"),
                              "action_id": action.id}
    if action.outcome:
        detail["outcome"] = action.outcome
    if repeated:
        detail["repeated"] = True
    audit.record(action.kind, call_id=action.call_id, **detail)


def status_of(answer: dict[str, Any]) -> int:
    """HTTP status of an answer: 200 applied, 403 not yours to act on, 409 refused."""
    if answer.get("status") != "refused":
        return 200
    return 403 if answer.get("code") in ("not_allowed", "out_of_district") else 409
