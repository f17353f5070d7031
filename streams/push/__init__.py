"""The websocket push service: live state changes from Redis to every open page.

- ``service``: the websocket server, handshake checks (token, per-user cap) and each
  page's life from its first messages to its close;
- ``syncs``: a new page's first messages (snapshot or replay), read once for every page
  asking at the same time;
- ``reader``: the XREAD loop on the changes stream;
- ``lanes``: who gets which delta when, heartbeats, and dropping pages that stop reading;
- ``sessions``: sockets follow their sessions (revocations, checks at token expiry);
- ``audit``: every socket opened, ended or refused, in the audit trail;
- ``clients``: the bookkeeping those share.

The protocol is streams/state-contract.md.
"""

from streams.push.lanes import LANES, MIN_GAP_SECONDS
from streams.push.service import PushService, run_push

__all__ = ["LANES", "MIN_GAP_SECONDS", "PushService", "run_push"]
