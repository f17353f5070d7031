"""Which partitions no consumer is applying: what push tells every page, so a screen never
shows a partition's calls, units and alerts as current while nothing updates them.

A partition is unapplied once its lease (``Keys.lease``) has had no holder for longer than
the lease's TTL: a hand-over (a consumer giving a lease up, a standby taking it within a
third of the TTL) never counts, a consumer gone for good (its lease lapsed, no standby)
does. With one partition that is "no consumer is running" (the feeds' clocks stop too, but
only this says why). Pure: push reads the leases (``streams.push.applying``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Unapplied:
    """Partitions without a lease holder, each since when (epoch s), and which of them
    have been so for longer than ``grace_s`` (unapplied)."""

    grace_s: float
    free_since: dict[int, float] = field(default_factory=dict)
    reported: tuple[int, ...] = ()

    def observe(self, held: Sequence[bool], now: float) -> bool:
        """Take one reading of every partition's lease; True when the unapplied ones changed."""
        for number, holder in enumerate(held):
            if holder:
                self.free_since.pop(number, None)
            else:
                self.free_since.setdefault(number, now)
        unapplied = tuple(sorted(number for number, since in self.free_since.items()
                                 if now - since > self.grace_s))
        changed, self.reported = unapplied != self.reported, unapplied
        return changed

    def since(self) -> float | None:
        """Since when the longest-unapplied partition has had no holder (None: all held)."""
        return min((self.free_since[number] for number in self.reported), default=None)


def applying_message(partitions: int, unapplied: Unapplied) -> dict[str, Any]:
    """The ``applying`` message (streams/state-contract.md, "Push protocol")."""
    return {"type": "applying", "partitions": partitions,
            "unapplied": list(unapplied.reported), "since": unapplied.since()}
