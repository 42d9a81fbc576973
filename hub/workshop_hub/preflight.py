"""`workshop-hub preflight`: is this host ready for the day? Run it the night before.

    docker compose run --rm hub workshop-hub preflight [--json]

It reads the settings exactly as the hub does (it runs in the hub's image, with compose's
environment and .env) and asks the host's Docker what it has: the lab images, memory and
cores against the room size and the per-attendee limits, free disk for the attendees' work
folders, the GPUs when WORKSHOP_GPUS is set (by starting a container on them, as the hub
does), the access code. One verdict per check, each failure with what to do; the exit status
is 1 when anything would stop the day.

The verdicts are pure functions of the settings and of what was found (HostFacts), so each
rule is tested without a host; `collect` is the one place that asks Docker.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from . import credentials
from .disks import DISKS_ROOT, DiskError, own_image
from .docker_host import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    NO_NVIDIA_RUNTIME_HINT,
    detect_gpu_ids,
    own_labels,
    probe_gpus,
)
from .exposure import exposure_messages, has_own_certificate, hub_port
from .firewall import HUB_SERVICE
from .profiles import Profile, cpu_profile, gpu_profile
from .room import HOST_RESERVE, max_attendees
from .settings import WorkshopSettings

PASS, WARN, FAIL = "pass", "warn", "fail"
GiB = 1024**3
# More cores promised than this many times the host's is slow as soon as many train at once.
CORES_OVERSUBSCRIBED = 4
# What Docker needs free beside the attendees' folders: containers' layers, logs, a rebuild.
DOCKER_ROOT_MIN_FREE = 10 * GiB
# Who holds the hub's port: this deployment's hub, or nobody.
OURS, FREE = "this deployment's hub", ""


@dataclass
class Verdict:
    check: str
    status: str  # pass, warn or fail
    detail: str
    advice: str = ""


@dataclass
class HostFacts:
    """What `collect` found on the host."""

    docker_version: str
    mem_total: int
    cores: int
    images: set[str]  # the images named by the settings that exist here
    access_code_set: bool
    # The hub's host port, who holds it (OURS, FREE, or who else) and what reaches it.
    port: str = hub_port({})
    port_holder: str = FREE
    own_certificate: bool = False
    # Free bytes where the attendees' work folders live, and in Docker's own folder.
    disks_free: int | None = None
    docker_root_free: int | None = None
    # GPUs: what nvidia-smi listed in a GPU container, or why Docker refused one.
    gpu_listing: str | None = None
    gpu_refused: str | None = None
    notes: list[str] = field(default_factory=list)


def profiles_of(settings: WorkshopSettings) -> list[Profile]:
    """The profiles the hub would offer if every GPU works."""
    profiles = [gpu_profile(settings)] if settings.gpus else []
    if settings.offer_cpu or not settings.gpus:
        profiles.append(cpu_profile(settings))
    return profiles


def _size(count: int) -> str:
    return f"{count / GiB:.1f} GB"


def check_images(settings: WorkshopSettings, facts: HostFacts) -> list[Verdict]:
    wanted = {"WORKSHOP_CPU_IMAGE": settings.cpu_image} if settings.offer_cpu else {}
    if settings.gpus or not settings.offer_cpu:
        wanted["WORKSHOP_CUDA_IMAGE"] = settings.cuda_image
    verdicts = []
    for setting, image in wanted.items():
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
        f"room of {room} × {_size(largest)} + {_size(HOST_RESERVE)} for the host = "
        f"{_size(needed)}; the host has {_size(facts.mem_total)}"
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
        f"this host holds {fits} attendees at {_size(largest)} each: set "
        f"WORKSHOP_MAX_ATTENDEES={fits} (or auto), lower the memory limit "
        "(WORKSHOP_MEM_LIMIT / WORKSHOP_GPU_MEM_LIMIT), or use a machine with more memory",
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


def check_disk(settings: WorkshopSettings, facts: HostFacts) -> list[Verdict]:
    verdicts = []
    if facts.disks_free is not None:
        room = max_attendees(settings, profiles_of(settings), facts.mem_total)
        needed = room * settings.disk_limit
        detail = (
            f"work folders: {room} × {_size(settings.disk_limit)} = {_size(needed)}; "
            f"{_size(facts.disks_free)} free in {DISKS_ROOT}"
        )
        if needed <= facts.disks_free:
            verdicts.append(Verdict("disk for work folders", PASS, detail))
        else:
            verdicts.append(
                Verdict(
                    "disk for work folders",
                    FAIL,
                    detail,
                    f"free {_size(needed - facts.disks_free)} on the disk of {DISKS_ROOT}, "
                    "or lower WORKSHOP_DISK_LIMIT or the room size",
                )
            )
    if facts.docker_root_free is not None:
        detail = f"{_size(facts.docker_root_free)} free in Docker's folder"
        if facts.docker_root_free >= DOCKER_ROOT_MIN_FREE:
            verdicts.append(Verdict("disk for Docker", PASS, detail))
        else:
            verdicts.append(
                Verdict(
                    "disk for Docker",
                    WARN,
                    detail,
                    f"keep at least {_size(DOCKER_ROOT_MIN_FREE)} free there for containers "
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


def check_access_code(facts: HostFacts) -> Verdict:
    if facts.access_code_set:
        return Verdict("access code", PASS, "set (`workshop-hub access-code` prints it)")
    return Verdict(
        "access code",
        WARN,
        "not set yet: the hub makes one at its first start",
        "start the hub (`docker compose up -d`), then `workshop-hub access-code` prints it",
    )


def verdicts(settings: WorkshopSettings, facts: HostFacts) -> list[Verdict]:
    found = [
        Verdict(
            "docker",
            PASS,
            f"Docker {facts.docker_version}, {facts.cores} cores, {_size(facts.mem_total)}",
        ),
        *check_images(settings, facts),
        check_memory(settings, facts),
        check_cores(settings, facts),
        *check_disk(settings, facts),
        check_gpus(settings, facts),
        check_port(settings, facts),
        check_exposure(settings, facts),
        check_access_code(facts),
    ]
    return [verdict for verdict in found if verdict is not None]


def _free_bytes(client: docker.DockerClient, image: str, host_path: str) -> int:
    """Free bytes on the host's filesystem of `host_path`, read by a throwaway container."""
    output = client.containers.run(
        image,
        ["df", "-P", "-B1", "/measured"],
        entrypoint=[],
        volumes={host_path: {"bind": "/measured", "mode": "ro"}},
        network_mode="none",
        remove=True,
    )
    return int(output.decode().splitlines()[-1].split()[3])


