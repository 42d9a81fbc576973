"""Raised hands: an attendee says "I'm stuck" or "I'm done", the instructors answer in order.

An attendee's JupyterLab raises or lowers the hand with the server's own token (the console
checks whose it is, as for progress reports); an instructor takes a hand ("On my way") and
closes it ("Done"). One row per hand, kept for the whole day on the hub-data volume, so the
queue survives a restart of the console or the hub and the day's waits can be told: the wait
of a hand is from raising it until an instructor took it (or until now, while nobody has).

SQLite in WAL mode, written only from the queue's own worker thread (sqlite_file.py).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from ..access.credentials import HUB_DATA_DIR
from .sqlite_file import SqliteFile

HANDS_FILE = HUB_DATA_DIR / "hands.sqlite"
STUCK, DONE = "stuck", "done"
KINDS = (STUCK, DONE)
# What a hand may carry: a one-line note, the notebook open when it went up (a path in the
# attendee's work folder), nothing else the attendee chooses.
MAX_NOTE_LENGTH = 200
MAX_NOTEBOOK_LENGTH = 255

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attendee TEXT NOT NULL,
    kind TEXT NOT NULL,
    note TEXT NOT NULL,
    notebook TEXT NOT NULL,
    raised_at REAL NOT NULL,
    taken_by TEXT,
    taken_at REAL,
    closed_by TEXT,
    closed_at REAL
);
CREATE INDEX IF NOT EXISTS open_hands ON hands (closed_at, raised_at);
"""
# An attendee has at most one open hand: raising it again changes what it says, not its place.
_OPEN_HAND_OF = "SELECT * FROM hands WHERE attendee = ? AND closed_at IS NULL"


class BadHand(ValueError):
    """A hand this project's JupyterLab does not send; the message says what is wrong."""


class HandRefused(RuntimeError):
    """An instructor's answer that cannot apply (no open hand, taken by someone else)."""


@dataclass(frozen=True)
class Hand:
    id: int
    attendee: str
    kind: str
    note: str
    notebook: str
    raised_at: float
    taken_by: str | None
    taken_at: float | None
    closed_by: str | None
    closed_at: float | None

    def waited(self, now: float) -> float:
        """Seconds from raising the hand until an instructor took it, or until ``now``."""
        until = self.taken_at if self.taken_at is not None else (self.closed_at or now)
        return max(0.0, until - self.raised_at)

    def as_json(self, now: float) -> dict:
        return {**asdict(self), "waited_seconds": round(self.waited(now), 1)}


@dataclass(frozen=True)
class Request:
    """What an attendee's raised hand says, checked."""

    kind: str
    note: str
    notebook: str


