"""The spawn line: arrival order, the limit under concurrency, leaving the line, restarts."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workshop_hub.room.spawn_queue import (
    FIRST_GUESS_SECONDS,
    RETURN_WINDOW_SECONDS,
    TICKET_LIFETIME_SECONDS,
    ArrivalBook,
    LeftTheLine,
    SpawnQueue,
)
from workshop_hub.room.spawner import _ordinal, _place_in_line


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(20):
        await asyncio.sleep(0)


class Room:
    """Attendees pressing start; records whose turn came when and how many held one."""

    def __init__(self, queue: SpawnQueue):
        self.queue = queue
        self.given: list[tuple[int, str]] = []  # (turn number, name) as the bodies run
        self.holding = 0
        self.most_holding = 0
        self.release: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task] = {}

    def press_start(self, name: str, hold: float | None = None) -> asyncio.Task:
        """`hold` seconds in the turn, or until `finish(name)` when None."""
        self.release[name] = asyncio.Event()

        async def spawn():
            async with self.queue.turn(name) as place:
                self.given.append((place.turn_number, name))
                self.holding += 1
                self.most_holding = max(self.most_holding, self.holding)
                try:
                    if hold is None:
                        await self.release[name].wait()
                    else:
                        await asyncio.sleep(hold)
                finally:
                    self.holding -= 1

        self.tasks[name] = asyncio.create_task(spawn(), name=name)
        return self.tasks[name]

    def finish(self, name: str) -> None:
        self.release[name].set()

    @property
    def turns(self) -> list[str]:
        """Whose turn came, in the order the line gave the turns."""
        return [name for _, name in sorted(self.given)]


async def test_turns_come_in_arrival_order():
    room = Room(SpawnQueue(limit=1))
    for name in "abcde":
        room.press_start(name)
        await settle()
    assert room.turns == ["a"]
    assert [room.queue.position(name) for name in "bcde"] == [1, 2, 3, 4]
    for name in "abcd":
        room.finish(name)
        await settle()
    assert room.turns == list("abcde")
    room.finish("e")
    await asyncio.gather(*room.tasks.values())
    assert room.queue.waiting == room.queue.starting == 0


async def test_the_limit_holds_with_forty_spawns_at_once():
    room = Room(SpawnQueue(limit=3))
    rng = random.Random(7)
    for number in range(40):
        room.press_start(f"a{number}", hold=rng.uniform(0, 0.01))
    await asyncio.gather(*room.tasks.values())
    assert room.most_holding == 3
    assert sorted(room.turns) == sorted(room.tasks)
    # All pressed start in the same tick, so their arrival order is the order of the calls.
    assert room.turns == [f"a{number}" for number in range(40)]


async def test_a_cancelled_wait_leaves_the_line():
    """JupyterHub's "Stop Server" on the spawn page, or its start timeout, cancels start()."""
    room = Room(SpawnQueue(limit=1))
    for name in "abc":
        room.press_start(name)
    await settle()
    room.tasks["b"].cancel()
    await settle()
    assert room.queue.position("b") is None and room.queue.position("c") == 1
    room.finish("a")
    await settle()
    assert room.turns == ["a", "c"]
    room.finish("c")
    await asyncio.gather(room.tasks["a"], room.tasks["c"])


async def test_a_cancelled_turn_is_handed_on():
    room = Room(SpawnQueue(limit=1))
    room.press_start("a")
    room.press_start("b")
    await settle()
    room.tasks["a"].cancel()
    await settle()
    assert room.turns == ["a", "b"] and room.queue.starting == 1


async def test_closing_the_page_gives_the_place_to_the_next_person():
    queue = SpawnQueue(limit=1, grace=0.05)
    room = Room(queue)
    for name in "abc":
        room.press_start(name)
    await settle()
    with queue.watching("b"):
        await settle()
    # A reload within the grace period keeps the place.
    await asyncio.sleep(0.01)
    with queue.watching("b"):
        await asyncio.sleep(0.1)
    assert queue.position("b") == 1
    # Closed for good: after the grace period the place is gone, with a message.
    with queue.watching("b"):
        pass
    await asyncio.sleep(0.1)
    assert queue.position("b") is None and queue.position("c") == 1
    with pytest.raises(LeftTheLine, match="closed the page"):
        await room.tasks["b"]
    room.finish("a")
    await settle()
    assert room.turns == ["a", "c"]
    room.finish("c")


