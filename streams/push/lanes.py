"""The sender: pages take turns in lanes, get one delta per turn and a heartbeat when quiet.

Each read of the changes stream is queued in every lane; at its turn a lane hands each of
its pages the changes it was not sent yet as one message, encoded once per view group and
starting chunk, through ``broadcast()`` (no per-page copy of the payload). A lane sends at
most every MIN_GAP_SECONDS, lane k at k/LANES of the gap, so screens sharing a machine do
not all parse and draw at once. Every half heartbeat a lane pings the pages it sent nothing
for that long (streams/state-contract.md, "Heartbeat"). A page holding more than the send
buffer limit is dropped instead of buffered for without end; it reconnects and resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from websockets.asyncio.server import broadcast

from streams.core import changefeed, pushview
from streams.core.pushview import ViewGroup
from streams.push.clients import Chunk, Client, Lane

log = logging.getLogger(__name__)

MIN_GAP_SECONDS = 0.1
"""Least time between two delta messages to a page: what arrives in between goes out
together at its lane's next turn, so a page parses and draws at most 10 times a second
(each costs it a frame, whatever it holds)."""
LANES = 4
"""Pages take turns in this many lanes, lane k sending at k/LANES of the gap: ten wall
screens on one machine then do not all parse and draw at the same instant, which left the
last of them a whole round of the others' work behind."""
BACKLOG_MAX_MESSAGES = 1000
"""Deltas held for a page while its first messages are read and sent; past this it is
dropped (the messages are shared with other pages: this bounds references, not copies)."""

PayloadKey = tuple[ViewGroup, tuple[int, ...]]
"""A delta's view group and the pending chunks it holds (their indexes)."""


class LaneSender:
    """The lanes, their pages, and the task that sends to them."""

    def __init__(self, heartbeat_seconds: float, send_buffer_bytes: int,
                 counters: Counter[str], drop: Callable[[Client, str], None],
                 reading: Callable[[], bool] = lambda: True) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self._reading = reading
        """False while the changes reader cannot read: then no page gets a ping."""
        self.send_buffer_bytes = send_buffer_bytes
        self.counters = counters
        self._drop = drop
        self.lanes = [Lane(index) for index in range(LANES)]
        self._wake = asyncio.Event()

    # --- pages ------------------------------------------------------------------------
    def add(self, client: Client) -> None:
        """Put a new page in the lane with the fewest pages."""
        lane = min(self.lanes, key=lambda lane: len(lane.clients))
        client.lane = lane.index
        lane.clients.add(client)

    def remove(self, client: Client) -> None:
        self.lanes[client.lane].clients.discard(client)

    def clients(self) -> set[Client]:
        return {client for lane in self.lanes for client in lane.clients}

    def hold(self, client: Client, chunk: Chunk, message: bytes) -> None:
        """Keep a delta (of one chunk) for a page that is still getting its first messages."""
        assert client.backlog is not None
        if len(client.backlog) >= BACKLOG_MAX_MESSAGES:
            self._drop(client, "backlog full while syncing")
        else:
            client.backlog.append((chunk, message))

    # --- changes ----------------------------------------------------------------------
    def queue(self, chunk: Chunk) -> None:
        """Hand one read of the changes stream to every lane; it goes out at their turns."""
        now = time.monotonic()
        for lane in self.lanes:
            if not lane.pending and lane.next_at <= now:
                # After a quiet spell too, a lane keeps its turn: were every lane sent the
                # first change at once, every page would draw it in the same instant.
                lane.next_at = pushview.lane_slot_after(now, lane.index, LANES,
                                                        MIN_GAP_SECONDS)
            lane.pending.append(chunk)
        self.counters["changes"] += len(chunk.changes)
        self._wake.set()

    def clear_pending(self) -> None:
        for lane in self.lanes:
            lane.pending.clear()

    # --- the task ---------------------------------------------------------------------
    async def run(self) -> None:
        """Send each lane its pending changes as one delta whenever it is due, and its
        heartbeat pings at every half heartbeat."""
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
        """One delta message per page of ``lane`` with the changes it was not sent yet
        (of each partition, those after the newest it was sent: a page's first messages
        may be further on in one partition than in another); a page still syncing holds
        each chunk apart, so its backlog can skip what its first messages covered."""
        chunks, lane.pending = lane.pending, []
        lane.next_at = pushview.lane_slot_after(now, lane.index, LANES, MIN_GAP_SECONDS)
        payloads: dict[PayloadKey, bytes] = {}

        def payload(group: ViewGroup, indexes: tuple[int, ...]) -> bytes:
            if (group, indexes) not in payloads:
                payloads[group, indexes] = changefeed.encode(changefeed.delta_message(
                    chunks[indexes[-1]].last_id,
                    [change for index in indexes
                     for change in pushview.scope_changes(chunks[index].changes,
                                                          chunks[index].previous, group)]))
            return payloads[group, indexes]

        targets: dict[PayloadKey, list[Client]] = {}
        for client in list(lane.clients):
            if not client.live:
                for index, chunk in enumerate(chunks):
                    if client in lane.clients:
                        self.hold(client, chunk, payload(client.group, (index,)))
                continue
            indexes = tuple(index for index, chunk in enumerate(chunks)
                            if chunk.new_to(client.sent_id))
            if not indexes:
                continue
            if self._over_limit(client):
                continue
            targets.setdefault((client.group, indexes), []).append(client)
            for index in indexes:
                client.sent_id = chunks[index].sent_to(client.sent_id)
        self._broadcast(targets, payload, "deltas")

    def _broadcast(self, targets: dict[PayloadKey, list[Client]],
                   payload: Callable[[ViewGroup, tuple[int, ...]], bytes],
                   counter: str) -> None:
        sent_at = time.monotonic()
        for key, clients in targets.items():
            broadcast([client.connection for client in clients], payload(*key), text=True)
            for client in clients:
                client.last_sent_at = sent_at
            self.counters[counter] += len(clients)

    def _ping_lane(self, lane: Lane, now: float) -> None:
        """A ping to each live page of ``lane`` sent nothing for half a heartbeat, so none
        goes longer than a heartbeat (plus a turn's lateness) without a message; the
        lane's next check is half a heartbeat on. One encoding per turn."""
        half = self.heartbeat_seconds / 2
        lane.next_ping_at = pushview.lane_slot_after(now, lane.index, LANES, half)
        if not self._reading():
            return  # a ping says "nothing changed": not known while changes cannot be read
        quiet = [client for client in list(lane.clients)  # a copy: _over_limit drops
                 if client.live and client.last_sent_at <= now - half
                 and not self._over_limit(client)]
        if quiet:
            ping = changefeed.encode(changefeed.ping_message(time.time()))
            self._broadcast({(("full", None), ()): quiet}, lambda *_: ping, "pings")

    def _over_limit(self, client: Client) -> bool:
        """Drop a page push holds more than the send buffer limit for (it stopped reading
        or its link is too slow): buffering for it would grow without end."""
        buffered = client.buffered()
        if buffered <= self.send_buffer_bytes:
            return False
        self._drop(client, f"{buffered} bytes unsent (limit {self.send_buffer_bytes})")
        return True
