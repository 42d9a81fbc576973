"""The room's progress: where each attendee stands on each exercise, on the hub-data volume.

An attendee's kernel reports each check it runs (lab, exercise, passed or not, the one-line
reason) to the console service (workshop_hub/console/service.py), which folds it in here. SQLite in
WAL mode: one writer (the console's worker thread), readers that never block it, and a file
that survives the attendee's server restarts and the hub's. One row per attendee, lab and
exercise, updated in place, so the file and the console's view grow with the room and the
course, never with how often a kernel reports; the row keeps what the console needs to tell
"failing the same check for ten minutes" from "just tried it".
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..access.credentials import HUB_DATA_DIR
from .sqlite_file import SqliteFile

PROGRESS_FILE = HUB_DATA_DIR / "progress.sqlite"
# What one report may hold: an exercise name is a check's name, a reason one line of text.
MAX_EXERCISE_LENGTH = 80
MAX_REASON_LENGTH = 500
LABS = range(1, 8)
# lab -> the names of its exercises (the solutions catalog holds exactly the labs' checks).
Catalog = Mapping[int, Collection[str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exercises (
    attendee TEXT NOT NULL,
    lab INTEGER NOT NULL,
    exercise TEXT NOT NULL,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_tried REAL NOT NULL,
    last_tried REAL NOT NULL,
    failing_since REAL,
    PRIMARY KEY (attendee, lab, exercise)
);
"""
# One report folded into its row: a pass ends the current run of failures, a failure starts
# one unless one is already running.
_FOLD_IN = """
INSERT INTO exercises VALUES (
    :attendee, :lab, :exercise, :passed, :reason, 1, :at, :at,
    CASE WHEN :passed THEN NULL ELSE :at END
)
ON CONFLICT (attendee, lab, exercise) DO UPDATE SET
    passed = excluded.passed,
    reason = excluded.reason,
    attempts = attempts + 1,
    last_tried = excluded.last_tried,
    failing_since = CASE
        WHEN excluded.passed THEN NULL
        ELSE coalesce(failing_since, excluded.last_tried)
    END
"""
# The first version kept every report in this table: 1.3 GB an hour from one flooding kernel.
_OLD_TABLE = "attempts"


def is_lab_number(value: object) -> bool:
    """1 to 7, as an int (JSON's true is not lab 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in LABS


class BadReport(ValueError):
    """A progress report that is not one this project's checks send; the message says why."""


@dataclass(frozen=True)
class Attempt:
    attendee: str
    lab: int
    exercise: str
    passed: bool
    reason: str
    at: float

    def as_row(self) -> dict:
        """The named parameters of _FOLD_IN."""
        return {**asdict(self), "passed": int(self.passed)}


@dataclass(frozen=True)
class ExerciseState:
    """Where one attendee stands on one exercise."""

    lab: int
    exercise: str
    passed: bool  # the last attempt passed
    reason: str  # the last failing attempt's reason ("" when it passed)
    attempts: int
    first_tried: float
    last_tried: float
    failing_since: float | None  # the first of the current run of failures, None if passed

    def as_json(self) -> dict:
        return asdict(self)


def attempt_from_report(
    attendee: str, report: object, catalog: Catalog, now: float | None = None
) -> Attempt:
    """An attempt from what a kernel sent: {"lab", "exercise", "passed", "reason"}, checked,
    of an exercise the course's ``catalog`` holds."""
    if not isinstance(report, dict):
        raise BadReport("a progress report is a JSON object")
    lab, exercise = report.get("lab"), report.get("exercise")
    passed, reason = report.get("passed"), report.get("reason", "")
    if not is_lab_number(lab):
        raise BadReport(f"'lab' must be a lab number 1–7, not {lab!r}")
    if not isinstance(exercise, str) or not 0 < len(exercise) <= MAX_EXERCISE_LENGTH:
        raise BadReport(f"'exercise' must be a check's name of 1–{MAX_EXERCISE_LENGTH} characters")
    if exercise not in catalog.get(lab, ()):
        known = ", ".join(catalog.get(lab, ())) or "none: the hub image lacks its catalog"
        raise BadReport(f"lab {lab} has no exercise {exercise!r}; its exercises: {known}")
    if not isinstance(passed, bool):
        raise BadReport("'passed' must be true or false")
    if not isinstance(reason, str):
        raise BadReport("'reason' must be text")
    first_line = reason.strip().splitlines()[0] if reason.strip() else ""
    return Attempt(
        attendee=attendee,
        lab=lab,
        exercise=exercise,
        passed=passed,
        reason="" if passed else first_line[:MAX_REASON_LENGTH],
        at=time.time() if now is None else now,
    )


