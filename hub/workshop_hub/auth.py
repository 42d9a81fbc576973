"""Login for a room: a username of one's choice and the shared access code.

SharedPasswordAuthenticator does the checking; this subclass only turns its silent refusals
into messages that say what to fix, shown on the login page.
"""

from __future__ import annotations

import re

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from tornado import web

from .settings import USERNAME_PATTERN, USERNAME_RULE


class WorkshopAuthenticator(SharedPasswordAuthenticator):
    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        if not re.fullmatch(USERNAME_PATTERN, username):
            shown = username if len(username) <= 40 else username[:40] + "..."
            raise web.HTTPError(
                403, f"The username {shown!r} cannot be used: choose {USERNAME_RULE}."
            )
        user = await super().authenticate(handler, data)
        if user is None:
            if username in self.admin_users:
                raise web.HTTPError(
                    403, f"{username!r} is an admin account: use the admin password."
                )
            raise web.HTTPError(
                403, "That access code is not right. Check it with your instructor and try again."
            )
        return user
