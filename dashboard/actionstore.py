"""Actions on calls in Redis: the one place that writes them, and the reads pages need.

``ActionStore.apply`` is the only writer (TEAM.md contract 9: one function, so a
partitioned changes stream can be added in one place). Under WATCH of the call's work key
and the action id's key it reads the call's CAD state and work record, lets the pure rules
(``streams.core.actions.decide``) decide, and writes in one MULTI/EXEC: the work record,
the action id's answer, the actions stream (the seam a department forwards to its CAD),
the outcomes stream for a handled call, and one changes-stream entry the push service
relays to every page. Two officers claiming at once: both WATCH the same key, one EXEC
succeeds, the other's fails and it re-reads to find the call taken. An action id that
was already answered gets that same answer again and writes nothing (so a device can
resend whatever it is not sure arrived). CAD state is only read, never written.

Every key one action touches is its call's partition's (``Keys.of_entity``: one hash tag,
one slot on a cluster), so the work change is in that partition's changes stream, in order
with the call's own changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import redis

from streams.core import actions, changefeed
from streams.core.actions import Action, Actor, Decision
from streams.core.keys import (
    ACTION_ID_TTL_SECONDS,
    ACTIONS_MAXLEN,
    CHANGES_FIELD,
    CHANGES_MAXLEN,
    OUTCOMES_MAXLEN,
    WORK_TTL_SECONDS,
    Keys,
)
from streams.core.partitions import stream_id_key
from streams.core.replies import reply_text

log = logging.getLogger(__name__)

ATTEMPTS = 25
"""Optimistic retries of one action before it is reported busy (the device resends)."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ActionBusy(RuntimeError):
    """The call's record kept changing under us; nothing was written, try again."""


class ActionStore:
    """Apply actions and read work records and outcomes, on a sync Redis client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def apply(self, action: Action, actor: Actor, now: float | None = None,
              ) -> tuple[dict[str, Any], bool]:
        """(answer, repeated): the answer to ``action`` by ``actor``; ``repeated`` is True
        when its id was answered before (nothing was written this time)."""
        keys = self.keys.of_entity(action.call_id)
        work_key, done_key = keys.work(action.call_id), keys.action_done(action.id)
        for _ in range(ATTEMPTS):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(work_key, done_key)
                    done = pipe.get(done_key)
                    if done is not None:
                        return _repeat(_decode(done), action, actor), True
                    call = _json_or_none(pipe.hget(keys.calls, action.call_id))
                    work = _json_or_none(pipe.get(work_key))
                    moment = time.time() if now is None else now
                    decision = actions.decide(work, call, action, actor, moment)
                    answer = {**decision.answer(action), "by": actor.name}
                    pipe.multi()
                    self._write(pipe, keys, action, actor, call, decision, answer, moment)
                    pipe.execute()
                except redis.WatchError:
                    continue
            log.info("action %s %s on call %s by %s (%s): %s", action.id, action.kind,
                     action.call_id, actor.name, actor.role, decision.code)
            return answer, False
        raise ActionBusy(f"call {action.call_id} changed {ATTEMPTS} times while applying "
                         f"action {action.id}; send it again")

    def _write(self, pipe: Any, keys: Keys, action: Action, actor: Actor,
               call: dict[str, Any] | None, decision: Decision, answer: dict[str, Any],
               now: float) -> None:
        """The action's writes, queued in the MULTI, all on ``keys`` (the call's partition)."""
        pipe.set(keys.action_done(action.id), _encode(answer), ex=ACTION_ID_TTL_SECONDS)
        if not decision.changed:
            return
        assert decision.work is not None and call is not None
        pipe.set(keys.work(action.call_id), _encode(decision.work), ex=WORK_TTL_SECONDS)
        written = actions.records(action, decision, actor, call, now)
        pipe.xadd(keys.actions, written.action, maxlen=ACTIONS_MAXLEN, approximate=True)
        if written.outcome is not None:
            pipe.xadd(keys.outcomes, written.outcome, maxlen=OUTCOMES_MAXLEN,
                      approximate=True)
        pipe.xadd(keys.changes,
                  {CHANGES_FIELD: changefeed.encode_batch([actions.work_change(decision.work)])},
                  maxlen=CHANGES_MAXLEN, approximate=True)

    # --- reads ---------------------------------------------------------------------------
    def work_of(self, call_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """call id -> work record, for the calls that have one (one MGET per partition)."""
        by_partition: dict[Keys, list[str]] = {}
        for call_id in call_ids:
            by_partition.setdefault(self.keys.of_entity(call_id), []).append(call_id)
        found: dict[str, dict[str, Any]] = {}
        for keys, ids in by_partition.items():
            values = self.client.mget([keys.work(call_id) for call_id in ids])
            found.update((call_id, work) for call_id, work in
                         ((call_id, _json_or_none(value)) for call_id, value in
                          zip(ids, values, strict=True)) if work is not None)
        return {call_id: found[call_id] for call_id in call_ids if call_id in found}

    def outcomes(self, start: float, end: float) -> list[dict[str, str]]:
        """Outcome records of calls marked handled from ``start`` to ``end`` (epoch s,
        by when the server received them: stream ids are its clock)."""
        entries = sorted((entry for keys in self.keys.every_partition
                          for entry in self.client.xrange(keys.outcomes, f"{int(start * 1000)}",
                                                          f"{int(end * 1000)}")),
                         key=lambda entry: stream_id_key(reply_text(entry[0])))
        return [_text_fields(fields) for _, fields in entries]


def _repeat(answer: dict[str, Any], action: Action, actor: Actor) -> dict[str, Any]:
    """The stored answer to a repeated id; only its sender may see it (ids are random, so
    another user sending one is a forgery, and learns nothing)."""
    if answer.get("by") == actor.name:
        return answer
    log.warning("%s sent action id %s, which belongs to another user", actor.name, action.id)
    return {"id": action.id, "call_id": action.call_id, "kind": action.kind,
            "status": "refused", "code": "id_in_use",
            "message": "That action id was already used; send a new one.", "work": None}


def _json_or_none(value: bytes | str | None) -> Any:
    if value is None:
        return None
    try:
        return _decode(value)
    except msgspec.DecodeError:
        log.warning("unreadable JSON in an action record ignored")
        return None


def _text_fields(fields: dict[Any, Any]) -> dict[str, str]:
    return {reply_text(name): reply_text(value) for name, value in fields.items()}
