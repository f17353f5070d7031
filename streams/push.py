"""The websocket push service: live state changes from Redis to every open page.

Shape of websockets' ``example/django/notifications.py``: one reader task per process
XREADs the changes stream (no consumer group, so every push process fans out from Redis on
its own) and queues each read in every lane; a sender task hands a lane's pending changes
to ``broadcast()`` as one message per client, at most every MIN_GAP_SECONDS per lane,
lanes taking turns. A message is encoded once per view group: the view kind (tablet roles
never get caller details) and, for a cso/sro with a district, that district (they get only
its calls; ``CallDistricts`` lets a call that moves out of it be removed). A new client is
registered before its snapshot (or resync from ``since``) is read, and deltas arriving
meanwhile wait in its backlog, so nothing falls in between; nor is anything sent twice
(``Client.sent_id``). ``/healthz`` is answered by ``process_request``;
``stop`` (SIGTERM) closes every connection with 1001 and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from streams.connections import RETRYABLE, backoff_seconds, connect
from streams.core import pushview
from streams.core.keys import ALERT_ACTIVE_SECONDS, Keys
from streams.core.settings import Settings
from streams.core.tokens import TokenClaims, TokenError, TokenExpired, verify_token

log = logging.getLogger(__name__)

LIVE_PATHS = ("/live", "/")
KEEPALIVE_SECONDS = 15.0
"""Websocket protocol pings (and their timeout): a peer that stops answering is closed."""
READ_BLOCK_MS = 1000
READ_COUNT = 500
"""Changes entries per XREAD, queued together in every lane."""
MIN_GAP_SECONDS = 0.1
"""Least time between two delta messages to a page: what arrives in between goes out
together at its lane's next turn, so a page parses and draws at most 10 times a second
(each costs it a frame, whatever it holds)."""
LANES = 4
"""Pages take turns in this many lanes, lane k sending at k/LANES of the gap: ten wall
screens on one machine then do not all parse and draw at the same instant, which left the
last of them a whole round of the others' work behind."""
RESYNC_MAX_ENTRIES = 20_000
"""A client further behind than this gets a snapshot instead of a replay."""
SLOW_CLIENT_BYTES = 4 * 2**20
"""A client with this much unsent data is disconnected; it reconnects and resyncs."""
SYNC_ATTEMPTS = 4
"""Tries at reading a new client's snapshot before closing it with 1013 (try again)."""
BACKLOG_MAX_MESSAGES = 1000
"""Deltas held for a client while its snapshot is read; past this it is disconnected."""

_encode = msgspec.json.Encoder().encode
Entry = tuple[str, dict[bytes, bytes]]


@dataclass(eq=False)
class Client:
    """One open page: who it is and, until its first message went out, its backlog."""

    connection: ServerConnection
    claims: TokenClaims
    lane: int = 0
    last_sent_at: float = 0.0
    """Monotonic time of the last message it was sent (heartbeats go to the quiet ones)."""
    backlog: list[tuple[pushview.StreamId, bytes]] | None = field(default_factory=list)
    sent_id: pushview.StreamId = (0, 0)
    """The newest change it was sent: lanes may hold changes it already got in its first
    messages, and those are not sent again."""

    @property
    def group(self) -> pushview.ViewGroup:
        return pushview.view_group(self.claims.role, self.claims.district)


@dataclass
class Chunk:
    """One read of the changes stream: its last id, its changes, and where each changed
    call was before it (``CallDistricts.advance``), for district-scoped pages."""

    last_id: str
    changes: list[dict[str, Any]]
    previous: list[str]


@dataclass(eq=False)
class Lane:
    """Clients that get their deltas together, what they were not sent yet, and when they
    are sent the next one (monotonic time: the lane's next turn)."""

    index: int
    pending: list[Chunk] = field(default_factory=list)
    next_at: float = 0.0
    next_ping_at: float = 0.0
    clients: set[Client] = field(default_factory=set)


@dataclass
class Handshake:
    claims: TokenClaims
    since: str | None


