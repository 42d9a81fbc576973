"""The room's access code and the admin password: from settings, or generated once and kept.

A generated secret is written to the hub's data volume on first start, so it survives hub
restarts and upgrades, and is shown in the hub log and by `workshop-hub access-code`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# The hub-data volume (see docker-compose.yml).
HUB_DATA_DIR = Path("/srv/jupyterhub/data")
ACCESS_CODE_FILE = HUB_DATA_DIR / "access-code"
ADMIN_PASSWORD_FILE = HUB_DATA_DIR / "admin-password"
SHOW_COMMAND = "docker compose exec hub workshop-hub access-code"

# Letters and digits that cannot be confused when read off a projector (no 0/o, 1/l/i).
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"


def generate_access_code() -> str:
    """Three groups of four readable characters, e.g. 'k7mq-2xfp-9hdn' (about 70 bits)."""
    return "-".join("".join(secrets.choice(_READABLE) for _ in range(4)) for _ in range(3))


def generate_admin_password() -> str:
    return secrets.token_urlsafe(32)


def load_or_create(path: Path, generate) -> str:
    """The secret stored at `path`, generated and stored first if there is none."""
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    value = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(value + "\n")
    os.replace(temporary, path)
    return value


def resolve(configured: str | None, path: Path, generate) -> str:
    """The configured secret, else the stored one, else a new one (then stored)."""
    return configured or load_or_create(path, generate)


def banner(access_code: str, admin_users: tuple[str, ...]) -> str:
    """What the hub log shows at every start, so the organizer can find the code."""
    rule = "=" * 72
    return (
        f"{rule}\n"
        f"  Workshop access code: {access_code}\n"
        f"  Attendees log in with any username and this code.\n"
        f"  Admins ({', '.join(admin_users) or 'none'}) use the admin password: {SHOW_COMMAND}\n"
        f"{rule}"
    )
