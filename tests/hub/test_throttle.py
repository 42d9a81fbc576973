import asyncio

from workshop_hub.throttle import LoginThrottle, Rule


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_name_waits_longer_with_each_failure_up_to_the_cap():
    clock = Clock()
    throttle = LoginThrottle(Rule(3, 30.0), Rule(100, 5.0), window=900, clock=clock)
    delays = []
    for _ in range(10):
        delays.append(throttle.name_delay("ada"))
        throttle.failed("ada", "203.0.113.7")
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]
    assert throttle.name_delay("bob") == 0


def test_failures_age_out_of_the_window_and_success_resets_the_name():
    clock = Clock()
    throttle = LoginThrottle(Rule(1, 30.0), Rule(100, 5.0), window=900, clock=clock)
    for _ in range(3):
        throttle.failed("ada", "203.0.113.7")
    assert throttle.name_delay("ada") == 4
    clock.now += 901
    assert throttle.name_delay("ada") == 0
    for _ in range(3):
        throttle.failed("ada", "203.0.113.7")
    throttle.succeeded("ada")
    assert throttle.name_delay("ada") == 0


def test_an_address_with_many_failures_gets_late_answers_to_its_failures_only():
    throttle = LoginThrottle(Rule(3, 30.0), Rule(5, 5.0), window=900, clock=Clock())
    for index in range(12):
        throttle.failed(f"name{index}", "192.0.2.50")
    assert throttle.address_delay("192.0.2.50") == 5.0
    assert throttle.address_delay("192.0.2.51") == 0
    # Someone else behind the same address who types the right password does not wait.
    assert throttle.name_delay("someone-new") == 0


def test_attempts_for_one_name_take_turns_so_parallel_guessing_gains_nothing():
    throttle = LoginThrottle(Rule(0, 0.05), Rule(100, 5.0), window=900)
    throttle.failed("ada", "203.0.113.7")
    inside = []

    async def guess(index):
        async with throttle.attempt("ada"):
            inside.append(("in", index))
            await asyncio.sleep(0.01)
            inside.append(("out", index))

    async def main():
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(guess(index) for index in range(4)))
        return asyncio.get_running_loop().time() - started

    elapsed = asyncio.run(main())
    # Never two attempts inside at once, and each waited its delay in turn.
    assert [kind for kind, _ in inside] == ["in", "out"] * 4
    assert elapsed >= 4 * 0.05
