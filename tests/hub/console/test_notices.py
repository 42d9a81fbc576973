"""The console's notices (workshop_hub/console/notices.py): news reaches the attendee it is for, at
once when they wait for it, and never replays the day to a reloaded JupyterLab."""

from __future__ import annotations

import asyncio

from workshop_hub.console.notices import ANNOUNCEMENT, HAND, KEPT, LOOKING_REPEAT_SECONDS, Notices


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_first_call_gets_the_current_number_and_no_old_news():
    notices = Notices()
    notices.publish(ANNOUNCEMENT, "Break until 10:45")
    first = await notices.wait(None, None, "ada", timeout=5)
    assert first == {"boot": notices.boot, "seq": 1, "missed": False, "notices": []}


async def test_a_waiting_attendee_gets_news_as_it_is_published():
    notices = Notices()
    start = await notices.wait(None, None, "ada", timeout=0)
    waiting = asyncio.create_task(notices.wait(start["seq"], notices.boot, "ada", timeout=20))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    notices.publish(HAND, "On my way: kim", to="ada")
    news = await asyncio.wait_for(waiting, 1)
    assert [(n["kind"], n["text"]) for n in news["notices"]] == [(HAND, "On my way: kim")]
    assert news["seq"] == 1


async def test_news_for_one_attendee_never_reaches_another():
    notices = Notices()
    waiting = asyncio.create_task(notices.wait(0, notices.boot, "bob", timeout=0.3))
    await asyncio.sleep(0.05)
    notices.publish(HAND, "On my way: kim", to="ada")
    news = await waiting  # woken, sees nothing of his, waits out the rest
    assert news["notices"] == []
    notices.publish(ANNOUNCEMENT, "Lunch")
    assert [n["text"] for n in (await notices.wait(0, notices.boot, "bob", 0))["notices"]] == [
        "Lunch"
    ]


async def test_a_console_restart_or_a_number_from_the_future_starts_over():
    notices = Notices()
    notices.publish(ANNOUNCEMENT, "one")
    for after, boot in ((1, "an-earlier-run"), (99, notices.boot)):
        news = await notices.wait(after, boot, "ada", timeout=5)
        assert news == {"boot": notices.boot, "seq": 1, "missed": False, "notices": []}


async def test_a_laptop_asleep_through_the_morning_gets_the_latest_and_a_gap():
    notices = Notices(kept=3)
    for number in range(5):
        notices.publish(ANNOUNCEMENT, f"news {number}")
    news = await notices.wait(0, notices.boot, "ada", timeout=0)
    assert news["missed"] is True
    assert [n["text"] for n in news["notices"]] == ["news 2", "news 3", "news 4"]
    assert KEPT >= 100


async def test_looking_is_told_once_per_instructor_and_notebook_in_a_while():
    clock = Clock()
    notices = Notices(clock=clock)
    assert notices.looking("kim", "ada", "your notebook lab1.ipynb") is not None
    clock.now += 5
    assert notices.looking("kim", "ada", "your notebook lab1.ipynb") is None  # a refresh
    assert notices.looking("kim", "ada", "your notebook lab2.ipynb") is not None
    clock.now += LOOKING_REPEAT_SECONDS
    assert notices.looking("kim", "ada", "your notebook lab1.ipynb") is not None
    texts = [n["text"] for n in (await notices.wait(0, notices.boot, "ada", 0))["notices"]]
    assert texts[0] == "kim is looking at your notebook lab1.ipynb"
    assert len(texts) == 3
