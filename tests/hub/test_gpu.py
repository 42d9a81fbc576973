import asyncio
import threading

import pytest

from workshop_hub.gpu import GpusFull, GpuSlots


def test_least_loaded_gpu_first_and_ties_in_listed_order():
    slots = GpuSlots(["0", "1"], per_gpu=2)
    assert [slots.acquire(f"user{i}") for i in range(4)] == ["0", "1", "0", "1"]


def test_never_more_than_per_gpu_on_one_gpu():
    slots = GpuSlots(["0", "1"], per_gpu=2)
    for i in range(4):
        slots.acquire(f"user{i}")
    with pytest.raises(GpusFull, match="All 4 GPU places are taken") as full:
        slots.acquire("user4")
    assert "CPU" in str(full.value)
    assert slots.free_places() == 0


def test_same_holder_keeps_their_gpu():
    slots = GpuSlots(["0", "1"], per_gpu=1)
    assert slots.acquire("ada") == "0"
    assert slots.acquire("ada") == "0"
    assert slots.free_places() == 1


def test_release_frees_the_place_for_the_next_attendee():
    slots = GpuSlots(["0", "1"], per_gpu=1)
    slots.acquire("ada")
    slots.acquire("bob")
    assert slots.release("ada") == "0"
    assert slots.release("ada") is None
    assert slots.acquire("cy") == "0"


def test_released_places_refill_the_emptiest_gpu():
    slots = GpuSlots(["0", "1", "2"], per_gpu=3)
    for i in range(6):
        slots.acquire(f"user{i}")
    slots.release("user1")  # GPU 1 now has one attendee, the others two
    assert slots.acquire("new") == "1"


def test_twenty_concurrent_async_starts_never_double_book():
    slots = GpuSlots(["0", "1"], per_gpu=4)

    async def start(name):
        await asyncio.sleep(0)
        try:
            return slots.acquire(name)
        except GpusFull:
            return None

    async def main():
        return await asyncio.gather(*(start(f"user{i}") for i in range(20)))

    results = asyncio.run(main())
    granted = [device for device in results if device is not None]
    assert len(granted) == 8
    assert granted.count("0") == 4 and granted.count("1") == 4


def test_concurrent_threads_never_double_book():
    slots = GpuSlots(["0", "1", "2"], per_gpu=2)
    barrier = threading.Barrier(20)
    results = {}

    def start(name):
        barrier.wait()
        try:
            results[name] = slots.acquire(name)
        except GpusFull:
            results[name] = None

    threads = [threading.Thread(target=start, args=(f"user{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = [device for device in results.values() if device is not None]
    assert sorted(granted) == ["0", "0", "1", "1", "2", "2"]


def test_rebuild_after_restart_restores_assignments_and_limits():
    slots = GpuSlots(["0", "1"], per_gpu=2)
    slots.rebuild({"ada": "1", "bob": "1", "cy": "0"})
    assert slots.holders() == {"0": ["cy"], "1": ["ada", "bob"]}
    assert slots.acquire("ada") == "1"
    assert slots.acquire("dee") == "0"
    with pytest.raises(GpusFull):
        slots.acquire("eve")


def test_rebuild_keeps_holders_of_gpus_no_longer_configured():
    slots = GpuSlots(["0"], per_gpu=1)
    slots.rebuild({"ada": "3"})
    assert slots.holders() == {"0": [], "3": ["ada"]}
    assert slots.acquire("bob") == "0"


@pytest.mark.parametrize(("ids", "per_gpu"), [([], 2), (["0"], 0)])
def test_invalid_construction(ids, per_gpu):
    with pytest.raises(ValueError):
        GpuSlots(ids, per_gpu)
