"""The lease's clock rules: when a holder renews and when it must stop (no server)."""

from __future__ import annotations

from streams.lease import Lease
from tests.unit.test_shared_snapshot import Clock  # a settable clock starting at 100.0


def test_a_lease_is_renewed_after_a_third_and_lapses_after_its_ttl() -> None:
    """Taken at t, it is due for renewal from t + TTL/3 and no longer held from t + TTL."""
    clock = Clock()
    lease = Lease("p:lease:0", "c1", 3000, clock=clock)
    assert not lease.held()
    lease.renewed(clock.now, ok=True)
    assert lease.held() and not lease.due()
    clock.now += 0.99
    assert not lease.due()
    clock.now += 0.02
    assert lease.held() and lease.due()
    clock.now = 102.99
    assert lease.held()
    clock.now = 103.0
    assert not lease.held()
    assert lease.renew_every == 1.0


def test_a_failed_renewal_ends_the_lease_at_once() -> None:
    """A renewal the server refused (someone else's lease) leaves nothing held."""
    clock = Clock()
    lease = Lease("p:lease:0", "c1", 3000, clock=clock)
    lease.renewed(clock.now, ok=True)
    lease.renewed(clock.now, ok=False)
    assert not lease.held()


def test_two_processes_with_one_name_hold_different_tokens() -> None:
    """The lease's value names its holder and differs between processes of one name."""
    first, second = Lease("k", "consumer-a", 1000), Lease("k", "consumer-a", 1000)
    assert first.token.startswith("consumer-a/") and first.token != second.token
