"""The room's progress: every exercise check an attendee runs, kept on the hub-data volume.

An attendee's kernel reports each check it runs (lab, exercise, passed or not, the one-line
reason) to the console service (workshop_hub/console.py), which writes it here. SQLite in
WAL mode: one writer (the service), readers that never block it, and a file that survives
the attendee's server restarts and the hub's. Attempts are appended, never rewritten, so the
console can tell "failing the same check for ten minutes" from "just tried it".
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .credentials import HUB_DATA_DIR

PROGRESS_FILE = HUB_DATA_DIR / "progress.sqlite"
# What one report may hold: an exercise name is a check's name, a reason one line of text.
MAX_EXERCISE_LENGTH = 80
MAX_REASON_LENGTH = 500
LABS = range(1, 8)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    attendee TEXT NOT NULL,
    lab INTEGER NOT NULL,
    exercise TEXT NOT NULL,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_attendee ON attempts (attendee, lab, exercise, at);
"""


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


def attempt_from_report(attendee: str, report: object, now: float | None = None) -> Attempt:
    """An attempt from what a kernel sent: {"lab", "exercise", "passed", "reason"}, checked."""
    if not isinstance(report, dict):
        raise BadReport("a progress report is a JSON object")
    lab, exercise = report.get("lab"), report.get("exercise")
    passed, reason = report.get("passed"), report.get("reason", "")
    if not is_lab_number(lab):
        raise BadReport(f"'lab' must be a lab number 1–7, not {lab!r}")
    if not isinstance(exercise, str) or not 0 < len(exercise) <= MAX_EXERCISE_LENGTH:
        raise BadReport(f"'exercise' must be a check's name of 1–{MAX_EXERCISE_LENGTH} characters")
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


class ProgressBook:
    """Append attempts, read back where each attendee stands."""

    def __init__(self, path: Path = PROGRESS_FILE):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # commits, or rolls back on an error
                yield db
        finally:
            db.close()

    def record(self, attempt: Attempt) -> None:
        with self._connection() as db:
            db.execute(
                "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?)",
                (
                    attempt.attendee,
                    attempt.lab,
                    attempt.exercise,
                    int(attempt.passed),
                    attempt.reason,
                    attempt.at,
                ),
            )

    def attempts(self, attendee: str | None = None) -> list[Attempt]:
        """Every attempt in the order they came, of one attendee or of the whole room."""
        query = "SELECT attendee, lab, exercise, passed, reason, at FROM attempts"
        params: tuple = ()
        if attendee is not None:
            query, params = query + " WHERE attendee = ?", (attendee,)
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY at, rowid", params).fetchall()
        return [Attempt(a, lab, ex, bool(ok), why, at) for a, lab, ex, ok, why, at in rows]

    def standings(self, attendee: str | None = None) -> dict[str, list[ExerciseState]]:
        """Per attendee, where they stand on every exercise they tried, in lab order."""
        runs: dict[tuple[str, int, str], list[Attempt]] = {}
        for attempt in self.attempts(attendee):
            runs.setdefault((attempt.attendee, attempt.lab, attempt.exercise), []).append(attempt)
        standings: dict[str, list[ExerciseState]] = {}
        for (who, lab, exercise), tries in sorted(runs.items(), key=lambda kv: kv[0][:2]):
            last = tries[-1]
            failing_since = None
            if not last.passed:
                failing_since = last.at
                for earlier in reversed(tries):
                    if earlier.passed:
                        break
                    failing_since = earlier.at
            standings.setdefault(who, []).append(
                ExerciseState(
                    lab=lab,
                    exercise=exercise,
                    passed=last.passed,
                    reason=last.reason,  # "" for a pass (attempt_from_report)
                    attempts=len(tries),
                    first_tried=tries[0].at,
                    last_tried=last.at,
                    failing_since=failing_since,
                )
            )
        return standings
