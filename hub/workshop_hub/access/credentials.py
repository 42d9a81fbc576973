"""The room's access code, the admin password and the attendees' passwords: where they live.

A generated secret is written to the hub's data volume on first start, so it survives hub
restarts and upgrades. The log never shows a secret, since it is often read on a projector:
it says which command shows each one.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

# The hub-data volume (see docker-compose.yml).
HUB_DATA_DIR = Path("/srv/jupyterhub/data")
ACCESS_CODE_FILE = HUB_DATA_DIR / "access-code"
ADMIN_PASSWORD_FILE = HUB_DATA_DIR / "admin-password"
COOKIE_SECRET_FILE = HUB_DATA_DIR / "jupyterhub_cookie_secret"
ATTENDEE_PASSWORDS_FILE = HUB_DATA_DIR / "attendee-passwords"
# The API token of the `rehearsal` service (workshop-hub rehearse), made at hub start.
REHEARSAL_TOKEN_FILE = HUB_DATA_DIR / "rehearsal-token"
SHOW_CODE_COMMAND = "docker compose exec hub workshop-hub access-code"
SHOW_ADMIN_COMMAND = "docker compose exec hub workshop-hub admin-password"

# Letters and digits that cannot be confused when read off a projector (no 0/o, 1/l/i).
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"


def generate_access_code() -> str:
    """Three groups of four readable characters, e.g. 'k7mq-2xfp-9hdn': 12 characters from 31,
    31**12 ≈ 2**59.4, about 59 bits (the dashes are fixed and add none)."""
    return "-".join("".join(secrets.choice(_READABLE) for _ in range(4)) for _ in range(3))


# The first words a room tries: the event's own vocabulary and the classics.
GUESSED_WORDS = ("workshop", "pytorch", "jupyter", "password", "welcome", "letmein", "secret")
GOOD_CODE_ADVICE = (
    "unset WORKSHOP_ACCESS_CODE in .env and the hub generates one (12 random characters, "
    "about 59 bits; `workshop-hub access-code` prints it), or choose 12+ random characters "
    "mixing letters, digits and a separator, like k7mq-2xfp-9hdn"
)


def guessable(code: str) -> str | None:
    """Why a room code chosen by hand is easy to guess, or None. Long enough is not enough:
    a room tries plain words, numbers and its own event's name first."""
    lowered = code.lower()
    if len(set(lowered)) <= 3 or re.fullmatch(r"(.+?)\1+", lowered):
        return "repeats a few characters"
    if code.isalpha():
        return "is a plain word (letters only, no digit or separator)"
    if code.isdigit():
        return "is only digits"
    word = next((word for word in GUESSED_WORDS if word in lowered), None)
    if word:
        return f"contains {word!r}, among the first words anyone tries"
    return None


def generate_admin_password() -> str:
    return secrets.token_urlsafe(32)


def generate_api_token() -> str:
    return secrets.token_hex(32)


def write_atomically(path: Path, text: str, mode: int = 0o666) -> None:
    """Replace `path` with `text` at once: a reader sees the old file or the new one, never
    half of it. `mode` as for os.open (the umask applies); the temporary name is per process."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def store(path: Path, value: str) -> None:
    """Write a secret readable by the hub only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, value + "\n", mode=0o600)


def load_or_create(path: Path, generate) -> str:
    """The secret stored at `path`, generated and stored first if there is none."""
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    value = generate()
    store(path, value)
    return value


def resolve(configured: str | None, path: Path, generate) -> str:
    """The configured secret, else the stored one, else a new one (then stored)."""
    return configured or load_or_create(path, generate)


def start_new_event(configured_code: str | None) -> str | None:
    """Rotate the room code (unless .env sets it) and the cookie secret; return the new code.

    JupyterHub makes a new cookie secret at its next start, which ends every hub session;
    attendee servers make a new one at every start, so once they are stopped no old cookie
    opens anything.
    """
    COOKIE_SECRET_FILE.unlink(missing_ok=True)
    if configured_code:
        return None
    code = generate_access_code()
    store(ACCESS_CODE_FILE, code)
    return code


def banner(admin_users: tuple[str, ...]) -> str:
    """What the hub log shows at every start: where to find each secret, never the secret."""
    rule = "=" * 72
    return (
        f"{rule}\n"
        f"  Room code for attendees:  {SHOW_CODE_COMMAND}\n"
        f"  Admins ({', '.join(admin_users) or 'none'}) log in with:  {SHOW_ADMIN_COMMAND}\n"
        f"{rule}"
    )
