"""Password hashes: argon2id (salted by construction), and the checks a new password passes.

Every verification costs the same whether or not the user exists (an unknown name is checked
against a dummy hash), so timing does not tell an attacker which names are real.

Hashing runs on HASH_THREADS threads per web worker at a lower CPU priority (nice
HASH_NICE; argon2's own lane threads inherit it): the pages and callbacks of a busy worker
go first, and sign-ins take whatever CPU is left. With the hash budget of the sign-in gate
this is what keeps a flood of sign-ins from starving the app.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Longer input is refused before hashing (a megabyte password is an attack, not a secret)."""

HASH_THREADS = 2
HASH_NICE = 10
"""CPU weight about a tenth of a normal thread's while the CPU is contended (Linux CFS)."""

T = TypeVar("T")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _lower_priority() -> None:
    try:  # Linux: nice is per thread, and threads the hash starts inherit it
        thread = threading.get_native_id()
        # Never above the worker's own priority (root could raise a niced worker's hashes).
        os.setpriority(os.PRIO_PROCESS, thread,
                       max(HASH_NICE, os.getpriority(os.PRIO_PROCESS, thread)))
    except (AttributeError, OSError):
        pass  # elsewhere hashing runs at normal priority


# Threads start at the first hash, so a worker forked after import owns its own.
_pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="password-hash",
                           initializer=_lower_priority)


def _on_hash_threads(work: Callable[[], T]) -> T:
    return _pool.submit(work).result()


def hash_password(password: str) -> str:
    """An argon2id hash of a password that passes ``check_new_password``."""
    check_new_password(password)
    return _on_hash_threads(lambda: _hasher.hash(password))


def check_new_password(password: str) -> None:
    """Raise ValueError saying why ``password`` cannot be used."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password may have at most {MAX_LENGTH} characters")


def verify(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; None (no such user) costs the same."""
    password = password[:MAX_LENGTH]

    def check() -> bool:
        try:
            return bool(_hasher.verify(stored_hash or _DUMMY_HASH, password))
        except (VerificationError, InvalidHashError):
            return False

    return _on_hash_threads(check) and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def temporary_password() -> str:
    """A random password for a reset (the user must replace it at the next sign-in)."""
    return secrets.token_urlsafe(12)
