"""The host's verdicts: images, memory, cores, disk, GPUs, the hub's port, exposure, the
access code and who can read .env. Pure functions of the settings and the facts, each tested
without a host."""

from __future__ import annotations

import logging
import stat

from ...access.auth import max_names
from ...access.credentials import GOOD_CODE_ADVICE, guessable
from ...access.exposure import exposure_messages
from ...room.disks import DISKS_ROOT
from ...room.docker_host import NO_NVIDIA_RUNTIME_HINT, detect_gpu_ids
from ...room.limits import HOST_RESERVE, max_attendees
from ...settings import GiB, WorkshopSettings, human_size
from .facts import (
    FAIL,
    FREE,
    OURS,
    PASS,
    WARN,
    HostFacts,
    Verdict,
    lab_images,
    profiles_of,
)

# More cores promised than this many times the host's is slow as soon as many train at once.
CORES_OVERSUBSCRIBED = 4


# What Docker needs free beside the attendees' folders: containers' layers, logs, a rebuild.
DOCKER_ROOT_MIN_FREE = 10 * GiB


def check_images(settings: WorkshopSettings, facts: HostFacts) -> list[Verdict]:
    verdicts = []
    for setting, profile in lab_images(settings).items():
        image = profile.image
        if image in facts.images:
            verdicts.append(Verdict(f"image {image}", PASS, "present"))
        else:
            gpu = " --profile gpu" if "CUDA" in setting else ""
            verdicts.append(
                Verdict(
                    f"image {image}",
                    FAIL,
                    f"{setting}={image} is not on this host",
                    f"build it (`docker compose{gpu} build`), load a venue bundle "
                    f"(scripts/venue-bundle.sh load), or fix {setting}",
                )
            )
    return verdicts


