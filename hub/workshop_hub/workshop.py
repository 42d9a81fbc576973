"""What this deployment offers, decided once when the hub starts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import docker

from .docker_host import detect_gpu_ids, ensure_image, probe_gpus, running_gpu_holders
from .gpu import GpuSlots
from .profiles import Profile, cpu_profile, gpu_profile
from .settings import WorkshopSettings


@dataclass
class Workshop:
    settings: WorkshopSettings
    profiles: list[Profile]
    gpu_slots: GpuSlots | None
    # Why GPUs were configured but are not offered; None when they are, or were not asked for.
    gpu_unavailable: str | None = None

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


def prepare_workshop(
    settings: WorkshopSettings, client: docker.DockerClient, log: logging.Logger
) -> Workshop:
    """Check the images, probe the GPUs and rebuild who holds which GPU."""
    gpu_slots, gpu_unavailable = None, None
    if settings.gpus:
        gpu_ids, gpu_unavailable = _usable_gpu_ids(settings, client)
        if gpu_ids:
            gpu_slots = GpuSlots(gpu_ids, settings.attendees_per_gpu)
            gpu_slots.rebuild(running_gpu_holders(client, settings.instance))
            log.info(
                "GPU profile offered: GPUs %s, %d attendees each, %d places free",
                ",".join(gpu_ids),
                settings.attendees_per_gpu,
                gpu_slots.free_places(),
            )
        else:
            log.warning("GPU profile NOT offered, CPU only. %s", gpu_unavailable)

    profiles = [gpu_profile(settings)] if gpu_slots else []
    if settings.offer_cpu or not gpu_slots:
        ensure_image(client, "WORKSHOP_CPU_IMAGE", settings.cpu_image)
        profiles.append(cpu_profile(settings))
    return Workshop(settings, profiles, gpu_slots, gpu_unavailable)
