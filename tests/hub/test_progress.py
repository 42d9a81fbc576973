"""The room's progress book: what is kept of each check, and where each attendee stands."""

from __future__ import annotations

import pytest

from workshop_hub.console import CONSOLE_URL_ENV
from workshop_hub.progress import BadReport, ProgressBook, attempt_from_report
from workshop_labs import progress as lab_progress


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
    ],
)
def test_a_report_that_no_check_sends_is_refused_with_the_reason(bad, says):
    with pytest.raises(BadReport, match=says):
        attempt_from_report("ada", bad)


def test_only_the_first_line_of_a_reason_is_kept_and_none_for_a_pass():
    failing = attempt_from_report("ada", report(reason="  shape (2,)\nTraceback ...\n"))
    assert failing.reason == "shape (2,)"
    assert attempt_from_report("ada", report(passed=True, reason="ignored")).reason == ""


def test_standings_tell_a_fresh_failure_from_a_long_one_and_survive_a_reopen(tmp_path, book):
    for at, attendee, exercise, passed in [
        (100.0, "ada", "batch", False),
        (160.0, "ada", "batch", False),
        (200.0, "ada", "batch", True),
        (210.0, "ada", "gradient", False),
        (300.0, "bob", "batch", False),
        (400.0, "bob", "batch", False),
    ]:
        book.record(attempt_from_report(attendee, report(exercise=exercise, passed=passed), at))
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
