"""What an instructor can do to one attendee from the console, each written to an audit log.

- stop their server (the hub's REST API, as the admin page does; their files stay);
- start one lab afresh for them: inside their running container, their copy is set aside as
  a dated backup beside the new one (workshop_labs.workfolder --reset-lab), never deleted;
- give them a new password, which also ends every session, token and server of theirs
  (access/sessions.py, as `workshop-hub reset-password` does), shown once to the instructor.

Every action, done or refused, is one JSON line in the hub-data volume's
console-actions.jsonl: who, what, for whom, when, and how it ended.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import docker
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from . import credentials
from .access.sessions import HubApi, ResetFailed, give_new_password
from .passwords import PasswordStore, ResetRefused
from .profiles import LAB_IMAGE_NOTEBOOKS_DIR, LAB_IMAGE_PYTHON, WORK_DIR
from .progress import is_lab_number
from .room_sources import running_container_id

ACTIONS_LOG = credentials.HUB_DATA_DIR / "console-actions.jsonl"
RESET_LAB_TIMEOUT_SECONDS = 60
# Run inside the attendee's container as the attendee: the image's own seeding step. Python
# isolated (-I: no current folder, no PYTHON* variables, no user site-packages) from a folder
# the attendee cannot write, so no module of theirs stands in for the image's; the image's
# own Python and timeout by full path, not whatever the attendee's PATH finds first.
RESET_LAB_COMMAND = [
    "/usr/bin/timeout",
    "{timeout}",
    LAB_IMAGE_PYTHON,
    "-I",
    "-m",
    "workshop_labs.workfolder",
    "--labs",
    LAB_IMAGE_NOTEBOOKS_DIR,
    "--work",
    WORK_DIR,
    "--reset-lab",
    "{lab}",
]
RESET_LAB_WORKDIR = LAB_IMAGE_NOTEBOOKS_DIR
# What the console shows of the command's output: its own two kinds of line, each cut short.
SHOWN_LINE_CHARACTERS = 200

log = logging.getLogger("workshop.console")


class ActionRefused(Exception):
    """The action cannot be done; the message says why and what to do instead."""


def audit(by: str, action: str, attendee: str, outcome: str, path: Path = ACTIONS_LOG) -> None:
    entry = {
        "at": time.time(),
        "by": by,
        "action": action,
        "attendee": attendee,
        "outcome": outcome,
    }
    log.info("%s: %s for %s: %s", by, action, attendee, outcome)
    with path.open("a", encoding="utf-8") as lines:
        lines.write(json.dumps(entry) + "\n")


async def stop_server(api_url: str, token: str, attendee: str) -> str:
    request = HTTPRequest(
        f"{api_url.rstrip('/')}/users/{attendee}/server",
        method="DELETE",
        headers={"Authorization": f"token {token}"},
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as error:
        if error.code == 404:
            raise ActionRefused(f"{attendee} has no account on this hub") from None
        if error.code == 400:
            raise ActionRefused(f"{attendee}'s server is not running") from None
        raise
    return "stopped" if response.code == 204 else "stopping (the hub finishes it in the background)"


def reset_lab(
    api: docker.APIClient, instance_containers: list[dict], attendee: str, lab: object
) -> str:
    if not is_lab_number(lab):
        raise ActionRefused(f"choose a lab from 1 to 7, not {lab!r}")
    container_id = running_container_id(instance_containers, attendee)
    if container_id is None:
        raise ActionRefused(
            f"{attendee}'s server is not running: the lab is reset inside it, so ask them to "
            "start it (or delete the lab from their labs folder: the next start brings a fresh one)"
        )
    command = [
        part.format(timeout=RESET_LAB_TIMEOUT_SECONDS, lab=lab) for part in RESET_LAB_COMMAND
    ]
    execution = api.exec_create(container_id, command, workdir=RESET_LAB_WORKDIR)
    output = api.exec_start(execution["Id"]).decode(errors="replace").strip()
    lines = [line[:SHOWN_LINE_CHARACTERS] for line in output.splitlines()]
    if api.exec_inspect(execution["Id"])["ExitCode"] != 0:
        raise ActionRefused(f"lab {lab} was not reset: {lines[-1] if lines else 'no output'}")
    return "; ".join(line for line in lines if line.startswith(("kept", "added")))


async def new_password(
    api: HubApi, attendee: str, instructors: set[str], store: PasswordStore | None = None
) -> str:
    """A new password for `attendee`, to give them; every session of theirs ends, their work
    is untouched."""
    password = credentials.generate_access_code()
    store = store or PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    try:
        await give_new_password(api, store, attendee, instructors, password)
    except (ResetRefused, ResetFailed) as refused:
        raise ActionRefused(str(refused)) from None
    return password