async def test_spawns_nobody_watches_keep_their_place():
    """Started through the REST API, with no page: nothing to close."""
    queue = SpawnQueue(limit=1, grace=0.01)
    room = Room(queue)
    room.press_start("a")
    room.press_start("b")
    await asyncio.sleep(0.05)
    assert queue.position("b") == 1
    room.finish("a")
    room.finish("b")
    await asyncio.gather(*room.tasks.values())


async def test_two_pages_both_have_to_close():
    queue = SpawnQueue(limit=1, grace=0.01)
    room = Room(queue)
    room.press_start("a")
    room.press_start("b")
    await settle()
    with queue.watching("b"):
        with queue.watching("b"):
            pass
        await asyncio.sleep(0.05)
        assert queue.position("b") == 1
    await asyncio.sleep(0.05)
    assert queue.position("b") is None
    room.finish("a")
    with pytest.raises(LeftTheLine):
        await room.tasks["b"]


async def test_the_estimate_learns_from_finished_spawns():
    clock = [0.0]
    queue = SpawnQueue(limit=2, clock=lambda: clock[0])
    assert queue.estimated_wait(4) == 4 * FIRST_GUESS_SECONDS / 2
    for seconds in (8.0, 10.0, 12.0):
        async with queue.turn("a"):
            clock[0] += seconds
    assert queue.typical_spawn_seconds() == 10.0
    assert queue.estimated_wait(3) == 15.0


async def test_the_wait_in_line_is_measured():
    clock = [100.0]
    room = Room(SpawnQueue(limit=1, clock=lambda: clock[0]))
    room.press_start("a")
    await settle()
    places = []

    async def b():
        async with room.queue.turn("b") as place:
            places.append(place)

    task = asyncio.create_task(b())
    await settle()
    clock[0] += 42.0
    room.finish("a")
    await asyncio.gather(task, room.tasks["a"])
    assert places[0].waited == 42.0


async def test_waiting_pages_wake_on_every_change():
    queue = SpawnQueue(limit=1)
    room = Room(queue)
    room.press_start("a")
    room.press_start("b")
    await settle()
    woken = asyncio.create_task(queue.changed(timeout=5))
    await settle()
    assert not woken.done()
    room.finish("a")
    await asyncio.wait_for(woken, 1)
    room.finish("b")
    await asyncio.gather(*room.tasks.values())


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        SpawnQueue(limit=0)


# --- over a hub restart ---------------------------------------------------------------------


async def test_after_a_restart_the_pages_that_ask_again_keep_their_order(tmp_path):
    """The hub stopped while a had its turn and b waited (asyncio cancels both); c presses
    start after the restart, before a's and b's pages ask again."""
    line_file = tmp_path / "spawn-line.json"
    clock = [1000.0]
    before = SpawnQueue(limit=1, book=ArrivalBook(line_file, clock=lambda: clock[0]))
    room = Room(before)
    room.press_start("a")
    await settle()
    clock[0] += 1
    room.press_start("b")
    await settle()
    for task in room.tasks.values():
        task.cancel()
    await settle()
    assert {name: entry["arrived"] for name, entry in read_line(line_file).items()} == {
        "a": 1000.0,
        "b": 1001.0,
    }

    clock[0] += 30
    after = SpawnQueue(limit=1, book=ArrivalBook(line_file, clock=lambda: clock[0]))
    room = Room(after)
    for name in "xcba":  # x takes the free turn; the others wait
        room.press_start(name)
        await settle()
    assert [after.position(name) for name in "abc"] == [1, 2, 3]
    for name in "xabc":
        room.finish(name)
    await asyncio.gather(*room.tasks.values())
    assert room.turns == list("xabc")
    assert read_line(line_file) == {}


async def test_a_place_waits_a_minute_for_its_page_then_is_gone(tmp_path):
    clock = [0.0]
    book = ArrivalBook(tmp_path / "spawn-line.json", clock=lambda: clock[0])
    book.arrive("a")
    book.interrupt("a")
    clock[0] += RETURN_WINDOW_SECONDS
    assert book.arrive("a") == 0.0
    book.interrupt("a")
    clock[0] += RETURN_WINDOW_SECONDS + 1
    assert book.arrive("a") == clock[0]


