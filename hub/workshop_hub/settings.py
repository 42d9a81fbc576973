"""Every setting of the workshop, its default, its parser and what it means: one place.

Settings come from environment variables (docker compose passes them from `.env`). An
invalid value stops the hub with one line that names the setting and what is allowed, e.g.
`WORKSHOP_MEM_LIMIT='lots': use a size such as 512M, 2G or 1.5G`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

ACCESS_CODE_MIN_LENGTH = 8
# SharedPasswordAuthenticator refuses shorter admin passwords.
ADMIN_PASSWORD_MIN_LENGTH = 32
USERNAME_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,31}"
USERNAME_RULE = (
    "1 to 32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter "
    "or digit (for example ada-lovelace)"
)


class SettingsError(ValueError):
    """A setting has a value the workshop cannot use; the message says which and why."""


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5g', '1048576' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError("use a size such as 512M, 2G or 1.5G")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'3600', '90m', '1h', '1.5h' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError("use a duration such as 3600, 90m or 1h")
    return int(float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError("use a number above 0, such as 1 or 2.5")
    return value


def parse_positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError("use a whole number above 0")
    return int(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("use true or false")


def parse_optional_secret(min_length: int) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        if not text:
            return None
        if len(text) < min_length:
            raise ValueError(
                f"it has {len(text)} characters; use at least {min_length}, "
                "or leave it empty to have one generated"
            )
        return text

    return parse


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


def parse_gpus(text: str) -> str | tuple[str, ...]:
    """'' -> no GPUs; 'auto' -> detect; '0,1' -> those device ids."""
    cleaned = text.strip().lower()
    if cleaned in {"", "none"}:
        return ()
    if cleaned == "auto":
        return "auto"
    ids = tuple(part.strip() for part in cleaned.split(","))
    if not all(re.fullmatch(r"\d+|gpu-[0-9a-f-]+", gpu_id) for gpu_id in ids):
        raise ValueError("use empty (no GPUs), auto, or device ids such as 0,1")
    if len(set(ids)) != len(ids):
        raise ValueError("a device id is listed twice")
    return ids


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    setting.env: setting
    for setting in [
        Setting(
            "WORKSHOP_ACCESS_CODE",
            "",
            parse_optional_secret(ACCESS_CODE_MIN_LENGTH),
            "Shared code attendees type to log in (at least 8 characters). Empty: one is "
            "generated on first start, kept, and shown by `docker compose exec hub "
            "workshop-hub access-code`.",
        ),
        Setting(
            "WORKSHOP_ADMIN_USERS",
            "instructor",
            parse_usernames,
            "Comma-separated usernames that log in as admins with the admin password.",
        ),
        Setting(
            "WORKSHOP_ADMIN_PASSWORD",
            "",
            parse_optional_secret(ADMIN_PASSWORD_MIN_LENGTH),
            "Password of the admin users (at least 32 characters). Empty: generated on "
            "first start and kept, like the access code.",
        ),
        Setting(
            "WORKSHOP_INSTANCE",
            "pytorch-workshop",
            parse_instance,
            "Prefix of attendee containers and volumes, so two deployments on one "
            "machine never share them.",
        ),
        Setting(
            "WORKSHOP_CPU_IMAGE",
            "pytorch-workshop-lab:cpu",
            parse_image,
            "Image of the CPU profile.",
        ),
        Setting(
            "WORKSHOP_CUDA_IMAGE",
            "pytorch-workshop-lab:cuda",
            parse_image,
            "Image of the GPU profile (build it with `docker compose --profile gpu build`).",
        ),
        Setting(
            "WORKSHOP_MEM_LIMIT",
            "2G",
            parse_size,
            "Memory limit of each CPU attendee container (30 attendees x 2G fit a 64 GB host).",
        ),
        Setting(
            "WORKSHOP_CPU_LIMIT",
            "2",
            parse_positive_float,
            "CPU cores each CPU attendee may use at most.",
        ),
        Setting(
            "WORKSHOP_GPU_MEM_LIMIT",
            "6G",
            parse_size,
            "Memory limit (host RAM) of each GPU attendee container.",
        ),
        Setting(
            "WORKSHOP_GPU_CPU_LIMIT",
            "4",
            parse_positive_float,
            "CPU cores each GPU attendee may use at most (they feed the GPU).",
        ),
        Setting(
            "WORKSHOP_PIDS_LIMIT",
            "512",
            parse_positive_int,
            "Processes and threads per attendee container.",
        ),
        Setting(
            "WORKSHOP_SHM_SIZE",
            "512M",
            parse_size,
            "Size of /dev/shm in attendee containers (DataLoader workers share batches there).",
        ),
        Setting(
            "WORKSHOP_IDLE_TIMEOUT",
            "1h",
            parse_duration,
            "Stop a server after this long without activity (its files are kept).",
        ),
        Setting(
            "WORKSHOP_GPUS",
            "",
            parse_gpus,
            "GPUs the hub may hand out: empty for none, auto to detect them, or device ids "
            "such as 0,1.",
        ),
        Setting(
            "WORKSHOP_ATTENDEES_PER_GPU",
            "4",
            parse_positive_int,
            "How many attendees share one GPU; each gets 1/N of its memory.",
        ),
        Setting(
            "WORKSHOP_OFFER_CPU",
            "true",
            parse_bool,
            "Offer the CPU profile next to the GPU one (it is always offered when there are "
            "no GPUs).",
        ),
    ]
}


@dataclass(frozen=True)
class WorkshopSettings:
    access_code: str | None
    admin_users: tuple[str, ...]
    admin_password: str | None
    instance: str
    cpu_image: str
    cuda_image: str
    mem_limit: int
    cpu_limit: float
    gpu_mem_limit: int
    gpu_cpu_limit: float
    pids_limit: int
    shm_size: int
    idle_timeout: int
    gpus: str | tuple[str, ...]
    attendees_per_gpu: int
    offer_cpu: bool


def _field_env(field_name: str) -> str:
    return "WORKSHOP_" + field_name.upper()


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
            values[key.strip()] = value.strip().strip("'\"")
    return values


def load_settings(environ: Mapping[str, str]) -> WorkshopSettings:
    """Read every setting from `environ`; an empty or missing value means the default."""
    values = {}
    for field in fields(WorkshopSettings):
        setting = SETTINGS[_field_env(field.name)]
        raw = environ.get(setting.env, "").strip() or setting.default
        try:
            values[field.name] = setting.parse(raw)
        except ValueError as error:
            raise SettingsError(f"{setting.env}={raw!r}: {error}") from None
    settings = WorkshopSettings(**values)
    if (
        settings.access_code
        and settings.admin_password
        and settings.access_code == settings.admin_password
    ):
        raise SettingsError(
            "WORKSHOP_ADMIN_PASSWORD must differ from WORKSHOP_ACCESS_CODE, "
            "or attendees could log in as admins"
        )
    return settings


# Read by docker compose only (image builds, ports), documented beside the hub's settings.
COMPOSE_SETTINGS: dict[str, tuple[str, str]] = {
    "WORKSHOP_PORT": ("8000", "Port of the hub on this host."),
    "WORKSHOP_HUB_IMAGE": ("pytorch-workshop-hub:latest", "Name of the hub image."),
    "COMPOSE_PROFILES": ("", "Set to gpu to build the CUDA lab image with `docker compose up`."),
    "BASE_IMAGE": ("python:3.11-slim-bookworm", "Base of every image (a mirror's copy, say)."),
    "CPU_TORCH_INDEX_URL": (
        "https://download.pytorch.org/whl/cpu",
        "Where the CPU image gets torch (PyTorch's CPU wheels).",
    ),
    "CUDA_TORCH_INDEX_URL": (
        "https://pypi.org/simple",
        "Where the CUDA image gets torch (PyPI's default build is the CUDA one).",
    ),
}


def render_env_example() -> str:
    """The text of .env.example: every setting, its default and what it means."""
    lines = [
        "# Settings of the PyTorch workshop. Copy this file to .env and change what you need;",
        "# an empty value means the default shown in the comment. Generated by",
        "# `workshop-hub env-example` from hub/workshop_hub/settings.py.",
    ]
    lines += ["", "# --- The hub ---"]
    for setting in SETTINGS.values():
        default = setting.default or "(empty)"
        lines += ["", f"# {setting.help}", f"# Default: {default}", f"{setting.env}="]
    # Commented out: an empty BASE_IMAGE would override the Dockerfiles' default.
    lines += ["", "# --- docker compose (uncomment to change) ---"]
    for env, (default, help_text) in COMPOSE_SETTINGS.items():
        lines += ["", f"# {help_text}", f"# {env}={default}"]
    return "\n".join(lines) + "\n"
