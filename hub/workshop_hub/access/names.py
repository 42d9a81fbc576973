"""Names that no attendee can claim with the room code.

A claimed name that later becomes an instructor's, or an instructor's name that an attendee
claims after the organizer renamed the instructor, would hand an attendee the instructor's
powers. So these stay out of reach for good: names that mean "the one in charge", the hub's
services and compose services (they appear in URLs and logs beside attendees), and every name
that was ever an instructor's on this hub (kept on the hub-data volume).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from . import credentials

# The role that makes an instructor (jupyterhub_config.py); its members are not attendees.
INSTRUCTOR_ROLE = "instructor"
ALWAYS_RESERVED = frozenset(
    {"admin", "administrator", "root", "instructor", "teacher", "organizer", "jupyterhub"}
)
# The compose services (docker-compose.yml): their names resolve on the hub's networks.
COMPOSE_SERVICES = frozenset({"hub", "proxy", "firewall", "lab-cpu", "lab-cuda"})
# The hub's services (jupyterhub_config.py, which refuses to start with one not listed here):
# their names appear in URLs and tokens beside attendees'. Listed here so that the organizer's
# commands (the roster) refuse them without the hub.
HUB_SERVICES = frozenset({"idle-culler", "rehearsal", "console", "organizer"})
# On the hub's data volume (credentials.HUB_DATA_DIR).
INSTRUCTORS_EVER_FILE_NAME = "instructors-ever.json"


class NameConflict(ValueError):
    """An instructor's name is an attendee's; the message names it and the fix."""


def remember_instructors(current: Iterable[str], path: Path | None = None) -> set[str]:
    """Every name that has been an instructor's on this hub, `current` included (stored)."""
    path = path or credentials.HUB_DATA_DIR / INSTRUCTORS_EVER_FILE_NAME
    try:
        known = set(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        known = set()
    except (ValueError, TypeError):
        # A damaged file must not free the old names: keep what can be read, say so.
        raise NameConflict(
            f"{path} is damaged: it lists every name that was ever an instructor's. Restore it "
            "from a backup, or delete it once you are sure no former instructor's name matters"
        ) from None
    everyone = known | set(current)
    if everyone != known:
        path.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_atomically(path, json.dumps(sorted(everyone)) + "\n", mode=0o600)
    return everyone


def reserved_names(instructors_ever: Iterable[str], service_names: Iterable[str] = ()) -> frozenset:
    return (
        ALWAYS_RESERVED
        | COMPOSE_SERVICES
        | HUB_SERVICES
        | frozenset(instructors_ever)
        | frozenset(service_names)
    )


def check_no_attendee_holds(instructors: Iterable[str], claimed: Iterable[str]) -> None:
    """Refuse an instructor's name that an attendee already claimed as their own."""
    taken = sorted(set(instructors) & set(claimed))
    if taken:
        names = ", ".join(repr(name) for name in taken)
        raise NameConflict(
            f"WORKSHOP_ADMIN_USERS names {names}, which an attendee already claimed with the "
            "room code: that attendee would become an instructor. Choose another name for the "
            "instructor in WORKSHOP_ADMIN_USERS (the attendee keeps theirs)"
        )