async def test_a_completed_turn_or_a_closed_page_forgets_the_arrival(tmp_path):
    clock = [0.0]
    queue = SpawnQueue(
        limit=1, book=ArrivalBook(tmp_path / "line.json", clock=lambda: clock[0]), grace=0.01
    )
    async with queue.turn("a"):
        pass
    clock[0] += 1
    assert queue.book.arrive("a") == 1.0
    queue.book.forget("a")
    room = Room(queue)
    room.press_start("x")
    room.press_start("b")
    await settle()
    with queue.watching("b"):
        pass
    with pytest.raises(LeftTheLine):
        await room.tasks["b"]
    clock[0] += 1
    assert queue.book.arrive("b") == 2.0
    room.finish("x")
    await room.tasks["x"]


async def test_a_wait_cancelled_as_its_turn_comes_does_not_break_the_line():
    room = Room(SpawnQueue(limit=1))
    for name in "abc":
        room.press_start(name)
    await settle()
    # a's turn ends and b's wait is cancelled in the same moment: c is next.
    room.finish("a")
    room.tasks["b"].cancel()
    await settle()
    assert room.turns == ["a", "c"]
    room.finish("c")
    await asyncio.gather(room.tasks["a"], room.tasks["c"])


def read_line(path) -> dict:
    return json.loads(path.read_text())


def test_old_and_damaged_arrivals_are_dropped(tmp_path):
    line_file = tmp_path / "spawn-line.json"
    now = 50_000.0
    line_file.write_text(
        json.dumps(
            {
                "recent": {"arrived": now - 60, "interrupted": None},
                "left-long-ago": {"arrived": now - TICKET_LIFETIME_SECONDS - 1},
                "gone-quiet": {"arrived": now - 100, "interrupted": now - 90},
                "x": "?",
            }
        )
    )
    book = ArrivalBook(line_file, clock=lambda: now)
    assert book.arrive("recent") == now - 60
    assert book.arrive("left-long-ago") == now
    assert book.arrive("gone-quiet") == pytest.approx(now)  # just after left-long-ago's
    for damaged in ("{not json", "[1, 2]"):
        line_file.write_text(damaged)
        assert ArrivalBook(line_file, clock=lambda: now).arrive("recent") == now


def test_an_unwritable_line_file_costs_only_the_order(tmp_path):
    # A file where the folder should be: writing fails even as root.
    (tmp_path / "not-a-folder").write_text("")
    book = ArrivalBook(tmp_path / "not-a-folder" / "spawn-line.json", clock=lambda: 5.0)
    assert book.arrive("a") == 5.0
    book.forget("a")
    assert book.arrive("a") == 5.0


# --- property: any interleaving of arrivals and departures ------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 4),
    plan=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=25),
)
def test_any_mix_of_waits_and_cancellations_keeps_order_and_limit(limit, plan):
    """Attendees arrive one per step; some give up after a few steps. Whoever gets a turn
    gets it in arrival order among those still waiting, and never more than `limit` hold
    one."""

    async def scenario():
        room = Room(SpawnQueue(limit=limit))
        leavers = {}
        for index, (gives_up, patience) in enumerate(plan):
            name = f"p{index}"
            room.press_start(name, hold=0.001)
            if gives_up:
                leavers[name] = patience
            for leaver, steps in list(leavers.items()):
                if steps == 0:
                    room.tasks[leaver].cancel()
                    del leavers[leaver]
                else:
                    leavers[leaver] = steps - 1
            await asyncio.sleep(0)
        await asyncio.gather(*room.tasks.values(), return_exceptions=True)
        assert room.most_holding <= limit
        arrival = {f"p{index}": index for index in range(len(plan))}
        assert room.turns == sorted(room.turns, key=arrival.get)
        assert room.queue.waiting == room.queue.starting == 0

    asyncio.run(scenario())


# --- what the page says -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "word"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinals(number, word):
    assert _ordinal(number) == word


def test_the_place_in_line_reads_like_a_sentence():
    assert _place_in_line(12, 38.2).startswith("You are 12th in line, about 40 s.")
    assert _place_in_line(1, 0.3).startswith("You are next in line, about 5 s.")
    assert _place_in_line(150, 400).startswith("You are 150th in line, about 7 min.")


def test_a_wall_clock_that_steps_back_never_lets_a_later_arrival_overtake(tmp_path):
    readings = iter([1000.0, 990.0, 990.0])  # NTP stepped the clock back 10 s
    book = ArrivalBook(tmp_path / "line.json", clock=lambda: next(readings))
    first, second, third = (book.arrive(name) for name in ("ada", "bob", "cy"))
    assert first < second < third
