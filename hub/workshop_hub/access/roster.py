"""The roster: attendees known the day before, each with a login card and a one-time password.

An organizer adds the registration list (`workshop-hub roster add FILE`, a CSV of names and
optional display names). Each name is then held in the password store with a one-time
password (passwords.ONE_TIME): the room code cannot claim it, and the card's password typed
as the room code lets its owner choose their own password, which replaces it. The roster file
keeps the one-time passwords in clear for the cards (hub-data volume, readable by the hub
only); whether a card was used is read from the store, the one place a login changes.

Walk-ins still claim names with the room code. The rules are the room code's: the name
pattern, the reserved names and the cap on names (auth.py).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..settings import USERNAME_PATTERN, USERNAME_RULE
from . import credentials
from .passwords import HELD, PasswordStore, is_one_time, one_time_hash

ROSTER_FILE = credentials.HUB_DATA_DIR / "roster.json"
# A registration list of a large room is a few kilobytes; this refuses anything else unread.
MAX_ROSTER_FILE_BYTES = 1024**2
MAX_DISPLAY_NAME_LENGTH = 60
# A first row starting with one of these is a header, not an attendee.
HEADER_WORDS = frozenset({"name", "username", "login", "user"})
# How often a long roster's hashing says how far it got.
PROGRESS_EVERY = 25


class RosterError(ValueError):
    """A roster that cannot be used; the message names the line, the cause and the fix."""


@dataclass(frozen=True)
class RosterEntry:
    name: str
    display_name: str
    one_time_password: str
    added_at: float


@dataclass(frozen=True)
class CardState:
    """A rostered attendee and whether their card still opens the name."""

    entry: RosterEntry
    card_unused: bool


@dataclass(frozen=True)
class ListedAttendee:
    line: int
    name: str
    display_name: str


def _cell(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _display_name_problem(display_name: str) -> str | None:
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        return f"is longer than {MAX_DISPLAY_NAME_LENGTH} characters"
    if any(unicodedata.category(character).startswith("C") for character in display_name):
        return "holds control or invisible characters"
    return None


def parse_roster_csv(data: bytes, source: str) -> list[ListedAttendee]:
    """The attendees a registration list names, checked line by line; all or nothing."""
    if len(data) > MAX_ROSTER_FILE_BYTES:
        raise RosterError(
            f"{source} is {len(data):,} bytes, over the {MAX_ROSTER_FILE_BYTES:,} a roster may "
            "be: give a CSV of names and display names only"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RosterError(
            f"{source} is not UTF-8 text (byte {error.start}): save the list as CSV in UTF-8"
        ) from None
    problems: list[str] = []
    attendees: list[ListedAttendee] = []
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise RosterError(
            f"{source} is not a readable CSV file (line {reader.line_num}: {error}): one "
            "attendee per line, `name,display name`, quotes closed"
        ) from None
    for line, row in enumerate(rows, start=1):
        cells = [_cell(cell) for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not attendees and not problems and cells[0].lower() in HEADER_WORDS:
            continue
        if len(cells) > 2 and any(cells[2:]):
            problems.append(
                f"line {line}: {len(cells)} columns; a roster has a name and an "
                "optional display name"
            )
            continue
        name = cells[0].lower()
        display_name = cells[1] if len(cells) > 1 and cells[1] else name
        shown = name if len(name) <= 40 else name[:40] + "..."
        if not re.fullmatch(USERNAME_PATTERN, name):
            problems.append(f"line {line}: the name {shown!r} cannot be used; {USERNAME_RULE}")
            continue
        problem = _display_name_problem(display_name)
        if problem:
            problems.append(f"line {line}: the display name of {name!r} {problem}")
            continue
        if name in first_line:
            problems.append(f"line {line}: {name!r} is also on line {first_line[name]}")
            continue
        first_line[name] = line
        attendees.append(ListedAttendee(line, name, display_name))
    if problems:
        shown_problems = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise RosterError(
            f"{source} has {len(problems)} line(s) to fix; nothing was added:\n  "
            f"{shown_problems}{more}"
        )
    if not attendees:
        raise RosterError(
            f"{source} names nobody: give one attendee per line, `name,display name` "
            "(e.g. ada-lovelace,Ada Lovelace)"
        )
    return attendees


class Roster:
    """The roster file beside the password store, changed under a lock of its own."""

    def __init__(self, store: PasswordStore, path: Path = ROSTER_FILE):
        self.store, self.path = store, path

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def entries(self) -> list[RosterEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [RosterEntry(**entry) for entry in raw["attendees"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError):
            raise RosterError(
                f"{self.path} is damaged: restore it from a backup, or remove it and add the "
                "roster again (`workshop-hub roster add FILE`; their cards change)"
            ) from None

    def _write(self, entries: Iterable[RosterEntry]) -> None:
        document = {"attendees": [asdict(entry) for entry in entries]}
        credentials.write_atomically(self.path, json.dumps(document, indent=1) + "\n", 0o600)

    def states(self) -> list[CardState]:
        """Every rostered attendee, in the roster's order, with their card's state."""
        stored = self.store.entries()
        return [CardState(entry, is_one_time(stored.get(entry.name))) for entry in self.entries()]

    def add(
        self,
        attendees: list[ListedAttendee],
        reserved: Iterable[str],
        cap: int,
        progress: Callable[[str], None] = lambda line: None,
    ) -> tuple[list[RosterEntry], list[str]]:
        """Roster `attendees` (all or nothing): (the new entries, the names already on it)."""
        reserved = frozenset(reserved)
        with self._locked():
            current = self.entries()
            rostered = {entry.name for entry in current}
            stored = self.store.entries()
            already = [a.name for a in attendees if a.name in rostered]
            new = [a for a in attendees if a.name not in rostered]
            problems = [
                f"line {a.line}: {a.name!r} is reserved (an instructor's, a service's, or a "
                "name for the one in charge): choose another name for this attendee"
                for a in new
                if a.name in reserved
            ] + [
                f"line {a.line}: {a.name!r} is already an attendee's, claimed with the room "
                "code: choose another name, or leave them off if it is the same person"
                for a in new
                if a.name in stored and a.name not in reserved
            ]
            if problems:
                raise RosterError("The roster was not changed:\n  " + "\n  ".join(problems[:20]))
            if len(stored) + len(new) > cap:
                raise RosterError(
                    f"{len(new)} new names and the {len(stored)} already taken pass the room's "
                    f"{cap} names: raise WORKSHOP_MAX_NAMES (or WORKSHOP_MAX_ATTENDEES), or "
                    "add fewer"
                )
            added: list[RosterEntry] = []
            try:
                for count, attendee in enumerate(new, start=1):
                    one_time_password = credentials.generate_access_code()
                    if not self.store.claim(attendee.name, one_time_hash(one_time_password)):
                        raise RosterError(
                            f"line {attendee.line}: {attendee.name!r} was claimed with the room "
                            "code a moment ago: choose another name for this attendee"
                        )
                    added.append(
                        RosterEntry(
                            attendee.name, attendee.display_name, one_time_password, time.time()
                        )
                    )
                    if count % PROGRESS_EVERY == 0:
                        progress(f"{count} of {len(new)} cards made")
            except BaseException:
                for entry in added:  # all or nothing: the names this call held are free again
                    self.store.delete(entry.name)
                raise
            self._write([*current, *added])
        return added, already

    def remove(self, name: str) -> bool:
        """Take `name` off the roster; True when its card was unused (the name is free
        again), False when its owner already chose their own password (it stays theirs)."""
        name = name.strip().lower()
        with self._locked():
            current = self.entries()
            if name not in {entry.name for entry in current}:
                raise RosterError(
                    f"{name!r} is not on the roster (`workshop-hub roster list` shows it)"
                )
            stored = self.store.get(name)
            unused = is_one_time(stored)
            if unused:
                self.store.delete(name)
            elif stored == HELD:
                raise RosterError(f"{name!r} is being reset: try again in a minute")
            self._write(entry for entry in current if entry.name != name)
        return unused


def rostered_unused_names(store: PasswordStore) -> set[str]:
    """Names whose login card is not used yet: their owner has not logged in."""
    return {name for name, stored in store.entries().items() if is_one_time(stored)}
