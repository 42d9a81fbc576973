"""The login throttle, attacked: parallel guesses, floods of names, one address's claims."""

import random
import time
import tracemalloc

import pytest

from workshop_hub.access.throttle import (
    MAX_KEYS,
    NAME_RULE,
    LoginThrottle,
    Rule,
    Throttled,
    TokenBucket,
)

ADDRESS = "203.0.113.7"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def throttle_with(clock=None, **rules) -> LoginThrottle:
    rules.setdefault("name_rule", Rule(3, 30.0))
    rules.setdefault("address_rule", Rule(100, 5.0))
    return LoginThrottle(window=900, clock=clock or Clock(), **rules)


def wait_for_next_try(throttle, name="ada", address=ADDRESS, device=None) -> int:
    """Seconds the throttle asks for (0: the try was let in and counted)."""
    try:
        throttle.admit(name, address, device)
    except Throttled as throttled:
        return throttled.retry_after
    return 0


def test_a_name_waits_longer_with_each_try_up_to_the_cap():
    clock = Clock()
    throttle = throttle_with(clock)
    asked = []
    for _ in range(10):
        wait = wait_for_next_try(throttle)
        asked.append(wait)
        if wait:
            clock.now += wait
            assert wait_for_next_try(throttle) == 0
    assert asked == [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]
    assert wait_for_next_try(throttle, "bob") == 0


def test_a_throttled_try_is_refused_at_once_and_says_how_long_to_wait():
    throttle = throttle_with()
    for _ in range(3):
        throttle.admit("ada", ADDRESS)
    started = time.perf_counter()
    with pytest.raises(Throttled) as refused:
        throttle.admit("ada", ADDRESS)
    assert time.perf_counter() - started < 0.01
    assert str(refused.value) == "Too many tries for this name: wait 1 s and try again."
    assert refused.value.retry_after == 1


def test_sixty_guesses_at_once_get_three_checks_and_leave_the_owners_device_alone():
    throttle = LoginThrottle()  # the real rules
    let_in = sum(wait_for_next_try(throttle, address=f"198.51.100.{i}") == 0 for i in range(60))
    assert let_in == NAME_RULE.free_failures
    # The control: from a browser that never logged in as ada, she waits like the guessers.
    assert wait_for_next_try(throttle) > 0
    # From her own browser she has a budget of her own.
    assert wait_for_next_try(throttle, device="ada-laptop-id") == 0
    throttle.succeeded("ada", "ada-laptop-id")
    assert wait_for_next_try(throttle, device="ada-laptop-id") == 0


def test_tries_age_out_of_the_window_and_success_resets_the_name():
    clock = Clock()
    throttle = throttle_with(clock, name_rule=Rule(1, 30.0))
    throttle.admit("ada", ADDRESS)
    clock.now += 1
    throttle.admit("ada", ADDRESS)
    assert wait_for_next_try(throttle) == 2
    clock.now += 901
    assert wait_for_next_try(throttle) == 0
    assert wait_for_next_try(throttle) == 1
    throttle.succeeded("ada")
    assert wait_for_next_try(throttle) == 0


def test_an_address_with_many_failures_waits_unless_the_browser_logged_in_before():
    throttle = throttle_with(address_rule=Rule(5, 5.0))
    # Thousands of failures: the wait stays at the cap (2.0**1024 would overflow).
    for _ in range(2_000):
        throttle.failed("192.0.2.50")
    assert wait_for_next_try(throttle, "someone", "192.0.2.50") == 5
    with pytest.raises(Throttled, match="from your network"):
        throttle.admit("someone", "192.0.2.50")
    # Another address, and a known browser behind the same address, do not wait.
    assert wait_for_next_try(throttle, "someone", "192.0.2.51") == 0
    assert wait_for_next_try(throttle, "ada", "192.0.2.50", device="ada-laptop-id") == 0


def random_name() -> str:
    return f"n{random.getrandbits(64):x}"


def test_a_flood_of_random_names_keeps_at_most_the_bound_in_keys_and_memory():
    throttle = LoginThrottle()
    tracemalloc.start()
    try:
        for index in range(100_000):
            # One address per hundred names: addresses are keys too.
            address = f"10.{index // 25600 % 256}.{index // 100 % 256}.1"
            try:
                throttle.admit(random_name(), address)
            except Throttled:
                pass
            throttle.failed(address)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(throttle.failures) == MAX_KEYS
    assert held < 20 * 2**20, f"{held / 2**20:.1f} MiB"


def test_huge_and_invalid_names_never_become_keys():
    throttle = LoginThrottle()
    tracemalloc.start()
    try:
        for index in range(2_000):
            huge = f"{index}" + "a" * 100_000
            try:
                throttle.admit(huge, ADDRESS)
            except Throttled:
                pass
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(throttle.failures) == []
    assert held < 2**20, f"{held / 2**20:.1f} MiB"
    # The control: a valid name does become a key.
    throttle.admit("ada", ADDRESS)
    assert list(throttle.failures) == ["name:ada"]


def test_the_oldest_keys_are_dropped_first():
    throttle = LoginThrottle(max_keys=1_000)
    for index in range(5_000):
        throttle.admit(f"name{index}", ADDRESS)
    assert len(throttle.failures) == 1_000
    assert "name:name0" not in throttle.failures and "name:name4999" in throttle.failures


def test_one_address_claims_a_burst_of_names_then_at_the_refill_rate():
    clock = Clock()
    throttle = throttle_with(clock, new_names_rule=TokenBucket(burst=3, refill_seconds=10.0))
    for _ in range(3):
        throttle.take_new_name(ADDRESS)
    with pytest.raises(Throttled, match="Too many new names from your network: wait 10 s"):
        throttle.take_new_name(ADDRESS)
    # Another address has its own bucket; a claim that did not happen gives its token back.
    throttle.take_new_name("198.51.100.1")
    throttle.give_back_new_name(ADDRESS)
    throttle.take_new_name(ADDRESS)
    clock.now += 10
    throttle.take_new_name(ADDRESS)
    with pytest.raises(Throttled):
        throttle.take_new_name(ADDRESS)
