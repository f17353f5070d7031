"""The history manifest's position per partition, and the web tail's trim, without a server."""

from __future__ import annotations

import pandas as pd

from dashboard.history import Tail, _tail_after
from streams.core import history


def test_an_old_manifest_s_single_id_is_partition_0_s() -> None:
    """A manifest from before partitions (only last_id) holds partition 0's position; the
    others have nothing in the files yet."""
    old = {**history.new_manifest("UTC"), "last_id": "5-1"}
    assert history.manifest_positions(old, 1) == ["5-1"]
    assert history.manifest_positions(old, 3) == ["5-1", "0-0", "0-0"]


def test_positions_round_trip_and_one_partition_writes_the_old_shape() -> None:
    """Several partitions: last_ids, with last_id partition 0's; one: last_id only."""
    moved = history.with_positions(history.new_manifest("UTC"), ["7-0", "3-2", "0-0"])
    assert (moved["last_id"], moved["last_ids"]) == ("7-0", ["7-0", "3-2", "0-0"])
    assert history.manifest_positions(moved, 3) == ["7-0", "3-2", "0-0"]
    single = history.with_positions(moved, ["9-0"])
    assert single["last_id"] == "9-0" and "last_ids" not in single
    assert set(single) == set(history.new_manifest("UTC"))


def test_the_tail_drops_only_what_each_partition_s_files_now_hold() -> None:
    """Rows of partitions 0 and 1 interleaved: a new manifest position for partition 1
    drops its rows up to it and keeps every other row, in order."""
    table = pd.DataFrame({"call_id": ["a", "b", "c", "d"]})
    ids = [(0, 5, 0), (1, 2, 0), (1, 4, 0), (0, 6, 0)]
    tail = Tail(after=("0-0", "0-0"), last_id=("6-0", "4-0"), table=table, ids=ids)
    trimmed = _tail_after(tail, ("0-0", "2-0"))
    assert list(trimmed.table["call_id"]) == ["a", "c", "d"]
    assert trimmed.ids == [(0, 5, 0), (1, 4, 0), (0, 6, 0)]
    assert trimmed.last_id == ("6-0", "4-0") and trimmed.after == ("0-0", "2-0")
    gone = _tail_after(tail, ("6-0", "4-0"))
    assert len(gone.table) == 0 and gone.last_id == ("6-0", "4-0")
