import sys

from workshop_hub.room.limits import (
    HOST_RESERVE,
    cull_every,
    idle_culler_command,
    max_attendees,
    spawn_concurrency,
)
from workshop_hub.room.profiles import cpu_profile, gpu_profile
from workshop_hub.settings import load_settings

GiB = 1024**3


def test_auto_room_size_is_what_memory_holds_after_the_reserve():
    settings = load_settings({"WORKSHOP_MEM_LIMIT": "2G"})
    assert settings.max_attendees is None
    assert max_attendees(settings, [cpu_profile(settings)], 24 * GiB) == 11
    assert max_attendees(settings, [cpu_profile(settings)], HOST_RESERVE + 4 * GiB - 1) == 1


def test_auto_room_size_counts_the_largest_profile():
    settings = load_settings({"WORKSHOP_MEM_LIMIT": "2G", "WORKSHOP_GPU_MEM_LIMIT": "6G"})
    profiles = [gpu_profile(settings), cpu_profile(settings)]
    assert max_attendees(settings, profiles, 26 * GiB) == 4


def test_a_laptop_still_serves_one():
    settings = load_settings({"WORKSHOP_MEM_LIMIT": "4G"})
    assert max_attendees(settings, [cpu_profile(settings)], 1 * GiB) == 1


def test_an_explicit_room_size_wins():
    settings = load_settings({"WORKSHOP_MAX_ATTENDEES": "7"})
    assert max_attendees(settings, [cpu_profile(settings)], 1024 * GiB) == 7


def test_cull_every_is_a_quarter_of_the_shortest_limit_within_bounds():
    def every(idle: str, age: str) -> int:
        return cull_every(
            load_settings({"WORKSHOP_IDLE_TIMEOUT": idle, "WORKSHOP_MAX_SERVER_AGE": age})
        )

    assert every("1h", "10h") == 300
    assert every("8m", "10h") == 120
    assert every("1h", "2m") == 30
    assert every("20s", "10h") == 10


def test_culler_stops_idle_servers_and_busy_ones_at_the_maximum_age():
    settings = load_settings({"WORKSHOP_IDLE_TIMEOUT": "30m", "WORKSHOP_MAX_SERVER_AGE": "8h"})
    command = idle_culler_command(settings)
    assert command[:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert "--timeout=1800" in command
    assert "--max-age=28800" in command
    assert "--cull-every=300" in command


def test_servers_start_one_per_core_unless_set():
    assert spawn_concurrency(load_settings({}), host_cores=2) == 2
    assert spawn_concurrency(load_settings({}), host_cores=0) == 1
    settings = load_settings({"WORKSHOP_SPAWN_CONCURRENCY": "5"})
    assert spawn_concurrency(settings, host_cores=64) == 5