class ProgressBook(SqliteFile):
    """Fold attempts into one row per attendee and exercise, read back where each stands.
    Blocking calls: the console runs them on its worker thread, never on its event loop."""

    def __init__(self, path: Path = PROGRESS_FILE):
        super().__init__(path, _SCHEMA, "progress-book")
        with self._connection() as db:
            migrated = self._fold_in_old_attempts(db)
        if migrated:
            self._compact()

    @staticmethod
    def _fold_in_old_attempts(db: sqlite3.Connection) -> int:
        """A book of the first shape (every attempt a row) becomes one of this shape, saying
        the same of each exercise; returns how many attempts were folded in."""
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_OLD_TABLE,)
        ).fetchone()
        if found is None:
            return 0
        rows = db.execute(
            "SELECT attendee, lab, exercise, passed, reason, at"
            f" FROM {_OLD_TABLE} ORDER BY at, rowid"
        ).fetchall()
        db.executemany(
            _FOLD_IN,
            (
                Attempt(attendee, lab, exercise, bool(passed), reason, at).as_row()
                for attendee, lab, exercise, passed, reason, at in rows
            ),
        )
        db.execute(f"DROP TABLE {_OLD_TABLE}")
        return len(rows)

    def _compact(self) -> None:
        """Give the dropped table's pages back to the disk (VACUUM runs outside a transaction;
        in WAL mode the file shrinks once the log is written back into it)."""
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    def record(self, attempt: Attempt) -> None:
        with self._connection() as db:
            db.execute(_FOLD_IN, attempt.as_row())

    def forget(self, attendee: str) -> int:
        """Delete every row of `attendee`; how many there were."""
        with self._connection() as db:
            return db.execute("DELETE FROM exercises WHERE attendee = ?", (attendee,)).rowcount

    def standings(self, attendee: str | None = None) -> dict[str, list[ExerciseState]]:
        """Per attendee, where they stand on every exercise they tried, in lab order."""
        query = (
            "SELECT attendee, lab, exercise, passed, reason, attempts, first_tried, last_tried,"
            " failing_since FROM exercises"
        )
        params: tuple = ()
        if attendee is not None:
            query, params = query + " WHERE attendee = ?", (attendee,)
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY attendee, lab, first_tried, rowid", params)
            standings: dict[str, list[ExerciseState]] = {}
            for who, lab, exercise, passed, *rest in rows:
                state = ExerciseState(lab, exercise, bool(passed), *rest)
                standings.setdefault(who, []).append(state)
        return standings


class ReportRate:
    """How many reports each attendee may send: a token bucket per attendee, ``burst`` at
    once and ``per_second`` after that. A kernel runs a check when its attendee runs a cell,
    so a person never comes near it; a loop posting reports does at once."""

    def __init__(self, burst: int, per_second: float, clock=time.monotonic):
        self.burst, self.per_second, self.clock = burst, per_second, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # attendee -> (tokens, at)

    def wait_before_next(self, attendee: str) -> int:
        """0 when ``attendee`` may send this report now (it is counted), else the whole
        seconds until they may send the next one."""
        now = self.clock()
        tokens, at = self._buckets.get(attendee, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens >= 1:
            self._buckets[attendee] = (tokens - 1, now)
            return 0
        self._buckets[attendee] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.per_second))
