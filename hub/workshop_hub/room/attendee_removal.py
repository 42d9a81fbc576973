"""Deleting an attendee for good, in one place: their JupyterHub user (and so their server),
their container if the hub left it, their work volume, the disk behind it and their claimed
name.

The console's "Delete" (instructor_actions.delete_attendee) and `workshop-hub rehearse`, which
deletes its simulated attendees after each run, both delete this way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import quote

import docker
from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner

from ..access.passwords import PasswordStore
from ..access.sessions import HubApi, ResetFailed
from .disks import DiskError, WorkDisks

# How long a volume or disk is waited for while its container lets go of it (_once_released).
RELEASE_TRIES = 20
RELEASE_WAIT_SECONDS = 0.5


class RemovalFailed(Exception):
    """A part of the attendee could not be deleted; the message names it and what to do."""


def docker_names(instance: str, name: str) -> tuple[str, str]:
    """(container, work volume) of an attendee as the hub names them: jupyterhub_config.py's
    templates with DockerSpawner's default escaping of the name ('-' becomes '-2d')."""
    escaped = DockerSpawner._escape(name)
    return f"{instance}-{escaped}", f"{instance}-user-{escaped}"


async def hub_user_exists(api: HubApi, name: str) -> bool:
    try:
        await api.call("GET", f"/users/{quote(name)}")
    except ResetFailed as error:
        if error.status == HTTPStatus.NOT_FOUND:
            return False
        raise
    return True


async def delete_hub_user(api: HubApi, name: str, deadline: float) -> None:
    """Stop the user's server (a pending start is interrupted), then delete the user; a user
    already gone is no error. The hub's authenticator forgets the claimed name with it."""
    while True:
        try:
            await api.call("DELETE", f"/users/{quote(name)}/server")
        except ResetFailed as error:
            # 400: no server running; 404: no such user, which the next call finds too.
            if error.status not in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND):
                raise
        try:
            await api.call("DELETE", f"/users/{quote(name)}")
            return
        except ResetFailed as error:
            if error.status == HTTPStatus.NOT_FOUND:
                return
            if error.status != HTTPStatus.BAD_REQUEST:  # 400: the server is still stopping
                raise
            reason = str(error)
        if time.monotonic() > deadline:
            raise RemovalFailed(
                f"{name}'s user could not be deleted ({reason}): try again in a minute"
            )
        await asyncio.sleep(1)


def has_work_volume(client: docker.DockerClient, instance: str, name: str) -> bool:
    try:
        client.volumes.get(docker_names(instance, name)[1])
    except NotFound:
        return False
    return True


def remove_storage(
    client: docker.DockerClient,
    disks: WorkDisks,
    instance: str,
    name: str,
    store: PasswordStore,
) -> None:
    """The container (if the hub left it), the work volume, its disk and the claimed name.
    Blocking: run it in a thread, with a Docker client no other thread uses meanwhile."""
    container, volume = docker_names(instance, name)
    try:
        client.containers.get(container).remove(force=True)
    except NotFound:
        pass
    try:
        _once_released(lambda: _remove_volume(client, volume), APIError)
    except APIError as error:
        raise RemovalFailed(
            f"{name}'s work volume {volume} is still in use ({error.explanation}): "
            f"remove the container that uses it (docker ps -a --filter volume={volume}), "
            "then delete them again"
        ) from None
    _once_released(lambda: disks.remove(volume), DiskError)
    store.delete(name)


def _remove_volume(client: docker.DockerClient, volume: str) -> None:
    try:
        client.volumes.get(volume).remove()
    except NotFound:
        pass


def _once_released(remove: Callable[[], None], busy: type[Exception]) -> None:
    """`remove()`, tried again while it raises `busy`: a container that is going away still
    holds its volume and its disk's loop device for a moment after the hub says it stopped."""
    for tries_left in range(RELEASE_TRIES - 1, -1, -1):
        try:
            remove()
            return
        except busy:
            if not tries_left:
                raise
            time.sleep(RELEASE_WAIT_SECONDS)
