"""Slowing down password guessing without letting anyone lock anyone out.

JupyterHub has no login rate limit of its own, and Caddy's standard build has none either.
Every rule answers at once: a try over its budget is refused with the seconds to wait (the
login page answers 429 with Retry-After), never queued and never held open, so a flood of
guesses keeps nobody waiting behind it and costs the hub no more than the refusals.

- A name: after a few tries, each further try must come later than the one before, twice as
  late each time up to `max_delay`: a guesser gets about two tries a minute. A try counts when
  it starts (as a failure until it succeeds), so sixty guesses sent at once get three checks.
- A device: a browser that logged in as that name before (auth.py's signed cookie) has a
  budget of its own, so strangers' guesses never hold up the owner's right password.
- An address: after many failures, tries from it without such a cookie must wait too.
  Generous, because behind a venue's NAT the whole room shares one address.
- New names: each address claims names from a token bucket (see NEW_NAMES_RULE).

Counts run over a window that starts at the first try and ends WINDOW_SECONDS later. Every
table is bounded, least recently used entries dropped first, and only a valid username ever
becomes a key: a stranger's random or huge names cost a bounded amount of memory.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..settings import USERNAME_PATTERN


@dataclass(frozen=True)
class Rule:
    free_failures: int  # failures in the window before tries must wait
    max_delay: float  # seconds; the wait doubles with each failure beyond the free ones

    def delay(self, failures: int) -> float:
        beyond = failures - self.free_failures
        if beyond < 0:
            return 0.0
        # Capped first: an address's failures can pass a thousand, and 2.0**1024 overflows.
        return min(2.0 ** min(beyond, 64), self.max_delay)


@dataclass(frozen=True)
class TokenBucket:
    burst: int  # claims at once from a fresh address
    refill_seconds: float  # one more claim every this many seconds


NAME_RULE = Rule(free_failures=3, max_delay=30.0)
# A room of 200 behind one NAT, at 09:00, makes dozens of typos in a quarter of an hour (wrong
# room code, a password too short): only far beyond that must its next tries wait.
ADDRESS_RULE = Rule(free_failures=100, max_delay=5.0)
# A room of 200 arriving at 09:00 behind one NAT claims its names within minutes: the first
# 100 at once, the next at 20 a minute. A script behind one address gets no more, and the
# room's cap on names (WORKSHOP_MAX_NAMES, auth.py) bounds what it can take in all.
NEW_NAMES_RULE = TokenBucket(burst=100, refill_seconds=3.0)
WINDOW_SECONDS = 15 * 60
# About 300 bytes each (50,000 keys measured 14 MiB): far more keys than a room's names and
# addresses, so only a flood of strangers' keys is ever dropped.
MAX_KEYS = 50_000


class Throttled(Exception):
    """A try refused before it is checked; the message says how long to wait."""

    def __init__(self, what: str, wait: float):
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"{what}: wait {self.retry_after} s and try again.")


class _Count:
    __slots__ = ("failures", "window_start", "last")

    def __init__(self, now: float):
        self.failures, self.window_start, self.last = 0, now, now


class _Tokens:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float):
        self.tokens, self.updated = tokens, now


class BoundedTable(OrderedDict):
    """A dict of at most `max_keys` keys; a new key drops the least recently used one."""

    def __init__(self, max_keys: int):
        super().__init__()
        self.max_keys = max_keys

    def touch(self, key: str, make: Callable[[], object]):
        """The entry of `key` (made by `make` when absent), now the most recently used."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        entry = self[key] = make()
        if len(self) > self.max_keys:
            self.popitem(last=False)
        return entry


class LoginThrottle:
    def __init__(
        self,
        name_rule: Rule = NAME_RULE,
        address_rule: Rule = ADDRESS_RULE,
        new_names_rule: TokenBucket = NEW_NAMES_RULE,
        window: float = WINDOW_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name_rule = name_rule
        self.address_rule = address_rule
        self.new_names_rule = new_names_rule
        self.window = window
        self.clock = clock
        # "name:ada", "device:<token>", "address:203.0.113.7" -> failures in the window.
        self.failures = BoundedTable(max_keys)
        # address -> claims it may still make.
        self.new_names = BoundedTable(max_keys)

    def _current(self, key: str) -> _Count | None:
        count = self.failures.get(key)
        if count is not None and self.clock() - count.window_start >= self.window:
            del self.failures[key]
            return None
        return count

    def _wait(self, key: str, rule: Rule) -> float:
        """Seconds before the next try counted under `key` may start."""
        count = self._current(key)
        if count is None:
            return 0.0
        return max(0.0, count.last + rule.delay(count.failures) - self.clock())

    def _count(self, key: str) -> None:
        now = self.clock()
        count = self._current(key) or self.failures.touch(key, lambda: _Count(now))
        self.failures.move_to_end(key)
        count.failures += 1
        count.last = now

    def admit(self, name: str, address: str, device: str | None = None) -> None:
        """Let a try for `name` start, counted against its budget, or raise Throttled.

        `device` is the browser's own id when it logged in as `name` before: its tries have
        a budget of their own, apart from strangers' and from the address's.
        """
        if device:
            key = f"device:{device}"
        else:
            wait = self._wait(f"address:{address}", self.address_rule)
            if wait:
                raise Throttled("Too many failed logins from your network", wait)
            if not re.fullmatch(USERNAME_PATTERN, name):
                # Not a name anyone can hold: only the address's failures count it.
                return
            key = f"name:{name}"
        wait = self._wait(key, self.name_rule)
        if wait:
            raise Throttled("Too many tries for this name", wait)
        self._count(key)

    def failed(self, address: str) -> None:
        """A try from `address` was refused (its name's or device's was counted at admit)."""
        self._count(f"address:{address}")

    def succeeded(self, name: str, device: str | None = None) -> None:
        """The owner got in: the budget they used starts again (the address's does not)."""
        self.failures.pop(f"device:{device}" if device else f"name:{name}", None)

    def take_new_name(self, address: str) -> None:
        """Take one new name's token from `address`'s bucket, or raise Throttled."""
        rule, now = self.new_names_rule, self.clock()
        bucket = self.new_names.touch(address, lambda: _Tokens(rule.burst, now))
        bucket.tokens = min(
            rule.burst, bucket.tokens + (now - bucket.updated) / rule.refill_seconds
        )
        bucket.updated = now
        if bucket.tokens < 1:
            raise Throttled(
                "Too many new names from your network", (1 - bucket.tokens) * rule.refill_seconds
            )
        bucket.tokens -= 1

    def give_back_new_name(self, address: str) -> None:
        """The claim the token was taken for did not happen."""
        bucket = self.new_names.get(address)
        if bucket is not None:
            bucket.tokens = min(self.new_names_rule.burst, bucket.tokens + 1)
