"""One live snapshot per web worker, shared by the requests of half a second."""

from __future__ import annotations

import threading
import time
from typing import Any

from dashboard.runtime import SharedSnapshot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_snapshot_is_reused_until_it_is_older_than_its_age_limit() -> None:
    """Requests within the age limit share one read; the next one after it reads again."""
    reads: list[int] = []
    clock = Clock()

    def read() -> dict[str, Any]:
        reads.append(1)
        return {"last_id": f"{len(reads)}-0"}

    shared = SharedSnapshot(read, 0.5, clock)
    assert shared.get() == {"last_id": "1-0"}
    clock.now += 0.4
    assert shared.get() == {"last_id": "1-0"}
    clock.now += 0.2
    assert shared.get() == {"last_id": "2-0"}
    assert len(reads) == 2


def test_requests_arriving_during_a_read_wait_for_it() -> None:
    """Twenty polls at once make one read, and all get its answer."""
    reads: list[int] = []

    def slow_read() -> dict[str, Any]:
        reads.append(1)
        time.sleep(0.2)
        return {"last_id": "1-0"}

    shared = SharedSnapshot(slow_read, 5.0)
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: answers.append(shared.get()))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
    assert answers == [{"last_id": "1-0"}] * 20
