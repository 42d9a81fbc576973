"""Login for a room of strangers: the room code lets you in once, your own password after that.

The first login with a name needs the room code and sets that attendee's own password (a
bcrypt hash, kept by FirstUseAuthenticator's store on the hub's data volume). A name on the
roster (access/roster.py) needs the one-time password of its login card instead, once. After
that the name is theirs: only their password opens it, and someone else who types the room
code is told the name is taken. Instructors log in with the admin password. No name that the
hub already knows (a user in its database) or keeps for itself (access/names.py) can be
claimed, and the authenticator never makes anyone a JupyterHub admin: instructors hold the
`instructor` role, declared with exact membership in jupyterhub_config.py.

Refusals return None, so JupyterHub logs "Failed login for ..." as usual; the message for the
login page goes through FirstUseAuthenticator's login handler (`custom_login_error`). A try
over the throttle's budget (throttle.py) is refused before it is checked, with HTTP 429 and
Retry-After. A browser that logged in keeps a signed cookie naming the name it logged in as:
its tries have a budget of their own, so nobody's guesses keep the owner out.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time

from firstuseauthenticator import FirstUseAuthenticator
from firstuseauthenticator.firstuseauthenticator import CustomLoginHandler
from tornado.web import HTTPError
from traitlets import Integer, Set, Unicode

from ..settings import USERNAME_PATTERN, USERNAME_RULE, WorkshopSettings
from .addresses import ProxyAddress, request_client_address
from .passwords import (
    PasswordStore,
    hash_password,
    is_one_time,
    one_time_matches,
    password_matches,
    password_problem,
)
from .throttle import LoginThrottle, Throttled

ROOM_CODE_FIELD = "room_code"
# "NAME/DEVICE-ID", signed with the hub's cookie secret: only a browser that logged in as NAME
# has one, and it outlives logging out (JupyterHub clears only its own cookies).
DEVICE_COOKIE = "workshop-device"
DEVICE_ID_PATTERN = r"[A-Za-z0-9_-]{22}"
# Without a number of attendees to double (WORKSHOP_MAX_ATTENDEES=auto), room for a large room.
DEFAULT_MAX_NAMES = 400
# How long a count of claimed names is trusted before the store is read again: the store is
# also written by `workshop-hub reset-password` and by deleting users.
NAME_COUNT_SECONDS = 30.0


def max_names(settings: WorkshopSettings) -> int:
    """WORKSHOP_MAX_NAMES, or (auto) twice the room's WORKSHOP_MAX_ATTENDEES: room for
    attendees who come and go, not for a script that claims names to fill the room."""
    if settings.max_names is not None:
        return settings.max_names
    if settings.max_attendees is not None:
        return 2 * settings.max_attendees
    return DEFAULT_MAX_NAMES


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (as bytes)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class WorkshopLoginHandler(CustomLoginHandler):
    """FirstUseAuthenticator's login page, able to show an error page's message.

    JupyterHub renders an HTTPError raised at login (the 429 of a throttled try) as the login
    form, passing the error page's values along; FirstUseAuthenticator's `_render` takes only
    two of them, and the page would come back empty.
    """

    def _render(self, login_error=None, username=None, **error_page):
        if self.custom_login_error:
            login_error = self.custom_login_error
        return super(CustomLoginHandler, self)._render(login_error, username, **error_page)


class ClaimedNames:
    """How many names the store holds, read again every NAME_COUNT_SECONDS, plus the claims
    under way, so that parallel claims cannot pass the cap together."""

    def __init__(self, store: PasswordStore, clock=time.monotonic):
        self.store, self.clock = store, clock
        self.stored = 0
        self.under_way = 0
        self._read_at = float("-inf")

    async def refresh(self) -> None:
        if self.clock() - self._read_at >= NAME_COUNT_SECONDS:
            self.stored = len(await asyncio.to_thread(self.store.names))
            self._read_at = self.clock()

    def reserve(self, cap: int) -> bool:
        if self.stored + self.under_way >= cap:
            return False
        self.under_way += 1
        return True

    def finish(self, claimed: bool) -> None:
        self.under_way -= 1
        self.stored += int(claimed)

    def forget_one(self) -> None:
        self.stored = max(0, self.stored - 1)


class WorkshopAuthenticator(FirstUseAuthenticator):
    room_code = Unicode(help="The room's shared code, needed to claim a name.").tag(config=True)
    admin_password = Unicode(help="The password of every instructor.").tag(config=True)
    instructors = Set(help="Who logs in with the admin password (WORKSHOP_ADMIN_USERS).").tag(
        config=True
    )
    reserved_names = Set(help="Names nobody can claim with the room code.").tag(config=True)
    max_names = Integer(
        DEFAULT_MAX_NAMES, help="Most names the room code can claim (WORKSHOP_MAX_NAMES)."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = PasswordStore(self.dbm_path)
        self.claimed_names = ClaimedNames(self.store)
        self.throttle = LoginThrottle()
        self.https_proxy = ProxyAddress()

    def get_handlers(self, app):
        return [
            (path, WorkshopLoginHandler if handler is CustomLoginHandler else handler)
            for path, handler in super().get_handlers(app)
        ]

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
        device = device_id(handler, username)
        try:
            self.throttle.admit(username, address, device)
        except Throttled as throttled:
            raise self._too_many(handler, username, address, throttled) from None
        refusal = await self._check(username, password, room_code, handler, address)
        if refusal:
            self._refuse(handler, username, address, refusal)
            return None
        self.throttle.succeeded(username, device)
        remember_device(handler, username, device)
        # A plain no: JupyterHub's admin role carries access to every attendee's server.
        return {"name": username, "admin": False}

    async def _check(
        self, username: str, password: str, room_code: str, handler, address: str
    ) -> str | None:
        """Why this login is refused, or None when it is accepted (claiming a new name)."""
        if username in self.instructors:
            if same_secret(password, self.admin_password):
                return None
            return f"Wrong password for the admin account {username!r}."
        stored = await asyncio.to_thread(self.store.get, username)
        if is_one_time(stored):
            return await self._use_login_card(username, password, room_code, stored)
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
        return await self._claim(username, password, handler, address)

    async def _use_login_card(
        self, username: str, password: str, card_password: str, stored: bytes
    ) -> str | None:
        """A rostered name's first login: the card's one-time password, typed as the room code,
        and the attendee's own password, which replaces it (access/roster.py)."""
        if not card_password:
            if await asyncio.to_thread(one_time_matches, password, stored):
                return (
                    "That is the one-time password from your login card: type it in the Room "
                    "code box, and choose your own password in the Password box."
                )
            return (
                f"{username!r} is on the attendee list: the first time, type the one-time "
                "password from your login card in the Room code box and choose your own "
                "password."
            )
        if same_secret(card_password, self.room_code):
            return (
                f"The name {username!r} is reserved for an attendee on the list. If it is "
                "yours, type the password from your login card instead of the room code; if "
                "not, choose another name."
            )
        if not await asyncio.to_thread(one_time_matches, card_password, stored):
            return (
                f"That is not the password on {username}'s login card. Check it and try "
                "again, or ask the instructor."
            )
        problem = password_problem(password, self.room_code)
        if problem is None and same_secret(password.strip().lower(), card_password.lower()):
            problem = "Choose your own password, not the one on your card: it works only once."
        if problem:
            return problem
        password_hash = await asyncio.to_thread(hash_password, password)
        if not await asyncio.to_thread(self.store.replace, username, stored, password_hash):
            return (
                f"The login card of {username!r} was used a moment ago: log in with the "
                "password chosen then, or ask the instructor to reset it."
            )
        self.log.info("Login card of %r used: they chose their own password", username)
        return None

    async def _claim(self, username: str, password: str, handler, address: str) -> str | None:
        """Claim a new name, within the room's cap and the address's rate of new names."""
        await self.claimed_names.refresh()
        if not self.claimed_names.reserve(self.max_names):
            return "Every name of this room is taken: ask the instructor."
        claimed = False
        try:
            self.throttle.take_new_name(address)
            password_hash = await asyncio.to_thread(hash_password, password)
            claimed = await asyncio.to_thread(self.store.claim, username, password_hash)
        except Throttled as throttled:
            raise self._too_many(handler, username, address, throttled) from None
        finally:
            self.claimed_names.finish(claimed)
        if not claimed:
            self.throttle.give_back_new_name(address)
            return (
                f"The name {username!r} was claimed a moment ago. Choose another name, or ask "
                "the instructor to reset it."
            )
        self.log.info("Name %r claimed", username)
        return None

    def _refuse(self, handler, username: str, address: str, message: str) -> None:
        """Count the failure against the address, log it and show `message`."""
        self.throttle.failed(address)
        self._log_refusal(handler, username, address, message)

    def _log_refusal(self, handler, username: str, address: str, message: str) -> None:
        # One line with the address, for a person or fail2ban reading the log.
        self.log.warning("Login refused for %r from %s: %s", username[:40], address, message)
        handler.custom_login_error = message

    def _too_many(self, handler, username: str, address: str, throttled: Throttled) -> HTTPError:
        """The 429 of a throttled try, logged like any refusal. JupyterHub shows its message on
        the login form (WorkshopLoginHandler) and sends the error's `headers` with it."""
        self._log_refusal(handler, username, address, str(throttled))
        error = HTTPError(429, str(throttled))
        error.headers = {"Retry-After": str(throttled.retry_after)}
        return error

    def delete_user(self, user):
        """A deleted user's name can be claimed again, unless an instructor's reset holds it
        (it deletes and re-creates the user to end every session)."""
        if self.store.delete(user.name, keep_held=True):
            self.claimed_names.forget_one()

    def reset_password(self, username, new_password):
        """The change-password page (/hub/auth/change-password), with the workshop's rules."""
        problem = password_problem(new_password, self.room_code)
        if problem:
            return problem
        self.store.set(username, hash_password(new_password))
        self.log.info("Password of %r changed by its owner", username)
        return "Your password has been changed successfully!"


def device_cookie_days(handler) -> float:
    """A device cookie lasts as long as a session (WORKSHOP_SESSION_LENGTH, which JupyterHub
    holds as cookie_max_age_days)."""
    return handler.settings["cookie_max_age_days"]


def device_id(handler, username: str) -> str | None:
    """The id of this browser when it logged in as `username` before, else None."""
    signed = handler.get_signed_cookie(DEVICE_COOKIE, max_age_days=device_cookie_days(handler))
    if not signed:
        return None
    name, _, device = signed.decode(errors="replace").partition("/")
    if name != username or not re.fullmatch(DEVICE_ID_PATTERN, device):
        return None
    return device


def remember_device(handler, username: str, device: str | None) -> None:
    """Mark this browser as one that logged in as `username` (keeping its id when it has one)."""
    handler.set_signed_cookie(
        DEVICE_COOKIE,
        f"{username}/{device or secrets.token_urlsafe(16)}",
        expires_days=device_cookie_days(handler),
        path=handler.hub.base_url,
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
    )