def request_from_body(body: object) -> Request:
    """{"kind": "stuck" | "done", "note": "...", "notebook": "lab1.ipynb"} from JupyterLab."""
    if not isinstance(body, dict):
        raise BadHand('a hand is a JSON object: {"kind": "stuck", "note": "...", "notebook": ...}')
    kind, note, notebook = body.get("kind"), body.get("note", ""), body.get("notebook", "")
    if kind not in KINDS:
        raise BadHand(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(note, str) or not isinstance(notebook, str):
        raise BadHand("'note' and 'notebook' must be text")
    note = " ".join(note.split())  # one line, whatever was pasted
    if len(note) > MAX_NOTE_LENGTH:
        raise BadHand(f"the note has {len(note)} characters: say it in {MAX_NOTE_LENGTH}")
    if notebook:
        path = PurePosixPath(notebook)
        if (
            len(notebook) > MAX_NOTEBOOK_LENGTH
            or path.is_absolute()
            or ".." in path.parts
            or path.suffix != ".ipynb"
            or any(ord(char) < 32 for char in notebook)
        ):
            raise BadHand(
                "'notebook' must be a notebook's path in the work folder (lab1.ipynb), "
                f"at most {MAX_NOTEBOOK_LENGTH} characters"
            )
    return Request(kind, note, notebook)


class HandQueue(SqliteFile):
    """The day's hands, oldest open first. Blocking calls: the console runs them on
    ``worker``, never on its event loop."""

    def __init__(self, path=HANDS_FILE, clock=time.time):
        super().__init__(path, _SCHEMA, "hands", rows_by_name=True)
        self.clock = clock

    def raise_hand(self, attendee: str, request: Request) -> Hand:
        """Raise ``attendee``'s hand, or change what their open hand says (keeping its place
        in the queue; "I'm done" after "I'm stuck" is news an instructor on the way wants)."""
        now = self.clock()
        with self._connection() as db:
            if db.execute(_OPEN_HAND_OF, (attendee,)).fetchone() is None:
                db.execute(
                    "INSERT INTO hands (attendee, kind, note, notebook, raised_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (attendee, request.kind, request.note, request.notebook, now),
                )
            else:
                db.execute(
                    "UPDATE hands SET kind = ?, note = ?, notebook = ?"
                    " WHERE attendee = ? AND closed_at IS NULL",
                    (request.kind, request.note, request.notebook, attendee),
                )
            return _hand(db.execute(_OPEN_HAND_OF, (attendee,)).fetchone())

    def lower(self, attendee: str) -> Hand | None:
        """The attendee lowers their own hand (solved it, or asked by mistake)."""
        return self._close(attendee, by=attendee)

    def take(self, attendee: str, instructor: str) -> Hand:
        """ "On my way": ``instructor`` takes the attendee's open hand. Another instructor's
        hand is refused, so two never walk to the same seat."""
        with self._connection() as db:
            hand = self._open_hand(db, attendee)
            if hand.taken_by not in (None, instructor):
                raise HandRefused(f"{hand.taken_by} is already on the way to {attendee}")
            db.execute(
                "UPDATE hands SET taken_by = ?, taken_at = coalesce(taken_at, ?) WHERE id = ?",
                (instructor, self.clock(), hand.id),
            )
            return _hand(db.execute("SELECT * FROM hands WHERE id = ?", (hand.id,)).fetchone())

    def done(self, attendee: str, instructor: str) -> Hand:
        """ "Done": the instructor helped; the hand closes in the instructor's name."""
        hand = self._close(attendee, by=instructor)
        if hand is None:
            raise HandRefused(f"{attendee} has no hand up")
        return hand

    def _close(self, attendee: str, by: str) -> Hand | None:
        with self._connection() as db:
            row = db.execute(_OPEN_HAND_OF, (attendee,)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE hands SET closed_by = ?, closed_at = ? WHERE id = ?",
                (by, self.clock(), row["id"]),
            )
            return _hand(db.execute("SELECT * FROM hands WHERE id = ?", (row["id"],)).fetchone())

    @staticmethod
    def _open_hand(db: sqlite3.Connection, attendee: str) -> Hand:
        row = db.execute(_OPEN_HAND_OF, (attendee,)).fetchone()
        if row is None:
            raise HandRefused(f"{attendee} has no hand up")
        return _hand(row)

    def mine(self, attendee: str) -> Hand | None:
        """The attendee's open hand, with who is on the way, for their JupyterLab."""
        with self._connection() as db:
            row = db.execute(_OPEN_HAND_OF, (attendee,)).fetchone()
        return _hand(row) if row is not None else None

    def queue(self) -> dict:
        """The open hands, first raised first, and the day's waits: median and longest over
        every hand raised today, those still waiting counted up to now."""
        now = self.clock()
        with self._connection() as db:
            rows = db.execute("SELECT * FROM hands ORDER BY raised_at, id").fetchall()
        hands = [_hand(row) for row in rows]
        waits = [hand.waited(now) for hand in hands if hand.kind == STUCK]
        return {
            "open": [hand.as_json(now) for hand in hands if hand.closed_at is None],
            "raised_today": len(hands),
            "median_wait_seconds": round(statistics.median(waits), 1) if waits else None,
            "longest_wait_seconds": round(max(waits), 1) if waits else None,
        }


def _hand(row: sqlite3.Row) -> Hand:
    return Hand(**{key: row[key] for key in row.keys()})
