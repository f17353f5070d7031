"""Gunshot alerts pushed by the vendor: a tiny ASGI app served by uvicorn.

``POST /shotspotter`` takes one alert (shape in ``streams/core/shotspotter_alert.py``) signed
with HMAC-SHA256 over ``"<X-Timestamp>.<body>"`` (``streams/core/signatures.py``):

- bad or missing signature, timestamp more than 5 minutes off, or a signature already
  accepted (replay) -> 401, logged;
- malformed JSON or an invalid alert -> 400 with the reason, body dead-lettered;
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
from streams.core.keys import DEADLETTER_MAXLEN, HEALTH_TTL_SECONDS, Keys
from streams.core.settings import Settings
from streams.core.shotspotter_alert import alert_from_payload, parse_alert_json
from streams.core.signatures import MAX_SKEW_SECONDS, SignatureError, verify
from streams.publish import publish

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
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.client = client
        self.keys = keys
        self.clock = clock
        self.counters = {"accepted": 0, "unauthorized": 0, "invalid": 0, "errors": 0}

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
                alert = alert_from_payload(parse_alert_json(body))
            except ValueError as error:
                await self._dead_letter(str(error), body)
                self.counters["invalid"] += 1
                log.warning("webhook alert from %s refused: %s", peer, error)
                return 400, {"error": str(error)}
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

    async def _dead_letter(self, reason: str, body: bytes) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.deadletter,
                      {"source": "shotspotter", "reason": reason, "payload": body,
                       "file": DEADLETTER_FILE, "row": ""},
                      maxlen=DEADLETTER_MAXLEN, approximate=True)
            pipe.hincrby(self.keys.counts, "shotspotter:rejected", 1)
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
    client = await connect(settings.redis_address)
    keys = Keys(settings.key_prefix)
    app = WebhookApp(settings.webhook_secret, client, keys)
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
