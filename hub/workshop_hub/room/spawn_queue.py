"""The line at 09:00: at most `limit` servers start at once, the others wait in arrival order.

Thirty spawns started together share the host's cores and all finish together, after the
whole burst; started a few at a time, the first attendees are coding within seconds and
everyone else sees their place in line (WorkshopSpawner.progress). Nobody is refused: the
line replaces JupyterHub's concurrent_spawn_limit, which answers 429 "Too many users".

The arrival times are kept on the hub's data volume, so attendees whose page asks again after
a hub restart keep their place. A place is given up when the attendee closes the page (no
progress listener for `grace` seconds); after "Stop Server" or a timeout it is kept for a
minute, like after a restart, for the attendee who presses start again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..access.credentials import write_atomically

# Until real spawns were measured: one spawn on a 2-core machine takes about this long.
FIRST_GUESS_SECONDS = 5.0
# How many recent spawns the estimate of the wait is taken from.
RECENT_SPAWNS = 20
# Time to reload the page, or for the page to come back after a hub restart, before a place
# is given to the next person.
DEFAULT_GRACE_SECONDS = 30.0
# An arrival older than this no longer counts, whatever happened since.
TICKET_LIFETIME_SECONDS = 15 * 60
# How long the place of a spawn cut short (a hub restart) waits for its page to ask again.
RETURN_WINDOW_SECONDS = 60


class LeftTheLine(Exception):
    """The attendee's place was given up before their turn; the message says why."""


# Arrivals the clock could not tell apart (or a clock stepped back) stay in pressing order.
ARRIVAL_STEP_SECONDS = 1e-6


