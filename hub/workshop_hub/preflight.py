"""`workshop-hub preflight`: is this host ready for the day? Run it the night before.

    docker compose run --rm hub workshop-hub preflight [--json]

It reads the settings exactly as the hub does (it runs in the hub's image, with compose's
environment and .env) and asks the host's Docker what it has: the lab images, memory and
cores against the room size and the per-attendee limits, free disk for the attendees' work
folders, the GPUs when WORKSHOP_GPUS is set (by starting a container on them, as the hub
does), the access code; when HTTPS is on, the domain's DNS and the certificate (the
organizer's own) or the ports ACME needs. Then each lab image runs its own check
(`python -m workshop_labs.smoke`) in a container started as the hub starts an attendee's,
with no network; `--no-image-checks` leaves that out for a quick re-check. One verdict per
check, each failure with what to do; the exit status is 1 when anything would stop the day.

The verdicts are pure functions of the settings and of what was found (HostFacts), so each
rule is tested without a host; `collect` is the one place that asks Docker.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import socket
import sys
import tarfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

import docker
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount

from . import credentials
from .disks import DISKS_ROOT, DiskError, own_image
from .docker_host import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    NO_NVIDIA_RUNTIME_HINT,
    detect_gpu_ids,
    explain_gpu_error,
    gpu_device_request,
    own_labels,
    probe_gpus,
)
from .exposure import exposure_messages, has_own_certificate, hub_port
from .firewall import HUB_SERVICE
from .gpu import is_mig_device
from .profiles import (
    WORK_DIR,
    Profile,
    container_limits,
    cpu_profile,
    gpu_memory_fraction,
    gpu_profile,
)
from .room import HOST_RESERVE, max_attendees
from .settings import COMPOSE_SETTINGS, WorkshopSettings

PASS, WARN, FAIL = "pass", "warn", "fail"
GiB = 1024**3
# More cores promised than this many times the host's is slow as soon as many train at once.
CORES_OVERSUBSCRIBED = 4
# What Docker needs free beside the attendees' folders: containers' layers, logs, a rebuild.
DOCKER_ROOT_MIN_FREE = 10 * GiB
# Who holds a port: this deployment's own service, or nobody.
OURS, FREE = "this deployment's own service", ""
# The compose service that publishes the HTTPS ports.
PROXY_SERVICE = "proxy"
# A certificate closer to its end than this is renewed before the day, not during it.
CERTIFICATE_WARN_DAYS = 14
# The image's own check, and where it leaves its report: in the work volume, as the
# container's other writable folders are tmpfs, gone once it stops.
IMAGE_CHECK_MODULE = "workshop_labs.smoke"
IMAGE_CHECK_REPORT = PurePosixPath(WORK_DIR) / "smoke-report.json"
IMAGE_CHECK_LABEL = "org.pytorch-workshop.preflight"
# All seven labs in quick mode take a few minutes; far more means a check hung.
IMAGE_CHECK_TIMEOUT_S = 1800


@dataclass
class Verdict:
    check: str
    status: str  # pass, warn or fail
    detail: str
    advice: str = ""


@dataclass
class TlsFiles:
    """WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY: their host paths, and their content or why it
    could not be read."""

    cert_path: str
    key_path: str
    cert: bytes | None = None
    key: bytes | None = None
    cert_error: str | None = None
    key_error: str | None = None


@dataclass
class ImageCheck:
    """A lab image's own check: its report, or the problem that kept one from coming back."""

    image: str
    gpus: list[str] = field(default_factory=list)
    report: dict | None = None
    problem: str | None = None
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
    # HTTPS on: what WORKSHOP_DOMAIN resolves to (or why not), this host's own addresses.
    domain_addresses: list[str] | None = None
    domain_error: str | None = None
    host_addresses: set[str] = field(default_factory=set)
    # The organizer's own certificate and key, as read on the host.
    tls: TlsFiles | None = None
    # ACME: who holds each port the proxy publishes (OURS, FREE, or who else).
    acme_port_holders: dict[str, str] = field(default_factory=dict)
    # Each needed lab image's own check, once run (None: not run, --no-image-checks).
    image_checks: list[ImageCheck] | None = None


def profiles_of(settings: WorkshopSettings) -> list[Profile]:
    """The profiles the hub would offer if every GPU works."""
    profiles = [gpu_profile(settings)] if settings.gpus else []
    if settings.offer_cpu or not settings.gpus:
        profiles.append(cpu_profile(settings))
    return profiles


def _size(count: int) -> str:
    return f"{count / GiB:.1f} GB"


