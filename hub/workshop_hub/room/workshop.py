"""What this deployment offers, decided once when the hub starts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import docker

from ..settings import WorkshopSettings
from .disks import DISKS_ROOT, WorkDisks, own_image
from .docker_host import detect_gpu_ids, ensure_image, probe_gpus, running_gpu_holders
from .gpu import GpuSlots, is_mig_device
from .limits import max_attendees, spawn_concurrency
from .profiles import Profile, offered_profiles
from .spawn_queue import ArrivalBook, SpawnQueue


@dataclass
class Workshop:
    settings: WorkshopSettings
    profiles: list[Profile]
    gpu_slots: GpuSlots | None
    # Why GPUs were configured but are not offered; None when they are, or were not asked for.
    gpu_unavailable: str | None = None
    # Servers that may run at once (JupyterHub's active_server_limit).
    max_attendees: int | None = None
    # Makes each attendee's capped work folder before their server starts.
    disks: WorkDisks | None = None
    # The line of attendees whose servers wait to start (WORKSHOP_SPAWN_CONCURRENCY).
    spawn_queue: SpawnQueue | None = None

    def profile(self, slug: str) -> Profile | None:
        return next((profile for profile in self.profiles if profile.slug == slug), None)


def _usable_gpu_ids(
    settings: WorkshopSettings, client: docker.DockerClient
) -> tuple[list[str], str | None]:
    """(GPU ids the hub can hand out, why not when there are none)."""
    ensure_image(client, "WORKSHOP_CUDA_IMAGE", settings.cuda_image)
    wanted = None if settings.gpus == "auto" else list(settings.gpus)
    try:
        listing = probe_gpus(client, settings.cuda_image, wanted)
    except RuntimeError as error:
        return [], str(error)
    if wanted is not None:
        return wanted, None
    found = detect_gpu_ids(listing)
    if not found:
        return [], (
            "WORKSHOP_GPUS=auto found no GPU (nvidia-smi listed none in a GPU container): "
            "list the device ids, e.g. WORKSHOP_GPUS=0,1, or leave it empty"
        )
    return found, None


def describe_gpus(slots: GpuSlots) -> str:
    """The devices handed out and how many attendees share each, for the hub's log."""
    slices = [device for device in slots.device_ids if is_mig_device(device)]
    gpus = [device for device in slots.device_ids if not is_mig_device(device)]
    parts = []
    if slices:
        parts.append(
            f"{len(slices)} MIG slices, one attendee each with memory isolated by the "
            f"hardware ({', '.join(slices)})"
        )
    if gpus:
        parts.append(f"GPUs {','.join(gpus)}, {slots.per_gpu} attendees each sharing its memory")
    return f"{'; '.join(parts)}; {slots.free_places()} of {slots.capacity} places free"


def prepare_workshop(
    settings: WorkshopSettings,
    client: docker.DockerClient,
    log: logging.Logger,
    arrivals_file: Path | None = None,
) -> Workshop:
    """Check the images, probe the GPUs and book the places of running GPU containers.

    `arrivals_file` keeps the order of the spawn line across hub restarts."""
    gpu_slots, gpu_unavailable = None, None
    if settings.gpus:
        gpu_ids, gpu_unavailable = _usable_gpu_ids(settings, client)
        if gpu_ids:
            gpu_slots = GpuSlots(gpu_ids, settings.attendees_per_gpu)
            # Containers that outlived a hub restart keep their places.
            listing = gpu_slots.begin_listing()
            gpu_slots.reconcile(running_gpu_holders(client.api, settings.instance), listing)
            log.info("GPU profile offered: %s", describe_gpus(gpu_slots))
        else:
            log.warning("GPU profile NOT offered, CPU only. %s", gpu_unavailable)

    profiles = offered_profiles(
        settings,
        gpus_offered=bool(gpu_slots),
        mig_slices=bool(gpu_slots) and all(map(is_mig_device, gpu_slots.device_ids)),
    )
    if any(profile.slug == "cpu" for profile in profiles):
        ensure_image(client, "WORKSHOP_CPU_IMAGE", settings.cpu_image)
    host = client.info()
    room = max_attendees(settings, profiles, host["MemTotal"])
    concurrency = spawn_concurrency(settings, host["NCPU"])
    log.info(
        "Room size: %d servers at once (%s). Work folders hold up to %d MB each, on the "
        "disk of %s: keep at least %d MB free there",
        room,
        "WORKSHOP_MAX_ATTENDEES" if settings.max_attendees else "auto, from host memory",
        settings.disk_limit // 1024**2,
        DISKS_ROOT,
        room * settings.disk_limit // 1024**2,
    )
    log.info(
        "Servers start %d at once (%s); the others wait in line",
        concurrency,
        "WORKSHOP_SPAWN_CONCURRENCY"
        if settings.spawn_concurrency
        else f"auto, from the host's {host['NCPU']} cores",
    )
    disks = WorkDisks(client, own_image(client), settings.instance, settings.disk_limit, log)
    queue = SpawnQueue(concurrency, ArrivalBook(arrivals_file))
    return Workshop(settings, profiles, gpu_slots, gpu_unavailable, room, disks, queue)
