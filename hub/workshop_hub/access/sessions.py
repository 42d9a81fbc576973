"""A reset ends what it resets: a new password also ends every session and token of the
attendee, and a new event ends every attendee token.

JupyterHub keys its login cookie by the user's `cookie_id` and keeps API and OAuth tokens
until they expire, and neither changes when a password does: an intruder who got in keeps
the attendee's server after the reset meant to lock them out. JupyterHub's REST API has no
call that changes a `cookie_id`, but deleting a user and creating it again gives a new one and
drops every token and OAuth grant with the old row. The work volume is kept (its name comes
from the user name; DockerSpawner deletes no volume with a user) and so is the console's
record of their checks. While this runs, the name is held in the password store
(passwords.HELD): no password opens it and the room code cannot claim it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..services import HUB_API_PORT
from .credentials import HUB_DATA_DIR, load_or_create
from .passwords import HELD, PasswordStore, check_resettable, hash_password

# The `organizer` service's token, for the organizer's commands run in the hub's container.
ORGANIZER_TOKEN_FILE = HUB_DATA_DIR / "organizer-token"
ORGANIZER_SERVICE = "organizer"
# Delete and create users (a new password), stop servers, revoke tokens (a new event).
ORGANIZER_SCOPES = ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]
LOCAL_API_URL = f"http://127.0.0.1:{HUB_API_PORT}/hub/api"
STOP_WAIT_SECONDS = 90
USERS_PAGE = 200  # JupyterHub's largest page of users


class ResetFailed(Exception):
    """The hub refused a step; the message says which and what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class HubApi:
    """JupyterHub's REST API with one token: JSON in, JSON out, errors as ResetFailed."""

    def __init__(self, api_url: str, token: str):
        self.api_url, self.token = api_url.rstrip("/"), token

    async def call(self, method: str, path: str, body: dict | None = None):
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=None if body is None and method != "POST" else json.dumps(body or {}),
            request_timeout=60,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            message = error.message
            if error.response is not None and error.response.body:
                try:
                    message = json.loads(error.response.body).get("message", message)
                except (ValueError, AttributeError):
                    pass
            raise ResetFailed(
                f"the hub answered {error.code} to {method} {path}: {message}", error.code
            ) from None
        return json.loads(response.body) if response.body else None


def organizer_api() -> HubApi:
    """The hub's API as the organizer's commands use it, inside the hub's container."""
    return HubApi(LOCAL_API_URL, load_or_create(ORGANIZER_TOKEN_FILE, _missing_token))


def _missing_token() -> str:
    raise ResetFailed(
        f"{ORGANIZER_TOKEN_FILE} is missing: the hub makes it at start. Start the hub "
        "(docker compose up -d), then run this again."
    )


async def _wait_until_stopped(api: HubApi, name: str) -> None:
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while time.monotonic() < deadline:
        user = await api.call("GET", f"/users/{quote(name)}")
        if not user.get("pending") and not (user.get("servers") or {}):
            return
        await asyncio.sleep(1)
    raise ResetFailed(
        f"{name}'s server did not stop within {STOP_WAIT_SECONDS} s: try again in a minute"
    )


async def end_sessions(api: HubApi, name: str) -> None:
    """Stop the attendee's server, then delete the user and create it again (see above)."""
    user = await api.call("GET", f"/users/{quote(name)}")
    if user.get("pending") == "spawn":
        raise ResetFailed(
            f"{name}'s server is starting (or waiting in line): reset once it has started"
        )
    if user.get("servers"):
        await api.call("DELETE", f"/users/{quote(name)}/server")
        await _wait_until_stopped(api, name)
    await api.call("DELETE", f"/users/{quote(name)}")
    await api.call("POST", f"/users/{quote(name)}")


async def give_new_password(
    api: HubApi,
    store: PasswordStore,
    name: str,
    instructors: Iterable[str],
    new_password: str,
) -> None:
    """`name` gets `new_password`; every session, token and server of theirs ends first.

    Raises passwords.ResetRefused for a name that is not an attendee's, ResetFailed when the
    hub refuses a step (the name then opens with the new password anyway: the old one never
    works again).
    """
    await asyncio.to_thread(check_resettable, store, name, instructors)
    await asyncio.to_thread(store.set, name, HELD)
    try:
        await end_sessions(api, name)
    finally:
        new_hash = await asyncio.to_thread(hash_password, new_password)
        await asyncio.to_thread(store.set, name, new_hash)


async def revoke_tokens(api: HubApi, name: str) -> int:
    """Delete every API and OAuth token of `name`; how many there were."""
    tokens = (await api.call("GET", f"/users/{quote(name)}/tokens"))["api_tokens"]
    for token in tokens:
        try:
            await api.call("DELETE", f"/users/{quote(name)}/tokens/{quote(token['id'])}")
        except ResetFailed as error:
            if error.status != HTTPStatus.NOT_FOUND:
                raise  # a token that expired meanwhile is gone already
    return len(tokens)


async def revoke_attendee_tokens(api: HubApi, instructors: Iterable[str]) -> int:
    """Every attendee's tokens (a new event): instructors keep theirs."""
    keep, revoked, offset = set(instructors), 0, 0
    while page := await api.call("GET", f"/users?offset={offset}&limit={USERS_PAGE}"):
        offset += len(page)
        for user in page:
            if user.get("kind", "user") == "user" and user["name"] not in keep:
                revoked += await revoke_tokens(api, user["name"])
    return revoked
