"""Gunshot alerts pushed by the vendor: a tiny ASGI app served by uvicorn.

``POST /shotspotter`` takes one alert (shape in ``streams/core/shotspotter_alert.py``) signed
with HMAC-SHA256 over ``"<X-Timestamp>.<body>"`` (``streams/core/signatures.py``):

- bad or missing signature, timestamp more than 5 minutes off, or a signature already
  accepted (replay) -> 401, logged;
- malformed JSON, an invalid alert, a time outside the window (``admission.py``: at most
  5 minutes ahead of this server's clock by default) or a position outside the service
  area -> 400 with the reason, body dead-lettered with its code; whatever the body, never
  a 500;
- valid -> 202, the alert XADDed to the shotspotter raw stream (the consumer applies it).

``GET /healthz`` -> 200. Run with ``python -m streams webhook``; SIGTERM stops it
cleanly (the stop event of ``streams.runtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from redis.exceptions import RedisError

from streams.connections import connect
from streams.core.admission import Admission, admission_from_settings
from streams.core.deadletter import DeadLetterLog, deadletter_entry
from streams.core.events import InvalidEvent, ShotAlert
from streams.core.keys import HEALTH_TTL_SECONDS, Keys
from streams.core.settings import Settings
from streams.core.shotspotter_alert import alert_from_payload, parse_alert_json
from streams.core.signatures import MAX_SKEW_SECONDS, SignatureError, verify
from streams.partition_count import check_partition_count
from streams.publish import publish, queue_deadletter

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
ALERT_PATH = "/shotspotter"
DEADLETTER_FILE = "webhook:/shotspotter"
NONCE_KEEP_SECONDS = 2 * MAX_SKEW_SECONDS
"""Signatures are remembered as long as their timestamp could still pass the window."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime's ``stop`` event stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class BodyTooLarge(Exception):
    """The request body is over MAX_BODY_BYTES."""


class WebhookApp:
    """ASGI application: verify, de-duplicate, validate and enqueue gunshot alerts."""

    def __init__(self, secret: str | None, client: aioredis.Redis, keys: Keys,
                 admission: Admission, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.client = client
        self.keys = keys
        self.admission = admission
        self.clock = clock
        self.counters = {"accepted": 0, "unauthorized": 0, "invalid": 0, "errors": 0}
        self.deadletter_log = DeadLetterLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method in {"GET", "HEAD"}:
            await _respond(send, 200, {"status": "ok"})
        elif path == ALERT_PATH and method == "POST":
            try:
                body = await _read_body(receive)
            except BodyTooLarge:
                await _respond(send, 413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            status, answer = await self.handle_alert(_headers(scope), body, _peer(scope))
            await _respond(send, status, answer)
        elif path == ALERT_PATH:
            await _respond(send, 405, {"error": "use POST"})
        else:
            await _respond(send, 404, {"error": "not found"})

    async def handle_alert(self, headers: dict[str, str], body: bytes,
                           peer: str) -> tuple[int, dict[str, str]]:
        """Status code and JSON answer for one pushed alert."""
        if not self.secret:
            return 503, {"error": "webhook secret not configured"}
        now = self.clock()
        try:
            nonce = verify(self.secret, headers.get("x-timestamp"), headers.get("x-signature"),
                           body, now)
        except SignatureError as error:
            return self._unauthorized(peer, error.reason)
        try:
            if not await self._remember_nonce(nonce, now):
                return self._unauthorized(peer, "signature already used (replay)")
            try:
                alert = self.admitted(body, now)
            except InvalidEvent as error:
                await self._dead_letter(error, body, now)
                self.counters["invalid"] += 1
                return 400, {"error": error.reason, "code": error.code}
            await publish(self.client, self.keys, [alert])
        except RedisError as error:
            self.counters["errors"] += 1
            log.error("webhook could not reach redis: %s", error)
            with contextlib.suppress(RedisError):
                await self.client.zrem(self.keys.webhook_nonces(), nonce)
            return 503, {"error": "temporarily unavailable; retry"}
        self.counters["accepted"] += 1
        log.info("gunshot alert %s accepted from %s", alert.alert_id, peer)
        return 202, {"accepted": alert.alert_id}

    def admitted(self, body: bytes, now: float) -> ShotAlert:
        """The alert in ``body`` if it may enter the system; InvalidEvent otherwise."""
        try:
            alert = alert_from_payload(parse_alert_json(body))
        except InvalidEvent:
            raise
        except Exception as error:  # noqa: BLE001 - no body may turn into a 500
            raise InvalidEvent(f"invalid alert ({type(error).__name__}: {error})"[:300]) \
                from None
        self.admission.check(alert, now)
        return alert

    def _unauthorized(self, peer: str, reason: str) -> tuple[int, dict[str, str]]:
        self.counters["unauthorized"] += 1
        log.warning("webhook request from %s unauthorized: %s", peer, reason)
        return 401, {"error": reason}

    async def _remember_nonce(self, nonce: str, now: float) -> bool:
        """Record the signature; False when it was already accepted inside the window."""
        key = self.keys.webhook_nonces()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - NONCE_KEEP_SECONDS)
            pipe.zadd(key, {nonce: now}, nx=True)
            _, added = await pipe.execute()
        return bool(added)

    async def _dead_letter(self, error: InvalidEvent, body: bytes, now: float) -> None:
        self.deadletter_log.note("shotspotter", error.code, error.reason, now)
        async with self.client.pipeline(transaction=False) as pipe:
            queue_deadletter(pipe, self.keys, deadletter_entry(
                "shotspotter", error.code, error.reason, body, file=DEADLETTER_FILE))
            await pipe.execute()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])}


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


async def _respond(send: Send, status: int, answer: dict[str, str]) -> None:
    body = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _heartbeat(client: aioredis.Redis, keys: Keys, app: WebhookApp) -> None:
    """Keep keys.health('webhook') alive with the counters while serving."""
    while True:
        app.deadletter_log.flush(time.time())
        with contextlib.suppress(RedisError):
            await client.set(keys.health("webhook"),
                             json.dumps({"time": time.time(), **app.counters}),
                             ex=HEALTH_TTL_SECONDS)
        await asyncio.sleep(HEALTH_TTL_SECONDS / 3)


async def run_webhook(settings: Settings, stop: asyncio.Event) -> int:
    """Serve the webhook until ``stop`` is set (SIGTERM/SIGINT); return the exit code."""
    if not settings.webhook_secret:
        log.error("DISPATCH_SHOTSPOTTER_SECRET is not set; the webhook stays off")
        return 2
    admission = admission_from_settings(settings)
    client = await connect(settings.redis_address)
    keys = settings.keys
    await check_partition_count(client, keys)
    app = WebhookApp(settings.webhook_secret, client, keys, admission)
    config = uvicorn.Config(app, host=settings.webhook_host, port=settings.webhook_port,
                            lifespan="off", access_log=False, log_config=None)
    server = _Server(config)
    tasks = [asyncio.create_task(_heartbeat(client, keys, app)),
             asyncio.create_task(_stop_on(stop, server))]
    try:
        await server.serve()  # on stop: finish in-flight requests, then return
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        log.info("webhook stopped: %s", app.counters)
    return 0 if server.started else 1


async def _stop_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    log.info("webhook stopping")
    server.should_exit = True
