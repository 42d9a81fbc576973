"""What the preflight finds on the host (HostFacts, filled by `host.collect`) and what it
concludes (Verdict), with the lab images the settings need."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...access.exposure import hub_port
from ...room.profiles import Profile, offered_profiles
from ...settings import WorkshopSettings

PASS, WARN, FAIL = "pass", "warn", "fail"
# The setting that names each profile's image.
IMAGE_SETTINGS = {"cpu": "WORKSHOP_CPU_IMAGE", "gpu": "WORKSHOP_CUDA_IMAGE"}
# Who holds a port: this deployment's own service, or nobody.
OURS, FREE = "this deployment's own service", ""


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
    # The permission bits of the organizer's .env (st_mode), None when there is none.
    env_file_mode: int | None = None
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
    # Rostered attendees who have not logged in yet: the servers warm-room will start.
    rostered_waiting: int = 0
    # ACME: who holds each port the proxy publishes (OURS, FREE, or who else).
    acme_port_holders: dict[str, str] = field(default_factory=dict)
    # Each needed lab image's own check, once run (None: not run, --no-image-checks).
    image_checks: list[ImageCheck] | None = None


def profiles_of(settings: WorkshopSettings) -> list[Profile]:
    """The profiles the hub would offer if every GPU works."""
    return offered_profiles(settings, gpus_offered=bool(settings.gpus))


def lab_images(settings: WorkshopSettings) -> dict[str, Profile]:
    """The lab images the settings need, by the setting that names each, with the profile
    an attendee's container of that image gets: the images of the profiles offered."""
    return {IMAGE_SETTINGS[profile.slug]: profile for profile in profiles_of(settings)}
