"""Password hashes: argon2id (salted by construction), and the checks a new password passes.

Every verification costs the same whether or not the user exists (an unknown name is checked
against a dummy hash), so timing does not tell an attacker which names are real.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Longer input is refused before hashing (a megabyte password is an attack, not a secret)."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of a password that passes ``check_new_password``."""
    check_new_password(password)
    return _hasher.hash(password)


def check_new_password(password: str) -> None:
    """Raise ValueError saying why ``password`` cannot be used."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password may have at most {MAX_LENGTH} characters")


def verify(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; None (no such user) costs the same."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def temporary_password() -> str:
    """A random password for a reset (the user must replace it at the next sign-in)."""
    return secrets.token_urlsafe(12)