class PushService:
    """Websocket server + changes reader; use ``async with`` or start()/close()."""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None,
                 heartbeat_seconds: float | None = None,
                 keepalive_seconds: float = KEEPALIVE_SECONDS,
                 slow_client_bytes: int = SLOW_CLIENT_BYTES) -> None:
        if not settings.secret_key:
            raise RuntimeError("no secret key: set DISPATCH_SECRET_KEY (the same as the "
                               "dashboard's) so websocket tokens can be verified")
        self.settings = settings
        self.secret = settings.secret_key
        self.keys = Keys(settings.key_prefix)
        self.host = settings.push_host if host is None else host
        self.port = settings.push_port if port is None else port
        self.heartbeat_seconds = (settings.push_heartbeat_seconds if heartbeat_seconds is None
                                  else heartbeat_seconds)
        self.keepalive_seconds = keepalive_seconds
        self.slow_client_bytes = slow_client_bytes
        self.clients: set[Client] = set()
        self.counters: Counter[str] = Counter()
        self.redis_ok = False
        self.last_id = "0-0"
        self.call_districts = pushview.CallDistricts()
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, Handshake] = (
            weakref.WeakKeyDictionary())
        self._redis: aioredis.Redis | None = None
        self._server: Server | None = None
        self._reader: asyncio.Task[None] | None = None
        self.lanes = [Lane(index) for index in range(LANES)]
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._redis = await connect(self.settings.redis_address)
        await self._seed_call_districts()
        self.redis_ok = True
        self._reader = asyncio.create_task(self._read_changes(), name="push-reader")
        self._sender = asyncio.create_task(self._send_lanes(), name="push-sender")
        # No compression: every client of a kind gets the very same bytes, and a wall
        # display on the station LAN wants latency, not bandwidth savings.
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._process_request,
            ping_interval=self.keepalive_seconds, ping_timeout=self.keepalive_seconds,
            close_timeout=5, compression=None, max_size=2**16)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("push service on ws://%s:%d/live reading %s from %s",
                 self.host, self.port, self.keys.changes, self.last_id)

    async def close(self) -> None:
        """Close every connection with 1001 (going away), stop reading, log counters."""
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY, reason="server shutting down")
            await self._server.wait_closed()
        tasks = [task for task in (self._reader, self._sender) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
        log.info("push service stopped: %s", dict(self.counters) or "nothing sent")

    async def __aenter__(self) -> PushService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _seed_call_districts(self) -> None:
        """Start reading after the newest change, knowing where every open call is then.

        A call whose district changes between these reads is applied again from the
        stream with no harm: no page is connected yet, and every page's snapshot is newer.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(self.keys.changes, "+", "-", count=1)
            pipe.zrange(self.keys.calls_open, 0, -1)
            newest, call_ids = await pipe.execute()
        calls = await self._hash_values(self.keys.calls, call_ids)
        self.call_districts = pushview.CallDistricts(
            {str(call.get("call_id")): call.get("district") for call in calls})
        self.last_id = _entries(newest)[0][0] if newest else "0-0"

    @property
    def redis(self) -> aioredis.Redis:
        assert self._redis is not None, "PushService.start() first"
        return self._redis

    # --- HTTP side: health check and token check -----------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request,
                         ) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            if self.redis_ok:
                return connection.respond(http.HTTPStatus.OK, "ok\n")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "redis unreachable\n")
        if url.path not in LIVE_PATHS:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        query = parse_qs(url.query)
        token = query.get("token", [None])[0]
        try:
            claims = verify_token(self.secret, token, self.settings.ws_token_seconds)
        except TokenError as error:
            status = (http.HTTPStatus.UNAUTHORIZED if token is None or isinstance(
                error, TokenExpired) else http.HTTPStatus.FORBIDDEN)
            log.warning("refused websocket from %s: %s", _peer(connection), error.reason)
            self.counters["refused"] += 1
            return connection.respond(status, f"{error.reason}\n")
        self._handshakes[connection] = Handshake(claims, query.get("since", [None])[0] or None)
        return None

    # --- one connection ----------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        handshake = self._handshakes.pop(connection)
        client = Client(connection, handshake.claims, lane=self._quietest_lane())
        # Registered before reading state: every change newer than what we read reaches
        # the client, first through its backlog, then live.
        self._register(client)
        self.counters["connections"] += 1
        log.info("client %s (%s %s) connected, since=%s", _peer(connection),
                 client.claims.role, client.claims.user, handshake.since)
        try:
            first = await self._initial_messages_retrying(handshake.since, client.group)
            sent_id = (0, 0)
            for stream_id, message in first:
                await connection.send(message, text=True)
                sent_id = stream_id
            await self._drain_backlog(client, sent_id)
            client.last_sent_at = time.monotonic()
            await connection.wait_closed()
        except RETRYABLE as error:
            log.warning("client %s: redis unreachable while syncing (%s)", _peer(connection),
                        error)
            await connection.close(CloseCode.TRY_AGAIN_LATER, "redis unreachable")
        except ConnectionClosed:
            pass
        finally:
            self._forget(client)

    async def _drain_backlog(self, client: Client, sent_id: pushview.StreamId) -> None:
        """Send what arrived while syncing, skipping what the first messages covered."""
        assert client.backlog is not None
        while client.backlog:
            pending, client.backlog = client.backlog, []
            for stream_id, message in pending:
                if stream_id > sent_id:
                    await client.connection.send(message, text=True)
                    sent_id = stream_id
        client.sent_id = sent_id
        client.backlog = None  # no await since the loop saw it empty: from now on, live

    async def _initial_messages_retrying(self, since: str | None, group: pushview.ViewGroup,
                                         ) -> list[tuple[pushview.StreamId, bytes]]:
        # Pooled connections go stale when Redis restarts; the first command on each fails.
        for attempt in range(SYNC_ATTEMPTS):
            try:
                return await self._initial_messages(since, group)
            except RETRYABLE:
                if attempt == SYNC_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(backoff_seconds(attempt, base=0.1, cap=1.0))
        raise AssertionError("unreachable")

    async def _initial_messages(self, since: str | None, group: pushview.ViewGroup,
                                ) -> list[tuple[pushview.StreamId, bytes]]:
        """A resync (deltas after ``since``) when the stream still holds them, else a snapshot.

        District-scoped pages always get a snapshot (small: one district's calls): a replay
        could not tell which calls left their district before the page went away.
        """
        role, district = pushview.role_of_group(group), group[1]
        if since is not None and district is None:
            replay = await self._resync(since, role)
            if replay is not None:
                self.counters["resyncs"] += 1
                return replay
        snapshot = await self._snapshot(role, district)
        self.counters["snapshots"] += 1
        return [(pushview.parse_stream_id(snapshot["last_id"]), _encode(snapshot))]

    async def _resync(self, since: str, role: str) -> list[tuple[pushview.StreamId, bytes]] | None:
        first, newest = await self._oldest_id(), await self._newest_id()
        if not pushview.can_resync(since, first, newest):
            return None
        entries = _entries(await self.redis.xrange(self.keys.changes, f"({since}", "+",
                                                   count=RESYNC_MAX_ENTRIES + 1))
        if len(entries) > RESYNC_MAX_ENTRIES:
            return None
        messages = []
        for start in range(0, len(entries), READ_COUNT):
            decoded = self._decode_entries(entries[start:start + READ_COUNT])
            if decoded:
                last_id = decoded[-1][0]
                changes = pushview.filter_changes(pushview.entries_changes(decoded), role)
                messages.append((pushview.parse_stream_id(last_id),
                                 _encode(pushview.delta_message(last_id, changes))))
        if not messages:
            # Nothing new: an empty delta still tells the page it is live and current.
            messages.append((pushview.parse_stream_id(since),
                             _encode(pushview.delta_message(since, []))))
        return messages

    async def _snapshot(self, role: str, district: str | None = None) -> dict[str, Any]:
        """Mirror of the read API's snapshot(): last id first, so replaying after it is safe."""
        keys, now = self.keys, time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrevrange(keys.changes, "+", "-", count=1)
            pipe.zrange(keys.calls_open, 0, -1)
            pipe.hvals(keys.units)
            pipe.zrevrangebyscore(keys.alerts_active, "+inf", now - ALERT_ACTIVE_SECONDS)
            pipe.zrange(keys.shares_active, 0, -1)
            pipe.hgetall(keys.freshness)
            pipe.hgetall(keys.counts)
            newest, call_ids, units, alert_ids, share_ids, freshness, counts = await pipe.execute()
        calls, alerts, shares, work = await asyncio.gather(
            self._hash_values(keys.calls, call_ids), self._hash_values(keys.alerts, alert_ids),
            self._hash_values(keys.shares, share_ids), self._work_values(call_ids))
        last_id = _entries(newest)[0][0] if newest else "0-0"
        return pushview.assemble_snapshot(
            last_id, calls, pushview.decode_json_values(units), alerts, shares,
            pushview.assemble_freshness(freshness, counts), role, district, work)

    async def _work_values(self, call_ids: Sequence[bytes]) -> list[dict[str, Any]]:
        """Work records (actions: claims, notes, outcomes) of the open calls that have one.
        Read after the snapshot's last id: a newer action is also replayed, harmlessly."""
        if not call_ids:
            return []
        return pushview.decode_json_values(await self.redis.mget(
            [self.keys.work(_text(call_id)) for call_id in call_ids]))

    async def _hash_values(self, key: str, ids: Sequence[bytes]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return pushview.decode_json_values(await self.redis.hmget(key, list(ids)))

    async def _newest_id(self) -> str | None:
        newest = _entries(await self.redis.xrevrange(self.keys.changes, "+", "-", count=1))
        return newest[0][0] if newest else None

    async def _oldest_id(self) -> str | None:
        oldest = _entries(await self.redis.xrange(self.keys.changes, "-", "+", count=1))
        return oldest[0][0] if oldest else None

    # --- the reader task ---------------------------------------------------------------
    async def _read_changes(self) -> None:
        """XREAD forever from the last id read; on a Redis outage back off and go on."""
        failures = 0
        while True:
            try:
                if failures:
                    await self._check_stream_reset()
                reply = await self.redis.xread({self.keys.changes: self.last_id},
                                               count=READ_COUNT, block=READ_BLOCK_MS)
                entries = _xread_entries(reply)
            except RETRYABLE as error:
                self.redis_ok = False
                delay = backoff_seconds(failures, base=0.1, cap=2.0)
                failures += 1
                log.warning("reading %s failed (%s); retry %d in %.1fs from %s",
                            self.keys.changes, error, failures, delay, self.last_id)
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("reading %s again after %d failed attempts", self.keys.changes, failures)
                failures = 0
            self.redis_ok = True
            if entries:
                self._queue(entries)

    async def _check_stream_reset(self) -> None:
        """After an outage: if Redis came back without our entries (no persistence, or a new
        server), reading on from our id would wait for ever; start over and make every page
        reconnect, which gets it a snapshot (its since= is now ahead of the stream)."""
        newest = await self._newest_id() or "0-0"
        if pushview.parse_stream_id(newest) >= pushview.parse_stream_id(self.last_id):
            return
        log.warning("%s was reset (newest %s, last read %s); closing %d clients to resync",
                    self.keys.changes, newest, self.last_id, len(self.clients))
        await self._seed_call_districts()
        for lane in self.lanes:
            lane.pending.clear()  # ids of the old stream: every page resyncs anyway
        self.counters["stream_resets"] += 1
        for client in list(self.clients):
            self._forget(client)
            task = asyncio.create_task(client.connection.close(
                CloseCode.SERVICE_RESTART, "live state was reset"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _queue(self, entries: Sequence[Entry]) -> None:
        """Hand what one XREAD returned to every lane; the sender sends it when due."""
        self.last_id = entries[-1][0]
        decoded = self._decode_entries(entries)
        if not decoded:
            return
        changes = pushview.entries_changes(decoded)
        chunk = Chunk(self.last_id, changes, self.call_districts.advance(changes))
        now = time.monotonic()
        for lane in self.lanes:
            if not lane.pending and lane.next_at <= now:
                # After a quiet spell too, a lane keeps its turn: were every lane sent the
                # first change at once, every page would draw it in the same instant.
                lane.next_at = pushview.lane_slot_after(now, lane.index, LANES,
                                                        MIN_GAP_SECONDS)
            lane.pending.append(chunk)
        self.counters["changes"] += len(changes)
        self._wake.set()

    # --- the sender task -----------------------------------------------------------------
    async def _send_lanes(self) -> None:
        """Send each lane its pending changes as one delta whenever it is due, and its
        heartbeat pings at every heartbeat turn."""
        while True:
            now = time.monotonic()
            for lane in self.lanes:
                try:
                    if lane.pending and lane.next_at <= now:
                        self._send_lane(lane, now)
                    if lane.next_ping_at <= now:
                        self._ping_lane(lane, now)
                except Exception:  # one bad send must not silence every page for good
                    log.exception("sending lane %d failed; its pages resync", lane.index)
                    self.counters["send_errors"] += 1
                    for client in list(lane.clients):
                        self._drop(client, "send failed")
            now = time.monotonic()
            waits = [lane.next_ping_at - now for lane in self.lanes]
            waits += [lane.next_at - now for lane in self.lanes if lane.pending]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(waits)))

    def _send_lane(self, lane: Lane, now: float) -> None:
        """One delta message per client of ``lane`` with the changes it was not sent yet,
        encoded once per view group and starting chunk; a client still syncing holds each
        chunk apart, so its backlog can skip what its first messages covered."""
        chunks, lane.pending = lane.pending, []
        lane.next_at = pushview.lane_slot_after(now, lane.index, LANES, MIN_GAP_SECONDS)
        ids = [pushview.parse_stream_id(chunk.last_id) for chunk in chunks]
        payloads: dict[tuple[pushview.ViewGroup, int, int], bytes] = {}

        def payload(group: pushview.ViewGroup, start: int, end: int) -> bytes:
            if (group, start, end) not in payloads:
                payloads[group, start, end] = _encode(pushview.delta_message(
                    chunks[end - 1].last_id,
                    [change for chunk in chunks[start:end]
                     for change in pushview.scope_changes(chunk.changes, chunk.previous,
                                                          group)]))
            return payloads[group, start, end]

        targets: dict[tuple[pushview.ViewGroup, int, int], list[Client]] = {}
        for client in list(lane.clients):
            if client.backlog is not None:
                for index, stream_id in enumerate(ids):
                    if client in self.clients:
                        self._hold(client, stream_id, payload(client.group, index, index + 1))
                continue
            start = next((index for index, stream_id in enumerate(ids)
                          if stream_id > client.sent_id), None)
            if start is None:
                continue
            if self._too_slow(client):
                self._drop(client, "fell too far behind")
                continue
            targets.setdefault((client.group, start, len(chunks)), []).append(client)
            client.sent_id = ids[-1]
        sent_at = time.monotonic()
        for key, clients in targets.items():
            broadcast([client.connection for client in clients], payload(*key), text=True)
            for client in clients:
                client.last_sent_at = sent_at
            self.counters["deltas"] += len(clients)

    def _quietest_lane(self) -> int:
        sizes = [len(lane.clients) for lane in self.lanes]
        return sizes.index(min(sizes))

    def _register(self, client: Client) -> None:
        self.clients.add(client)
        self.lanes[client.lane].clients.add(client)

    def _forget(self, client: Client) -> None:
        self.clients.discard(client)
        self.lanes[client.lane].clients.discard(client)

    def _ping_lane(self, lane: Lane, now: float) -> None:
        """The heartbeat (streams/state-contract.md, "Heartbeat"): every half heartbeat, a
        ping to each live client of ``lane`` sent nothing for half a heartbeat, so none goes
        longer than a heartbeat (plus a turn's lateness) without a message. One encoding
        per turn."""
        half = self.heartbeat_seconds / 2
        lane.next_ping_at = pushview.lane_slot_after(now, lane.index, LANES, half)
        quiet_since = now - half
        quiet = [client for client in lane.clients
                 if client.backlog is None and client.last_sent_at <= quiet_since]
        if not quiet:
            return
        broadcast([client.connection for client in quiet],
                  _encode(pushview.ping_message(time.time())), text=True)
        for client in quiet:
            client.last_sent_at = now
        self.counters["pings"] += len(quiet)

    def _hold(self, client: Client, stream_id: pushview.StreamId, message: bytes) -> None:
        assert client.backlog is not None
        if len(client.backlog) >= BACKLOG_MAX_MESSAGES:
            self._drop(client, "backlog full while syncing")
        else:
            client.backlog.append((stream_id, message))

    def _too_slow(self, client: Client) -> bool:
        transport = client.connection.transport
        return transport is not None and transport.get_write_buffer_size() > self.slow_client_bytes

    def _drop(self, client: Client, reason: str) -> None:
        """Disconnect a client that cannot keep up rather than buffer for it without end."""
        log.warning("dropping client %s (%s %s): %s", _peer(client.connection),
                    client.claims.role, client.claims.user, reason)
        self.counters["dropped"] += 1
        self._forget(client)
        # A close frame would queue behind the data it cannot read; abort the socket instead.
        client.connection.transport.abort()

    def _decode_entries(self, entries: Sequence[Entry],
                        ) -> list[tuple[str, list[dict[str, Any]]]]:
        decoded = []
        for entry_id, fields in entries:
            try:
                decoded.append((entry_id, pushview.decode_batch(fields.get(b"batch", b""))))
            except ValueError as error:
                log.warning("skipping changes entry %s: %s", entry_id, error)
                self.counters["bad_entries"] += 1
        return decoded


def _entries(reply: Any) -> list[Entry]:
    """XRANGE/XREVRANGE entries as (id text, fields); the one place reply shapes are read."""
    return [(_text(entry_id), dict(fields or {})) for entry_id, fields in reply or []]


def _xread_entries(reply: Any) -> list[Entry]:
    """Entries of a one-stream XREAD reply, RESP2 (list of pairs) or RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        entries = streams[0][0] if streams and streams[0] else []
        return _entries(entries)
    return _entries(reply[0][1])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


async def run_push(settings: Settings, stop: asyncio.Event) -> None:
    """`python -m streams push`: serve until ``stop`` is set (SIGTERM), then close cleanly."""
    async with PushService(settings):
        await stop.wait()

