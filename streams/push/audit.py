"""Socket connections in the audit trail (streams/state-contract.md, "Audit").

The entries are the web app's (``streams.core.audit`` builds them, ``streams.audit`` writes
them to ``Keys.audit``): who (user, role, district), from where (the client's address, as
``streams.core.proxies`` reads it behind a trusted proxy), and in the detail the view push
sends, the page that asked and why a socket was refused or ended. One entry per opened
socket (``socket_open``), per ended one (``socket_closed``: by the page or by push, and
why) and per refusal that names a user (``socket_refused``: session ended, user cap). Never
one per message, and never anything of a call: no caller name or phone number can reach
the trail from here.

Entries asked for at about the same time go to Redis in one pipeline, one pipeline in
flight (like ``sessions.SessionLookups``): a herd of 1,000 pages costs a few round trips.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from streams.audit import AuditWriter
from streams.core import audit as rules
from streams.core import pushview
from streams.core.audit import Actor
from streams.core.proxies import TrustedProxies
from streams.core.tokens import TokenClaims

log = logging.getLogger(__name__)

PAGE_PATTERN = re.compile(r"/[A-Za-z0-9_/-]{0,63}")
"""What a page may call itself (``page=`` of the socket URL, live.js sends its path)."""


def page_named(text: str | None) -> str:
    """The page a socket says it serves, or "" when it says nothing usable (it is the
    page's word, not proof: the trail records it as given, within this pattern)."""
    return text if text and PAGE_PATTERN.fullmatch(text) else ""


def socket_actor(claims: TokenClaims, address: str) -> Actor:
    return Actor(claims.user, claims.role, claims.district, address)


def view_detail(claims: TokenClaims, page: str) -> dict[str, Any]:
    """What a socket sees: 'full' or 'tablet', its district scope, the page that asked."""
    kind, scope = pushview.view_group(claims.role, claims.district)
    detail: dict[str, Any] = {"view": kind, "page": page}
    if scope is not None:
        detail["scope"] = scope
    return detail


class SocketAudit:
    """Queue audit entries and write them in batches; ``record`` returns a future that
    says when (and whether) the entry is in Redis."""

    def __init__(self, writer: Callable[[], AuditWriter], proxies: TrustedProxies) -> None:
        self._writer = writer
        self.proxies = proxies
        self._waiting: list[tuple[dict[str, str], asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.round_trips = 0
        self.failed = 0

    def address(self, connection: ServerConnection, request: Request) -> str:
        """The client's address: the peer, or behind a trusted proxy its X-Forwarded-For."""
        peer = connection.remote_address[0] if connection.remote_address else None
        return self.proxies.client_address(peer, request.headers.get_all("X-Forwarded-For"))

    def record(self, action: str, actor: Actor, **detail: Any) -> asyncio.Future[str]:
        """Queue one entry; the future holds its stream id, or what Redis raised. Nobody
        has to wait for it: a failure is logged (and counted) either way."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((rules.entry(action, actor, None, detail), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="push-audit")
        return future

    async def drain(self) -> None:
        """Wait until everything queued so far was written (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self.round_trips += 1
            try:
                ids = await self._writer().append_all([fields for fields, _ in batch])
            except Exception as error:  # an outage or a refusal: every entry of the batch
                self.failed += len(batch)
                log.warning("could not record %d socket audit entries (%s: %s)", len(batch),
                            type(error).__name__, error)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                        future.exception()  # retrieved: no warning when nobody waits
                continue
            for (_, future), entry_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(entry_id)
