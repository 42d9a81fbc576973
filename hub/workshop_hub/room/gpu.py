"""Fair sharing of a few GPUs between many attendees.

Each GPU has `per_gpu` places; a MIG slice (an id starting `MIG-`) has one, because the
hardware gives it to one attendee with its own memory. An attendee who asks for a GPU gets one
device id: the device with the fewest attendees (the first listed on a tie), never a full one.

A place is held by a *booking*, which follows the attendee's container:

- `acquire` books a place *before* the container exists, as a pending booking; `confirm` marks
  it once the container was started; `release` drops it (a failed start, a stop).
- Containers also end without the hub stopping them (the attendee shuts the server down, kills
  PID 1, the OOM killer). So before each booking and whenever free places are counted, the hub
  lists the attendee containers Docker runs and `reconcile`s: a confirmed booking whose
  container is not in the list is freed, a running container the table lacks is booked.

Why this never double-books: a pending booking is never freed by `reconcile`, so a container
still being created always counts. A confirmed booking is freed only by a listing that *began*
after the confirmation (`begin_listing` numbers listings; `confirm` records the number reached),
so a listing taken before the container ran, but applied late, cannot free it. Once confirmed
and then missing from a later listing, the container has ended for good (containers are removed
on exit and never restarted). Every running GPU container therefore has a booking, and a device
is never booked beyond its places. The table is guarded by a lock, and no method awaits, so
asyncio tasks and threads may interleave freely between calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def is_mig_device(device_id: str) -> bool:
    """A MIG slice ('MIG-<uuid>', or 'MIG-GPU-<uuid>/<gi>/<ci>' on older drivers)."""
    return device_id.upper().startswith("MIG-")


class GpusFull(Exception):
    """Every place on every GPU is taken."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        super().__init__(
            f"All {capacity} GPU places are taken right now. Start on CPU instead (every lab "
            "runs there), or try the GPU again when someone stops their server."
        )


@dataclass
class _Booking:
    device: str
    # None while the spawn is in flight (its container may not exist yet); else how many
    # listings had begun when the container was known to run.
    confirmed_at: int | None = None


class GpuSlots:
    """Who holds which GPU."""

    def __init__(self, device_ids: Iterable[str], per_gpu: int):
        self.device_ids = tuple(device_ids)
        if not self.device_ids:
            raise ValueError("GpuSlots needs at least one device id")
        if per_gpu < 1:
            raise ValueError("per_gpu must be at least 1")
        self.per_gpu = per_gpu
        self._bookings: dict[str, _Booking] = {}
        self._listings_begun = 0
        self._lock = threading.Lock()

    def places(self, device_id: str) -> int:
        return 1 if is_mig_device(device_id) else self.per_gpu

    @property
    def capacity(self) -> int:
        return sum(self.places(device) for device in self.device_ids)

    def _load(self) -> dict[str, int]:
        load = dict.fromkeys(self.device_ids, 0)
        for booking in self._bookings.values():
            load[booking.device] = load.get(booking.device, 0) + 1
        return load

    def acquire(self, holder: str) -> str:
        """Book a place for `holder`'s coming container: theirs if they hold one, else the
        least loaded device. Pending until `confirm`; raises GpusFull."""
        with self._lock:
            booking = self._bookings.get(holder)
            if booking is not None:
                booking.confirmed_at = None
                return booking.device
            load = self._load()
            with_room = [device for device in self.device_ids if load[device] < self.places(device)]
            if not with_room:
                raise GpusFull(self.capacity)
            device = min(with_room, key=lambda device_id: load[device_id])
            self._bookings[holder] = _Booking(device)
            return device

    def confirm(self, holder: str) -> None:
        """`holder`'s container has started: from now on a listing without it frees the place."""
        with self._lock:
            booking = self._bookings.get(holder)
            if booking is not None:
                booking.confirmed_at = self._listings_begun

    def release(self, holder: str) -> str | None:
        """Free `holder`'s place; returns the device it held, if any."""
        with self._lock:
            booking = self._bookings.pop(holder, None)
            return booking.device if booking else None

    def begin_listing(self) -> int:
        """Call right before asking Docker which containers run; pass the number to
        `reconcile` with what Docker answered."""
        with self._lock:
            self._listings_begun += 1
            return self._listings_begun

    def reconcile(self, running: Mapping[str, str], listing: int) -> dict[str, str]:
        """Make the table agree with `running` (holder -> device id of each running GPU
        container), a listing numbered `listing` by `begin_listing`.

        Returns the places freed (holder -> device). A device no longer configured still
        counts for its holder until they stop, so it is never handed out twice.
        """
        with self._lock:
            freed = {
                holder: booking.device
                for holder, booking in self._bookings.items()
                if holder not in running
                and booking.confirmed_at is not None
                and booking.confirmed_at < listing
            }
            for holder in freed:
                del self._bookings[holder]
            for holder, device in running.items():
                if holder not in self._bookings:
                    self._bookings[holder] = _Booking(device, confirmed_at=listing)
            return freed

    def free_places(self) -> int:
        with self._lock:
            load = self._load()
            return sum(max(self.places(device) - load[device], 0) for device in self.device_ids)

    def holders(self) -> dict[str, list[str]]:
        """Device id -> sorted holders, every configured device listed."""
        with self._lock:
            table: dict[str, list[str]] = {device: [] for device in self.device_ids}
            for holder, booking in self._bookings.items():
                table.setdefault(booking.device, []).append(holder)
            return {device: sorted(holders) for device, holders in table.items()}


def holders_table(holders: Mapping[str, str]) -> str:
    """username -> device id, as a table by device, for the organizer's terminal."""
    if not holders:
        return "No attendee holds a GPU."
    by_device: dict[str, list[str]] = {}
    for user, device in holders.items():
        by_device.setdefault(device, []).append(user)
    # MIG ids and GPU UUIDs are 40+ characters; the column is as wide as the longest.
    width = max(len("GPU"), *map(len, by_device)) + 2
    lines = [f"{'GPU':<{width}}{'attendees':<11}who"]
    for device in sorted(by_device):
        users = sorted(by_device[device])
        lines.append(f"{device:<{width}}{len(users):<11}{', '.join(users)}")
    return "\n".join(lines)
