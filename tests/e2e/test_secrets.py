"""The room code and the admin password reach the hub from the organizer's `.env`, never
where `docker inspect` shows them, and still open the hub."""

from __future__ import annotations

import json
import secrets
import subprocess

from workshop_hub.room.docker_host import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL

from .hub_client import Attendee
from .stack import HubStack, running

# Random, so that finding one in `docker inspect` cannot be a coincidence.
ROOM_CODE = f"room-{secrets.token_hex(8)}"
ADMIN_PASSWORD = f"admin-{secrets.token_hex(20)}"


def inspect_hub(stack: HubStack) -> str:
    """`docker inspect` of the stack's hub container, as anyone with Docker access reads it:
    its environment, mounts, arguments, labels, everything."""
    labels = [f"{COMPOSE_PROJECT_LABEL}={stack.project}", f"{COMPOSE_SERVICE_LABEL}=hub"]
    (hub,) = stack.docker.containers.list(filters={"label": labels})
    return subprocess.run(
        ["docker", "inspect", hub.id], capture_output=True, text=True, check=True
    ).stdout


def test_the_secrets_are_not_in_docker_inspect_yet_open_the_hub(lab_images):
    stack = HubStack(WORKSHOP_ACCESS_CODE=ROOM_CODE, WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD)
    with running(stack):
        inspected = inspect_hub(stack)
        (details,) = json.loads(inspected)
        # The right container, whose settings do show: only the secrets are missing.
        assert f"WORKSHOP_INSTANCE={stack.project}" in details["Config"]["Env"]
        for name in ("WORKSHOP_ACCESS_CODE", "WORKSHOP_ADMIN_PASSWORD"):
            assert not any(entry.startswith(f"{name}=") for entry in details["Config"]["Env"])
        assert ROOM_CODE not in inspected
        assert ADMIN_PASSWORD not in inspected

        # The hub took them from .env: the room code claims a name, the admin password opens
        # the instructor's, and the organizer's commands print them.
        assert Attendee(stack.url, "guess").login("wrong-room-code-1").status_code == 403
        assert Attendee(stack.url, "sami").login(ROOM_CODE).status_code == 200
        instructor = Attendee(stack.url, "instructor", password=ADMIN_PASSWORD)
        assert instructor.login_as_admin(ADMIN_PASSWORD).status_code == 200
        assert stack.hub_exec("workshop-hub", "access-code").stdout.strip() == ROOM_CODE
        assert ADMIN_PASSWORD in stack.hub_exec("workshop-hub", "admin-password").stdout
