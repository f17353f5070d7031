"""The tablet detail map's per-process geometry: worked out once, however many taps ask."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dashboard import runtime, wallview
from layouts import queues
from streams.core.settings import Settings
from tests.conftest import SHARED_DATA


def test_label_points_are_worked_out_once_when_many_taps_ask_at_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Eight threads asking for the names' places at once compute each neighborhood's once
    (each of them computing it was 15 s of both cores at the start of a shift)."""
    settings = Settings(shared_data_dir=SHARED_DATA, data_dir=tmp_path)
    monkeypatch.setattr(runtime, "settings", lambda: settings)
    queues._label_points_of.cache_clear()
    computed: list[int] = []
    real = wallview.label_point

    def counted(polygon: Any, steps: int = 24) -> tuple[float, float]:
        computed.append(1)
        return real(polygon, steps)

    monkeypatch.setattr(wallview, "label_point", counted)
    start = threading.Barrier(8)
    found: list[dict[str, tuple[float, float]]] = []

    def tap() -> None:
        start.wait()
        found.append(queues._label_points())

    threads = [threading.Thread(target=tap) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == len(queues.boundaries()) and len(found) == 8
    assert all(points == found[0] for points in found)
    queues._label_points_of.cache_clear()
