"""How many attendees the room holds, how many servers start at once, and when the culler
stops their servers."""

from __future__ import annotations

import sys

from ..settings import WorkshopSettings
from .profiles import Profile

# Memory kept for the hub, the proxy, dockerd and the host itself.
HOST_RESERVE = 2 * 1024**3
# The culler looks at least this often, at most this rarely.
CULL_EVERY_MIN_S = 10
CULL_EVERY_MAX_S = 300


def max_attendees(settings: WorkshopSettings, profiles: list[Profile], mem_total: int) -> int:
    """WORKSHOP_MAX_ATTENDEES, or (auto) as many of the largest profile as the memory holds.

    The largest profile, so a room of GPU attendees fits too; at least one, so a small
    laptop still serves its owner.
    """
    if settings.max_attendees is not None:
        return settings.max_attendees
    per_attendee = max(profile.mem_limit for profile in profiles)
    return max(1, (mem_total - HOST_RESERVE) // per_attendee)


def spawn_concurrency(settings: WorkshopSettings, host_cores: int) -> int:
    """WORKSHOP_SPAWN_CONCURRENCY, or (auto) one starting server per core of the host.

    A server's start is almost all CPU (Python imports, the container's setup), so more at
    once than cores only makes every one of them slower.
    """
    if settings.spawn_concurrency is not None:
        return settings.spawn_concurrency
    return max(1, host_cores)


def cull_every(settings: WorkshopSettings) -> int:
    """A quarter of the shortest limit, so a server stops at most 25% after its time."""
    shortest = min(settings.idle_timeout, settings.max_server_age)
    return max(min(shortest // 4, CULL_EVERY_MAX_S), CULL_EVERY_MIN_S)


def idle_culler_command(settings: WorkshopSettings) -> list[str]:
    """jupyterhub-idle-culler: idle servers after WORKSHOP_IDLE_TIMEOUT, busy ones at the
    maximum age (activity alone never stops a busy loop)."""
    return [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={settings.idle_timeout}",
        f"--max-age={settings.max_server_age}",
        f"--cull-every={cull_every(settings)}",
    ]
