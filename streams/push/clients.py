"""The push service's bookkeeping: one open page (``Client``), the lanes pages take turns
in (``Lane``), one read of the changes stream (``Chunk``) and the per-user tally."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from streams.core import pushview
from streams.core.changefeed import Change
from streams.core.pushview import Position, StreamId
from streams.core.tokens import TokenClaims


@dataclass(eq=False)
class Client:
    """One open page: who it is, where it is in the stream and, until its first messages
    went out, the deltas held for it (its backlog)."""

    connection: ServerConnection
    claims: TokenClaims
    lane: int = 0
    need: Position = ((0, 0),)
    """Where the changes reader was when the page registered: its first messages must
    reach at least this far, and every later change reaches it through the lanes."""
    backlog: list[tuple[Chunk, bytes]] | None = field(default_factory=list)
    sent_id: Position = ((0, 0),)
    """The newest change of each partition it was sent: lanes may hold changes it already
    got in its first messages, and those are not sent again."""
    last_sent_at: float = 0.0
    """Monotonic time of the last message it was sent (heartbeats go to the quiet ones)."""
    address: str = ""
    """The client's address (behind a trusted proxy, the one it forwarded)."""
    page: str = ""
    """The page that opened the socket, as it said (``audit.page_named``)."""
    opened_at: float = field(default_factory=time.monotonic)
    ended: tuple[str, str] | None = None
    """Why push ended the socket (cause, why), for its ``socket_closed`` audit entry;
    None while push has not (the page closed it, or it is open)."""

    @property
    def group(self) -> pushview.ViewGroup:
        return pushview.view_group(self.claims.role, self.claims.district)

    @property
    def live(self) -> bool:
        """True once its first messages went out (it gets deltas and heartbeats)."""
        return self.backlog is None

    def buffered(self) -> int:
        """Bytes push holds for this page and has not handed to the kernel: the
        transport's write buffer and any frame websockets has not written yet."""
        transport = self.connection.transport
        held = transport.get_write_buffer_size() if transport is not None else 0
        return held + sum(len(data) for data in self.connection.protocol.writes)


@dataclass
class Chunk:
    """One read of one partition's changes stream: the partition, its last entry's id,
    the reader's position after it, its changes, and where each changed member was
    before it (``Districts.advance``), for district-scoped pages."""

    partition: int
    stream_id: StreamId
    position: Position
    changes: list[Change]
    previous: list[str]

    @property
    def last_id(self) -> str:
        """The cursor a page holds once it applied this chunk (and those before)."""
        return pushview.format_cursor(self.position)

    def new_to(self, sent: Position) -> bool:
        """True when a page sent up to ``sent`` lacks this chunk's changes: each partition
        is ordered on its own, so only this chunk's partition tells."""
        return self.stream_id > sent[self.partition]

    def sent_to(self, sent: Position) -> Position:
        """``sent`` once this chunk went out too."""
        return pushview.moved_to(sent, self.partition, self.stream_id)


@dataclass(eq=False)
class Lane:
    """Clients that get their deltas together, what they were not sent yet, and when they
    are sent the next one and checked for a heartbeat (monotonic times)."""

    index: int
    pending: list[Chunk] = field(default_factory=list)
    next_at: float = 0.0
    next_ping_at: float = 0.0
    clients: set[Client] = field(default_factory=set)


class UserTally:
    """Open connections per user on this process, held from the handshake until the TCP
    connection is gone, so a user cannot open sockets without end."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: Counter[str] = Counter()

    def admit(self, user: str) -> bool:
        """Count one more connection for ``user``, unless that would pass the cap."""
        if self._open[user] >= self.cap:
            return False
        self._open[user] += 1
        return True

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def __getitem__(self, user: str) -> int:
        return self._open[user]
