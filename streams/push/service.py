"""The push service: websocket server, handshake checks and each page's life.

Shape of websockets' ``example/django/notifications.py``: one reader task feeds the
lanes (``streams.push.lanes``), which broadcast to the pages; ``/healthz`` is answered by
``process_request``; ``close()`` (SIGTERM) closes every connection with 1001.

A page's life: its token is checked and its user's connections counted at the handshake
(``UserTally``: over the cap it gets 429); it is registered in a lane before its first
messages are read (``streams.push.syncs``, shared with pages asking at the same time), so
every change newer than what was read reaches it through its backlog and then live, and
none twice (``Client.sent_id``). First messages go out in fragments within a deadline, so
a herd of ~1 MB snapshots never sits in memory once per page. Every socket opened and
ended, and every refusal that names a user, is in the audit trail (``streams.push.audit``)
before the page gets its first messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
import socket
import struct
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from streams.audit import AuditWriter
from streams.connections import RETRYABLE, backoff_seconds, connect
from streams.core.proxies import TrustedProxies
from streams.core.settings import Settings, is_cluster_url
from streams.core.tokens import (
    TokenClaims,
    TokenError,
    TokenExpired,
    token_issued_at,
    verify_token,
)
from streams.partition_count import check_partition_count
from streams.push.applying import ApplyingWatch
from streams.push.audit import SocketAudit, page_named, socket_actor, view_detail
from streams.push.clients import Chunk, Client, UserTally
from streams.push.lanes import LaneSender
from streams.push.reader import ChangesReader
from streams.push.sessions import SESSION_ENDED, SessionWatch
from streams.push.syncs import Message, StaleRead, Syncs

log = logging.getLogger(__name__)

LIVE_PATHS = ("/live", "/")
KEEPALIVE_SECONDS = 15.0
"""Websocket protocol pings (and their timeout): a peer that stops answering is closed."""
SYNC_ATTEMPTS = 4
"""Tries at reading a new page's first messages (Redis errors) before closing it with
1013 (try again later)."""
FRAGMENT_BYTES = 64 * 1024
"""First messages (a snapshot can be a megabyte) go out in fragments of this size, each
written when the last has drained: push then holds one fragment per page however slowly
the page reads, never a copy of the whole message (fragments are views of the one
encoding every page of the group shares)."""
FIRST_SEND_SECONDS = 30.0
"""A page that does not take its first messages within this is dropped (it resyncs):
enough for a megabyte over a slow mobile link, and what a page that never reads costs."""
HANDSHAKE_SECONDS = 30.0
"""A handshake waits this long for its answer (websockets' default, 10 s, drops pages of a
herd on a busy machine whose token and session checks are queued: they would retry)."""
CLOSE_WAIT_SECONDS = 5.0
"""How long close() waits for the readers to see their client closed."""
LISTEN_BACKLOG = 2048
"""Pending TCP connections the kernel queues for us (asyncio's default, 100, drops the
SYNs of a reconnect herd; they are retried only after a second or more)."""


@dataclass
class Handshake:
    claims: TokenClaims
    since: str | None
    issued_at: float
    address: str
    page: str
    session_ended: bool = False
    """Its session is gone: the socket is closed with SESSION_ENDED at once."""


class PushService:
    """Websocket server + changes reader; use ``async with`` or start()/close()."""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None,
                 heartbeat_seconds: float | None = None,
                 keepalive_seconds: float = KEEPALIVE_SECONDS,
                 send_buffer_bytes: int | None = None) -> None:
        if not settings.secret_key:
            raise RuntimeError("no secret key: set DISPATCH_SECRET_KEY (the same as the "
                               "dashboard's) so websocket tokens can be verified")
        self.settings = settings
        self.secret = settings.secret_key
        self.keys = settings.keys
        self.host = settings.push_host if host is None else host
        self.port = settings.push_port if port is None else port
        self.keepalive_seconds = keepalive_seconds
        self.counters: Counter[str] = Counter()
        self.tally = UserTally(settings.push_connections_per_user)
        self.sender = LaneSender(
            settings.push_heartbeat_seconds if heartbeat_seconds is None else heartbeat_seconds,
            settings.push_send_buffer_bytes if send_buffer_bytes is None else send_buffer_bytes,
            self.counters, self._drop, reading=lambda: self.reader.redis_ok)
        # Page syncs share the client: past push_redis_connections reads in flight, the next
        # one waits its turn. Session checks are batched apart (SessionWatch), never behind.
        self.gate = asyncio.Semaphore(settings.push_redis_connections)
        self.syncs = Syncs(lambda: self.redis, self.gate, self.keys, self.counters)
        self.reader = ChangesReader(lambda: self.stream_redis, self.keys, self.counters,
                                    self._on_read, self._on_reset)
        self.applying = ApplyingWatch(lambda: self.redis, self.keys,
                                      settings.consumer_lease_ms, self._on_applying)
        self.sessions = SessionWatch(lambda: self.redis, lambda: self.stream_redis, self.keys,
                                     settings.ws_token_seconds, self.counters, self._end)
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, Handshake] = (
            weakref.WeakKeyDictionary())
        self._redis: aioredis.Redis | None = None
        self._stream_redis: aioredis.Redis | None = None
        self._server: Server | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.audit = SocketAudit(
            lambda: AuditWriter(self.redis, self.keys, settings.audit_max_age_s),
            TrustedProxies.parse(settings.trusted_proxies))

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        address = self.settings.redis_address
        self._redis = await connect(address)
        await check_partition_count(self._redis, self.keys)
        # The readers block on their own client: never queued behind a herd's syncs.
        self._stream_redis = await connect(address)
        self.reader.start_at(await self.syncs.read_snapshot())
        await self.sessions.start_reading()
        self.reader.redis_ok = True
        self._readers = [
            asyncio.create_task(self.reader.run(), name="push-reader"),
            asyncio.create_task(self.sessions.read_revocations(), name="push-revocations")]
        self._workers = [
            asyncio.create_task(self.sender.run(), name="push-sender"),
            asyncio.create_task(self.sessions.check_expired(), name="push-session-checks"),
            asyncio.create_task(self.applying.run(), name="push-applying")]
        # No compression: every client of a kind gets the very same bytes, and a wall
        # display on the station LAN wants latency, not bandwidth savings.
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._process_request,
            ping_interval=self.keepalive_seconds, ping_timeout=self.keepalive_seconds,
            close_timeout=5, compression=None, max_size=2**16, backlog=LISTEN_BACKLOG,
            open_timeout=HANDSHAKE_SECONDS)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("push service on ws://%s:%d/live reading %s from %s",
                 self.host, self.port,
                 ", ".join(keys.changes for keys in self.reader.partitions), self.reader.last_id)

    async def close(self) -> None:
        """Close every connection with 1001 (going away), stop reading, log counters."""
        self._stopping = True
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY, reason="server shutting down")
            await self._server.wait_closed()
        await self.audit.drain()  # the closes just recorded, while Redis is still open
        # The blocking readers end on their own once their client is closed under them
        # (cancelling a blocking XREAD is not reliable in redis-py); the others cancel.
        self.reader.stop.set()
        self.sessions.stop.set()
        for task in self._workers:
            task.cancel()
        for client in (self._stream_redis, self._redis):
            if client is not None:
                await client.aclose()
        tasks = self._readers + self._workers
        _, stuck = await asyncio.wait(tasks, timeout=CLOSE_WAIT_SECONDS) if tasks \
            else (set(), set())
        for task in stuck:
            log.warning("%s did not stop within %.0f s; cancelled", task.get_name(),
                        CLOSE_WAIT_SECONDS)
            task.cancel()
        if is_cluster_url(self.settings.redis_address):
            # A cluster client retries the read its close interrupted, reconnecting: close
            # what that opened once the readers are done.
            for client in (self._stream_redis, self._redis):
                if client is not None:
                    await client.aclose()
        log.info("push service stopped: %s", dict(self.counters) or "nothing sent")

    async def __aenter__(self) -> PushService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def redis(self) -> aioredis.Redis:
        """The client page syncs (through ``gate``) and session checks share."""
        assert self._redis is not None, "PushService.start() first"
        return self._redis

    @property
    def stream_redis(self) -> aioredis.Redis:
        assert self._stream_redis is not None, "PushService.start() first"
        return self._stream_redis

    @property
    def redis_ok(self) -> bool:
        return self.reader.redis_ok

    @property
    def clients(self) -> set[Client]:
        return self.sender.clients()

    # --- HTTP side: health check, token and session checks, per-user cap ---------------
    async def _process_request(self, connection: ServerConnection, request: Request,
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
        try:
            session_valid = await self.sessions.valid(claims.sid)
        except Exception as error:  # an outage or a refusal (ACL): try again later, no 500
            log.warning("websocket from %s: cannot check its session (%s: %s)",
                        _peer(connection), type(error).__name__, error)
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      "cannot check the session now\n")
        address = self.audit.address(connection, request)
        page = page_named(query.get("page", [None])[0])
        if not session_valid:
            # Accepted only to be closed with SESSION_ENDED before any message: a browser
            # never sees a handshake's HTTP status (a 401 reads as push being down, and the
            # page would retry), but it sees a close code and goes to sign in.
            log.warning("refused websocket from %s (%s): session %s", _peer(connection),
                        claims.user, "missing" if claims.sid is None else "ended")
            self.counters["refused_session"] += 1
            self.audit.record("socket_refused", socket_actor(claims, address),
                              status=SESSION_ENDED,
                              reason="no_session" if claims.sid is None else "session_ended",
                              **view_detail(claims, page))
            self._handshakes[connection] = Handshake(claims, None, 0.0, address, page,
                                                     session_ended=True)
            return None
        if not self.tally.admit(claims.user):
            log.warning("refused websocket from %s: %s already has %d connections",
                        _peer(connection), claims.user, self.tally.cap)
            self.counters["refused_over_cap"] += 1
            self.audit.record("socket_refused", socket_actor(claims, address), status=429,
                              reason="user_cap", cap=self.tally.cap,
                              **view_detail(claims, page))
            return connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS,
                                      "too many connections for this user\n")
        # Released when the TCP connection is gone, whether or not the page got live.
        connection.connection_lost_waiter.add_done_callback(
            functools.partial(self._release_user, claims.user))
        assert token is not None  # verified above
        self._handshakes[connection] = Handshake(
            claims, query.get("since", [None])[0] or None, token_issued_at(self.secret, token),
            address, page)
        return None

    def _release_user(self, user: str, _lost: object) -> None:
        self.tally.release(user)

    # --- one connection ----------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        handshake = self._handshakes.pop(connection)
        if handshake.session_ended:
            await connection.close(SESSION_ENDED, "session ended: sign in again")
            return
        # Registered before reading state: every change newer than what is read reaches
        # the page, first through its backlog, then live.
        client = Client(connection, handshake.claims, need=self.reader.position,
                        address=handshake.address, page=handshake.page)
        self.sender.add(client)
        self.sessions.add(client, handshake.issued_at)
        self.counters["connections"] += 1
        log.info("client %s (%s %s) connected, since=%s", _peer(connection),
                 client.claims.role, client.claims.user, handshake.since)
        # Recorded while its first messages are read; sent only once it is in the trail.
        opened = self.audit.record("socket_open", socket_actor(client.claims, client.address),
                                   **view_detail(client.claims, client.page))
        try:
            first = await self._first_messages_retrying(handshake.since, client)
            await opened
            try:
                await self._send_first(client, first)
            except TimeoutError:  # asyncio.timeout's (an OSError: caught before RETRYABLE)
                self._drop(client, f"took longer than {FIRST_SEND_SECONDS:.0f} s to receive "
                                   "its first messages")
            else:
                await connection.wait_closed()
        except (*RETRYABLE, StaleRead) as error:
            log.warning("client %s: could not read its first messages (%s)",
                        _peer(connection), error)
            client.ended = ("redis_unreachable", str(error))
            await connection.close(CloseCode.TRY_AGAIN_LATER, "redis unreachable")
        except ConnectionClosed:
            pass
        except Exception as error:  # the audit entry could not be written (an ACL refusal)
            log.warning("client %s: its connection could not be recorded (%s: %s)",
                        _peer(connection), type(error).__name__, error)
            client.ended = ("not_recorded", type(error).__name__)
            await connection.close(CloseCode.TRY_AGAIN_LATER, "cannot record the connection")
        finally:
            self.sender.remove(client)
            self.sessions.remove(client)
            self._record_close(client)

    def _record_close(self, client: Client) -> None:
        """One ``socket_closed`` entry: who ended it (push or the page), why, after how long."""
        by, (cause, why) = "push", client.ended or ("", "")
        if client.ended is None:
            by, cause = ("push", "push_stopped") if self._stopping else ("page", "closed")
        detail = view_detail(client.claims, client.page)
        detail.update(by=by, reason=cause, code=client.connection.close_code,
                      open_s=round(time.monotonic() - client.opened_at, 1))
        if why:
            detail["why"] = why
        self.audit.record("socket_closed", socket_actor(client.claims, client.address),
                          **detail)

    async def _first_messages_retrying(self, since: str | None, client: Client,
                                       ) -> list[Message]:
        # Pooled connections go stale when Redis restarts; the first command on each fails.
        for attempt in range(SYNC_ATTEMPTS):
            try:
                return await self.syncs.first_messages(since, client.group, client.need)
            except RETRYABLE:
                if attempt == SYNC_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(backoff_seconds(attempt, base=0.1, cap=1.0))
        raise AssertionError("unreachable")

    async def _send_first(self, client: Client, first: list[Message]) -> None:
        """Send the first messages, then what arrived meanwhile, skipping what the first
        messages covered; then the page is live."""
        sent_id = client.need
        async with asyncio.timeout(FIRST_SEND_SECONDS):
            for position, message in first:
                await client.connection.send(fragments(message), text=True)
                sent_id = position
        assert client.backlog is not None
        while client.backlog:
            pending, client.backlog = client.backlog, []
            for chunk, message in pending:
                if chunk.new_to(sent_id):
                    await client.connection.send(message, text=True)
                    sent_id = chunk.sent_to(sent_id)
        client.sent_id = sent_id
        client.backlog = None  # no await since the loop saw it empty: from now on, live
        client.last_sent_at = time.monotonic()
        if self.applying.any_unapplied:  # after going live: no change missed in between
            await client.connection.send(self.applying.message, text=True)

    def _drop(self, client: Client, reason: str) -> None:
        """Disconnect a page that cannot keep up rather than buffer for it without end."""
        log.warning("dropping client %s (%s %s): %s", _peer(client.connection),
                    client.claims.role, client.claims.user, reason)
        self.counters["dropped"] += 1
        client.ended = ("dropped", reason)
        self.sender.remove(client)
        # A close frame would queue behind the data it cannot read: reset the connection
        # instead (linger 0: the kernel sends RST and frees what it still holds for the
        # page; a plain close would keep trying to deliver it), so the page learns at once.
        transport = client.connection.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def _on_applying(self, message: str) -> None:
        """Tell every live page which partitions no consumer is applying (now)."""
        broadcast([client.connection for client in self.clients if client.backlog is None],
                  message)

    # --- from the reader ---------------------------------------------------------------
    def _on_read(self, chunk: Chunk | None) -> None:
        self.syncs.stream_moved()
        if chunk is not None:
            self.sender.queue(chunk)

    async def _on_reset(self) -> None:
        """Redis came back without the entries read so far: start over and make every
        page reconnect, which gets it a snapshot."""
        self.syncs.stream_moved()
        self.reader.start_at(await self.syncs.read_snapshot())
        self.sender.clear_pending()  # ids of the old stream: every page resyncs anyway
        clients = self.clients
        log.warning("closing %d clients to resync", len(clients))
        for client in clients:
            self.sender.remove(client)
            client.ended = ("state_reset", "live state was reset")
            self._close_later(client, CloseCode.SERVICE_RESTART, "live state was reset")

    def _end(self, client: Client, code: int, cause: str, why: str) -> None:
        """Close a page's socket with ``code`` (its session ended: ``cause``, ``why``) and
        stop sending to it."""
        log.info("closing client %s (%s %s): %s (%s)", _peer(client.connection),
                 client.claims.role, client.claims.user, cause, why)
        self.sender.remove(client)
        client.ended = (cause, why)
        self._close_later(client, code, f"session ended: {why}")

    def _close_later(self, client: Client, code: int, reason: str) -> None:
        task = asyncio.create_task(client.connection.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def fragments(message: bytes) -> bytes | list[memoryview]:
    """``message`` whole when small, else views of it FRAGMENT_BYTES long (no copies)."""
    if len(message) <= FRAGMENT_BYTES:
        return message
    view = memoryview(message)
    return [view[start:start + FRAGMENT_BYTES]
            for start in range(0, len(message), FRAGMENT_BYTES)]


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


async def run_push(settings: Settings, stop: asyncio.Event) -> None:
    """`python -m streams push`: serve until ``stop`` is set (SIGTERM), then close cleanly."""
    async with PushService(settings):
        await stop.wait()

