"""HMAC-SHA256 signatures of pushed webhook bodies (pure: no I/O).

The sender signs ``"<timestamp>.<body>"`` with the shared secret and sends the hex digest in
``X-Signature`` (optionally prefixed ``sha256=``) and the unix seconds in ``X-Timestamp``.
Signing the timestamp with the body stops an attacker from replaying an old body with a
fresh timestamp; the receiver rejects timestamps outside a window and signatures it has
already accepted inside that window.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

MAX_SKEW_SECONDS: Final = 300
"""A timestamp more than this far in the past or future is rejected."""

_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(ValueError):
    """A request whose signature or timestamp cannot be trusted; ``reason`` is logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def parse_timestamp(header: str | None) -> int:
    """Unix seconds from the X-Timestamp header; SignatureError if missing or not a number."""
    if not header or not header.strip():
        raise SignatureError("missing X-Timestamp header")
    text = header.strip()
    if not text.isdigit() or len(text) > 12:
        raise SignatureError(f"X-Timestamp must be whole unix seconds, got {text[:40]!r}")
    return int(text)


def parse_signature(header: str | None) -> str:
    """Lower-case hex digest from the X-Signature header, without a ``sha256=`` prefix."""
    if not header or not header.strip():
        raise SignatureError("missing X-Signature header")
    text = header.strip().lower()
    if text.startswith("sha256="):
        text = text[len("sha256="):]
    if not _HEX_DIGEST.match(text):
        raise SignatureError("X-Signature must be 64 hex digits (HMAC-SHA256)")
    return text


def verify(secret: str, timestamp_header: str | None, signature_header: str | None,
           body: bytes, now: float, max_skew: int = MAX_SKEW_SECONDS) -> str:
    """Check the signature and timestamp window; return the digest (the replay nonce).

    Raise SignatureError with the reason when the request must be refused.
    """
    timestamp = parse_timestamp(timestamp_header)
    digest = parse_signature(signature_header)
    if timestamp < now - max_skew:
        raise SignatureError(f"timestamp is {now - timestamp:.0f}s old; the limit is {max_skew}s")
    if timestamp > now + max_skew:
        raise SignatureError(f"timestamp is {timestamp - now:.0f}s in the future; "
                             f"the limit is {max_skew}s")
    if not hmac.compare_digest(digest, sign(secret, timestamp, body)):
        raise SignatureError("signature does not match the body and timestamp")
    return digest
