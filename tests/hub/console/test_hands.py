"""The help queue (workshop_hub/console/hands.py): who raised a hand first, who is on the
way, how long people waited, and what an attendee may put in a hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workshop_hub.console.hands import (
    DONE,
    MAX_NOTE_LENGTH,
    STUCK,
    BadHand,
    HandQueue,
    HandRefused,
    Request,
    request_from_body,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def queue(tmp_path, clock):
    return HandQueue(tmp_path / "hands.sqlite", clock=clock)


STUCK_ON_3 = Request(STUCK, "exercise 3 says my shapes are wrong", "01_intro_to_pytorch.ipynb")


def test_hands_are_answered_in_the_order_they_went_up(queue, clock):
    queue.raise_hand("bob", STUCK_ON_3)
    clock.now += 30
    queue.raise_hand("ada", Request(STUCK, "", ""))
    clock.now += 30
    # Bob changes his note: he keeps his place.
    queue.raise_hand("bob", Request(STUCK, "now exercise 4", ""))
    open_hands = queue.queue()["open"]
    assert [hand["attendee"] for hand in open_hands] == ["bob", "ada"]
    assert [hand["waited_seconds"] for hand in open_hands] == [60.0, 30.0]
    assert open_hands[0]["note"] == "now exercise 4"


def test_on_my_way_then_done_closes_the_hand_in_the_instructors_name(queue, clock):
    queue.raise_hand("ada", STUCK_ON_3)
    clock.now += 45
    taken = queue.take("ada", "instructor-kim")
    assert (taken.taken_by, taken.taken_at) == ("instructor-kim", 1045.0)
    assert queue.mine("ada").taken_by == "instructor-kim"  # her JupyterLab says who is coming
    clock.now += 120
    closed = queue.done("ada", "instructor-kim")
    assert (closed.closed_by, closed.closed_at) == ("instructor-kim", 1165.0)
    assert closed.waited(clock.now + 999) == 45.0  # the wait ended when someone took it
    assert queue.mine("ada") is None and queue.queue()["open"] == []


def test_two_instructors_never_walk_to_the_same_seat(queue):
    queue.raise_hand("ada", STUCK_ON_3)
    queue.take("ada", "kim")
    with pytest.raises(HandRefused, match="kim is already on the way to ada"):
        queue.take("ada", "lee")
    assert queue.take("ada", "kim").taken_by == "kim"  # pressing again changes nothing


def test_answers_to_no_hand_are_refused(queue):
    with pytest.raises(HandRefused, match="ada has no hand up"):
        queue.take("ada", "kim")
    with pytest.raises(HandRefused, match="ada has no hand up"):
        queue.done("ada", "kim")
    assert queue.lower("ada") is None


def test_the_days_waits_count_hands_still_waiting_up_to_now(queue, clock):
    for name, wait in (("a", 10), ("b", 20), ("c", 300)):
        queue.raise_hand(name, STUCK_ON_3)
        clock.now += wait
        queue.take(name, "kim")
        queue.done(name, "kim")
    queue.raise_hand("d", STUCK_ON_3)
    clock.now += 40
    queue.raise_hand("e", Request(DONE, "finished lab 2", ""))  # a green note: no wait counted
    clock.now += 1000
    day = queue.queue()
    assert day["raised_today"] == 5
    assert [hand["attendee"] for hand in day["open"]] == ["d", "e"]
    assert day["longest_wait_seconds"] == 1040.0  # d, still waiting
    assert day["median_wait_seconds"] == 160.0  # 10, 20, 300, 1040


def test_an_empty_day_has_no_waits(queue):
    assert queue.queue() == {
        "open": [],
        "raised_today": 0,
        "median_wait_seconds": None,
        "longest_wait_seconds": None,
    }


def test_the_queue_survives_a_restart_of_the_console(tmp_path, clock):
    HandQueue(tmp_path / "hands.sqlite", clock=clock).raise_hand("ada", STUCK_ON_3)
    again = HandQueue(tmp_path / "hands.sqlite", clock=clock)
    assert [hand["attendee"] for hand in again.queue()["open"]] == ["ada"]


def test_a_lowered_hand_can_go_up_again_at_the_end_of_the_line(queue, clock):
    queue.raise_hand("ada", STUCK_ON_3)
    clock.now += 1
    queue.raise_hand("bob", STUCK_ON_3)
    queue.lower("ada")
    clock.now += 1
    queue.raise_hand("ada", STUCK_ON_3)
    assert [hand["attendee"] for hand in queue.queue()["open"]] == ["bob", "ada"]


def test_a_note_is_one_line_and_a_notebook_a_path_in_the_work_folder():
    request = request_from_body(
        {"kind": "stuck", "note": " line one\n\tline two ", "notebook": "a/b.ipynb"}
    )
    assert request == Request(STUCK, "line one line two", "a/b.ipynb")
    for notebook in ("../x.ipynb", "/etc/x.ipynb", "x.py", "a\nb.ipynb", "x" * 250 + ".ipynb"):
        with pytest.raises(BadHand, match="path in the work folder"):
            request_from_body({"kind": "stuck", "notebook": notebook})


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text())))
def test_whatever_a_browser_sends_is_a_hand_or_a_reason(body):
    try:
        request = request_from_body(body)
    except BadHand as error:
        assert str(error)
    else:
        assert request.kind in (STUCK, DONE)
        assert len(request.note) <= MAX_NOTE_LENGTH and "\n" not in request.note
