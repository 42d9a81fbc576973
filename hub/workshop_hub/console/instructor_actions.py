"""What an instructor can do to one attendee from the console, each written to an audit log.

- stop their server (the hub's REST API, as the admin page does; their files stay);
- start one lab afresh for them: inside their running container, their copy is set aside as
  a dated backup beside the new one (workshop_labs.workfolder --reset-lab), never deleted;
- give them a new password, which also ends every session, token and server of theirs
  (access/sessions.py, as `workshop-hub reset-password` does), shown once to the instructor;
- delete them for good once the instructor typed their name: user, server, container, work
  volume and disk, claimed name (attendee_removal.py), and their rows of progress, so that
  whoever claims the name next starts afresh; never an instructor.

Every action, done or refused, is one JSON line in the hub-data volume's
console-actions.jsonl: who, what, for whom, when, and how it ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import docker
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..access import credentials
from ..access.passwords import PasswordStore, ResetRefused
from ..access.sessions import HubApi, ResetFailed, give_new_password
from ..room import attendee_removal
from ..room.attendee_removal import RemovalFailed
from ..room.disks import DiskError, WorkDisks, own_image
from ..room.profiles import LAB_IMAGE_NOTEBOOKS_DIR, LAB_IMAGE_PYTHON, WORK_DIR
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
# How long deleting an attendee waits for their server to stop.
DELETE_WAIT_SECONDS = 90
# Removing a disk never reads the size limit: only preparing one does.
NO_SIZE_NEEDED = 0

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


def check_deletable(attendee: str, confirmation: object, instructors: Collection[str]) -> None:
    """Refuse to delete an instructor, or anyone without their name typed to confirm."""
    if attendee in instructors:
        raise ActionRefused(
            f"{attendee} is an instructor: the console deletes attendees only (instructors are "
            "the names in WORKSHOP_ADMIN_USERS)"
        )
    if confirmation != attendee:
        raise ActionRefused(
            f"type {attendee} to confirm: their work is deleted for good; export it first if "
            "it matters (workshop-hub export-work)"
        )


def check_known(attendee: str, traces: Collection[str]) -> None:
    """Refuse a name of which this hub holds nothing (traces_of)."""
    if not traces:
        raise ActionRefused(
            f"nobody named {attendee!r} is on this hub (no account, claimed name or work "
            "volume): check the name in the console's list"
        )


async def traces_of(
    api: HubApi, client: docker.DockerClient, instance: str, store: PasswordStore, attendee: str
) -> list[str]:
    """What this hub holds of `attendee`: their account, claimed name, work volume. A
    deletion cut short leaves some of them, which a second one removes."""
    held = {
        "account": await attendee_removal.hub_user_exists(api, attendee),
        "claimed name": await asyncio.to_thread(store.get, attendee) is not None,
        "work volume": await asyncio.to_thread(
            attendee_removal.has_work_volume, client, instance, attendee
        ),
    }
    return [trace for trace, there in held.items() if there]


async def delete_attendee(
    api: HubApi,
    attendee: str,
    confirmation: object,
    instructors: Collection[str],
    instance: str,
    forget_progress: Callable[[str], Awaitable[int]],
    store: PasswordStore | None = None,
) -> str:
    """Delete `attendee` for good; `confirmation` is the name the instructor typed."""
    check_deletable(attendee, confirmation, instructors)
    store = store or PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    try:
        # A client of this deletion's own: docker-py's clients are not thread-safe.
        client = await asyncio.to_thread(docker.from_env)
    except docker.errors.DockerException as error:
        raise ActionRefused(
            f"Docker does not answer ({error}): the console deletes work folders through the "
            "Docker socket the hub's container is given (docker-compose.yml)"
        ) from None
    try:
        try:
            check_known(attendee, await traces_of(api, client, instance, store, attendee))
            await attendee_removal.delete_hub_user(
                api, attendee, time.monotonic() + DELETE_WAIT_SECONDS
            )
        except (RemovalFailed, ResetFailed, docker.errors.DockerException) as error:
            raise ActionRefused(f"{attendee} is not deleted: {error}") from None
        # The name is free to claim from here on: a stranger who takes it gets none of this.
        rows = await forget_progress(attendee)
        try:
            await asyncio.to_thread(_remove_storage, client, instance, attendee, store)
        except (RemovalFailed, DiskError, docker.errors.DockerException) as error:
            reason = str(getattr(error, "explanation", None) or error).strip()
            raise ActionRefused(
                f"{attendee}'s account is deleted, their work folder not yet ({reason}): "
                f"send the delete again (POST api/attendees/{attendee}/delete, as the page "
                "does), or `workshop-hub wipe-event` removes it after the event"
            ) from None
    finally:
        client.close()
    exercises = f"{rows} exercise{'' if rows == 1 else 's'}"
    return (
        f"deleted {attendee}: account, server, work folder and its disk, progress ({exercises}); "
        "the name is free to claim again"
    )


def _remove_storage(
    client: docker.DockerClient, instance: str, attendee: str, store: PasswordStore
) -> None:
    disks = WorkDisks(client, own_image(client), instance, NO_SIZE_NEEDED, log)
    attendee_removal.remove_storage(client, disks, instance, attendee, store)
