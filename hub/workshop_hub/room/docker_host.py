"""What the hub asks the Docker host: are the images there, do GPUs work, who runs where."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from ..settings import SettingsError
from .profiles import LABEL_GPU, LABEL_INSTANCE, LABEL_USER

# Compose's labels on every container it makes; a one-off is a `compose run` container.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_ONE_OFF_LABEL = "com.docker.compose.oneoff"

NO_NVIDIA_RUNTIME_HINT = (
    "install the NVIDIA Container Toolkit on the host (and restart Docker), or leave "
    "WORKSHOP_GPUS empty to offer CPU only"
)


def own_container(client: docker.DockerClient) -> Container | None:
    """The container this code runs in (its hostname is its id), or None outside one."""
    try:
        return client.containers.get(socket.gethostname())
    except NotFound:
        return None


def own_labels(client: docker.DockerClient) -> dict[str, str]:
    """The labels of the container this code runs in; none outside a container."""
    container = own_container(client)
    return container.labels if container is not None else {}


def service_filter(service: str, project: str | None = None) -> dict:
    """containers.list filters for a compose service's own containers, of `project` when
    given: never a one-off `compose run` of it, which carries the same service label."""
    labels = [f"{COMPOSE_SERVICE_LABEL}={service}", f"{COMPOSE_ONE_OFF_LABEL}=False"]
    if project is not None:
        labels.insert(0, f"{COMPOSE_PROJECT_LABEL}={project}")
    return {"label": labels}


def gpu_device_request(device_ids: list[str] | None = None) -> dict:
    """A Docker device request for these GPUs (all of them when None), as docker-py accepts."""
    if device_ids is None:
        return {"driver": "", "count": -1, "capabilities": [["gpu"]]}
    return {"driver": "", "device_ids": list(device_ids), "capabilities": [["gpu"]]}


def explain_gpu_error(error: Exception) -> str:
    """Docker's refusal of a GPU container, in words an organizer can act on."""
    text = str(getattr(error, "explanation", None) or error)
    if "could not select device driver" in text:
        return f"Docker on this host has no NVIDIA runtime: {NO_NVIDIA_RUNTIME_HINT}."
    return (
        f"Docker refused to start a container with a GPU ({text.strip()}): "
        f"{NO_NVIDIA_RUNTIME_HINT}."
    )


def ensure_image(client: docker.DockerClient, setting: str, image: str) -> None:
    """Stop the hub with a clear message when an attendee image is neither built nor pullable."""
    try:
        client.images.get(image)
        return
    except ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except DockerException as error:
        reason = str(getattr(error, "explanation", None) or error).strip()[:160]
        raise SettingsError(
            f"{setting}={image!r}: no such image on this host and it could not be pulled "
            f"({reason}). Build it with `docker compose build` "
            "(`docker compose --profile gpu build` for the CUDA image) or fix the name."
        ) from None


def probe_gpus(client: docker.DockerClient, image: str, device_ids: list[str] | None) -> str:
    """Start a throwaway container with a GPU request; return what `nvidia-smi -L` printed.

    Raises RuntimeError with an explanation when Docker refuses GPU containers. Starting a
    container is the only reliable test: a host can have the NVIDIA hook without the
    `nvidia` runtime being listed, or the reverse.
    """
    container = client.containers.create(
        image,
        ["sh", "-c", "nvidia-smi -L 2>/dev/null || true"],
        entrypoint=[],
        device_requests=[gpu_device_request(device_ids)],
        network_disabled=True,
    )
    try:
        # Removed whatever happens: a container Docker refused to start stays behind otherwise.
        container.start()
        container.wait(timeout=60)
        return container.logs().decode(errors="replace")
    except APIError as error:
        raise RuntimeError(explain_gpu_error(error)) from None
    finally:
        container.remove(force=True)


def detect_gpu_ids(nvidia_smi_listing: str) -> list[str]:
    """The devices to hand out, from `nvidia-smi -L`: each GPU's MIG slices when it has any,
    else the GPU's index.

    A GPU line reads 'GPU 0: NVIDIA H100 (UUID: GPU-...)'; its MIG slices follow, indented:
    '  MIG 1g.10gb Device 0: (UUID: MIG-...)' ('MIG-GPU-<uuid>/<gi>/<ci>' on older drivers).
    A GPU split into MIG slices cannot run CUDA as a whole, so its slices are the devices.
    """
    devices: list[tuple[str, list[str]]] = []
    for line in nvidia_smi_listing.splitlines():
        stripped = line.strip()
        if line.startswith("GPU ") and ":" in line:
            devices.append((line[4 : line.index(":")].strip(), []))
        elif stripped.startswith("MIG ") and devices:
            slice_id = re.search(r"\(UUID: (MIG-[^)\s]+)\)", stripped)
            if slice_id:
                devices[-1][1].append(slice_id.group(1))
    return [device for index, slices in devices for device in (slices or [index])]


# Container states in which its processes exist, so its GPU memory may be in use.
GPU_HOLDING_STATES = frozenset({"running", "paused", "restarting"})


def gpu_container_filters(instance: str) -> dict:
    """Docker list filters for the GPU attendee containers of this deployment, in any state."""
    return {"label": [f"{LABEL_INSTANCE}={instance}", LABEL_GPU]}


def gpu_holders(containers: Iterable[Mapping]) -> dict[str, str]:
    """username -> GPU id of each container that runs, from Docker's container list (the
    dicts of `APIClient.containers(all=True)`, with 'Labels' and 'State')."""
    holders = {}
    for container in containers:
        labels = container.get("Labels") or {}
        if (
            container.get("State") in GPU_HOLDING_STATES
            and labels.get(LABEL_USER)
            and labels.get(LABEL_GPU)
        ):
            holders[labels[LABEL_USER]] = labels[LABEL_GPU]
    return holders


def running_gpu_holders(api: docker.APIClient, instance: str) -> dict[str, str]:
    """username -> GPU id of every running GPU attendee container of this deployment."""
    return gpu_holders(api.containers(all=True, filters=gpu_container_filters(instance)))
