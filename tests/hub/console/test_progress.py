"""The room's progress book: what is kept of each check, and where each attendee stands."""

from __future__ import annotations

import sqlite3

import pytest

from workshop_hub.console.progress import BadReport, ProgressBook, ReportRate, attempt_from_report
from workshop_hub.services import CONSOLE_URL_ENV
from workshop_labs import progress as lab_progress

CATALOG = {1: ["batch", "gradient"], 2: ["loss_choice"]}


def report(lab=1, exercise="batch", passed=False, reason="`batch` is None"):
    return {"lab": lab, "exercise": exercise, "passed": passed, "reason": reason}


@pytest.fixture
def book(tmp_path):
    return ProgressBook(tmp_path / "progress.sqlite")


def test_the_hub_and_the_kernels_name_the_same_variable():
    assert CONSOLE_URL_ENV == lab_progress.CONSOLE_URL_ENV


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ([1, 2], "JSON object"),
        (report(lab=0), "lab number 1–7"),
        (report(lab=True), "lab number 1–7"),
        (report(lab="1"), "lab number 1–7"),
        (report(exercise=""), "check's name"),
        (report(exercise="x" * 81), "check's name"),
        (report(passed="yes"), "true or false"),
        (report(reason=None), "text"),
        (report(exercise="made_up_1"), "lab 1 has no exercise 'made_up_1'; its exercises: batch"),
        (report(lab=2, exercise="batch"), "lab 2 has no exercise 'batch'"),
        (report(lab=3, exercise="batch"), "lab 3 .* none: the hub image lacks its catalog"),
    ],
)
def test_a_report_that_no_check_sends_is_refused_with_the_reason(bad, says):
    with pytest.raises(BadReport, match=says):
        attempt_from_report("ada", bad, CATALOG)


def test_every_exercise_of_the_catalog_is_accepted():
    for lab, exercises in CATALOG.items():
        for exercise in exercises:
            assert attempt_from_report("ada", report(lab, exercise), CATALOG).exercise == exercise


def test_only_the_first_line_of_a_reason_is_kept_and_none_for_a_pass():
    failing = attempt_from_report("ada", report(reason="  shape (2,)\nTraceback ...\n"), CATALOG)
    assert failing.reason == "shape (2,)"
    assert attempt_from_report("ada", report(passed=True, reason="x"), CATALOG).reason == ""


def test_standings_tell_a_fresh_failure_from_a_long_one_and_survive_a_reopen(tmp_path, book):
    for at, attendee, exercise, passed in [
        (100.0, "ada", "batch", False),
        (160.0, "ada", "batch", False),
        (200.0, "ada", "batch", True),
        (210.0, "ada", "gradient", False),
        (300.0, "bob", "batch", False),
        (400.0, "bob", "batch", False),
    ]:
        attempt = attempt_from_report(
            attendee, report(exercise=exercise, passed=passed), CATALOG, at
        )
        book.record(attempt)
    reopened = ProgressBook(book.path)  # a hub restart: the same file, a new process
    standings = reopened.standings()
    ada = {state.exercise: state for state in standings["ada"]}
    assert ada["batch"].passed and ada["batch"].attempts == 3 and ada["batch"].reason == ""
    assert ada["batch"].failing_since is None
    assert not ada["gradient"].passed and ada["gradient"].failing_since == 210.0
    (bob,) = standings["bob"]
    assert not bob.passed and bob.failing_since == 300.0 and bob.last_tried == 400.0
    assert bob.reason == "`batch` is None"
    assert list(reopened.standings("bob")) == ["bob"]
    assert reopened.standings("nobody") == {}


def rows_and_bytes(book: ProgressBook) -> tuple[int, int]:
    with sqlite3.connect(book.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # what the reports wrote, in the file
        (rows,) = db.execute("SELECT count(*) FROM exercises").fetchone()
    return rows, book.path.stat().st_size


def flood(book: ProgressBook, reports: int) -> None:
    for index in range(reports):
        exercise = CATALOG[1][index % 2]
        passed = index % 3 == 0
        book.record(attempt_from_report("ada", report(1, exercise, passed), CATALOG, index))


def test_ten_thousand_reports_of_one_attendee_leave_one_row_per_exercise(book):
    flood(book, 100)
    rows_before, bytes_before = rows_and_bytes(book)
    flood(book, 10_000)
    rows_after, bytes_after = rows_and_bytes(book)
    assert rows_before == rows_after == 2
    assert bytes_after <= bytes_before, (bytes_before, bytes_after)
    (batch, gradient) = book.standings()["ada"]
    assert batch.attempts == 5_050 and gradient.attempts == 5_050
    # Even reports are batch, odd ones gradient, every third a pass: 9999 passed gradient,
    # 9998 failed batch right after 9996 passed it.
    assert gradient.passed and gradient.failing_since is None
    assert not batch.passed and batch.failing_since == 9_998 and batch.last_tried == 9_998


def old_book(path, attempts) -> None:
    """A book of the first shape: every attempt a row."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE attempts (attendee TEXT NOT NULL, lab INTEGER NOT NULL, exercise TEXT"
            " NOT NULL, passed INTEGER NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)"
        )
        db.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?)", attempts)


def test_a_book_of_the_old_shape_says_the_same_after_its_migration(tmp_path):
    path = tmp_path / "progress.sqlite"
    attempts = [
        ("ada", 1, "batch", 0, "`batch` is None", 100.0),
        ("ada", 1, "batch", 0, "shape (2,)", 160.0),
        ("ada", 1, "batch", 1, "", 200.0),
        ("ada", 1, "gradient", 0, "no grad", 210.0),
        ("bob", 1, "batch", 0, "`batch` is None", 300.0),
        ("bob", 1, "batch", 0, "shape (2,)", 400.0),
    ] + [("bob", 2, "loss_choice", 0, "mse", 500.0 + i) for i in range(5_000)]
    old_book(path, attempts)
    bytes_before = path.stat().st_size
    standings = ProgressBook(path).standings()
    ada = {state.exercise: state for state in standings["ada"]}
    assert ada["batch"].passed and ada["batch"].attempts == 3 and ada["batch"].first_tried == 100
    assert ada["gradient"].failing_since == 210.0 and ada["gradient"].reason == "no grad"
    bob_batch, bob_loss = standings["bob"]
    assert bob_batch.failing_since == 300.0 and bob_batch.reason == "shape (2,)"
    assert bob_loss.attempts == 5_000 and bob_loss.last_tried == 5_499.0
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "attempts" not in tables
    assert path.stat().st_size < bytes_before / 4, "the old table's pages were not given back"
    assert ProgressBook(path).standings() == standings  # a second start migrates nothing


def test_the_rate_lets_a_burst_through_then_one_per_refill_and_says_how_long_to_wait():
    now = [0.0]
    rate = ReportRate(burst=20, per_second=2.0, clock=lambda: now[0])
    assert [rate.wait_before_next("ada") for _ in range(20)] == [0] * 20
    assert rate.wait_before_next("ada") == 1
    assert rate.wait_before_next("bob") == 0  # every attendee has a bucket of their own
    now[0] += 0.5
    assert rate.wait_before_next("ada") == 0
    assert rate.wait_before_next("ada") == 1
    now[0] += 60
    assert [rate.wait_before_next("ada") for _ in range(21)] == [0] * 20 + [1]
