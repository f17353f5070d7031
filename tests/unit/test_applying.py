"""Which partitions no consumer applies (streams.core.applying): a lease free for longer
than its TTL, never a hand-over."""

from __future__ import annotations

from streams.core.applying import Unapplied, applying_message


def test_a_hand_over_is_not_reported_but_a_lapsed_lease_is() -> None:
    state = Unapplied(grace_s=5)
    assert not state.observe([True, False], 100.0)  # free: a hand-over, so far
    assert not state.observe([True, True], 102.0)  # taken within the TTL
    assert not state.observe([True, False], 110.0)
    assert state.observe([True, False], 115.5)  # free for longer than the TTL
    assert applying_message(2, state) == {"type": "applying", "partitions": 2,
                                          "unapplied": [1], "since": 110.0}
    assert not state.observe([True, False], 116.0)  # no change, nothing to say
    assert state.observe([True, True], 117.0)
    assert applying_message(2, state)["unapplied"] == [] and state.since() is None


def test_since_is_the_longest_unapplied_partition() -> None:
    state = Unapplied(grace_s=1)
    state.observe([False, True, True], 10.0)
    state.observe([False, True, False], 20.0)
    assert state.observe([False, True, False], 30.0)
    assert (state.reported, state.since()) == ((0, 2), 10.0)
