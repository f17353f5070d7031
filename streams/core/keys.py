"""Every Redis name this system uses, with units, in one place.

All keys start with the settings' ``key_prefix`` so several deployments (or test runs)
can share one server. Sizes: see the README's "Memory" section for what a day, a month
and a year of Hartford traffic take under these caps.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.partitions import partition_of, partition_prefix

SOURCES = ("cad", "avl", "shotspotter", "mutualink")
"""The four feeds; each has its own raw stream."""

CONSUMER_GROUP = "live-state"
"""Consumer group that applies raw events to live state (one per partition's streams)."""


def lease_value(owner: str, nonce: str) -> str:
    """What a lease key holds: the consumer's name and a random ``nonce`` (two processes
    given the same name still hold different leases)."""
    return f"{owner}/{nonce}"


def lease_owner(value: str) -> str:
    """The consumer name in a lease key's value (``lease_value``)."""
    return value.rsplit("/", 1)[0]

EVENT_FIELD = "event"
"""Stream entry field holding the JSON event (every raw stream entry has it)."""
HISTORY_FIELD = "history"
"""Optional raw stream entry field, "1" on events a replay of old data publishes: the
consumer judges their times by the history window, not the live one (admission.py)."""

CHANGES_FIELD = "batch"
"""Changes-stream entry field holding one applied batch's change records
(``streams.core.changefeed.encode_batch``)."""

# Approximate caps (XADD MAXLEN ~). Raw streams are a replay buffer, not the record:
# live state and the closed-calls stream are.
RAW_STREAM_MAXLEN = {"cad": 500_000, "avl": 300_000, "shotspotter": 50_000, "mutualink": 50_000}
DEADLETTER_MAXLEN = 100_000
CHANGES_MAXLEN = 5_000
# Entries are whole applied batches (live: a few changes, about 1 KB, every second or so;
# draining a backlog: up to 500 changes, about 20 KB), so this keeps an hour or more of
# live history for resyncs while bounding the worst case near 100 MB. A page whose last
# id has been trimmed gets a fresh snapshot instead.
CLOSED_MAXLEN = 3_000_000  # about 16 years of Hartford's ~500 calls a day

HEALTH_TTL_SECONDS = 30
"""A process's health key expires this long after its last heartbeat."""

CLOSED_CALL_BODY_TTL_SECONDS = 24 * 3600
"""Closed calls stay readable in the calls hash this long, then only in the closed stream."""


def hash_tagged(prefix: str) -> str:
    """``prefix`` as a Redis Cluster hash tag ({prefix}): every key under it (the auth keys'
    own tag comes after it, so it does not count) hashes to one slot."""
    return f"{{{prefix}}}"


AUTH_TAG = "{auth}"
"""Hash tag of every user, session and sign-in key: one Lua script touches several of them,
so on Redis Cluster they must share a slot. A few thousand users and sessions fit one slot."""

LOGIN_ADDRESS_WINDOW_SECONDS = 60
"""Sign-in attempts are counted per address (and per known browser) over this window; at the
limit the address waits until the window's key expires."""

LOGIN_USER_WINDOW_SECONDS = 900
"""Failed sign-ins for one user from browsers it never signed in on are counted this long."""

LOGIN_FORM_SECONDS = 600
"""A sign-in form can be posted this long after it was served, once."""

SESSION_REVOCATIONS_MAXLEN = 10_000
"""Ended sessions kept in the revocation stream (push only needs the recent ones)."""

ALERT_ACTIVE_SECONDS = 3600
"""A gunshot alert counts as active (on the wall map) for this long after detection."""

WORK_TTL_SECONDS = 7 * 24 * 3600
"""A call's work record (claim, notes, outcome) expires this long after its last action."""

ACTION_ID_TTL_SECONDS = 7 * 24 * 3600
"""An action id is remembered (with its answer) this long: a device resending it later
applies nothing twice. Devices keep unsent actions only until sign-out (12 h at most)."""

ACTIONS_MAXLEN = 1_000_000
"""Applied actions (the log a department forwards to its CAD): Hartford's ~200 QoL calls
a day at a few actions each is about 250,000 a year, at about 300 bytes each."""

OUTCOMES_MAXLEN = 3_000_000
"""One entry per call marked handled, the source of the outcome counts on /response."""


@dataclass(frozen=True)
class Keys:
    """Names of every key, stream and group, under one prefix.

    Raw streams, live state, the changes and closed streams, counts, freshness, dead
    letters, work records and the lease are per partition (``streams.core.partitions``):
    take them from ``partition(p)`` (or ``of_entity``). Everything else (health, pollers,
    users, sessions, audit) is the deployment's and is named by the deployment's Keys.
    Partition 0's names are the deployment's own, so with one partition both are the same.
    """

    prefix: str = "dispatch"
    partitions: int = 1
    """How many partitions the deployment has (``Settings.partitions``)."""

    # --- partitions (streams.core.partitions) ---------------------------------------------
    def partition(self, partition: int) -> Keys:
        """The keys of one partition (call on the deployment's Keys, not a partition's)."""
        return Keys(partition_prefix(self.prefix, partition))

    @property
    def every_partition(self) -> list[Keys]:
        """Every partition's keys, in partition order."""
        return [self.partition(number) for number in range(self.partitions)]

    def of_entity(self, entity_id: str) -> Keys:
        """The keys of the partition an entity (call, unit, alert, share id) lives in."""
        return self.partition(partition_of(entity_id, self.partitions))

    @property
    def partition_count(self) -> str:
        """String: the deployment's partition count, set by the first consumer; a consumer
        configured with another refuses to start (entities would change partition)."""
        return f"{self.prefix}:partitions"

    def raw_stream(self, source: str) -> str:
        """Raw events of one feed (entries: {EVENT_FIELD: json})."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        return f"{self.prefix}:stream:{source}"

    @property
    def deadletter(self) -> str:
        """Rejected events and rows (``streams.core.deadletter.deadletter_entry``): source,
        code, reason, payload (original bytes), entry_id or file and row."""
        return f"{self.prefix}:stream:deadletter"

    @property
    def changes(self) -> str:
        """State changes written by consumers, one entry per applied batch; push reads this."""
        return f"{self.prefix}:stream:changes"

    @property
    def closed(self) -> str:
        """One entry per closed call with its intervals (seconds); response-time source."""
        return f"{self.prefix}:stream:closed"

    # --- live state -------------------------------------------------------------------
    @property
    def calls(self) -> str:
        """Hash call id -> JSON of the call's current state (open and recently closed)."""
        return f"{self.prefix}:calls"

    @property
    def calls_open(self) -> str:
        """Sorted set of open call ids, score = queue order (priority, then received time)."""
        return f"{self.prefix}:calls:open"

    def queue(self, category: str) -> str:
        """Sorted set of open call ids of one category, same score as ``calls_open``."""
        return f"{self.prefix}:queue:{category}"

    @property
    def calls_closed_index(self) -> str:
        """Sorted set of closed call ids by close time (epoch s), to prune call bodies."""
        return f"{self.prefix}:calls:closed"

    @property
    def closed_ids(self) -> str:
        """Set of call ids already written to the closed stream (makes closing idempotent)."""
        return f"{self.prefix}:calls:closed-ids"

    @property
    def shares_closed_index(self) -> str:
        """Sorted set of closed share ids by end time (epoch s), to prune share bodies."""
        return f"{self.prefix}:shares:closed"

    @property
    def units(self) -> str:
        """Hash unit id -> JSON of the unit's status and position."""
        return f"{self.prefix}:units"

    @property
    def units_geo(self) -> str:
        """GEO index of unit positions (GEOSEARCH for units near a point)."""
        return f"{self.prefix}:units:geo"

    @property
    def alerts(self) -> str:
        """Hash alert id -> JSON of a gunshot alert."""
        return f"{self.prefix}:alerts"

    @property
    def alerts_active(self) -> str:
        """Sorted set of alert ids by detected time (epoch s)."""
        return f"{self.prefix}:alerts:active"

    @property
    def shares(self) -> str:
        """Hash share id -> JSON of a video/radio share."""
        return f"{self.prefix}:shares"

    @property
    def shares_active(self) -> str:
        """Sorted set of open share ids by start time (epoch s)."""
        return f"{self.prefix}:shares:active"

    @property
    def freshness(self) -> str:
        """Hash source -> epoch seconds (float) of the newest event applied from it."""
        return f"{self.prefix}:freshness"

    @property
    def counts(self) -> str:
        """Hash source -> events applied; source:rejected -> events dead-lettered;
        source:duplicate and source:stale -> events skipped (each event counted once)."""
        return f"{self.prefix}:counts"

    @property
    def rejected_codes(self) -> str:
        """Hash dead-letter code (events.REASON_CODES) -> dead letters of that code."""
        return f"{self.prefix}:deadletter:codes"

    def lease(self) -> str:
        """String (per partition): the consumer that may apply the partition's raw streams
        (``lease_value``), expiring DISPATCH_CONSUMER_LEASE_MS after its last renewal.
        Named ``lease:0`` in every partition (its prefix tells them apart): the name a
        one-partition deployment's consumers have always used, so old and new ones running
        side by side during an upgrade still share one lease."""
        return f"{self.prefix}:lease:0"

    @property
    def consumers(self) -> str:
        """Sorted set of running consumer names by last registration (epoch s, the Redis
        server's clock): how many share the partitions (each takes its fair share)."""
        return f"{self.prefix}:consumers"

    def health(self, process: str) -> str:
        """Heartbeat of one process (JSON with counters), expires after HEALTH_TTL_SECONDS."""
        return f"{self.prefix}:health:{process}"

    def poll_seen(self, feed: str) -> str:
        """Hash record id -> fingerprint of what a poller last emitted for it."""
        return f"{self.prefix}:poll:{feed}:seen"

    def poll_empty_answers(self, feed: str) -> str:
        """Count of empty answers in a row from an active-calls feed."""
        return f"{self.prefix}:poll:{feed}:empty"

    def poll_watermark(self, feed: str) -> str:
        """String: newest update time (ISO 8601, the feed's own clock) a poller has read."""
        return f"{self.prefix}:poll:{feed}:watermark"

    def poll_rejected(self, feed: str) -> str:
        """Sorted set of rejected-row digests a poller has dead-lettered, by epoch seen
        (a bad row in an active feed is dead-lettered once, not every poll)."""
        return f"{self.prefix}:poll:{feed}:rejected"

    def poll_missing(self, feed: str) -> str:
        """Hash call id -> "polls missing in a row:epoch last shown" for open calls an
        active-calls feed stopped listing (its left_feed policy closes them)."""
        return f"{self.prefix}:poll:{feed}:missing"

    def poll_last_complete(self, feed: str) -> str:
        """String: epoch seconds of the last complete poll of an active-calls feed."""
        return f"{self.prefix}:poll:{feed}:last-complete"

    def poll_mapping(self, feed: str) -> str:
        """String: digest of the mapping the seen records were derived with (a changed
        mapping re-derives every call still in the feed)."""
        return f"{self.prefix}:poll:{feed}:mapping"

    # --- the dashboard's own records of work on calls (never CAD state) -------------------
    # One action writes the work record, the action id, the actions and outcomes streams
    # and the changes stream in one MULTI/EXEC (dashboard.actionstore): on a cluster these
    # must share the changes stream's hash tag.
    def work(self, call_id: str) -> str:
        """JSON of one call's work record: who claimed it, notes, outcome (streams.core.actions)."""
        return f"{self.prefix}:work:{call_id}"

    def action_done(self, action_id: str) -> str:
        """JSON answer to an action id already applied or refused (expires after
        ACTION_ID_TTL_SECONDS): a repeat gets the same answer and changes nothing."""
        return f"{self.prefix}:action:{action_id}"

    @property
    def actions(self) -> str:
        """Applied actions, one entry each (action_id, call_id, kind, outcome, text, by, role,
        district, at, received_at): the seam where a department forwards them to its CAD."""
        return f"{self.prefix}:stream:actions"

    @property
    def outcomes(self) -> str:
        """One entry per call marked handled (call_id, outcome, category, district,
        neighborhood, priority, by, role, at): counted on /response."""
        return f"{self.prefix}:stream:outcomes"

    @property
    def feed_times(self) -> str:
        """Hash source -> comma list of the times its mapping says the feed has (received,
        dispatched, en_route, on_scene, closed): an interval a source lacks a time for is
        "not in this feed", not zero."""
        return f"{self.prefix}:feed-times"

    def webhook_nonces(self) -> str:
        """Sorted set of recently accepted webhook signatures (replay protection)."""
        return f"{self.prefix}:webhook:nonces"

    @property
    def history_seeded(self) -> str:
        """JSON {start, end, calls} of the simulated history `make run` seeded on first
        start (present: never seed again)."""
        return f"{self.prefix}:history:seeded"

    def backfill_done(self, source: str) -> str:
        """Set of call ids a backfill of this source has loaded (makes re-runs a no-op)."""
        return f"{self.prefix}:backfill:{source}:done"

    # --- users, sessions and sign-in (one hash tag: see AUTH_TAG) -----------------------
    def _auth(self, rest: str) -> str:
        return f"{self.prefix}:{AUTH_TAG}:{rest}"

    @property
    def users(self) -> str:
        """Set of every user name (each user is a hash at ``user(name)``)."""
        return self._auth("users")

    def user(self, name: str) -> str:
        """Hash of one user: hash (argon2id), role, district, disabled, must_change,
        created, updated (epoch s)."""
        return self._auth(f"user:{name}")

    @property
    def users_imported(self) -> str:
        """String: which users file was imported into Redis, and when (imported once)."""
        return self._auth("users-imported")

    def session(self, sid: str) -> str:
        """Hash of one signed-in session (user, role, district, via, created, last_active,
        idle_s, ends_at, address, agent, csrf, must_change); its TTL is the time the
        session has left, so a session is valid while this key exists."""
        return self._auth(f"session:{sid}")

    @property
    def sessions(self) -> str:
        """Sorted set of session ids by deadline (epoch s): lists sessions, finds ended ones."""
        return self._auth("sessions")

    @property
    def session_owners(self) -> str:
        """Hash session id -> "user ends_at idle_s", to report a session its key outlived."""
        return self._auth("session-owners")

    @property
    def session_revocations(self) -> str:
        """Stream of ended sessions: fields sid, user, reason (streams.core.sessions);
        capped at SESSION_REVOCATIONS_MAXLEN. The push service closes their sockets."""
        return self._auth("stream:session-revocations")

    def login_address(self, address: str) -> str:
        """Counter of sign-in attempts from one address (LOGIN_ADDRESS_WINDOW_SECONDS)."""
        return self._auth(f"login:address:{address}")

    def login_user(self, name: str) -> str:
        """Hash of one user name's failures from unknown browsers (failures, next: the
        epoch s before which no further such attempt is admitted); LOGIN_USER_WINDOW_SECONDS."""
        return self._auth(f"login:user:{name}")

    def login_device(self, name: str, device: str) -> str:
        """Counter of sign-in attempts for one user from one browser it signed in on before
        (LOGIN_ADDRESS_WINDOW_SECONDS)."""
        return self._auth(f"login:device:{name}:{device}")

    @property
    def login_hash_budget(self) -> str:
        """Hash (tokens, at): the password hashes every web worker may still spend."""
        return self._auth("login:hash-budget")

    def login_form_used(self, form_id: str) -> str:
        """Marker of a sign-in form already posted (LOGIN_FORM_SECONDS)."""
        return self._auth(f"login:form-used:{form_id}")

    # --- audit trail --------------------------------------------------------------------
    @property
    def audit(self) -> str:
        """Audit trail, append-only: who did what, when, from where (fields:
        streams.core.audit.FIELDS); trimmed by age only (XADD MINID), never by count."""
        return f"{self.prefix}:stream:audit"