def lab_images(settings: WorkshopSettings) -> dict[str, Profile]:
    """The lab images the settings need, by the setting that names each, with the profile
    an attendee's container of that image gets."""
    needed = {"WORKSHOP_CPU_IMAGE": cpu_profile(settings)} if settings.offer_cpu else {}
    if settings.gpus or not settings.offer_cpu:
        needed["WORKSHOP_CUDA_IMAGE"] = gpu_profile(settings)
    return needed


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


def check_domain(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    """HTTPS for WORKSHOP_DOMAIN needs the name to lead attendees (and ACME) to this host."""
    if not settings.domain:
        return None
    name = settings.domain
    if facts.domain_error is not None or not facts.domain_addresses:
        return Verdict(
            "domain",
            FAIL,
            f"{name} does not resolve ({facts.domain_error or 'no address'})",
            f"create a DNS record (A/AAAA) for {name} with this host's public address, or for "
            f"a room without DNS fix WORKSHOP_DOMAIN; check with `getent hosts {name}`",
        )
    found = ", ".join(facts.domain_addresses)
    ours = [address for address in facts.domain_addresses if address in facts.host_addresses]
    if ours:
        return Verdict("domain", PASS, f"{name} resolves to {found} ({', '.join(ours)} is here)")
    return Verdict(
        "domain",
        WARN,
        f"{name} resolves to {found}, none of them an address of this host "
        f"({', '.join(sorted(facts.host_addresses)) or 'none found'})",
        "fine when this host is behind NAT or a router that forwards ports 80 and 443 to it "
        "(the preflight cannot see a public address from here); otherwise point the DNS "
        f"record for {name} at this host",
    )


def _public_key_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _names(certificate: x509.Certificate) -> list[str]:
    """The DNS names a certificate is valid for: its SANs, else its common name."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return extension.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(attribute.value) for attribute in common]


def certificate_covers(names: list[str], domain: str) -> bool:
    """Whether `domain` is among `names`, a wildcard standing for exactly one label."""
    domain = domain.lower().rstrip(".")
    for name in (name.lower().rstrip(".") for name in names):
        if name == domain:
            return True
        if name.startswith("*.") and domain.partition(".")[2] == name[2:] and "." in name[2:]:
            return True
    return False


def check_certificate(
    settings: WorkshopSettings, facts: HostFacts, now: datetime.datetime
) -> list[Verdict]:
    """The organizer's own certificate (WORKSHOP_TLS_CERT): readable, matching its key, in
    date, and naming the domain. The proxy serves it as it is, with no renewal."""
    tls = facts.tls
    if tls is None:
        return []
    fix_files = "fix WORKSHOP_TLS_CERT / WORKSHOP_TLS_KEY in .env (absolute paths on this host)"
    for setting, path, error in (
        ("WORKSHOP_TLS_CERT", tls.cert_path, tls.cert_error),
        ("WORKSHOP_TLS_KEY", tls.key_path, tls.key_error),
    ):
        if error is not None:
            return [Verdict("certificate files", FAIL, f"{setting}={path}: {error}", fix_files)]
    try:
        chain = x509.load_pem_x509_certificates(tls.cert)
    except ValueError as error:
        return [
            Verdict(
                "certificate files",
                FAIL,
                f"{tls.cert_path} is not a PEM certificate ({error})",
                "give the certificate (with its chain) in PEM, as your CA sent it; " + fix_files,
            )
        ]
    try:
        key = serialization.load_pem_private_key(tls.key, password=None)
    except (ValueError, TypeError) as error:
        return [
            Verdict(
                "certificate files",
                FAIL,
                f"{tls.key_path} is not an unencrypted PEM private key ({error})",
                "give the key in PEM without a passphrase "
                "(`openssl pkey -in KEY -out key.pem` removes it); " + fix_files,
            )
        ]
    certificate = chain[0]
    verdicts = [Verdict("certificate files", PASS, f"{tls.cert_path} and {tls.key_path} read")]
    if _public_key_der(certificate.public_key()) == _public_key_der(key.public_key()):
        verdicts.append(Verdict("certificate and key", PASS, "the key is the certificate's"))
    else:
        verdicts.append(
            Verdict(
                "certificate and key",
                FAIL,
                f"{tls.key_path} is not the key of {tls.cert_path}",
                "give the key that was made with this certificate's request; " + fix_files,
            )
        )
    verdicts.append(_certificate_dates(certificate, now))
    names = _names(certificate)
    if settings.domain and not certificate_covers(names, settings.domain):
        verdicts.append(
            Verdict(
                "certificate names",
                FAIL,
                f"the certificate is for {', '.join(names) or 'no name'}, "
                f"not WORKSHOP_DOMAIN={settings.domain}",
                f"get a certificate for {settings.domain} (or a wildcard over its domain), or "
                "fix WORKSHOP_DOMAIN",
            )
        )
    elif settings.domain:
        verdicts.append(
            Verdict("certificate names", PASS, f"{settings.domain} is among {', '.join(names)}")
        )
    return verdicts


def _certificate_dates(certificate: x509.Certificate, now: datetime.datetime) -> Verdict:
    starts, ends = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    days_left = (ends - now).days
    until = f"valid until {ends:%Y-%m-%d %H:%M} UTC"
    renew = "renew it with your CA and replace the files named by WORKSHOP_TLS_CERT / _KEY"
    if now < starts:
        return Verdict(
            "certificate dates",
            FAIL,
            f"not valid before {starts:%Y-%m-%d %H:%M} UTC",
            "check this host's clock, or use a certificate valid now",
        )
    if now >= ends:
        return Verdict("certificate dates", FAIL, f"expired: was {until}", renew)
    if days_left < CERTIFICATE_WARN_DAYS:
        return Verdict(
            "certificate dates", WARN, f"{until}: {days_left} days left", renew + " before the day"
        )
    return Verdict("certificate dates", PASS, f"{until} ({days_left} days left)")


def check_acme_ports(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    """ACME (Let's Encrypt) proves the domain through the proxy's ports 80 and 443."""
    if not facts.acme_port_holders:
        return None
    taken = {
        port: holder
        for port, holder in facts.acme_port_holders.items()
        if holder not in (FREE, OURS)
    }
    ports = " and ".join(facts.acme_port_holders)
    if not taken:
        return Verdict("ports for ACME", PASS, f"{ports} free or the proxy's own")
    return Verdict(
        "ports for ACME",
        FAIL,
        "; ".join(f"port {port} is taken by {holder}" for port, holder in taken.items()),
        "the certificate authority reaches the proxy on these ports (HTTP-01 on 80, "
        "TLS-ALPN-01 on 443): stop what holds them, or give your own certificate "
        "(WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY)",
    )


def check_image_runs(facts: HostFacts) -> list[Verdict]:
    """Each lab image's own check, run under an attendee's limits: one verdict per image."""
    verdicts = []
    for run in facts.image_checks or []:
        name = f"image check {run.image}"
        if run.problem is not None:
            verdicts.append(Verdict(name, FAIL, run.problem, run.advice))
            continue
        checks = run.report["checks"]
        counts = {}
        for check in checks:
            counts[check["verdict"]] = counts.get(check["verdict"], 0) + 1
        summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
        on = f" on GPU {','.join(run.gpus)}" if run.gpus else ""
        detail = f"{summary} in {run.report['seconds']:.0f} s{on}, attendee limits, no network"
        failed = [check for check in checks if check["verdict"] == FAIL]
        warned = [check for check in checks if check["verdict"] == WARN]
        if not failed and not warned:
            verdicts.append(Verdict(name, PASS, detail))
            continue
        reasons = "; ".join(
            f"{check['name']}: {check['note'].strip().splitlines()[0]}"
            for check in failed or warned
        )
        rerun = (
            f"see one in full: docker run --rm --network none {run.image} "
            f"python -m {IMAGE_CHECK_MODULE} --only {(failed or warned)[0]['name']}"
        )
        verdicts.append(Verdict(name, FAIL if failed else WARN, detail, f"{reasons} ({rerun})"))
    return verdicts


def verdicts(
    settings: WorkshopSettings, facts: HostFacts, now: datetime.datetime | None = None
) -> list[Verdict]:
    now = now or datetime.datetime.now(datetime.UTC)
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
        check_domain(settings, facts),
        *check_certificate(settings, facts, now),
        check_acme_ports(settings, facts),
        check_access_code(facts),
        *check_image_runs(facts),
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


def _stream(container, say: Callable[[str], None]) -> None:
    """Pass the check's progress on line by line: all seven labs take minutes."""
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            say(line.decode(errors="replace"))
    if pending:
        say(pending.decode(errors="replace"))


def _read_report(container) -> dict | None:
    """The JSON report the check left in the (stopped) container, or None."""
    try:
        chunks, _ = container.get_archive(str(IMAGE_CHECK_REPORT))
    except NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile(IMAGE_CHECK_REPORT.name)
        return json.loads(member.read()) if member else None


def _remove(client: docker.DockerClient, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True, v=True)
    except NotFound:
        pass


def run_image_check(
    client: docker.DockerClient,
    settings: WorkshopSettings,
    setting: str,
    profile: Profile,
    gpus: list[str],
    say: Callable[[str], None],
    arguments: tuple[str, ...] = (),
    mounts: tuple[Mount, ...] = (),
    timeout_s: float = IMAGE_CHECK_TIMEOUT_S,
) -> ImageCheck:
    """Run `python -m workshop_labs.smoke` in `profile`'s image, in a container with the
    limits and hardening of an attendee's (the hub's own container_limits), a throwaway work
    volume where theirs would be, the GPUs `gpus` (then a missing GPU fails), and no
    network, which proves that nothing is downloaded. `arguments` go to the check."""
    run = ImageCheck(profile.image, list(gpus))
    name = f"{settings.instance}-preflight-{profile.slug}"
    _remove(client, name)  # left by an interrupted run
    command = ["python", "-m", IMAGE_CHECK_MODULE, "--json", str(IMAGE_CHECK_REPORT), *arguments]
    environment = {"WORKSHOP_PROFILE": profile.slug}
    if gpus:
        command.append("--require-gpu")
        # The share of GPU memory an attendee gets: a MIG slice's is theirs alone.
        whole = all(is_mig_device(device) for device in gpus)
        environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(
            1.0 if whole else gpu_memory_fraction(settings)
        )
    on = f" on GPU {','.join(gpus)}" if gpus else ""
    say(f"starting {profile.image}{on} under an attendee's limits, no network")
    try:
        container = client.containers.run(
            profile.image,
            command,
            name=name,
            detach=True,
            labels={IMAGE_CHECK_LABEL: profile.slug},
            environment=environment,
            network_mode="none",
            device_requests=[gpu_device_request(gpus)] if gpus else [],
            mounts=[Mount(WORK_DIR, None, type="volume"), *mounts],
            **container_limits(settings, profile),
        )
    except APIError as error:
        _remove(client, name)  # created, but refused at start
        if gpus:
            run.problem = f"a container on GPU {','.join(gpus)} was refused"
            run.advice = explain_gpu_error(error)
        else:
            run.problem = f"the container did not start: {error.explanation or error}"
            run.advice = f"rebuild the image (`docker compose build`) or fix {setting}"
        return run
    timed_out = threading.Event()

    def kill_hung_container() -> None:
        timed_out.set()
        try:
            container.kill()
        except APIError:
            pass  # it exited on its own meanwhile

    watchdog = threading.Timer(timeout_s, kill_hung_container)
    watchdog.start()
    try:
        _stream(container, say)
        exit_code = container.wait()["StatusCode"]
        container.reload()
        run.report = _read_report(container)
    finally:
        watchdog.cancel()
        container.remove(force=True, v=True)
    if timed_out.is_set():
        run.problem = f"killed after {timeout_s:g} s: a check hung"
        run.advice = "the output above shows the last step; run the check by hand to see it"
    elif container.attrs["State"].get("OOMKilled"):
        run.problem = f"killed by the {profile.mem_limit / GiB:g} GB memory limit (OOM)"
        run.advice = "raise WORKSHOP_MEM_LIMIT / WORKSHOP_GPU_MEM_LIMIT"
    elif run.report is None:
        run.problem = f"exited {exit_code} without a report"
        run.advice = f"is {IMAGE_CHECK_MODULE} in the image? Rebuild it (`docker compose build`)"
    return run


def run_image_checks(
    client: docker.DockerClient, settings: WorkshopSettings, facts: HostFacts
) -> list[ImageCheck]:
    """The own check of each lab image the settings need and this host has, one at a time."""
    runs = []
    for setting, profile in lab_images(settings).items():
        if profile.image not in facts.images:
            continue  # its missing image is a verdict already
        gpus = []
        if profile.slug == "gpu" and settings.gpus == "auto":
            gpus = detect_gpu_ids(facts.gpu_listing or "")
        elif profile.slug == "gpu":
            gpus = list(settings.gpus)

        def say(line: str, flavor: str = profile.slug) -> None:
            print(f"[preflight {flavor}] {line}", file=sys.stderr, flush=True)

        runs.append(run_image_check(client, settings, setting, profile, gpus, say))
    return runs


def table(found: list[Verdict]) -> str:
    width = max(len(verdict.check) for verdict in found)
    lines = []
    for verdict in found:
        lines.append(f"{verdict.status.upper():4}  {verdict.check:{width}}  {verdict.detail}")
        if verdict.advice:
            lines.append(f"{'':4}  {'':{width}}  → {verdict.advice}")
    return "\n".join(lines)


def run(
    settings: WorkshopSettings, as_json: bool, image_checks: bool = True, out=sys.stdout
) -> int:
    """Print the verdicts; 1 when any check failed. `image_checks`: run each lab image's
    own check (minutes; its progress goes to stderr)."""
    try:
        client = docker.from_env()
        facts = collect(settings, client, os.environ)
        if image_checks:
            facts.image_checks = run_image_checks(client, settings, facts)
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
