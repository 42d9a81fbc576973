"""What an instructor's Delete refuses, before it asks the hub or Docker anything, and what
it writes down; tests/e2e/test_console.py deletes a real attendee in the real stack."""

from __future__ import annotations

import json

import pytest

from workshop_hub.access.sessions import HubApi
from workshop_hub.console.instructor_actions import (
    ActionRefused,
    audit,
    check_deletable,
    check_known,
    delete_attendee,
)
from workshop_hub.console.progress import Attempt, ProgressBook

INSTRUCTORS = {"instructor", "grace"}


def test_an_instructor_is_never_deleted_even_with_their_name_typed():
    with pytest.raises(ActionRefused, match="grace is an instructor: the console deletes"):
        check_deletable("grace", "grace", INSTRUCTORS)


@pytest.mark.parametrize("typed", [None, "", "Zoe", " zoe", 1, {"confirm": "zoe"}])
def test_without_the_name_typed_exactly_nothing_is_deleted(typed):
    with pytest.raises(ActionRefused) as refused:
        check_deletable("zoe", typed, INSTRUCTORS)
    message = str(refused.value)
    assert message.startswith("type zoe to confirm: their work is deleted for good")
    assert "workshop-hub export-work" in message


def test_the_attendees_own_name_typed_is_the_confirmation():
    check_deletable("zoe", "zoe", INSTRUCTORS)


def test_a_name_the_hub_holds_nothing_of_is_refused():
    with pytest.raises(ActionRefused, match="nobody named 'nobody-here' is on this hub"):
        check_known("nobody-here", [])
    # Whatever is left of a deletion cut short is enough to delete again.
    check_known("zoe", ["work volume"])


async def test_refusals_come_before_any_call_to_the_hub_or_docker(monkeypatch):
    # Nothing listens at either address: a call would fail with another error than these.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    nowhere = HubApi("http://127.0.0.1:9/hub/api", "no-token")

    async def forget_progress(name: str) -> int:
        raise AssertionError(f"{name}'s progress was forgotten though the delete was refused")

    for attendee, typed, reason in (
        ("instructor", "instructor", "is an instructor"),
        ("zoe", None, "type zoe to confirm"),
    ):
        with pytest.raises(ActionRefused, match=reason):
            await delete_attendee(nowhere, attendee, typed, INSTRUCTORS, "ws-test", forget_progress)


def test_each_delete_done_or_refused_is_one_line_of_the_audit_log(tmp_path):
    log = tmp_path / "console-actions.jsonl"
    audit("instructor", "delete attendee", "zoe", "refused: type zoe to confirm", log)
    audit("instructor", "delete attendee", "zoe", "deleted zoe: account, server", log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["by"], line["action"], line["attendee"]) for line in lines] == [
        ("instructor", "delete attendee", "zoe")
    ] * 2
    assert [line["outcome"] for line in lines] == [
        "refused: type zoe to confirm",
        "deleted zoe: account, server",
    ]
    assert all(isinstance(line["at"], float) for line in lines)


def test_a_deleted_attendees_progress_goes_and_everyone_elses_stays(tmp_path):
    book = ProgressBook(tmp_path / "progress.sqlite")
    for attendee, exercise in (("zoe", "batch"), ("zoe", "device"), ("ada", "batch")):
        book.record(Attempt(attendee, 1, exercise, True, "", 1.0))
    assert book.forget("zoe") == 2
    assert set(book.standings()) == {"ada"}
    assert book.forget("zoe") == 0
