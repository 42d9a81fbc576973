"""The one place that asks the host's Docker: what `collect` puts in HostFacts."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import docker
from docker.errors import APIError, ImageNotFound
from docker.types import Mount

from ...access import credentials
from ...access.exposure import has_own_certificate, hub_port
from ...access.passwords import PasswordStore
from ...access.roster import rostered_unused_names
from ...room.disks import DISKS_ROOT, own_image
from ...room.docker_host import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, own_labels, probe_gpus
from ...services import HUB_SERVICE
from ...settings import COMPOSE_SETTINGS, PROJECT_ENV_FILE, WorkshopSettings
from .facts import FREE, OURS, HostFacts, TlsFiles

# The compose service that publishes the HTTPS ports.
PROXY_SERVICE = "proxy"


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


def port_holder(
    client: docker.DockerClient, image: str, address: str, port: str, service: str = HUB_SERVICE
) -> str:
    """OURS when this deployment's `service` publishes the port, FREE when Docker can publish
    it, else who holds it: another container, or a program outside Docker."""
    project = own_labels(client).get(COMPOSE_PROJECT_LABEL)
    for container in client.containers.list():
        if _publishes(container, address, port):
            labels = container.labels
            ours = (
                labels.get(COMPOSE_PROJECT_LABEL) == project
                and labels.get(COMPOSE_SERVICE_LABEL) == service
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
        env_file_mode=file_mode(PROJECT_ENV_FILE),
        port=hub_port(environ),
        own_certificate=has_own_certificate(environ),
        rostered_waiting=rostered_waiting(),
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
    if settings.domain:
        facts.domain_addresses, facts.domain_error = resolve(settings.domain)
        facts.host_addresses = host_addresses(client, helper)
    if facts.own_certificate:
        facts.tls = read_tls_files(client, helper, environ)
    elif settings.domain:
        for setting in ("WORKSHOP_HTTP_PORT", "WORKSHOP_HTTPS_PORT"):
            port = environ.get(setting) or COMPOSE_SETTINGS[setting][0]
            facts.acme_port_holders[port] = port_holder(
                client, helper, "0.0.0.0", port, PROXY_SERVICE
            )
    return facts


def file_mode(path: Path) -> int | None:
    """The st_mode of `path`, as the host has it (the mount keeps it); None when absent."""
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return None


def resolve(name: str) -> tuple[list[str], str | None]:
    """The addresses `name` resolves to here, or why it does not."""
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        return [], str(error)
    return list(dict.fromkeys(str(entry[4][0]) for entry in found)), None


def host_addresses(client: docker.DockerClient, image: str) -> set[str]:
    """This host's own addresses, as a container on the host's network sees them."""
    output = client.containers.run(
        image, ["hostname", "-I"], entrypoint=[], network_mode="host", remove=True
    )
    return set(output.decode().split())


def _read_on_host(
    client: docker.DockerClient, image: str, path: str
) -> tuple[bytes | None, str | None]:
    """The content of a file on the host, read as the proxy reads it (as root), or why not."""
    if not path:
        return None, "not set"
    if not PurePosixPath(path).is_absolute():
        return None, (
            "a relative path, which the preflight cannot find from the hub's container: "
            "give the absolute path"
        )
    try:
        content = client.containers.run(
            image,
            ["cat", "/read/file"],
            entrypoint=[],
            mounts=[Mount("/read/file", path, type="bind", read_only=True)],
            network_mode="none",
            remove=True,
        )
    except APIError as error:
        return None, f"no such file on this host ({str(error.explanation or error)[-120:]})"
    except docker.errors.ContainerError as error:
        return None, f"cannot be read ({error.stderr.decode(errors='replace').strip()[-120:]})"
    return content, None


def read_tls_files(client: docker.DockerClient, image: str, environ: Mapping[str, str]) -> TlsFiles:
    tls = TlsFiles(environ.get("WORKSHOP_TLS_CERT", ""), environ.get("WORKSHOP_TLS_KEY", ""))
    tls.cert, tls.cert_error = _read_on_host(client, image, tls.cert_path)
    tls.key, tls.key_error = _read_on_host(client, image, tls.key_path)
    return tls


def rostered_waiting() -> int:
    """How many rostered attendees have not used their login card (0 before the hub's first
    start, when there is no login store yet)."""
    if not credentials.ATTENDEE_PASSWORDS_FILE.parent.exists():
        return 0
    return len(rostered_unused_names(PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)))
