"""Login for a room of strangers: the room code lets you in once, your own password after that.

The first login with a name needs the room code and sets that attendee's own password (a
bcrypt hash, kept by FirstUseAuthenticator's store on the hub's data volume). After that the
name is theirs: only their password opens it, and someone else who types the room code is told
the name is taken. Instructors log in with the admin password. No name that the hub already
knows (a user in its database) or keeps for itself (access/names.py) can be claimed, and the
authenticator never makes anyone a JupyterHub admin: instructors hold the `instructor` role,
declared with exact membership in jupyterhub_config.py.

Refusals return None, so JupyterHub logs "Failed login for ..." as usual; the message for the
login page goes through FirstUseAuthenticator's login handler (`custom_login_error`).
"""

from __future__ import annotations

import asyncio
import hmac
import re

from firstuseauthenticator import FirstUseAuthenticator
from traitlets import Set, Unicode

from .access.addresses import ProxyAddress, request_client_address
from .passwords import (
    PasswordStore,
    hash_password,
    password_matches,
    password_problem,
)
from .settings import USERNAME_PATTERN, USERNAME_RULE
from .throttle import LoginThrottle

ROOM_CODE_FIELD = "room_code"


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (as bytes)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class WorkshopAuthenticator(FirstUseAuthenticator):
    room_code = Unicode(help="The room's shared code, needed to claim a name.").tag(config=True)
    admin_password = Unicode(help="The password of every instructor.").tag(config=True)
    instructors = Set(help="Who logs in with the admin password (WORKSHOP_ADMIN_USERS).").tag(
        config=True
    )
    reserved_names = Set(help="Names nobody can claim with the room code.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = PasswordStore(self.dbm_path)
        self.throttle = LoginThrottle()
        self.https_proxy = ProxyAddress()

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", "").strip())
        password = data.get("password", "")
        room_code = data.get(ROOM_CODE_FIELD, "")
        address = await request_client_address(handler.request, self.https_proxy)
        if not re.fullmatch(USERNAME_PATTERN, username):
            shown = username if len(username) <= 40 else username[:40] + "..."
            self._refuse(
                handler,
                username,
                address,
                f"The name {shown!r} cannot be used: choose {USERNAME_RULE}.",
            )
            return None
        async with self.throttle.attempt(username):
            refusal = await self._check(username, password, room_code, handler)
        if refusal:
            self._refuse(handler, username, address, refusal)
            await asyncio.sleep(self.throttle.address_delay(address))
            return None
        self.throttle.succeeded(username)
        # A plain no: JupyterHub's admin role carries access to every attendee's server.
        return {"name": username, "admin": False}

    async def _check(self, username: str, password: str, room_code: str, handler) -> str | None:
        """Why this login is refused, or None when it is accepted (claiming a new name)."""
        if username in self.instructors:
            if same_secret(password, self.admin_password):
                return None
            return f"Wrong password for the admin account {username!r}."
        stored = await asyncio.to_thread(self.store.get, username)
        if stored is not None:
            if await asyncio.to_thread(password_matches, password, stored):
                return None
            if same_secret(room_code or password, self.room_code):
                return (
                    f"The name {username!r} is taken. Choose another name, or ask the "
                    "instructor to reset it."
                )
            return (
                f"Wrong password for {username!r}. If this is your name, try again or ask the "
                "instructor to reset it; if not, choose another name."
            )
        if not room_code:
            return (
                "First time here? Type the room code your instructor shows, and choose your "
                "own password."
            )
        if not same_secret(room_code, self.room_code):
            return "That room code is not right. Check it with your instructor and try again."
        if username in self.reserved_names or handler.find_user(username) is not None:
            # A user the hub knows with no password here: an instructor's name, a former
            # instructor's, or one whose reset is under way (access/sessions.py).
            return f"The name {username!r} is reserved. Choose another name."
        problem = password_problem(password, self.room_code)
        if problem:
            return problem
        password_hash = await asyncio.to_thread(hash_password, password)
        if not await asyncio.to_thread(self.store.claim, username, password_hash):
            return (
                f"The name {username!r} was claimed a moment ago. Choose another name, or ask "
                "the instructor to reset it."
            )
        self.log.info("Name %r claimed", username)
        return None

    def _refuse(self, handler, username: str, address: str, message: str) -> None:
        """Count the failure, log it and show `message` on the login page."""
        self.throttle.failed(username, address)
        # One line with the address, for a person or fail2ban reading the log.
        self.log.warning("Login refused for %r from %s: %s", username[:40], address, message)
        handler.custom_login_error = message

    def delete_user(self, user):
        """A deleted user's name can be claimed again, unless an instructor's reset holds it
        (it deletes and re-creates the user to end every session)."""
        self.store.delete(user.name, keep_held=True)

    def reset_password(self, username, new_password):
        """The change-password page (/hub/auth/change-password), with the workshop's rules."""
        problem = password_problem(new_password, self.room_code)
        if problem:
            return problem
        self.store.set(username, hash_password(new_password))
        self.log.info("Password of %r changed by its owner", username)
        return "Your password has been changed successfully!"
