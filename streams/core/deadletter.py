"""Dead letters: what is kept of a refused event or row, and a log that does not flood (pure).

Every refusal (consumer, webhook, pollers, replay, backfill) is written with
``deadletter_entry`` so the stream holds one shape: ``source``, ``code`` (one of
``events.REASON_CODES``), ``reason`` (a sentence), ``payload`` (the original bytes) and,
where there is one, ``entry_id`` (the raw stream entry) or ``file`` and ``row``.

``DeadLetterLog`` keeps the process log readable under a flood of junk: the first refusal
of each (source, code) in a minute is logged with its reason, the rest are counted and
summed up in one line when the minute is over (a fuzz run once wrote 19,868 lines).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

LOG_WINDOW_SECONDS = 60.0


def deadletter_entry(source: str, code: str, reason: str, payload: bytes | str, *,
                     entry_id: bytes | str | None = None, file: str | None = None,
                     row: int | str | None = None, **extra: str) -> dict[str, bytes | str]:
    """The fields of one dead-letter stream entry."""
    entry: dict[str, bytes | str] = {"source": source, "code": code, "reason": reason,
                                     "payload": payload}
    if entry_id is not None:
        entry["entry_id"] = entry_id
    if file is not None:
        entry["file"] = file
        entry["row"] = "" if row is None else str(row)
    entry.update(extra)
    return entry


@dataclass
class DeadLetterLog:
    """Rate-limited warnings about dead letters, one logger per process."""

    logger: logging.Logger
    window_s: float = LOG_WINDOW_SECONDS
    started: dict[tuple[str, str], float] = field(default_factory=dict)
    suppressed: Counter[tuple[str, str]] = field(default_factory=Counter)
    example: dict[tuple[str, str], str] = field(default_factory=dict)

    def note(self, source: str, code: str, reason: str, now: float) -> None:
        """Log this refusal, or count it when its kind was logged less than a window ago."""
        self.flush(now)
        kind = (source, code)
        if kind in self.started:
            self.suppressed[kind] += 1
            self.example[kind] = reason
            return
        self.started[kind] = now
        self.logger.warning("dead-lettered %s entry (%s): %s", source, code, reason)

    def flush(self, now: float, force: bool = False) -> None:
        """Sum up every kind whose window has ended (all of them with ``force``)."""
        for kind, since in list(self.started.items()):
            if not force and now - since < self.window_s:
                continue
            del self.started[kind]
            count = self.suppressed.pop(kind, 0)
            if count:
                self.logger.warning(
                    "dead-lettered %d more %s entries (%s) in the last %.0f s; latest: %s",
                    count, kind[0], kind[1], now - since, self.example.pop(kind, ""))
