import asyncio
import random
import threading

import pytest

from workshop_hub.room.gpu import GpusFull, GpuSlots, holders_table, is_mig_device

MIG_SLICE = "MIG-GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/1/0"
MIG_UUID = "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"


def confirmed(slots: GpuSlots, holder: str) -> str:
    """A spawn that went through: booked, then its container started."""
    device = slots.acquire(holder)
    slots.confirm(holder)
    return device


def reconcile(slots: GpuSlots, running: dict[str, str]) -> dict[str, str]:
    """A listing begun now and applied at once."""
    return slots.reconcile(running, slots.begin_listing())


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


def test_a_container_that_ended_on_its_own_frees_its_place_at_the_next_listing():
    slots = GpuSlots(["0"], per_gpu=2)
    confirmed(slots, "ada")
    confirmed(slots, "bob")
    assert slots.free_places() == 0
    # ada ran os.kill(1, 15): Docker no longer lists her container; nobody called release.
    assert reconcile(slots, {"bob": "0"}) == {"ada": "0"}
    assert slots.holders() == {"0": ["bob"]}
    assert slots.acquire("cy") == "0"


def test_a_spawn_in_flight_keeps_its_place_although_docker_does_not_list_it_yet():
    slots = GpuSlots(["0"], per_gpu=1)
    slots.acquire("ada")  # booked; the container is being created
    assert reconcile(slots, {}) == {}
    with pytest.raises(GpusFull):
        slots.acquire("bob")
    slots.confirm("ada")
    assert reconcile(slots, {"ada": "0"}) == {}
    assert slots.free_places() == 0


def test_a_listing_begun_before_the_container_started_cannot_free_it():
    slots = GpuSlots(["0"], per_gpu=1)
    slots.acquire("ada")
    early = slots.begin_listing()  # Docker answers before ada's container exists...
    slots.confirm("ada")  # ...her container starts...
    assert slots.reconcile({}, early) == {}  # ...and the late answer does not free her place
    with pytest.raises(GpusFull):
        slots.acquire("bob")
    assert reconcile(slots, {}) == {"ada": "0"}  # a listing begun afterwards does


def test_restarting_a_server_makes_the_booking_pending_again():
    slots = GpuSlots(["0"], per_gpu=1)
    confirmed(slots, "ada")
    assert slots.acquire("ada") == "0"  # her old container is gone, the new one not there yet
    assert reconcile(slots, {}) == {}
    assert slots.free_places() == 0


def test_listing_after_a_hub_restart_restores_assignments_and_limits():
    slots = GpuSlots(["0", "1"], per_gpu=2)
    reconcile(slots, {"ada": "1", "bob": "1", "cy": "0"})
    assert slots.holders() == {"0": ["cy"], "1": ["ada", "bob"]}
    assert slots.acquire("ada") == "1"
    assert slots.acquire("dee") == "0"
    with pytest.raises(GpusFull):
        slots.acquire("eve")
    # Restored places are freed like any other when their container goes.
    assert reconcile(slots, {"ada": "1", "cy": "0"}) == {"bob": "1"}


def test_listing_keeps_holders_of_gpus_no_longer_configured():
    slots = GpuSlots(["0"], per_gpu=1)
    reconcile(slots, {"ada": "3"})
    assert slots.holders() == {"0": [], "3": ["ada"]}
    assert slots.acquire("bob") == "0"


def test_mig_slices_take_one_attendee_each_beside_shared_gpus():
    slots = GpuSlots([MIG_SLICE, MIG_UUID, "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"], 3)
    assert slots.capacity == 5
    granted = [slots.acquire(f"user{i}") for i in range(5)]
    assert granted.count(MIG_SLICE) == granted.count(MIG_UUID) == 1
    assert granted.count("GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77") == 3
    with pytest.raises(GpusFull, match="All 5 GPU places"):
        slots.acquire("late")


@pytest.mark.parametrize(
    ("device_id", "mig"),
    [(MIG_SLICE, True), (MIG_UUID, True), ("GPU-5d5ba0d6", False), ("0", False)],
)
def test_mig_devices_are_recognised_by_their_prefix(device_id, mig):
    assert is_mig_device(device_id) is mig


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


@pytest.mark.parametrize("seed", range(20))
def test_racing_spawns_listings_and_deaths_never_double_book(seed):
    """Attendees spawn, the hub lists containers at any moment, containers die at any moment:
    Docker never runs more containers on a device than it has places, and every place is
    free once all containers are gone."""
    rng = random.Random(seed)
    per_gpu = 2
    slots = GpuSlots(["0", "1", MIG_SLICE], per_gpu)
    docker: dict[str, str] = {}  # holder -> device of each running container
    violations = []

    def check_docker() -> None:
        for device in slots.device_ids:
            running = sum(1 for held in docker.values() if held == device)
            if running > slots.places(device):
                violations.append((device, dict(docker)))

    async def pause() -> None:
        await asyncio.sleep(rng.random() / 1000)

    async def listing() -> None:
        """What the spawner does before booking and before counting free places."""
        number = slots.begin_listing()
        await pause()
        answer = dict(docker)  # Docker answers at some moment after the listing began
        await pause()
        slots.reconcile(answer, number)

    async def spawn(holder: str) -> None:
        await pause()
        await listing()
        try:
            device = slots.acquire(holder)
        except GpusFull:
            return
        await pause()  # the container is being created
        if rng.random() < 0.1:  # Docker refused it
            slots.release(holder)
            return
        docker[holder] = device
        check_docker()
        await pause()
        slots.confirm(holder)
        await pause()
        if rng.random() < 0.5:  # the attendee kills PID 1: nobody calls release...
            del docker[holder]
            await pause()
            if rng.random() < 0.5:  # ...until JupyterHub's poll runs the post-stop hook
                slots.release(holder)
        elif rng.random() < 0.5:  # a stop through the hub
            del docker[holder]
            slots.release(holder)

    async def attendee(holder: str) -> None:
        # One server at a time per attendee, as JupyterHub allows; some start it again.
        for _ in range(3):
            await spawn(holder)

    async def main() -> None:
        await asyncio.gather(
            *(attendee(f"user{i}") for i in range(15)),
            *(listing() for _ in range(30)),
        )

    asyncio.run(main())
    assert violations == []
    docker.clear()
    reconcile(slots, {})
    assert slots.free_places() == slots.capacity


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


def test_holders_table_fits_long_device_ids():
    table = holders_table({"ada": MIG_SLICE, "bob": "0", "cy": "0"}).splitlines()
    assert table[0].split() == ["GPU", "attendees", "who"]
    assert table[1].split(maxsplit=2) == ["0", "2", "bob, cy"]
    assert table[2].split(maxsplit=2) == [MIG_SLICE, "1", "ada"]
    assert table[0].index("who") == table[1].index("bob") == table[2].index("ada")


def test_holders_table_says_when_nobody_holds_a_gpu():
    assert holders_table({}) == "No attendee holds a GPU."


@pytest.mark.parametrize(("ids", "per_gpu"), [([], 2), (["0"], 0)])
def test_invalid_construction(ids, per_gpu):
    with pytest.raises(ValueError):
        GpuSlots(ids, per_gpu)
