"""Attendees' own passwords: bcrypt hashes in the dbm file FirstUseAuthenticator keeps.

One store, shared by the hub (login, change-password page) and `workshop-hub
reset-password`, which runs in another process. Every access opens the file briefly under an
exclusive lock on a file beside it, so the two never write at once, whichever dbm flavour
Python has (gdbm in the hub image; the pure-Python fallback elsewhere is not safe without it).
"""

from __future__ import annotations

import dbm
import fcntl
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import bcrypt

from ..settings import USERNAME_PATTERN, USERNAME_RULE

# bcrypt reads at most 72 bytes (bcrypt 5 refuses longer input instead of truncating it).
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 8
# About 60 ms on one core: slow for a guesser, cheap for a room logging in at 09:00.
BCRYPT_ROUNDS = 10
_LOCK_WAIT_SECONDS = 5.0
# Stored in place of a hash while the instructor resets an attendee (access/sessions.py): no
# password opens the name and the room code cannot claim it, until the new hash replaces it.
HELD = b"held: being reset"
# Before a hash: the one-time password of a rostered attendee's login card (access/roster.py).
# It opens nothing by itself: typed as the room code, it lets its owner choose their own
# password, which replaces it (so it works once). Its hash is a salted SHA-256, not bcrypt: the
# password is 59 random bits, not a person's choice that a slow hash must protect, and it
# sits in clear in the roster file for the cards anyway; a card's login then costs one
# bcrypt (the attendee's own new password) instead of two, which counts when 30 log in at once.
ONE_TIME = b"one-time:"


def password_problem(password: str, room_code: str) -> str | None:
    """Why `password` cannot be an attendee's own password, or None when it can."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"Choose a password of at most {MAX_PASSWORD_BYTES} bytes."
    if password == room_code:
        return "Choose your own password, not the room code: everyone in the room knows that."
    return None


def hash_password(password: str) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS))


def password_matches(password: str, stored_hash: bytes) -> bool:
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES or stored_hash == HELD or is_one_time(stored_hash):
        return False
    return bcrypt.checkpw(encoded, stored_hash)


def one_time_hash(one_time_password: str) -> bytes:
    """What the store keeps of a login card's one-time password: ONE_TIME, salt, SHA-256."""
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{one_time_password}".encode()).hexdigest()
    return ONE_TIME + f"{salt}:{digest}".encode()


def is_one_time(stored: bytes | None) -> bool:
    """Whether a stored value is a login card's one-time password, not yet used."""
    return stored is not None and stored.startswith(ONE_TIME)


def one_time_matches(given: str, stored: bytes) -> bool:
    """Whether `given` is the unused one-time password that `stored` keeps."""
    if not is_one_time(stored) or len(given) > MAX_PASSWORD_BYTES:
        return False
    salt, _, expected = stored.removeprefix(ONE_TIME).decode().partition(":")
    digest = hashlib.sha256(f"{salt}:{given.strip().lower()}".encode()).hexdigest()
    return hmac.compare_digest(digest, expected)


class PasswordStore:
    """username -> bcrypt hash, in the dbm file at `path` (FirstUseAuthenticator's format)."""

    def __init__(self, path: str | Path):
        self.path = str(path)

    @contextmanager
    def _open(self, flag: str):
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            database = self._open_database(flag)
            try:
                yield database
            finally:
                database.close()

    def _open_database(self, flag: str):
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            try:
                return dbm.open(self.path, flag, 0o600)
            except dbm.error:
                # gdbm's own lock, held for a moment by FirstUseAuthenticator's code (an admin
                # deleting a user), which does not take ours.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self, username: str) -> bytes | None:
        with self._open("c") as database:
            return database.get(username.encode())

    def set(self, username: str, password_hash: bytes) -> None:
        with self._open("c") as database:
            database[username.encode()] = password_hash

    def claim(self, username: str, password_hash: bytes) -> bool:
        """Store the hash unless the name already has one; True when this call claimed it."""
        with self._open("c") as database:
            key = username.encode()
            if key in database:
                return False
            database[key] = password_hash
            return True

    def replace(self, username: str, expected: bytes, password_hash: bytes) -> bool:
        """Store the hash only if the name still holds `expected`; True when this call did:
        two browsers using one login card at once cannot both choose the password."""
        with self._open("c") as database:
            key = username.encode()
            if database.get(key) != expected:
                return False
            database[key] = password_hash
            return True

    def entries(self) -> dict[str, bytes]:
        """Every name and what it holds (a hash, a one-time password's, or HELD)."""
        with self._open("c") as database:
            return {key.decode(): database[key] for key in database.keys()}

    def delete(self, username: str, keep_held: bool = False) -> bool:
        """Forget the name; with `keep_held`, a name held for a reset stays held."""
        with self._open("c") as database:
            key = username.encode()
            if key not in database or (keep_held and database[key] == HELD):
                return False
            del database[key]
            return True

    def names(self) -> set[str]:
        """Every claimed name (held ones included)."""
        with self._open("c") as database:
            return {key.decode() for key in database.keys()}


RESET_PASSWORD_ADVICE = (
    "Their work is untouched. They log in with this password and can choose their own at "
    "/hub/auth/change-password."
)


class ResetRefused(ValueError):
    """A password that cannot be reset; the message says why and what to do instead."""


def check_resettable(store: PasswordStore, name: str, admin_users: Iterable[str]) -> None:
    """Refuse a reset of a name that is not an attendee's claimed name."""
    if not re.fullmatch(USERNAME_PATTERN, name):
        raise ResetRefused(f"{name!r} is not a valid name ({USERNAME_RULE}).")
    if name in admin_users:
        raise ResetRefused(
            f"{name!r} is an admin: admins log in with the admin password "
            "(WORKSHOP_ADMIN_PASSWORD), see `workshop-hub admin-password`."
        )
    stored = store.get(name)
    if stored is None:
        raise ResetRefused(
            f"Nobody has claimed {name!r} yet: they can log in with the room code and choose "
            "their own password."
        )
    if is_one_time(stored):
        raise ResetRefused(
            f"{name!r} is on the roster and has not used their login card yet: print it again "
            "(`workshop-hub roster cards`, or Login cards on the console)."
        )