class ArrivalBook:
    """When each attendee in line arrived, in a JSON file that outlives the hub process.

    An arrival is forgotten when the turn completes or the attendee closes the page. A spawn
    cut short (a hub restart, "Stop Server", an error) keeps its arrival for
    RETURN_WINDOW_SECONDS: the page that asks again gets the place it had.
    """

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time):
        self.path = path
        self.clock = clock
        # name -> {"arrived": time, "interrupted": time or None}
        self._entries: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file costs the order after one restart, never a spawn.
            return {}
        if not isinstance(stored, dict):
            return {}
        return {
            name: entry
            for name, entry in stored.items()
            if isinstance(entry, dict) and self._still_valid(entry)
        }

    def _still_valid(self, entry: dict) -> bool:
        now = self.clock()
        arrived, interrupted = entry.get("arrived"), entry.get("interrupted")
        if not isinstance(arrived, int | float) or now - arrived > TICKET_LIFETIME_SECONDS:
            return False
        if interrupted is None:
            return True
        return isinstance(interrupted, int | float) and now - interrupted <= RETURN_WINDOW_SECONDS

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            write_atomically(self.path, json.dumps(self._entries))
        except OSError:
            pass  # the line itself lives in memory; only the order after a restart is lost

    def arrive(self, name: str) -> float:
        """The attendee's arrival: the one kept from a spawn cut short, or now.

        A new arrival is never earlier than one already in the book: wall-clock time (kept
        because it outlives the hub process) can step back, and whoever pressed start later
        must not overtake.
        """
        entry = self._entries.get(name)
        if entry is None or not self._still_valid(entry):
            now = self.clock()
            latest = max((e["arrived"] for e in self._entries.values()), default=None)
            if latest is not None and now <= latest:
                now = latest + ARRIVAL_STEP_SECONDS
            entry = {"arrived": now}
        self._entries[name] = {"arrived": entry["arrived"], "interrupted": None}
        self._save()
        return entry["arrived"]

    def interrupt(self, name: str) -> None:
        if name in self._entries:
            self._entries[name]["interrupted"] = self.clock()
            self._save()

    def forget(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._save()


@dataclass(eq=False)
class Place:
    """One attendee's place in line, then their turn."""

    name: str
    arrived: float
    order: int
    entered: float
    granted: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # Seconds spent in line, known once the turn comes.
    waited: float | None = None
    # The turn's number, in the order turns were given: a task given its turn while it waits
    # may resume after one that arrived later and found a free place at once.
    turn_number: int | None = None

    def sort_key(self) -> tuple[float, int]:
        return (self.arrived, self.order)


class SpawnQueue:
    def __init__(
        self,
        limit: int,
        book: ArrivalBook | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit < 1:
            raise ValueError("a spawn queue needs a limit of at least 1")
        self.limit = limit
        self.book = book or ArrivalBook(None)
        self.grace = grace
        self.clock = clock
        self._waiting: list[Place] = []
        self._starting: set[Place] = set()
        self._recent: deque[float] = deque(maxlen=RECENT_SPAWNS)
        self._counter = itertools.count()
        self._turn_numbers = itertools.count()
        self._changed = asyncio.Event()
        self._watchers: dict[str, int] = {}
        self._abandon_timers: dict[str, asyncio.TimerHandle] = {}

    # --- what the spawn page shows ----------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def starting(self) -> int:
        return len(self._starting)

    def position(self, name: str) -> int | None:
        """1 for the next in line; None when `name` is not waiting."""
        for index, place in enumerate(self._waiting):
            if place.name == name:
                return index + 1
        return None

    def typical_spawn_seconds(self) -> float:
        return statistics.median(self._recent) if self._recent else FIRST_GUESS_SECONDS

    def estimated_wait(self, position: int) -> float:
        """Seconds until the turn of the one at `position`: a turn ends every spawn time ÷
        limit, on average, and `position` of them must end first."""
        return position * self.typical_spawn_seconds() / self.limit

    async def changed(self, timeout: float) -> None:
        """Return at the next change of the line, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def notify(self) -> None:
        """Wake the spawn pages: a place moved, or a spawn reached its next step."""
        # Everyone waiting on this event wakes; the next change needs a fresh one.
        self._changed.set()
        self._changed = asyncio.Event()

    # --- taking turns -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(self, name: str) -> AsyncIterator[Place]:
        """Wait for `name`'s turn, hold it for the body, then hand it to the next in line.

        Raises LeftTheLine when the place is given up (see `withdraw`); a cancelled wait
        (JupyterHub's "Stop Server", a timeout) leaves the line too.
        """
        place = Place(name, self.book.arrive(name), next(self._counter), self.clock())
        self._waiting.append(place)
        self._waiting.sort(key=Place.sort_key)
        self._dispatch()
        try:
            await place.granted
        except LeftTheLine:
            self.book.forget(name)
            self._leave(place)
            raise
        except BaseException:
            self.book.interrupt(name)
            self._leave(place)
            raise
        started = self.clock()
        try:
            yield place
        except BaseException:
            self.book.interrupt(name)
            raise
        else:
            self.book.forget(name)
            self._recent.append(self.clock() - started)
        finally:
            self._leave(place)

    def withdraw(self, name: str, reason: str) -> bool:
        """Give up `name`'s place in line (not a turn already under way)."""
        for place in self._waiting:
            if place.name == name and not place.granted.done():
                place.granted.set_exception(LeftTheLine(reason))
                return True
        return False

    def _dispatch(self) -> None:
        while self._waiting and len(self._starting) < self.limit:
            place = self._waiting.pop(0)
            if place.granted.done():
                # Cancelled or withdrawn; its task has yet to run and leave the line itself.
                continue
            place.waited = self.clock() - place.entered
            place.turn_number = next(self._turn_numbers)
            self._starting.add(place)
            place.granted.set_result(place)
        self.notify()

    def _leave(self, place: Place) -> None:
        if place in self._waiting:
            self._waiting.remove(place)
        self._starting.discard(place)
        self._dispatch()

    # --- attendees who close the page -------------------------------------------------------

    @contextlib.contextmanager
    def watching(self, name: str) -> Iterator[None]:
        """Held while a spawn page follows `name`'s progress.

        When the last page closes while `name` is still waiting, the place goes to the next
        person after `grace` seconds, unless a page comes back (a reload) in the meantime.
        Spawns nobody ever watched (the REST API) keep their place.
        """
        self._watchers[name] = self._watchers.get(name, 0) + 1
        timer = self._abandon_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        try:
            yield
        finally:
            self._watchers[name] -= 1
            if not self._watchers[name]:
                del self._watchers[name]
                if self.position(name) is not None:
                    self._abandon_timers[name] = asyncio.get_running_loop().call_later(
                        self.grace, self._abandon, name
                    )

    def _abandon(self, name: str) -> None:
        self._abandon_timers.pop(name, None)
        if name not in self._watchers:
            self.withdraw(
                name,
                "You closed the page while waiting in line, so your place went to the next "
                "person. Press Start to join the line again.",
            )
