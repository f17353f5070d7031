"""Users in Redis, shared by every web worker on any machine: the API /admin is built on.

Each user is a hash at ``Keys.user(name)`` (argon2id hash, role, district, disabled,
must_change, created, updated) and a member of ``Keys.users``. A change that affects what
someone may see (role, district, disabled, password reset) ends that user's sessions, so it
takes effect at once on every screen and socket.

A ``users.json`` from an older version is imported once (``import_file_once``); after that
the file is no longer read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dashboard.auth import passwords
from dashboard.auth.sessions import SessionStore
from streams.core import access
from streams.core.access import User
from streams.core.keys import Keys

log = logging.getLogger(__name__)

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class UnknownUser(ValueError):
    """No user has this name."""


def check_user_fields(name: str, role: str, district: str | None) -> None:
    """Raise ValueError saying what is wrong with a user's name, role or district."""
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise ValueError(f"user name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
    access.check_role(role, district)


@dataclass(frozen=True)
class UserRecord:
    """One stored user (times in epoch seconds)."""

    name: str
    role: str
    district: str | None
    disabled: bool
    must_change: bool
    created: float
    updated: float
    password_hash: str = field(repr=False)

    @property
    def user(self) -> User:
        return User(self.name, self.role, self.district)

    @classmethod
    def from_hash(cls, name: str, row: dict[bytes, bytes]) -> UserRecord:
        text = {k.decode(): v.decode() for k, v in row.items()}
        return cls(name, text["role"], text.get("district") or None,
                   text.get("disabled") == "1", text.get("must_change") == "1",
                   float(text.get("created") or 0), float(text.get("updated") or 0),
                   text["hash"])


class UserStore:
    """List, add, change and check users; ``sessions`` are ended when a user changes."""

    def __init__(self, client: redis.Redis, keys: Keys, sessions: SessionStore) -> None:
        self.client = client
        self.keys = keys
        self.sessions = sessions

    # --- reading -----------------------------------------------------------------------
    def get(self, name: str) -> UserRecord | None:
        if not name or not set(name) <= NAME_CHARS or len(name) > 64:
            return None
        row = self.client.hgetall(self.keys.user(name))
        return UserRecord.from_hash(name, row) if row else None  # type: ignore[arg-type]

    def list(self) -> list[UserRecord]:
        """Every user, by name."""
        names = sorted(name.decode() for name in self.client.smembers(self.keys.users))  # type: ignore[union-attr]
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.user(name))
            rows = pipe.execute()
        return [UserRecord.from_hash(name, row) for name, row in zip(names, rows, strict=True)
                if row]

    def count(self) -> int:
        return int(self.client.scard(self.keys.users))  # type: ignore[arg-type]

    def authenticate(self, name: str, password: str) -> UserRecord | None:
        """The record when ``password`` is this user's (disabled or not), else None.
        Costs one password hash whether or not the user exists."""
        record = self.get(name)
        if not passwords.verify(record.password_hash if record else None, password):
            return None
        assert record is not None
        if passwords.needs_rehash(record.password_hash):
            self.client.hset(self.keys.user(name), "hash", passwords.hash_password(password))
        return record

    # --- changing ----------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, district: str | None = None,
            must_change: bool = False, replace: bool = True) -> User:
        """Add a user (or, with ``replace``, overwrite one: what `adduser` does), storing
        only an argon2id hash of the password. ValueError says what is wrong."""
        district = district or None
        check_user_fields(name, role, district)
        hashed = passwords.hash_password(password)
        now = f"{time.time():.3f}"
        row = {"hash": hashed, "role": role, "district": district or "",
               "disabled": "0", "must_change": "1" if must_change else "0",
               "created": now, "updated": now}
        # One script: "create only if absent" cannot race another worker's create.
        outcome = self.client.eval(
            "local existed = redis.call('EXISTS', KEYS[1]) "
            "if existed == 1 and ARGV[1] == '0' then return -1 end "
            "redis.call('HSET', KEYS[1], unpack(ARGV, 3)) "
            "redis.call('SADD', KEYS[2], ARGV[2]) return existed",
            2, self.keys.user(name), self.keys.users, "1" if replace else "0", name,
            *[part for pair in row.items() for part in pair])
        if outcome == -1:
            raise ValueError(f"a user named {name!r} already exists")
        if outcome == 1:
            self.sessions.end_user(name, "user_changed")
        return User(name, role, district)

    def _update(self, name: str, reason: str, **fields: str) -> UserRecord:
        key = self.keys.user(name)
        # Only an existing user is changed: HSET on a missing key would create half a user.
        updated = self.client.eval(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
            "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1", 1, key,
            *[part for pair in {**fields, "updated": f"{time.time():.3f}"}.items()
              for part in pair])
        if not updated:
            raise UnknownUser(f"no user named {name!r}")
        self.sessions.end_user(name, reason)
        record = self.get(name)
        assert record is not None
        return record

    def set_disabled(self, name: str, disabled: bool) -> UserRecord:
        """Disable (ending every session of the user) or enable a user."""
        return self._update(name, "user_changed", disabled="1" if disabled else "0")

    def set_role(self, name: str, role: str, district: str | None) -> UserRecord:
        """Change a user's role and district; the user signs in again to use them."""
        district = district or None
        check_user_fields(name, role, district)
        return self._update(name, "user_changed", role=role, district=district or "")

    def reset_password(self, name: str) -> str:
        """Give the user a temporary password (returned, to hand over) that must be changed
        at the next sign-in; ends the user's sessions."""
        temporary = passwords.temporary_password()
        self._update(name, "user_changed", hash=passwords.hash_password(temporary),
                     must_change="1")
        return temporary

    def change_password(self, name: str, new_password: str, keep_session: str | None) -> None:
        """Set a new password chosen by the user; ends their other sessions."""
        hashed = passwords.hash_password(new_password)
        key = self.keys.user(name)
        if not self.client.exists(key):
            raise UnknownUser(f"no user named {name!r}")
        self.client.hset(key, mapping={"hash": hashed, "must_change": "0",
                                       "updated": f"{time.time():.3f}"})
        self.sessions.end_user(name, "password_changed", keep=keep_session)

    # --- the users file of older versions ---------------------------------------------
    def import_file_once(self, path: Path) -> int | None:
        """Import ``path`` (an older version's users.json) if no file was imported before;
        the number of users imported, or None when there was nothing to do."""
        if not path.exists() or self.client.exists(self.keys.users_imported):
            return None
        marker = json.dumps({"file": str(path), "at": time.time()})
        if not self.client.set(self.keys.users_imported, marker, nx=True):
            return None  # another worker is importing it
        users = json.loads(path.read_text())["users"]
        imported = 0
        for name, entry in sorted(users.items()):
            try:
                check_user_fields(name, entry["role"], entry.get("district"))
            except (ValueError, KeyError) as error:
                log.warning("users file %s: user %r skipped: %s", path, name, error)
                continue
            if self.client.exists(self.keys.user(name)):
                continue  # a user already in Redis wins over the old file
            now = f"{time.time():.3f}"
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.user(name), mapping={
                    "hash": entry["hash"], "role": entry["role"],
                    "district": entry.get("district") or "", "disabled": "0",
                    "must_change": "0", "created": now, "updated": now})
                pipe.sadd(self.keys.users, name)
                pipe.execute()
            imported += 1
        log.warning("imported %d users from %s into Redis; that file is no longer read "
                    "(users are managed with `python -m dashboard adduser` and /admin)",
                    imported, path)
        return imported