def _publishes(container, address: str, port: str) -> bool:
    ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    return any(
        binding.get("HostPort") == port and binding.get("HostIp") in (address, "0.0.0.0", "::")
        for bindings in ports.values()
        for binding in bindings or []
    )


def port_holder(client: docker.DockerClient, image: str, address: str, port: str) -> str:
    """OURS when this deployment's hub publishes the port, FREE when Docker can publish it,
    else who holds it: another container, or a program outside Docker."""
    project = own_labels(client).get(COMPOSE_PROJECT_LABEL)
    for container in client.containers.list():
        if _publishes(container, address, port):
            labels = container.labels
            ours = (
                labels.get(COMPOSE_PROJECT_LABEL) == project
                and labels.get(COMPOSE_SERVICE_LABEL) == HUB_SERVICE
            )
            return OURS if ours else f"the container {container.name}"
    # Nobody in Docker has it: publishing it is the only sure test for other programs.
    probe = client.containers.create(
        image, ["true"], entrypoint=[], ports={"8000/tcp": (address, int(port))}
    )
    try:
        probe.start()
    except APIError as error:
        reason = str(error.explanation or error).strip()
        return f"a program outside Docker ({reason[-160:]})"
    finally:
        probe.remove(force=True)
    return FREE


def collect(
    settings: WorkshopSettings, client: docker.DockerClient, environ: Mapping[str, str]
) -> HostFacts:
    info = client.info()
    named = {settings.cpu_image, settings.cuda_image}
    present = set()
    for image in named:
        try:
            client.images.get(image)
            present.add(image)
        except ImageNotFound:
            pass
    facts = HostFacts(
        docker_version=client.version().get("Version", "?"),
        mem_total=info["MemTotal"],
        cores=info["NCPU"],
        images=present,
        access_code_set=bool(settings.access_code) or credentials.ACCESS_CODE_FILE.exists(),
        port=hub_port(environ),
        own_certificate=has_own_certificate(environ),
    )
    helper = own_image(client)
    facts.port_holder = port_holder(client, helper, settings.listen_address, facts.port)
    facts.disks_free = _free_bytes(client, helper, str(DISKS_ROOT))
    facts.docker_root_free = _free_bytes(client, helper, info["DockerRootDir"])
    if settings.gpus and settings.cuda_image in present:
        wanted = None if settings.gpus == "auto" else list(settings.gpus)
        try:
            facts.gpu_listing = probe_gpus(client, settings.cuda_image, wanted)
        except RuntimeError as error:
            facts.gpu_refused = str(error)
    elif settings.gpus:
        facts.gpu_refused = f"the CUDA image {settings.cuda_image} is missing, so no GPU was tried"
    return facts


def table(found: list[Verdict]) -> str:
    width = max(len(verdict.check) for verdict in found)
    lines = []
    for verdict in found:
        lines.append(f"{verdict.status.upper():4}  {verdict.check:{width}}  {verdict.detail}")
        if verdict.advice:
            lines.append(f"{'':4}  {'':{width}}  → {verdict.advice}")
    return "\n".join(lines)


def run(settings: WorkshopSettings, as_json: bool, out=sys.stdout) -> int:
    """Print the verdicts; 1 when any check failed."""
    try:
        client = docker.from_env()
        facts = collect(settings, client, os.environ)
    except (DockerException, DiskError) as error:
        found = [
            Verdict(
                "docker",
                FAIL,
                f"Docker cannot be reached from the hub's container ({error})",
                "start Docker, and run this through compose so the hub's container has "
                "/var/run/docker.sock: docker compose run --rm hub workshop-hub preflight",
            )
        ]
    else:
        found = verdicts(settings, facts)
    failed = any(verdict.status == FAIL for verdict in found)
    if as_json:
        json.dump({"ready": not failed, "checks": [asdict(v) for v in found]}, out, indent=1)
        out.write("\n")
    else:
        out.write(table(found) + "\n")
        out.write("NOT READY: fix each FAIL above, then run this again.\n" if failed else "ready\n")
    return 1 if failed else 0
