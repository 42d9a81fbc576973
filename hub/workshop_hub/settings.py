"""Every setting of the workshop, in one table: name, type, default, allowed values, help,
and whether the hub reads it or only docker compose does.

Everything else is derived from `TABLE`: the settings object of the hub (`WorkshopSettings`,
one field per hub setting), `.env.example`, the hub's `environment:` block in
docker-compose.yml and the settings table of docs/settings.md. The last three are rewritten by
`scripts/update_settings_files.py`; a test fails when one is stale.

Settings come from environment variables (docker compose passes them from `.env`), except the
secret ones (the room code, the admin password), which the hub reads from `.env` itself
(PROJECT_ENV_FILE) so that `docker inspect` never shows them. A value
is checked after conversion (finite, in range), so no setting can turn a limit off. An
invalid value, or a `WORKSHOP_*` name that is not a setting, is refused with one line that
names it and what is allowed, e.g. `WORKSHOP_MEM_LIMIT='lots': use a size such as 512M, 2G
or 1.5G` or `WORKSHOP_MEM_LIMTI is not a setting: did you mean WORKSHOP_MEM_LIMIT?` (the hub
sees only the names compose passes it; the pre-event check reads `.env` itself).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

# A room code lets a stranger claim a name, and everyone in the room sees it typed: 12
# characters at least, the length of the generated one (credentials.generate_access_code).
ACCESS_CODE_MIN_LENGTH = 12
# The admins' password is shared by every instructor and typed rarely: long and random.
ADMIN_PASSWORD_MIN_LENGTH = 32
USERNAME_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,31}"
USERNAME_RULE = (
    "1 to 32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter "
    "or digit (for example ada-lovelace)"
)
KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
# Ranges of the limits. Below these floors Docker either refuses the value or treats it as
# "no limit" (a memory or CPU quota of 0), or the attendee's JupyterLab cannot start at all.
MIN_MEMORY = 64 * MiB  # JupyterLab alone needs more; Docker refuses under 6 MiB
MIN_CPU = 0.01  # a quota of 1 ms per 100 ms period, Docker's smallest (0 means unlimited)
# Every thread counts as a pid. A kernel that ran torch has 15 threads on 2 cores (measured;
# torch adds one per core), and the Jupyter server has its own: under 64 the first notebook
# of a many-core host may not start. The kernel's largest pid_max caps the other end.
MIN_PIDS = 64
MAX_PIDS = 4_194_304
MAX_SIZE = 16 * TiB  # larger than any host's memory or disk: a typo, not a plan
MAX_CPU = 1024.0
MAX_DURATION = 366 * 86400
# 1/64 of a 16 GB GPU is 256 MB, about what torch's CUDA context takes before any tensor.
MAX_ATTENDEES_PER_GPU = 64


class SettingsError(ValueError):
    """A setting has a value the workshop cannot use; the message says which and why."""


# --- Text to value: each parser raises ValueError with what to use instead. ---------------

_NUMBER = r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)"  # ASCII digits only: float() also takes '٣', 'nan'
_SIZE_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
SIZE_HINT = "use a size such as 512M, 2G or 1.5G"
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HINT = "use a duration such as 3600, 90m or 1h"


def _scaled(text: str, pattern: str, units: dict[str, int], hint: str) -> int:
    """A number with an optional unit, times the unit, floored; refused when not finite."""
    match = re.fullmatch(rf"\s*{_NUMBER}\s*{pattern}\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(hint)
    value = float(match.group(1)) * units[(match.group(2) or "").lower()]
    if not math.isfinite(value):  # 400 digits make float() return inf
        raise ValueError(f"{text.strip()} is too large; {hint}")
    return int(value)


def _bytes(text: str) -> int:
    return _scaled(text, r"(?:([kmgt])(?:ib?|b)?|(b))?", _SIZE_UNITS, SIZE_HINT)


def parse_size(text: str) -> int:
    """'512M', '512Mi', '2G', '1.5g', '2GiB', '1048576' -> bytes (at least 1)."""
    size = _bytes(text)
    if size < 1:
        raise ValueError(SIZE_HINT)
    return size


def _seconds(text: str) -> int:
    return _scaled(text, r"([smhd])?", _DURATION_UNITS, DURATION_HINT)


def parse_duration(text: str) -> int:
    """'3600', '90m', '1h', '1.5h', '1d' -> seconds (at least 1)."""
    seconds = _seconds(text)
    if seconds < 1:
        raise ValueError(DURATION_HINT)
    return seconds


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("use true or false")


def parse_usernames(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(USERNAME_PATTERN, name):
            raise ValueError(f"{name!r} is not a valid username ({USERNAME_RULE})")
    return names


def parse_image(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", text.strip()):
        raise ValueError("use a Docker image name such as pytorch-workshop-lab:cpu")
    return text.strip()


def parse_instance(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,40}", text):
        raise ValueError("use lowercase letters, digits, '.', '_' or '-' (at most 41 characters)")
    return text


def parse_domain(text: str) -> str:
    """'' -> no HTTPS name; 'Workshop.Example.org.' -> 'workshop.example.org'."""
    name = text.strip().lower().removesuffix(".")
    label = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
    if name and (len(name) > 253 or not re.fullmatch(rf"{label}(?:\.{label})+", name)):
        raise ValueError("use a DNS name such as workshop.example.org, or leave it empty")
    return name


def parse_public_url(text: str) -> str:
    """'' -> derived from the domain or the listen address; else an http(s) address, with /."""
    url = text.strip()
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
        raise ValueError("use the address attendees open, such as https://workshop.example.org/")
    return url if url.endswith("/") else url + "/"


_CLOCK = re.compile(
    r"(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9])(?P<offset>[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]|Z)?"
)


def parse_clock_time(text: str) -> str:
    """'' -> never; '8:45' -> '08:45+00:00'; '08:45+01:00' kept: a time of day with its
    offset from UTC (UTC when none is given)."""
    value = text.strip().upper()
    if not value:
        return ""
    if re.fullmatch(r"[0-9]:[0-5][0-9].*", value):
        value = "0" + value
    match = _CLOCK.fullmatch(value)
    if match is None:
        raise ValueError(
            "use a time of day HH:MM, in UTC or with its offset such as 08:45+01:00, or leave "
            "it empty"
        )
    offset = match["offset"] or "+00:00"
    return f"{match['hour']}:{match['minute']}{'+00:00' if offset == 'Z' else offset}"


def parse_ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("use an IP address such as 127.0.0.1, 0.0.0.0 or ::1") from None


_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
# Device ids as `nvidia-smi -L` prints them: an index, a GPU UUID, or a MIG device (current
# `MIG-<uuid>` and the older `MIG-GPU-<uuid>/<gpu instance>/<compute instance>`).
_GPU_ID = re.compile(rf"(?P<index>[0-9]+)|GPU-{_UUID}|MIG-(?:{_UUID}|GPU-{_UUID}/[0-9]+/[0-9]+)")
GPU_RULE = (
    "use empty (no GPUs), auto, or device ids such as 0,1 or the GPU-<uuid> and MIG-<uuid> "
    "ids that nvidia-smi -L prints"
)


def parse_gpus(text: str) -> str | tuple[str, ...]:
    """'' or 'none' -> no GPUs; 'auto' -> detect; '0,1' or UUIDs -> those devices.

    UUIDs are kept as given (the NVIDIA runtime matches them as strings); indexes are
    normalised, so `0,00` is recognised as one GPU listed twice.
    """
    cleaned = text.strip()
    if cleaned.lower() in {"", "none"}:
        return ()
    if cleaned.lower() == "auto":
        return "auto"
    ids, seen = [], set()
    for part in (part.strip() for part in cleaned.split(",")):
        match = _GPU_ID.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a device id; {GPU_RULE}")
        gpu_id = str(int(part)) if match.group("index") else part
        if gpu_id.lower() in seen:
            raise ValueError(f"device {gpu_id} is listed twice")
        seen.add(gpu_id.lower())
        ids.append(gpu_id)
    return tuple(ids)


# --- Kinds: a Python type, the rule an organizer reads, and the checked parser. -----------


@dataclass(frozen=True)
class Kind:
    type: Any
    allowed: str  # for the settings table (docs/settings.md)
    parse: Callable[[str], Any]
    secret: bool = False  # never echoed in messages


def format_size(size: int) -> str:
    """A size in the settings' own notation ("2G", "512M"), which .env, Docker and the chart
    read back: for a setting's default and the range a message offers to type."""
    for unit, factor in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def human_size(size: float) -> str:
    """A size as people read it in messages and pages: binary units, named as such
    ("1.9 GiB", "512.0 MiB", "900 B"). The labs' image has the same rule
    (workshop_labs/units.py; a test keeps the two equal)."""
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def _in_range(value, minimum, maximum, show: Callable[[Any], str], what: str):
    if not minimum <= value <= maximum:
        raise ValueError(f"use {what} from {show(minimum)} to {show(maximum)}")
    return value


