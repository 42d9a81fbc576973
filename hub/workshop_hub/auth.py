"""Login for a room of strangers: the room code lets you in once, your own password after that.

The first login with a name needs the room code and sets that attendee's own password (a
bcrypt hash, kept by FirstUseAuthenticator's store on the hub's data volume). After that the
name is theirs: only their password opens it, and someone else who types the room code is told
the name is taken. Admins log in with the admin password; their names cannot be claimed.

Refusals return None, so JupyterHub logs "Failed login for ..." as usual; the message for the
login page goes through FirstUseAuthenticator's login handler (`custom_login_error`).
"""

from __future__ import annotations

import asyncio
import hmac
import re

from firstuseauthenticator import FirstUseAuthenticator
from traitlets import Unicode

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
    admin_password = Unicode(help="The password of every admin user.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = PasswordStore(self.dbm_path)
        self.throttle = LoginThrottle()

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", "").strip())
        password = data.get("password", "")
        room_code = data.get(ROOM_CODE_FIELD, "")
        address = handler.request.remote_ip
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
            refusal = await self._check(username, password, room_code)
        if refusal:
            self._refuse(handler, username, address, refusal)
            await asyncio.sleep(self.throttle.address_delay(address))
            return None
        self.throttle.succeeded(username)
        return username

    async def _check(self, username: str, password: str, room_code: str) -> str | None:
        """Why this login is refused, or None when it is accepted (claiming a new name)."""
        if username in self.admin_users:
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

    def reset_password(self, username, new_password):
        """The change-password page (/hub/auth/change-password), with the workshop's rules."""
        problem = password_problem(new_password, self.room_code)
        if problem:
            return problem
        self.store.set(username, hash_password(new_password))
        self.log.info("Password of %r changed by its owner", username)
        return "Your password has been changed successfully!"