def check_memory(settings: WorkshopSettings, facts: HostFacts) -> Verdict:
    profiles = profiles_of(settings)
    largest = max(profile.mem_limit for profile in profiles)
    room = max_attendees(settings, profiles, facts.mem_total)
    needed = room * largest + HOST_RESERVE
    detail = (
        f"room of {room} × {human_size(largest)} + {human_size(HOST_RESERVE)} for the host = "
        f"{human_size(needed)}; the host has {human_size(facts.mem_total)}"
    )
    if settings.max_attendees is None:
        return Verdict("memory", PASS, detail + " (room size auto, from memory)")
    if needed <= facts.mem_total:
        return Verdict("memory", PASS, detail)
    fits = max(0, (facts.mem_total - HOST_RESERVE) // largest)
    return Verdict(
        "memory",
        FAIL,
        detail,
        f"this host holds {fits} attendees at {human_size(largest)} each: set "
        f"WORKSHOP_MAX_ATTENDEES={fits} (or auto), lower the memory limit "
        "(WORKSHOP_MEM_LIMIT / WORKSHOP_GPU_MEM_LIMIT), or use a machine with more memory",
    )


def check_warm_room(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    """The servers warm-room starts for the roster take their memory before anyone arrives."""
    if not facts.rostered_waiting:
        return None
    profiles = profiles_of(settings)
    room = max_attendees(settings, profiles, facts.mem_total)
    # warm-room starts the first profile unless told otherwise (workshop-hub warm-room).
    held = facts.rostered_waiting * profiles[0].mem_limit
    detail = (
        f"{facts.rostered_waiting} rostered attendees not here yet: warm-room holds "
        f"{facts.rostered_waiting} × {human_size(profiles[0].mem_limit)} = {human_size(held)} "
        f"from the start, in a room of {room}"
    )
    if facts.rostered_waiting <= room and held + HOST_RESERVE <= facts.mem_total:
        return Verdict(
            "warm room", PASS, detail + f"; {room - facts.rostered_waiting} for walk-ins"
        )
    return Verdict(
        "warm room",
        FAIL,
        detail,
        "warm-room would fill the room before walk-ins arrive: take names off the roster "
        "(`workshop-hub roster remove`), raise WORKSHOP_MAX_ATTENDEES, or use a bigger host",
    )


def check_cores(settings: WorkshopSettings, facts: HostFacts) -> Verdict:
    profiles = profiles_of(settings)
    room = max_attendees(settings, profiles, facts.mem_total)
    promised = room * max(profile.cpu_limit for profile in profiles)
    ratio = promised / max(facts.cores, 1)
    detail = (
        f"room of {room} with up to {promised:g} cores in all, on {facts.cores} cores "
        f"({ratio:.1f}×)"
    )
    if ratio <= CORES_OVERSUBSCRIBED:
        return Verdict("cores", PASS, detail)
    return Verdict(
        "cores",
        WARN,
        detail,
        "fine while most attendees read or run small cells; when all train at once each "
        "gets a small share: lower WORKSHOP_CPU_LIMIT or the room size, or add cores",
    )


def _enough_disk(check: str, enough: bool, detail: str, short: str, advice: str) -> Verdict:
    """PASS when there is enough; else `short` (FAIL or WARN) with what to do."""
    return Verdict(check, PASS, detail) if enough else Verdict(check, short, detail, advice)


def check_disk(settings: WorkshopSettings, facts: HostFacts) -> list[Verdict]:
    verdicts = []
    if facts.disks_free is not None:
        room = max_attendees(settings, profiles_of(settings), facts.mem_total)
        needed = room * settings.disk_limit
        detail = (
            f"work folders: {room} × {human_size(settings.disk_limit)} = {human_size(needed)}; "
            f"{human_size(facts.disks_free)} free in {DISKS_ROOT}"
        )
        verdicts.append(
            _enough_disk(
                "disk for work folders",
                needed <= facts.disks_free,
                detail,
                FAIL,
                f"free {human_size(needed - facts.disks_free)} on the disk of {DISKS_ROOT}, "
                "or lower WORKSHOP_DISK_LIMIT or the room size",
            )
        )
        # Each claimed name keeps its disk, allocated, until it is deleted: attendees who
        # leave and come back under a new name take room too.
        names = max_names(settings)
        for_names = names * settings.disk_limit
        verdicts.append(
            _enough_disk(
                "disk for every name",
                for_names <= facts.disks_free,
                f"{names} names (WORKSHOP_MAX_NAMES) × {human_size(settings.disk_limit)} = "
                f"{human_size(for_names)}; {human_size(facts.disks_free)} free in {DISKS_ROOT}",
                WARN,
                "past what the disk holds, a new name's server is refused with \"not enough "
                'for a work folder": free space there, lower WORKSHOP_MAX_NAMES or '
                "WORKSHOP_DISK_LIMIT, or delete attendees who left (the console's Delete)",
            )
        )
    if facts.docker_root_free is not None:
        detail = f"{human_size(facts.docker_root_free)} free in Docker's folder"
        verdicts.append(
            _enough_disk(
                "disk for Docker",
                facts.docker_root_free >= DOCKER_ROOT_MIN_FREE,
                detail,
                WARN,
                f"keep at least {human_size(DOCKER_ROOT_MIN_FREE)} free there for containers "
                "and logs (`docker system df` shows what to prune)",
            )
        )
    return verdicts


def check_gpus(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    if not settings.gpus:
        return None
    if facts.gpu_refused:
        return Verdict(
            "GPUs", FAIL, facts.gpu_refused, f"WORKSHOP_GPUS is set: {NO_NVIDIA_RUNTIME_HINT}"
        )
    listed = detect_gpu_ids(facts.gpu_listing or "")
    wanted = "all" if settings.gpus == "auto" else ",".join(settings.gpus)
    if settings.gpus == "auto" and not listed:
        return Verdict(
            "GPUs",
            FAIL,
            "WORKSHOP_GPUS=auto, and nvidia-smi listed no GPU in a GPU container",
            "list the device ids (WORKSHOP_GPUS=0,1) or leave WORKSHOP_GPUS empty",
        )
    found = ", ".join(listed) if listed else "started (nvidia-smi listed none)"
    return Verdict("GPUs", PASS, f"a container on GPUs {wanted} started: {found}")


def check_port(settings: WorkshopSettings, facts: HostFacts) -> Verdict:
    where = f"{settings.listen_address}:{facts.port}"
    if facts.port_holder == FREE:
        return Verdict("port", PASS, f"{where} is free for the hub")
    if facts.port_holder == OURS:
        return Verdict("port", PASS, f"{where}: the hub already serves it")
    return Verdict(
        "port",
        FAIL,
        f"{where} is taken by {facts.port_holder}",
        "stop it, or give the hub another port (WORKSHOP_PORT in .env)",
    )


def check_exposure(settings: WorkshopSettings, facts: HostFacts) -> Verdict:
    """Who reaches the hub, and whether in clear text (the hub logs the same at start)."""
    messages = exposure_messages(
        settings.domain, settings.listen_address, facts.port, facts.own_certificate
    )
    warnings = [text for level, text in messages if level >= logging.WARNING]
    summary = messages[0][1]
    if warnings:
        return Verdict("exposure", WARN, summary, warnings[0])
    return Verdict("exposure", PASS, summary)


def check_access_code(settings: WorkshopSettings, facts: HostFacts) -> Verdict:
    weakness = guessable(settings.access_code) if settings.access_code else None
    if weakness:
        return Verdict(
            "access code",
            WARN,
            f"WORKSHOP_ACCESS_CODE {weakness}: someone in the room may guess it",
            GOOD_CODE_ADVICE,
        )
    if facts.access_code_set:
        return Verdict("access code", PASS, "set (`workshop-hub access-code` prints it)")
    return Verdict(
        "access code",
        WARN,
        "not set yet: the hub makes one at its first start",
        "start the hub (`docker compose up -d`), then `workshop-hub access-code` prints it",
    )


def check_env_file_access(facts: HostFacts) -> Verdict | None:
    """Who may read .env, which can hold the room code and the admin password. None: there is
    no .env, so nothing to protect."""
    if facts.env_file_mode is None:
        return None
    mode = f"mode {stat.S_IMODE(facts.env_file_mode):03o}"
    if facts.env_file_mode & stat.S_IROTH:
        return Verdict(
            ".env",
            WARN,
            f"every user of this host may read it ({mode}), and with it the room code and "
            "admin password it can hold",
            "chmod 600 .env",
        )
    if facts.env_file_mode & stat.S_IRGRP:
        return Verdict(
            ".env",
            PASS,
            f"its group may read it ({mode})",
            "chmod 600 .env, unless everyone in its group may know the room code and admin "
            "password",
        )
    return Verdict(".env", PASS, f"only its owner may read it ({mode})")
