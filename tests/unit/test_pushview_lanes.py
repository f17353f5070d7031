"""Push lanes: pages take turns on a grid, so ten screens do not all draw at once."""

from __future__ import annotations

import pytest

from streams.core.pushview import lane_slot_after

GAP = 0.1


def test_each_lane_sends_on_its_own_phase_of_the_gap() -> None:
    slots = [lane_slot_after(10.0, lane, 4, GAP) for lane in range(4)]
    assert slots == pytest.approx([10.1, 10.025, 10.05, 10.075])


def test_next_slot_is_strictly_after_the_moment_and_at_most_a_gap_later() -> None:
    for moment in (0.0, 3.0999, 3.1, 7.0251, 12.3456):
        for lane in range(4):
            slot = lane_slot_after(moment, lane, 4, GAP)
            assert moment < slot <= moment + GAP + 1e-9
            assert (slot - GAP * lane / 4) / GAP == pytest.approx(
                round((slot - GAP * lane / 4) / GAP))


def test_one_lane_is_a_plain_gap_grid() -> None:
    assert lane_slot_after(5.03, 0, 1, GAP) == pytest.approx(5.1)
