"""Fair sharing of a few GPUs between many attendees.

Each GPU has `per_gpu` places. An attendee who asks for a GPU gets one device id: the GPU
with the fewest attendees (the first listed on a tie), never one that is full. The hub runs
on one asyncio loop and `acquire` never awaits, so twenty attendees pressing start at the
same moment are served one after another: no GPU is ever double-booked. A lock still guards
the table, so a thread (such as a Docker call run in an executor) can release safely.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping


class GpusFull(Exception):
    """Every place on every GPU is taken."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        super().__init__(
            f"All {capacity} GPU places are taken right now. Start on CPU instead (every lab "
            "runs there), or try the GPU again when someone stops their server."
        )


class GpuSlots:
    """Who holds which GPU."""

    def __init__(self, device_ids: Iterable[str], per_gpu: int):
        self.device_ids = tuple(device_ids)
        if not self.device_ids:
            raise ValueError("GpuSlots needs at least one device id")
        if per_gpu < 1:
            raise ValueError("per_gpu must be at least 1")
        self.per_gpu = per_gpu
        self._holder_device: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return len(self.device_ids) * self.per_gpu

    def _load(self) -> dict[str, int]:
        load = dict.fromkeys(self.device_ids, 0)
        for device in self._holder_device.values():
            load[device] = load.get(device, 0) + 1
        return load

    def acquire(self, holder: str) -> str:
        """The device id for `holder`: theirs if they hold one, else the least loaded GPU."""
        with self._lock:
            if holder in self._holder_device:
                return self._holder_device[holder]
            load = self._load()
            device = min(self.device_ids, key=lambda device_id: load[device_id])
            if load[device] >= self.per_gpu:
                raise GpusFull(self.capacity)
            self._holder_device[holder] = device
            return device

    def release(self, holder: str) -> str | None:
        """Free `holder`'s place; returns the device it held, if any."""
        with self._lock:
            return self._holder_device.pop(holder, None)

    def rebuild(self, running: Mapping[str, str]) -> None:
        """Replace the table with what is really running (holder -> device id).

        Called when the hub starts, from the attendee containers Docker reports, so a hub
        restart keeps every assignment. A device no longer configured still counts for its
        holder until they stop, so it is never handed out twice.
        """
        with self._lock:
            self._holder_device = dict(running)

    def free_places(self) -> int:
        with self._lock:
            load = self._load()
            return sum(max(self.per_gpu - load[device], 0) for device in self.device_ids)

    def holders(self) -> dict[str, list[str]]:
        """Device id -> sorted holders, every configured GPU listed."""
        with self._lock:
            table: dict[str, list[str]] = {device: [] for device in self.device_ids}
            for holder, device in self._holder_device.items():
                table.setdefault(device, []).append(holder)
            return {device: sorted(holders) for device, holders in table.items()}