def size_kind(minimum: int = MIN_MEMORY) -> Kind:
    def parse(text: str) -> int:
        size = _bytes(text)
        if size < minimum and re.fullmatch(r"\s*[0-9.]+\s*", text) and float(text) > 0:
            # A bare number is bytes: `2` is far more likely a forgotten G than 2 bytes.
            raise ValueError(
                f"that is {size} bytes; use at least {format_size(minimum)} "
                f"(did you mean {text.strip()}G?)"
            )
        return _in_range(size, minimum, MAX_SIZE, format_size, "a size such as 512M or 2G,")

    return Kind(int, f"size, {format_size(minimum)} to {format_size(MAX_SIZE)}", parse)


def _show_duration(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds >= 86400 else f"{seconds}s"


def duration_kind() -> Kind:
    def parse(text: str) -> int:
        seconds = _seconds(text)
        return _in_range(seconds, 1, MAX_DURATION, _show_duration, "a duration such as 90m,")

    return Kind(int, f"duration (s, m, h, d), 1s to {_show_duration(MAX_DURATION)}", parse)


def cores_kind() -> Kind:
    def parse(text: str) -> float:
        if not re.fullmatch(rf"\s*{_NUMBER}\s*", text):
            raise ValueError(f"use a number of CPU cores from {MIN_CPU:g} to {MAX_CPU:g}")
        return _in_range(float(text), MIN_CPU, MAX_CPU, "{:g}".format, "a number of CPU cores")

    return Kind(float, f"CPU cores, {MIN_CPU:g} to {MAX_CPU:g}", parse)


def count_kind(minimum: int, maximum: int, auto: bool = False) -> Kind:
    """A whole number in [minimum, maximum]; with `auto`, also 'auto' -> None."""
    rule = f"{'auto or ' if auto else ''}a whole number from {minimum} to {maximum}"

    def parse(text: str) -> int | None:
        if auto and text.strip().lower() == "auto":
            return None
        if not re.fullmatch(r"\s*[0-9]+\s*", text) or not minimum <= int(text) <= maximum:
            raise ValueError(f"use {rule}")
        return int(text)

    return Kind(int | None if auto else int, rule, parse)


def secret_kind(min_length: int) -> Kind:
    def parse(text: str) -> str | None:
        if not text:
            return None
        if not all(" " <= character <= "~" for character in text):
            # JupyterHub compares passwords with secrets.compare_digest, which raises on
            # non-ASCII text: every login would end in HTTP 500.
            raise ValueError("use printable ASCII characters only (letters, digits, punctuation)")
        if len(text) < min_length:
            raise ValueError(
                f"it has {len(text)} characters; use at least {min_length}, "
                "or leave it empty to have one generated"
            )
        return text

    return Kind(
        str | None,
        f"empty (generated) or {min_length}+ printable ASCII characters",
        parse,
        secret=True,
    )


def _port(text: str) -> int:
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or not 1 <= int(text) <= 65535:
        raise ValueError("use a port number from 1 to 65535")
    return int(text)


SIZE = size_kind()
DURATION = duration_kind()
CORES = cores_kind()
BOOL = Kind(bool, "true or false", parse_bool)
IMAGE = Kind(str, "Docker image name", parse_image)
PORT = Kind(int, "port, 1 to 65535", _port)
TEXT = Kind(str, "text", str.strip)
FILE = Kind(str, "path of a file on this host, or empty", str.strip)


# --- The table ----------------------------------------------------------------------------


# Who reads a setting. The hub parses its own settings into WorkshopSettings; compose reads
# the others (images, ports, the proxy). COMPOSE_AND_HUB: compose's, also passed to the hub as
# text for its start-up message (hub/workshop_hub/access/exposure.py) and the preflight's checks.
HUB, COMPOSE, COMPOSE_AND_HUB = "hub", "compose", "compose, hub"


@dataclass(frozen=True)
class Setting:
    env: str
    kind: Kind
    default: str  # as an organizer would write it in .env
    help: str
    read_by: str = HUB

    @property
    def compose_only(self) -> bool:
        """Not a field of WorkshopSettings: docker compose interprets it."""
        return self.read_by != HUB

    @property
    def passed_to_hub(self) -> bool:
        return self.read_by != COMPOSE

    @property
    def field(self) -> str:
        """Its name on the settings object: WORKSHOP_MEM_LIMIT -> mem_limit."""
        return self.env.removeprefix("WORKSHOP_").lower()

    @property
    def secret(self) -> bool:
        """Read from `.env` by the hub itself, never passed in compose's environment."""
        return self.kind.secret

    def parse(self, text: str) -> Any:
        return self.kind.parse(text)

    def read(self, environ: Mapping[str, str]) -> Any:
        """Its value in `environ` (empty or missing: the default), or one line saying why not."""
        raw = environ.get(self.env, "").strip() or self.default
        try:
            return self.kind.parse(raw)
        except ValueError as error:
            shown = f"<{len(raw)} characters, not shown>" if self.kind.secret else repr(raw)
            raise SettingsError(f"{self.env}={shown}: {error}") from None


TABLE: list[Setting] = [
    Setting(
        "WORKSHOP_ACCESS_CODE",
        secret_kind(ACCESS_CODE_MIN_LENGTH),
        "",
        "The room code: an attendee types it once, at the first login that claims their "
        f"name (at least {ACCESS_CODE_MIN_LENGTH} characters, not a plain word). Empty: one is "
        "generated on first start, kept, and shown by `docker compose exec hub workshop-hub "
        "access-code`.",
    ),
    Setting(
        "WORKSHOP_ADMIN_USERS",
        Kind(tuple[str, ...], "comma-separated usernames", parse_usernames),
        "instructor",
        "Comma-separated usernames that log in as admins with the admin password.",
    ),
    Setting(
        "WORKSHOP_ADMIN_PASSWORD",
        secret_kind(ADMIN_PASSWORD_MIN_LENGTH),
        "",
        f"Password of the admin users (at least {ADMIN_PASSWORD_MIN_LENGTH} characters). Empty: "
        "generated on first start and kept, shown by `docker compose exec hub workshop-hub "
        "admin-password`.",
    ),
    Setting(
        "WORKSHOP_INSTANCE",
        Kind(str, "lowercase letters, digits, `.` `_` `-`", parse_instance),
        "pytorch-workshop",
        "Prefix of attendee containers and volumes, so two deployments on one "
        "machine never share them.",
    ),
    Setting("WORKSHOP_CPU_IMAGE", IMAGE, "pytorch-workshop-lab:cpu", "Image of the CPU profile."),
    Setting(
        "WORKSHOP_CUDA_IMAGE",
        IMAGE,
        "pytorch-workshop-lab:cuda",
        "Image of the GPU profile (build it with `docker compose --profile gpu build`).",
    ),
    Setting(
        "WORKSHOP_MEM_LIMIT",
        SIZE,
        "2G",
        "Memory limit of each CPU attendee container, no swap (30 attendees x 2G fit a "
        "64 GB host).",
    ),
    Setting("WORKSHOP_CPU_LIMIT", CORES, "2", "CPU cores each CPU attendee may use at most."),
    Setting(
        "WORKSHOP_GPU_MEM_LIMIT",
        SIZE,
        "6G",
        "Memory limit (host RAM) of each GPU attendee container.",
    ),
    Setting(
        "WORKSHOP_GPU_CPU_LIMIT",
        CORES,
        "4",
        "CPU cores each GPU attendee may use at most (they feed the GPU).",
    ),
    Setting(
        "WORKSHOP_PIDS_LIMIT",
        count_kind(MIN_PIDS, MAX_PIDS),
        "512",
        "Processes and threads per attendee container.",
    ),
    Setting(
        "WORKSHOP_SHM_SIZE",
        # Small sizes are allowed: the pre-event check shows what they break.
        size_kind(minimum=MiB),
        "512M",
        "Size of /dev/shm in attendee containers (DataLoader workers share batches there).",
    ),
    Setting(
        "WORKSHOP_IDLE_TIMEOUT",
        DURATION,
        "1h",
        "Stop a server after this long without activity (its files are kept).",
    ),
    Setting(
        "WORKSHOP_GPUS",
        Kind(str | tuple[str, ...], "empty, `auto`, or device ids", parse_gpus),
        "",
        "GPUs the hub may hand out: empty for none, auto to detect them, or device ids "
        "such as 0,1 (GPU-<uuid> and MIG-<uuid> ids as nvidia-smi -L prints them).",
    ),
    Setting(
        "WORKSHOP_ATTENDEES_PER_GPU",
        count_kind(1, MAX_ATTENDEES_PER_GPU),
        "4",
        "How many attendees share one GPU; each gets 1/N of its memory.",
    ),
    Setting(
        "WORKSHOP_OFFER_CPU",
        BOOL,
        "true",
        "Offer the CPU profile next to the GPU one (it is always offered when there are no GPUs).",
    ),
    Setting(
        "WORKSHOP_DOMAIN",
        Kind(str, "DNS name, or empty", parse_domain),
        "",
        "DNS name of this host for HTTPS (the proxy gets a certificate for it). Empty: "
        "plain HTTP only.",
    ),
    Setting(
        "WORKSHOP_ORIGIN_PER_ATTENDEE",
        BOOL,
        "false",
        "Serve each attendee's server on an origin of its own (NAME.localhost on this host; "
        "NAME.WORKSHOP_DOMAIN over HTTPS, which needs a wildcard DNS name and your own "
        "wildcard certificate in WORKSHOP_TLS_CERT): their pages can then never act in "
        "another browser's session on the hub (docs/security.md).",
    ),
    Setting(
        "WORKSHOP_LISTEN_ADDRESS",
        Kind(str, "IPv4 or IPv6 address", parse_ip_address),
        "127.0.0.1",
        "Address of this host where the hub's plain-HTTP port is published.",
    ),
    Setting(
        "WORKSHOP_SESSION_LENGTH",
        DURATION,
        "1d",
        "How long a login lasts before attendees must log in again (yesterday's sessions "
        "end; `workshop-hub new-event` ends them all at once).",
    ),
    Setting(
        "WORKSHOP_ATTENDEE_INTERNET",
        BOOL,
        "false",
        "Let attendee containers reach the internet (pip install, downloads).",
    ),
    Setting(
        "WORKSHOP_DISK_LIMIT",
        SIZE,
        "2G",
        "Disk space of each attendee's home volume.",
    ),
    Setting(
        "WORKSHOP_TMP_SIZE",
        # Must stay above 0: a tmpfs of size 0 is unlimited (half the host's memory).
        size_kind(minimum=MiB),
        "256M",
        "Size of /tmp in attendee containers (held in memory).",
    ),
    Setting(
        "WORKSHOP_MAX_ATTENDEES",
        count_kind(1, 100_000, auto=True),
        "auto",
        "Most attendee servers running at once. auto: sized at start from host memory.",
    ),
    Setting(
        "WORKSHOP_MAX_NAMES",
        count_kind(1, 100_000, auto=True),
        "auto",
        "Most names the room code can claim, so that one attendee's script cannot fill the "
        "room. auto: twice WORKSHOP_MAX_ATTENDEES when that is a number, else 400.",
    ),
    Setting(
        "WORKSHOP_SPAWN_CONCURRENCY",
        count_kind(1, 200, auto=True),
        "auto",
        "Servers that start at once; the others wait in line and see their place. auto: "
        "the host's CPU cores.",
    ),
    Setting(
        "WORKSHOP_PUBLIC_URL",
        Kind(str, "http(s) address, or empty", parse_public_url),
        "",
        "The address attendees open, printed on login cards. Empty: https://WORKSHOP_DOMAIN/, "
        "else the plain-HTTP address on WORKSHOP_LISTEN_ADDRESS.",
    ),
    Setting(
        "WORKSHOP_WARM_AT",
        Kind(str, "time of day HH:MM (UTC, or with an offset), or empty", parse_clock_time),
        "",
        "When to start the rostered attendees' servers each day, e.g. 08:45+01:00 (UTC when "
        "no offset is given); empty: only `workshop-hub warm-room` does.",
    ),
    Setting(
        "WORKSHOP_WARM_HOLD",
        DURATION,
        "1h",
        "How long a warmed server is kept from the idle culler while its attendee has not "
        "logged in yet.",
    ),
    Setting(
        "WORKSHOP_MAX_SERVER_AGE",
        DURATION,
        "10h",
        "Stop a server this long after it started, even if it is busy (files are kept).",
    ),
    # Read by docker compose (images, ports, the proxy); documented and known like the others.
    Setting(
        "WORKSHOP_PORT",
        PORT,
        "8000",
        "Port of the hub on this host.",
        read_by=COMPOSE_AND_HUB,
    ),
    Setting(
        "WORKSHOP_HUB_IMAGE",
        IMAGE,
        "pytorch-workshop-hub:latest",
        "Name of the hub image.",
        read_by=COMPOSE,
    ),
    Setting(
        "COMPOSE_PROFILES",
        TEXT,
        "",
        "gpu: also build the CUDA lab image on `docker compose up`; https: start the HTTPS "
        "proxy. Comma-separated, e.g. gpu,https.",
        read_by=COMPOSE,
    ),
    Setting(
        "BASE_IMAGE",
        IMAGE,
        "python:3.11-slim-bookworm",
        "Base of every image: a mirror's copy, or one that trusts a TLS-inspecting proxy "
        "(docs/organizers.md).",
        read_by=COMPOSE,
    ),
    Setting(
        "CPU_TORCH_INDEX_URL",
        TEXT,
        "https://download.pytorch.org/whl/cpu",
        "Where the CPU image gets torch (PyTorch's CPU wheels).",
        read_by=COMPOSE,
    ),
    Setting(
        "CUDA_TORCH_INDEX_URL",
        TEXT,
        "https://pypi.org/simple",
        "Where the CUDA image gets torch (PyPI's default build is the CUDA one).",
        read_by=COMPOSE,
    ),
    Setting(
        "WORKSHOP_PROXY_IMAGE",
        IMAGE,
        "pytorch-workshop-proxy:latest",
        "Name of the HTTPS proxy image.",
        read_by=COMPOSE,
    ),
    Setting(
        "WORKSHOP_HTTP_PORT",
        PORT,
        "80",
        "HTTP port of the HTTPS proxy (redirects; ACME challenges).",
        read_by=COMPOSE_AND_HUB,
    ),
    Setting(
        "WORKSHOP_HTTPS_PORT",
        PORT,
        "443",
        "HTTPS port of the proxy (profile https).",
        read_by=COMPOSE_AND_HUB,
    ),
    Setting(
        "WORKSHOP_TLS_CERT",
        FILE,
        "",
        "Your own certificate (PEM file, full chain) for the proxy instead of ACME.",
        read_by=COMPOSE_AND_HUB,
    ),
    Setting(
        "WORKSHOP_TLS_KEY",
        FILE,
        "",
        "The key (PEM file) of WORKSHOP_TLS_CERT.",
        read_by=COMPOSE_AND_HUB,
    ),
    Setting(
        "WORKSHOP_ACME_EMAIL",
        TEXT,
        "",
        "Email the ACME CA may write to about your certificates.",
        read_by=COMPOSE,
    ),
    Setting(
        "WORKSHOP_ACME_CA",
        TEXT,
        "",
        "ACME directory URL; empty: Let's Encrypt.",
        read_by=COMPOSE,
    ),
    Setting(
        "WORKSHOP_ACME_CA_ROOT",
        FILE,
        "",
        "PEM file to trust for the ACME server's own HTTPS.",
        read_by=COMPOSE,
    ),
]

# Views of the table.
SETTINGS: dict[str, Setting] = {s.env: s for s in TABLE if not s.compose_only}
COMPOSE_SETTINGS_TABLE: list[Setting] = [s for s in TABLE if s.compose_only]
COMPOSE_SETTINGS: dict[str, tuple[str, str]] = {
    s.env: (s.default, s.help) for s in COMPOSE_SETTINGS_TABLE
}
SECRETS: dict[str, Setting] = {s.env: s for s in TABLE if s.secret}

# The organizer's `.env` as the hub's container sees it: docker-compose.yml mounts the project
# folder there, read-only. The hub reads the secret settings from it instead of from compose's
# `environment:`, which `docker inspect` shows to anyone who can reach Docker. Of the ways to
# hand a container a file, this one works with Compose v2 and docker-compose 1.29 alike and
# needs nothing written first: compose's `secrets:` (1.29 knows only `file:` ones) need the
# file to exist, and a file on the hub's volume needs the hub running to write it. With no
# `.env`, or the names empty there, the hub generates both secrets (credentials.resolve).
PROJECT_ENV_FILE = Path("/srv/workshop-project/.env")

# `WORKSHOP_*` names that are not settings yet legitimately present where settings are read.
# The hub sees only its container's environment (what compose passes: settings only); the
# pre-event check and the tests also read a developer's shell, where these may be set.
OTHER_NAMES: dict[str, str] = {
    "WORKSHOP_WORK_DIR": "the labs' output folder (lab image; the lab tests set it too)",
    "WORKSHOP_QUICK": "the labs' quick mode, for tests",
    "WORKSHOP_STRICT_CHECKS": "an unsolved exercise fails the run (the labs' tests and smoke test)",
    "WORKSHOP_LABS_DIR": "where the lab tools find the notebooks, for tests",
    "WORKSHOP_KEEP_TEST_STACKS": "keeps the end-to-end tests' stacks for debugging",
    "WORKSHOP_FAKE_GPU_BROKEN": "makes CI's stand-in NVIDIA hook fail",
}
# Set by the hub for its own parts (attendee containers, the console) or by the lab image: a
# mistake anywhere else.
ATTENDEE_NAMES: dict[str, str] = {
    "WORKSHOP_PROFILE": "set WORKSHOP_OFFER_CPU or WORKSHOP_GPUS instead",
    "WORKSHOP_GPU_MEMORY_FRACTION": "set WORKSHOP_ATTENDEES_PER_GPU instead",
    "WORKSHOP_IMAGE_FLAVOR": "set WORKSHOP_CPU_IMAGE or WORKSHOP_CUDA_IMAGE instead",
    "WORKSHOP_NOTEBOOKS_DIR": "the lab image sets it",
    "WORKSHOP_CONSOLE_URL": "the hub tells each attendee's kernels where the console is",
    "WORKSHOP_PUBLIC_ADDRESS": "the hub tells the console the address on login cards",
}

WorkshopSettings = make_dataclass(
    "WorkshopSettings",
    [(setting.field, setting.kind.type) for setting in SETTINGS.values()],
    frozen=True,
)
WorkshopSettings.__module__ = __name__  # make_dataclass sets its own module (pickling, repr)
WorkshopSettings.__doc__ = "The hub's settings: one field per setting of TABLE that it reads."


def check_names(names: Iterable[str]) -> None:
    """Refuse `WORKSHOP_*` names that are not settings: a typo would be silently ignored."""
    known = {s.env for s in TABLE} | set(OTHER_NAMES)
    suffixes = {s.env.removeprefix("WORKSHOP_"): s.env for s in TABLE}
    problems = []
    for name in sorted(set(names)):
        if not name.startswith("WORKSHOP_") or name in known:
            continue
        if name in ATTENDEE_NAMES:
            problems.append(
                f"{name} is set inside attendee containers, not a setting: {ATTENDEE_NAMES[name]}"
            )
            continue
        # Compared without the prefix, which every name shares and would make all look alike.
        close = difflib.get_close_matches(name.removeprefix("WORKSHOP_"), suffixes, n=1)
        problems.append(
            f"{name} is not a setting: did you mean {suffixes[close[0]]}?"
            if close
            else f"{name} is not a setting (.env.example lists them all)"
        )
    if problems:
        raise SettingsError("; ".join(problems))


def read_env_file(path) -> dict[str, str]:
    """KEY=VALUE lines of a compose `.env` file (comments and blank lines skipped)."""
    values = {}
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return values
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            value = value.strip()
            # Only enclosing quotes go, as in compose: a password may end with a quote.
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def check_env_file(path) -> None:
    """Refuse a `.env` whose `WORKSHOP_*` names are not all settings.

    Compose passes the hub only the names it lists, so a misspelt name in `.env` would
    otherwise vanish without a word (and its setting silently keep its default).
    """
    try:
        check_names(read_env_file(path))
    except SettingsError as error:
        raise SettingsError(f"{path.name}: {error}") from None


def with_secrets_from(env_file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, with each secret setting that it leaves empty taken from `env_file`.

    A value in the environment wins, as in compose: `compose run -e`, or a Kubernetes Secret
    that the chart puts in the hub pod's environment (workshop_hub/organizer/kubernetes.py).
    """
    merged = dict(environ)
    if env_file is None:
        return merged
    for name, value in read_env_file(env_file).items():
        if name in SECRETS and not merged.get(name, "").strip():
            merged[name] = value
    return merged


def read_secrets(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The secret settings in `environ`, by field name; None where unset (then generated)."""
    values = {s.field: s.read(environ) for s in SECRETS.values()}
    if values["access_code"] and values["access_code"] == values["admin_password"]:
        raise SettingsError(
            "WORKSHOP_ADMIN_PASSWORD must differ from WORKSHOP_ACCESS_CODE, "
            "or attendees could log in as admins: choose another admin password, or leave it "
            "empty to have one generated"
        )
    return values


def load_settings(
    environ: Mapping[str, str], env_file: Path | None = PROJECT_ENV_FILE
) -> WorkshopSettings:
    """Read every setting from `environ`, and the secret ones also from `env_file` (absent:
    none there); an empty or missing value means the default.

    Compose-only settings are not checked here: the hub never sees them, compose reads them.
    """
    check_names(environ)
    environ = with_secrets_from(env_file, environ)
    plain = {s.field: s.read(environ) for s in SETTINGS.values() if not s.secret}
    return WorkshopSettings(**plain, **read_secrets(environ))


# --- Files generated from the table (see scripts/update_settings_files.py) ----------------


# Said of each secret setting in .env.example.
SECRET_NOTE = (
    "Secret: the hub reads it from this file, not from compose's environment (docker inspect "
    "would show it there). After changing it: docker compose restart hub."
)


def render_env_example() -> str:
    """The text of .env.example: every setting, its default and what it means."""
    lines = [
        "# Settings of the PyTorch workshop. Copy this file to .env and change what you need;",
        "# an empty value means the default shown in the comment. Generated from",
        "# hub/workshop_hub/settings.py by scripts/update_settings_files.py.",
        "# .env can hold the room code and the admin password: keep it yours, chmod 600 .env.",
    ]
    lines += ["", "# --- The hub ---"]
    for setting in SETTINGS.values():
        default = setting.default or "(empty)"
        lines += [
            "",
            f"# {setting.help}",
            f"# Default: {default}",
            f"# Allowed: {setting.kind.allowed.replace('`', '')}",
        ]
        if setting.secret:
            lines.append(f"# {SECRET_NOTE}")
        lines.append(f"{setting.env}=")
    # Commented out: an empty BASE_IMAGE would override the Dockerfiles' default.
    lines += ["", "# --- docker compose (uncomment to change) ---"]
    for setting in COMPOSE_SETTINGS_TABLE:
        lines += ["", f"# {setting.help}", f"# {setting.env}={setting.default}"]
    return "\n".join(lines) + "\n"


def render_compose_environment() -> list[str]:
    """The hub service's `environment:` entries: every setting the hub reads, but the secret
    ones (PROJECT_ENV_FILE says why).

    Empty when unset, so the default lives in one place (this table), not in compose too.
    """
    return [f"{s.env}: ${{{s.env}:-}}" for s in TABLE if s.passed_to_hub and not s.secret]


def render_settings_table() -> list[str]:
    """The settings table of docs/settings.md."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| setting | default | allowed | read by | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in TABLE:
        if setting.default:
            default = f"`{setting.default}`"
        else:
            default = "generated" if setting.kind.secret else "empty"
        read_by = f"{setting.read_by}, from `.env` only" if setting.secret else setting.read_by
        lines.append(
            f"| `{setting.env}` | {default} | {cell(setting.kind.allowed)} | {read_by} "
            f"| {cell(setting.help)} |"
        )
    return lines
