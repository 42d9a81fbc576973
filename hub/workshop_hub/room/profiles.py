"""The two ways an attendee can start: on CPU or on a shared GPU, and the limits of each."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import WorkshopSettings, human_size

# Home of the attendee inside the lab image (uid 1000); their volume is mounted at WORK_DIR.
HOME_DIR = "/home/jovyan"
WORK_DIR = f"{HOME_DIR}/work"
# What the lab image holds, read-only (docker/lab/Dockerfile): its Python, and the notebooks
# a work folder is seeded from (its WORKSHOP_NOTEBOOKS_DIR).
LAB_IMAGE_PYTHON = "/opt/venv/bin/python"
LAB_IMAGE_NOTEBOOKS_DIR = "/opt/workshop/labs"
# Where attendees land: the start page (labs/START_HERE.md, seeded with the labs), rendered.
START_PAGE_URL = "/lab/tree/labs/START_HERE.md"
# The home's own files (runtime, kernel and font caches) take a few MB.
HOME_TMPFS_SIZE = 64 * 1024**2
# Docker keeps at most LOG_FILES files of LOG_FILE_SIZE per container: 20 MB.
LOG_FILE_SIZE = "10m"
LOG_FILES = 2
# The OOM killer's first choice: at +1000 (the maximum) any attendee process outranks every
# process without an adjustment, so the hub needs no negative one (that would need
# CAP_SYS_RESOURCE, which not every dockerd has) and dockerd keeps its own -500.
ATTENDEE_OOM_SCORE_ADJ = 1000
# Labels that mark attendee containers, so the hub can find them again after a restart.
LABEL_INSTANCE = "org.pytorch-workshop.instance"
LABEL_USER = "org.pytorch-workshop.user"
LABEL_PROFILE = "org.pytorch-workshop.profile"
LABEL_GPU = "org.pytorch-workshop.gpu"
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    description: str
    image: str
    mem_limit: int
    cpu_limit: float


def cpu_profile(settings: WorkshopSettings) -> Profile:
    return Profile(
        slug="cpu",
        display_name="CPU",
        description=(
            f"Every lab runs, on up to {settings.cpu_limit:g} CPU cores with "
            f"{human_size(settings.mem_limit)} of memory."
        ),
        image=settings.cpu_image,
        mem_limit=settings.mem_limit,
        cpu_limit=settings.cpu_limit,
    )


def gpu_profile(settings: WorkshopSettings, mig_slices: bool = False) -> Profile:
    """`mig_slices`: every device handed out is a MIG slice, one attendee each."""
    share = (
        "a whole GPU"
        if settings.attendees_per_gpu == 1
        else f"1/{settings.attendees_per_gpu} of a GPU's memory"
    )
    device = (
        "A slice of an NVIDIA GPU of your own (MIG: its memory is yours alone)"
        if mig_slices
        else f"An NVIDIA GPU shared with up to {settings.attendees_per_gpu - 1} others ({share})"
    )
    return Profile(
        slug="gpu",
        display_name="GPU",
        description=(
            f"{device}, {settings.gpu_cpu_limit:g} CPU cores and "
            f"{human_size(settings.gpu_mem_limit)} of memory: labs 3 and 4 show real CUDA "
            "speed-ups."
        ),
        image=settings.cuda_image,
        mem_limit=settings.gpu_mem_limit,
        cpu_limit=settings.gpu_cpu_limit,
    )


def offered_profiles(
    settings: WorkshopSettings, gpus_offered: bool, mig_slices: bool = False
) -> list[Profile]:
    """The spawn form's profiles, GPU first: the GPU profile when GPUs are handed out, the CPU
    profile beside it when WORKSHOP_OFFER_CPU is on, and always when there is no GPU."""
    profiles = [gpu_profile(settings, mig_slices=mig_slices)] if gpus_offered else []
    if settings.offer_cpu or not gpus_offered:
        profiles.append(cpu_profile(settings))
    return profiles


def container_limits(settings: WorkshopSettings, profile: Profile) -> dict:
    """Limits and hardening of an attendee container, as docker-py keyword arguments.

    The keys are valid both for `APIClient.create_host_config` (the spawner) and for
    `containers.run` (the preflight's image checks), so both run labs under the same limits.
    """
    return {
        "mem_limit": profile.mem_limit,
        # Without swap the memory limit is a real limit: an OOM kill, not hours of thrashing.
        "memswap_limit": profile.mem_limit,
        # A CPU quota per 100 ms period (what DockerSpawner also uses; Docker refuses to
        # combine it with nano_cpus).
        "cpu_period": CPU_PERIOD_US,
        "cpu_quota": int(profile.cpu_limit * CPU_PERIOD_US),
        "pids_limit": settings.pids_limit,
        "shm_size": settings.shm_size,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        # Only the work volume and these in-memory folders are writable: the image's layer
        # cannot fill the host's disk. tmpfs pages count against mem_limit.
        "read_only": True,
        "tmpfs": {
            # exec: Docker mounts a tmpfs noexec unless told, and torch.compile (lab 3) builds
            # C++ there and loads it. No boundary is lost: attendees run their own code anyway.
            "/tmp": f"size={settings.tmp_size},mode=1777,exec",
            # Jupyter, IPython and matplotlib keep their runtime files and caches in $HOME;
            # the work volume is mounted below it.
            HOME_DIR: f"size={HOME_TMPFS_SIZE},uid=1000,gid=100,mode=0755",
        },
        "log_config": {
            "type": "json-file",
            "config": {"max-size": LOG_FILE_SIZE, "max-file": str(LOG_FILES)},
        },
        # Out of memory, the kernel kills an attendee's process, never dockerd or the hub.
        "oom_score_adj": ATTENDEE_OOM_SCORE_ADJ,
    }


def gpu_memory_fraction(settings: WorkshopSettings) -> float:
    """Share of one GPU's memory each attendee's torch may allocate."""
    return round(1 / settings.attendees_per_gpu, 4)
