"""What the hub asks the Docker host: are the images there, do GPUs work, who runs where."""

from __future__ import annotations

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from .profiles import LABEL_GPU, LABEL_INSTANCE, LABEL_USER
from .settings import SettingsError

NO_NVIDIA_RUNTIME_HINT = (
    "install the NVIDIA Container Toolkit on the host (and restart Docker), or leave "
    "WORKSHOP_GPUS empty to offer CPU only"
)


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
    """Device indices from `nvidia-smi -L` lines such as 'GPU 0: NVIDIA H100 (UUID: ...)'."""
    ids = []
    for line in nvidia_smi_listing.splitlines():
        if line.startswith("GPU ") and ":" in line:
            ids.append(line[4 : line.index(":")].strip())
    return ids


def running_gpu_holders(client: docker.DockerClient, instance: str) -> dict[str, str]:
    """username -> GPU id of every running attendee container of this deployment."""
    containers = client.containers.list(
        filters={"label": [f"{LABEL_INSTANCE}={instance}", LABEL_GPU], "status": "running"}
    )
    return {
        container.labels[LABEL_USER]: container.labels[LABEL_GPU]
        for container in containers
        if container.labels.get(LABEL_USER)
    }
