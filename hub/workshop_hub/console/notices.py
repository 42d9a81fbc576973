"""What open JupyterLabs are told as it happens: an announcement, a solution just revealed, the
instructor's answer to a raised hand, an instructor looking at an attendee's notebook.

The console publishes each notice as it acts; an attendee's server asks for the notices after
the last one it saw and, when there are none, waits for the next (a long poll: a room of 200
idle JupyterLabs costs the console one open request each, not a request a second). Notices
live in memory only: they are news, and what they announce is kept elsewhere (the
announcement file, the revealed solutions, the hands). ``boot`` changes at every start of the
console, so a server that saw notices of an earlier run starts over instead of waiting for a
number that will not come back.

Notices for everyone carry no ``to``; a notice to one attendee reaches that attendee only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass

# How many notices the console remembers: an attendee's server that fell further behind (a
# laptop asleep through a morning of announcements) gets the latest ones and a gap flag.
KEPT = 500
# The longest a caller may wait for news: under every proxy's idle timeout along the way.
MAX_WAIT_SECONDS = 25.0
# An instructor refreshing a notebook's page tells its owner once, not at every refresh.
LOOKING_REPEAT_SECONDS = 120.0
ANNOUNCEMENT, SOLUTION, HAND, LOOKING = "announcement", "solution", "hand", "looking"


@dataclass(frozen=True)
class Notice:
    seq: int
    kind: str
    text: str
    at: float
    to: str | None = None  # one attendee's name, or None for everyone

    def as_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "to"}


class Notices:
    """The console's recent notices, numbered; the event loop's object (never shared with
    worker threads)."""

    def __init__(self, kept: int = KEPT, clock=time.time):
        self.boot = secrets.token_hex(8)
        self.clock = clock
        self._log: deque[Notice] = deque(maxlen=kept)
        self._seq = 0
        self._news = asyncio.Event()
        self._last_look: dict[tuple[str, str, str], float] = {}

    def publish(self, kind: str, text: str, to: str | None = None) -> Notice:
        self._seq += 1
        notice = Notice(self._seq, kind, text, self.clock(), to)
        self._log.append(notice)
        # Wake every waiting caller, then give later callers a fresh event to wait on.
        self._news.set()
        self._news = asyncio.Event()
        return notice

    def looking(self, instructor: str, attendee: str, what: str) -> Notice | None:
        """ "kim is looking at your notebook lab1.ipynb", at most every LOOKING_REPEAT_SECONDS
        for the same instructor, attendee and notebook."""
        key, now = (instructor, attendee, what), self.clock()
        if now - self._last_look.get(key, -LOOKING_REPEAT_SECONDS) < LOOKING_REPEAT_SECONDS:
            return None
        self._last_look[key] = now
        return self.publish(LOOKING, f"{instructor} is looking at {what}", to=attendee)

    def since(self, after: int, attendee: str) -> dict:
        """The notices for ``attendee`` numbered above ``after``; ``missed`` when some of
        them were already forgotten."""
        oldest = self._log[0].seq if self._log else self._seq + 1
        found = [
            notice.as_json()
            for notice in self._log
            if notice.seq > after and notice.to in (None, attendee)
        ]
        return {
            "boot": self.boot,
            "seq": self._seq,
            "missed": after + 1 < oldest and after < self._seq,
            "notices": found,
        }

    async def wait(self, after: int | None, boot: str | None, attendee: str, timeout: float):
        """The news for ``attendee`` since ``after`` of run ``boot``, waiting up to ``timeout``
        seconds for some. A first call (no ``after``) or one from an earlier run gets the
        current number and no old notices: a reloaded JupyterLab does not replay the day."""
        if after is None or boot != self.boot or after > self._seq:
            return {"boot": self.boot, "seq": self._seq, "missed": False, "notices": []}
        deadline = asyncio.get_running_loop().time() + min(timeout, MAX_WAIT_SECONDS)
        while True:
            news = self.since(after, attendee)
            remaining = deadline - asyncio.get_running_loop().time()
            if news["notices"] or news["missed"] or remaining <= 0:
                return news
            try:
                await asyncio.wait_for(self._news.wait(), remaining)
            except TimeoutError:
                return self.since(after, attendee)
