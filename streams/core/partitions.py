"""Partitions of live state: which partition an entity is in, each partition's key prefix,
and the cursor (one changes-stream id per partition) that pages resume from.

A deployment has ``DISPATCH_PARTITIONS`` partitions (1 by default). Every event goes to the
partition of its entity's id, so one entity's events stay in order in one partition's raw
streams, are applied by the one consumer holding that partition's lease, and live in that
partition's keys. Partition 0's keys are the deployment's own names (one partition is
exactly the layout of old), partition p > 0 has prefix ``<prefix>:p<p>``; on a cluster
(prefix ``{name}``) that is ``{name:p<p>}``, its own hash tag, so each partition's batch
stays in one slot and partitions spread over the masters.

The count is fixed for a deployment's life: entities would otherwise change partition
while their state stays behind. Consumers record it in Redis on first start and refuse to
run with another (``streams.consumer``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.core.keys import Keys

MAX_PARTITIONS = 256

CURSOR_SEPARATOR = ","
"""Between the partitions' ids in a cursor (stream ids hold digits and one "-")."""


def partition_of(entity_id: str, partitions: int) -> int:
    """The partition of one entity id: CRC-32 of its UTF-8 bytes modulo the count, the
    same in every process and language (Python's ``hash`` of a string is salted)."""
    if partitions <= 1:
        return 0
    return zlib.crc32(entity_id.encode("utf-8", "surrogatepass")) % partitions


def partition_prefix(prefix: str, partition: int) -> str:
    """Key prefix of one partition: the deployment's own for 0, else ``:p<n>`` added
    (inside the braces of a cluster hash tag, so it becomes the partition's own tag)."""
    if partition == 0:
        return prefix
    if prefix.startswith("{") and prefix.endswith("}"):
        return f"{prefix[:-1]}:p{partition}}}"
    return f"{prefix}:p{partition}"


def fair_share(partitions: int, consumers: int) -> int:
    """How many partitions one of ``consumers`` running consumers may hold: the shares
    together cover every partition (a free one always has a taker)."""
    return -(-partitions // max(1, consumers))


def given_up(held: Sequence[int], share: int) -> list[int]:
    """The partitions a consumer holding ``held`` gives up to get down to ``share``: its
    highest-numbered ones (any rule works if every consumer follows the same one)."""
    return sorted(held)[share:]


def count_mismatch(recorded: bytes | str | None, keys: Keys) -> str | None:
    """Why a process set to ``keys.partitions`` must not run on a deployment whose
    recorded count (``Keys.partition_count``) is ``recorded``; None when they agree or
    nothing is recorded yet."""
    if recorded is None:
        return None
    text = recorded.decode() if isinstance(recorded, bytes) else recorded
    if text == str(keys.partitions):
        return None
    return (f"this deployment has {text} partitions (key {keys.partition_count}) and "
            f"DISPATCH_PARTITIONS is {keys.partitions}: set it to {text}; changing the count "
            f"needs the live state rebuilt")


def check_count(partitions: int) -> None:
    """Raise ValueError unless ``partitions`` is a usable partition count."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"DISPATCH_PARTITIONS must be 1..{MAX_PARTITIONS}")


# --- cursors: where a page is in every partition's changes stream -----------------------

def encode_cursor(ids: Sequence[str]) -> str:
    """One id per partition, in partition order; with one partition just its id (the
    cursor pages have always had)."""
    return CURSOR_SEPARATOR.join(ids)


def decode_cursor(cursor: str, partitions: int) -> list[str] | None:
    """The partitions' ids in ``cursor``; None when it does not name exactly ``partitions``
    well-formed stream ids (a page from before a repartition, or any garbage): resync."""
    ids = cursor.split(CURSOR_SEPARATOR)
    if len(ids) != partitions or not all(_is_stream_id(entry_id) for entry_id in ids):
        return None
    return ids


def _is_stream_id(text: str) -> bool:
    millis, dash, seq = text.partition("-")
    return millis.isdigit() and (not dash or seq.isdigit()) and len(text) <= 41


def stream_id_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id as a comparable pair (``"5-2"`` -> (5, 2); ``"5"`` -> (5, 0))."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)


def cursor_is_newer(cursor: str, held: str) -> bool:
    """True when ``cursor`` is ahead of ``held`` in at least one partition: a message at
    ``cursor`` may hold changes a page at ``held`` lacks. Cursors of different lengths
    compare as newer (the page must take what it is given). assets/live.js has the same
    rule (``cursorIsNewer``); tests/cases/cursors.json is the table both sides pass."""
    new_ids, held_ids = cursor.split(CURSOR_SEPARATOR), held.split(CURSOR_SEPARATOR)
    if len(new_ids) != len(held_ids):
        return True
    return any(stream_id_key(a) > stream_id_key(b)
               for a, b in zip(new_ids, held_ids, strict=True))


def merge_cursors(held: str, cursor: str) -> str:
    """Where a page is after applying a delta at ``cursor`` while at ``held``: each
    partition's newer id (a delta may be behind the page in a partition it carries nothing
    new for), or ``cursor`` itself when the lengths differ. assets/live.js has the same
    rule (``mergeCursors``); tests/cases/cursors.json is the table both sides pass."""
    new_ids, held_ids = cursor.split(CURSOR_SEPARATOR), held.split(CURSOR_SEPARATOR)
    if len(new_ids) != len(held_ids):
        return cursor
    return encode_cursor([max(a, b, key=stream_id_key)
                          for a, b in zip(new_ids, held_ids, strict=True)])
