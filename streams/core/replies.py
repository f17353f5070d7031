"""Values as Redis returns them (bytes, or str with decode_responses) as Python values."""

from __future__ import annotations


def reply_text(value: bytes | str) -> str:
    """A reply's text. Undecodable bytes become U+FFFD instead of raising: a stray byte in
    a key or field must never stop the process reading it."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
