"""Slowing down password guessing without locking anyone out.

JupyterHub has no login rate limit of its own, and Caddy's standard build has none either.
Two rules, counted over a sliding window:

- For one name, after a few failures every further attempt waits, and attempts for that name
  are served one at a time: a guesser gets about two tries a minute, while the real owner still
  gets in after at most `max_delay` seconds (a lockout would let anyone lock Ada out).
- For one address, after many failures each further failure is answered late. Only failures:
  behind a venue's NAT the whole room shares one address, and other people's typos must not
  slow anyone who types their password right.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    free_failures: int  # failures in the window before attempts start to wait
    max_delay: float  # seconds; the wait doubles with each failure beyond the free ones

    def delay(self, failures: int) -> float:
        beyond = failures - self.free_failures
        if beyond < 0:
            return 0.0
        return min(2.0**beyond, self.max_delay)


NAME_RULE = Rule(free_failures=3, max_delay=30.0)
ADDRESS_RULE = Rule(free_failures=20, max_delay=5.0)
WINDOW_SECONDS = 15 * 60


class LoginThrottle:
    def __init__(
        self,
        name_rule: Rule = NAME_RULE,
        address_rule: Rule = ADDRESS_RULE,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name_rule = name_rule
        self.address_rule = address_rule
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._name_locks: dict[str, asyncio.Lock] = {}

    def _recent(self, key: str) -> int:
        failures = self._failures.get(key)
        if not failures:
            return 0
        horizon = self.clock() - self.window
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0
        return len(failures)

    def name_delay(self, name: str) -> float:
        """Seconds the next attempt for `name` waits before it is checked."""
        return self.name_rule.delay(self._recent(f"name:{name}"))

    def address_delay(self, address: str) -> float:
        """Seconds a failed attempt from `address` waits before it is answered."""
        return self.address_rule.delay(self._recent(f"address:{address}"))

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key in (f"name:{name}", f"address:{address}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, name: str) -> None:
        """The owner got in: their name's count starts again (the address's does not)."""
        self._failures.pop(f"name:{name}", None)

    @asynccontextmanager
    async def attempt(self, name: str):
        """Wait as the name's rule says, holding the name's turn, then let the attempt run."""
        lock = self._name_locks.setdefault(name, asyncio.Lock())
        async with lock:
            wait = self.name_delay(name)
            if wait:
                await asyncio.sleep(wait)
            yield
        if not lock.locked() and self._recent(f"name:{name}") == 0:
            # Keep the table small: only names with recent failures keep a lock.
            self._name_locks.pop(name, None)
