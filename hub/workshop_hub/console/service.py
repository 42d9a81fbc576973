"""The `console` service: a JupyterHub-managed service that keeps the room's progress.

JupyterHub starts it (jupyterhub_config.py) and routes /services/console/ to it. The hub
authenticates every caller: the service asks the hub whose token a request carries
(HubAuth), so it keeps no user database of its own.

- ``POST /services/console/api/progress``: an attendee's kernel reports one exercise check,
  with the server's own JUPYTERHUB_API_TOKEN; it is recorded for that token's owner only,
  of an exercise the course's catalog holds, and at most REPORT_BURST at once and
  REPORTS_PER_SECOND after that per attendee (past it, 429 with Retry-After).
  Attendee containers reach it straight on the attendee network (the firewall lets them
  reach this port of the hub, as it lets them reach the hub's API).
- ``GET /services/console/api/progress``: the whole room, for admins only.
- ``GET /services/console/api/progress/NAME``: one attendee, for that attendee or an admin.
- ``GET /services/console/api/solutions/LAB/EXERCISE``: an exercise's solution, for any
  attendee's token, once the instructor revealed it (solutions.py); until then it says so.
- ``GET /services/console/api/announcement.atom``: the announcement, for JupyterLab's news.
- ``POST``, ``GET`` and ``DELETE /services/console/api/hand``: an attendee's raised hand
  ("I'm stuck" or "I'm done", with a note and the open notebook), with the server's token:
  raise it (or change what it says), see who is on the way, lower it (hands.py).
- ``GET /services/console/api/hands``, and ``POST .../api/hands/NAME/on-my-way`` or
  ``.../done``: the help queue and the instructor's answers, for instructors (audited).
- ``GET /services/console/api/notices?after=N&boot=B&wait=S``: an attendee's news since
  notice N (announcements, revealed solutions, answers to their hand, an instructor looking at
  their notebook), waiting up to S seconds for some (notices.py).
- ``GET /services/console/work/NAME/PATH``: an attendee's notebook as inert HTML (work_view.py),
  audited; ``GET .../watch/NAME/PATH``, the page that frames it and reloads it whenever
  ``GET .../api/work-stamp/NAME/PATH`` (a fingerprint of the saved notebook) changes.
- ``GET /services/console/cards``: the login cards of the rostered attendees, to print
  (access/cards.py); warm servers (warm_room.py) show as such in the room.
- ``GET /services/console/``: the console page, and ``GET /services/console/api/room``, the
  data it shows (room_view.py). Both need the `access:services!service=console` scope,
  which JupyterHub's admin role holds and attendees' roles do not: the browser logs in with
  the hub's OAuth, an API client sends an admin's token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from importlib import resources

from jupyterhub.services.auth import HubAuth, HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer

from ..access import cards, credentials
from ..access.names import INSTRUCTOR_ROLE
from ..access.passwords import PasswordStore
from ..access.roster import Roster, rostered_unused_names
from ..access.sessions import HubApi
from ..services import CONSOLE_PORT, CONSOLE_SERVICE
from ..settings import USERNAME_PATTERN
from . import announcement, guide, hands, instructor_actions, warm_room, work_view
from .notices import ANNOUNCEMENT, HAND, SOLUTION, Notices
from .progress import BadReport, ExerciseState, ProgressBook, ReportRate, attempt_from_report
from .room_sources import AttendeePods, Containers, HubUsers
from .room_view import room_view
from .solutions import SOLUTIONS_CATALOG, Solutions, UnknownExercise, load_catalog

# The deployment whose containers the console lists (given by jupyterhub_config.py).
INSTANCE_ENV = "WORKSHOP_INSTANCE"
# The address attendees open, for the login cards (exposure.public_address, from the hub).
PUBLIC_ADDRESS_ENV = "WORKSHOP_PUBLIC_ADDRESS"
# When to warm the room and for how long to hold warm servers (settings, from the hub).
WARM_AT_ENV = "WORKSHOP_WARM_AT"
WARM_HOLD_ENV = "WORKSHOP_WARM_HOLD"
# Instructors hold this scope on every user; an attendee's tokens never do.
ADMIN_SCOPE = "admin:users"
# What the console reads from the hub (every user's servers and activity), the servers an
# instructor stops from it, the users it deletes and creates again to end an attendee's
# sessions with a new password (access/sessions.py), and those it deletes for good: its
# role, on one machine and on Kubernetes.
SCOPES = [
    "list:users",
    "read:users",
    "read:servers",
    "read:users:activity",
    "admin:users",
    "servers",
]
# The instructor's role (jupyterhub_config.py): JupyterHub's admin role without
# `access:servers` and `admin-ui`. Opening an attendee's server, or the hub's admin page that
# links to every server, would run what the attendee serves on the hub's origin in the
# instructor's browser; the console shows their work safely instead (work_view.py).
INSTRUCTOR_SCOPES = [
    "admin:users",
    "admin:servers",
    "tokens",
    "admin:groups",
    "list:services",
    "read:services",
    "read:hub",
    f"access:services!service={CONSOLE_SERVICE}",
    "read:roles",
    "read:metrics",
]
MAX_REPORT_BYTES = 4096
# Requests for notices one attendee may have waiting at once: a JupyterLab per browser tab.
MAX_NOTICE_WAITS_PER_ATTENDEE = 4
# The largest body any caller has a reason to send: a report (MAX_REPORT_BYTES), an
# announcement (300 characters, 6 bytes each as JSON escapes at worst), a reveal or an action
# (a few dozen bytes). The server refuses a longer one from its Content-Length, before reading
# it, and stops reading one sent in chunks there: without this, Tornado buffers 100 MB of an
# anonymous POST before any handler can look at who sent it.
MAX_BODY_BYTES = 16 * 1024
# What one connection may hold unread (headers and body in flight): hub cookies and tokens
# are a few KiB of headers, so this leaves room, and a thousand slow connections hold 256 MB
# at most instead of Tornado's default of 100 MB each.
MAX_BUFFER_BYTES = 256 * 1024
# Reports per attendee: a notebook run from top to bottom sends one per exercise of the lab (7
# at most), a person re-running cells a few a minute; a loop in a kernel is refused past this.
REPORT_BURST = 20
REPORTS_PER_SECOND = 3.0

log = logging.getLogger("workshop.console")


def service_command() -> list[str]:
    return [sys.executable, "-m", "workshop_hub.console.service"]


class TooManyReports(web.HTTPError):
    """429, with the Retry-After header that tells a well-behaved client when to send again."""

    def __init__(self, wait_seconds: int):
        super().__init__(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"more reports than checks a person runs: send the next in {wait_seconds} s",
        )
        self.headers = {"Retry-After": str(wait_seconds)}


class ConsoleBase(web.RequestHandler):
    def write_error(self, status_code: int, **kwargs) -> None:
        # One JSON line that says what went wrong; never a traceback.
        error = kwargs.get("exc_info", (None, None, None))[1]
        for header, value in getattr(error, "headers", {}).items():
            self.set_header(header, value)
        message = getattr(error, "log_message", None) or self._reason
        self.finish({"status": status_code, "message": message})

    def log_exception(self, typ, value, tb) -> None:
        # A kernel in a loop is refused hundreds of times a second: a line for each would
        # flood the hub's log with what the rate already stopped.
        if not isinstance(value, TooManyReports):
            super().log_exception(typ, value, tb)


class ConsoleApplication(web.Application):
    def log_request(self, handler: web.RequestHandler) -> None:
        # The access log's line of each refused report, for the same reason as above.
        if handler.get_status() != HTTPStatus.TOO_MANY_REQUESTS:
            super().log_request(handler)


class ConsoleHandler(ConsoleBase):
    """Who is calling, from the token the request carries, as the hub says."""

    def check_xsrf_cookie(self) -> None:
        # These calls are authenticated by the Authorization header alone (caller()), never
        # by a cookie, so no other page can make a browser send them with its credentials.
        return

    def initialize(
        self,
        hub_auth: HubAuth,
        book: ProgressBook,
        solutions: Solutions,
        rate: ReportRate,
        hand_queue: hands.HandQueue,
        notices: Notices,
    ) -> None:
        self.hub_auth = hub_auth
        self.book = book
        self.solutions = solutions
        self.rate = rate
        self.hand_queue = hand_queue
        self.notices = notices

    async def caller(self) -> dict:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            raise web.HTTPError(HTTPStatus.UNAUTHORIZED, "send the server's API token")
        model = await self.hub_auth.user_for_token(token.strip(), sync=False)
        if not model or model.get("kind") != "user":
            raise web.HTTPError(HTTPStatus.FORBIDDEN, "this token belongs to no attendee")
        return model

    async def paced_caller(self) -> dict:
        """The caller, once within their rate of reports and hands (ReportRate)."""
        model = await self.caller()
        wait_seconds = self.rate.wait_before_next(model["name"])
        if wait_seconds:
            # Answered only once the attendee may send again: a kernel posting in a loop gets
            # an answer a second per connection instead of a thousand, so refusing it takes
            # next to nothing of the console's one event loop, and the room stays fast.
            await asyncio.sleep(wait_seconds)
            raise TooManyReports(wait_seconds)
        return model

    @staticmethod
    def is_admin(model: dict) -> bool:
        return bool(model.get("admin")) or ADMIN_SCOPE in model.get("scopes", ())


def in_the_book(book: ProgressBook | hands.HandQueue, work: Callable, *args) -> Awaitable:
    """``work(*args)`` on the book's (or the queue's) own thread: SQLite never blocks the
    event loop."""
    return asyncio.get_running_loop().run_in_executor(book.worker, work, *args)


class ProgressHandler(ConsoleHandler):
    async def post(self) -> None:
        model = await self.paced_caller()
        if len(self.request.body) > MAX_REPORT_BYTES:
            raise web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "one report is a few lines")
        try:
            report = json.loads(self.request.body or b"null")
            attempt = attempt_from_report(model["name"], report, self.solutions.catalog)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, "send one JSON object") from None
        except BadReport as error:
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        await in_the_book(self.book, self.book.record, attempt)
        self.set_status(HTTPStatus.CREATED)
        self.finish({"recorded": True})

    async def get(self, attendee: str | None = None) -> None:
        model = await self.caller()
        if not self.is_admin(model) and attendee != model["name"]:
            raise web.HTTPError(HTTPStatus.FORBIDDEN, "only an admin sees other attendees")
        standings = await in_the_book(self.book, self.book.standings, attendee)
        self.finish(
            {
                "attendees": {
                    name: [state.as_json() for state in states]
                    for name, states in standings.items()
                },
                # Every exercise of the course in order, so an attendee's grid shows the
                # ones not tried yet too.
                "course": {
                    str(lab): list(exercises) for lab, exercises in self.solutions.catalog.items()
                },
            }
        )


class HandHandler(ConsoleHandler):
    """The caller's own hand: raise it (POST), see it (GET), lower it (DELETE)."""

    async def post(self) -> None:
        model = await self.paced_caller()
        try:
            request = hands.request_from_body(json.loads(self.request.body or b"null"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, "send one JSON object") from None
        except hands.BadHand as error:
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        queue = self.hand_queue
        hand = await in_the_book(queue, queue.raise_hand, model["name"], request)
        self.set_status(HTTPStatus.CREATED)
        self.finish({"hand": hand.as_json(queue.clock())})

    async def get(self) -> None:
        model = await self.caller()
        hand = await in_the_book(self.hand_queue, self.hand_queue.mine, model["name"])
        self.finish({"hand": hand.as_json(self.hand_queue.clock()) if hand else None})

    async def delete(self) -> None:
        model = await self.caller()
        hand = await in_the_book(self.hand_queue, self.hand_queue.lower, model["name"])
        self.finish({"lowered": hand is not None})


class NoticesHandler(ConsoleHandler):
    """GET .../api/notices?after=N&boot=B&wait=S: the caller's news (see notices.py)."""

    async def get(self) -> None:
        model = await self.caller()
        try:
            after = self.get_query_argument("after", None)
            after = int(after) if after is not None else None
            wait = float(self.get_query_argument("wait", "0"))
        except ValueError:
            raise web.HTTPError(
                HTTPStatus.BAD_REQUEST, "'after' is a notice's number, 'wait' seconds"
            ) from None
        boot = self.get_query_argument("boot", None)
        waiting = self.notices_waiting.get(model["name"], 0)
        if waiting >= MAX_NOTICE_WAITS_PER_ATTENDEE:
            # One JupyterLab waits once; a script opening thousands would hold as many
            # connections of the console's for 25 s each.
            raise web.HTTPError(
                HTTPStatus.TOO_MANY_REQUESTS, "close a waiting request for notices first"
            )
        self.notices_waiting[model["name"]] = waiting + 1
        try:
            news = await self.notices.wait(after, boot, model["name"], max(0.0, wait))
        finally:
            left = self.notices_waiting.pop(model["name"]) - 1
            if left:
                self.notices_waiting[model["name"]] = left
        if not self.gone:
            self.finish(news)

    # Requests for notices waiting now, per attendee (the event loop's only: no lock needed).
    notices_waiting: dict[str, int] = {}

    gone = False

    def on_connection_close(self) -> None:
        self.gone = True  # the attendee's server gave up waiting: nobody to answer


class SolutionHandler(ConsoleHandler):
    async def get(self, lab: str, exercise: str) -> None:
        await self.caller()
        try:
            self.finish(self.solutions.answer(int(lab), exercise))
        except UnknownExercise as error:
            raise web.HTTPError(HTTPStatus.NOT_FOUND, str(error)) from None


class InstructorHandler(HubOAuthenticated, ConsoleBase):
    """Pages, data and actions for admins only: JupyterHub's OAuth and scopes decide who gets
    in (the browser logs in through the hub; a script sends an admin's API token)."""

    def initialize(self, hub_auth: HubOAuth, room: Room, notices: Notices) -> None:
        self.hub_auth = hub_auth
        self.room = room
        self.notices = notices

    def check_xsrf_cookie(self) -> None:
        # Tornado calls this before the handler knows its caller; HubOAuth calls it again
        # while it weighs the cookie (its _cached_hub_user is set by then), after it took a
        # token the hub vouches for, which needs no check: no other page can make a browser
        # send one. So the first call finds the caller, the second applies JupyterHub's
        # check of the XSRF token, and a header that merely exists skips nothing.
        if hasattr(self, "_cached_hub_user"):
            super().check_xsrf_cookie()
            return
        self.current_user  # noqa: B018

    def set_default_headers(self) -> None:
        # No other page frames the console, whose buttons act on the whole room.
        self.set_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.set_header("X-Frame-Options", "SAMEORIGIN")

    def attendee_name(self, name: str) -> str:
        if not re.fullmatch(USERNAME_PATTERN, name):
            raise web.HTTPError(HTTPStatus.NOT_FOUND, f"{name!r} is not an attendee's name")
        return name


class RoomHandler(InstructorHandler):
    @web.authenticated
    async def get(self) -> None:
        self.finish(await self.room.view())


class PageHandler(InstructorHandler):
    @web.authenticated
    def get(self) -> None:
        # The page's own inline style and script, and fetches back to this service only.
        self.set_header("Content-Security-Policy", CONSOLE_PAGE_POLICY)
        self.xsrf_token  # sets the cookie the page's actions send back  # noqa: B018
        self.finish(PAGE)


class ActionHandler(InstructorHandler):
    """POST .../api/attendees/NAME/ACTION: stop, reset-lab ({"lab": N}), new-password or
    delete ({"confirm": NAME})."""

    async def instructors(self) -> set[str]:
        users = await self.room.users.users()
        return {
            user["name"]
            for user in users
            if user.get("admin") or INSTRUCTOR_ROLE in user.get("roles", ())
        }

    @web.authenticated
    async def post(self, name: str, action: str) -> None:
        attendee, by = self.attendee_name(name), self.current_user["name"]
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, "send one JSON object") from None
        loop, answer = asyncio.get_running_loop(), {}
        try:
            if action == "stop":
                outcome = await instructor_actions.stop_server(
                    self.room.users.api_url, self.room.users.token, attendee
                )
            elif action == "reset-lab":
                listed = await loop.run_in_executor(None, self.room.containers.listed)
                lab = body.get("lab") if isinstance(body, dict) else None
                outcome = await loop.run_in_executor(
                    None,
                    instructor_actions.reset_lab,
                    self.room.containers.api,
                    listed,
                    attendee,
                    lab,
                )
                action = f"reset lab {lab}"
            elif action == "new-password":
                api = HubApi(self.room.users.api_url, self.room.users.token)
                answer["password"] = await instructor_actions.new_password(
                    api, attendee, await self.instructors()
                )
                outcome = "new password shown to the instructor"
            elif action == "delete":
                action = "delete attendee"
                if getattr(self.room.containers, "api", None) is None:
                    # Kubernetes: attendees are pods with volume claims, not Docker's.
                    raise instructor_actions.ActionRefused(
                        "on Kubernetes the console cannot delete attendees yet: delete the "
                        "user with the hub's REST API and their volume claim with kubectl"
                    )
                book = self.room.book
                outcome = await instructor_actions.delete_attendee(
                    HubApi(self.room.users.api_url, self.room.users.token),
                    attendee,
                    body.get("confirm") if isinstance(body, dict) else None,
                    await self.instructors(),
                    self.room.containers.instance,
                    lambda name: in_the_book(book, book.forget, name),
                )
            else:
                raise web.HTTPError(HTTPStatus.NOT_FOUND, f"no action {action!r}")
        except instructor_actions.ActionRefused as refused:
            instructor_actions.audit(by, action, attendee, f"refused: {refused}")
            raise web.HTTPError(HTTPStatus.CONFLICT, str(refused)) from None
        instructor_actions.audit(by, action, attendee, outcome)
        self.finish({"outcome": outcome, **answer})


class WorkHandler(InstructorHandler):
    """GET .../work/NAME/ (their notebooks) and .../work/NAME/PATH (one notebook): the
    attendee's work, read by the console and shown as inert HTML (work_view.py), never their
    own server's pages; each look is written down."""

    @web.authenticated
    async def get(self, name: str, path: str) -> None:
        attendee, loop = self.attendee_name(name), asyncio.get_running_loop()
        docker_api = getattr(self.room.containers, "api", None)
        if docker_api is None:
            # Kubernetes: attendees are pods, and Docker's archive API is what reads the work.
            message = "On Kubernetes the console cannot read attendees' notebooks yet."
            page = work_view.WorkPage(
                HTTPStatus.NOT_IMPLEMENTED, work_view.render_message(f"{attendee}'s work", message)
            )
        else:
            listed = await loop.run_in_executor(None, self.room.containers.listed)
            failing = await self.room.last_failing_check(attendee)
            if failing is not None:
                failing = work_view.FailingCheck(failing.exercise, failing.reason)
            page = await loop.run_in_executor(
                None, work_view.work_page, docker_api, listed, attendee, path or None, failing
            )
        # One look is written down (and told to the attendee) once, not at each of the
        # page's own refreshes: looking() says whether this is a new look.
        what = f"your notebook {path}" if path else "your notebooks"
        new_look = page.status != HTTPStatus.OK or self.notices.looking(
            self.current_user["name"], attendee, what
        )
        if new_look:
            instructor_actions.audit(
                self.current_user["name"], "view work", attendee, path or "their notebooks"
            )
        self.set_status(page.status)
        for header, value in work_view.PAGE_HEADERS.items():
            self.set_header(header, value)
        self.finish(page.html)


class WatchHandler(InstructorHandler):
    """GET .../watch/NAME/PATH: the console's page that frames the notebook's inert view
    (WorkHandler's, audited there) and reads it again whenever the attendee saves."""

    @web.authenticated
    def get(self, name: str, path: str) -> None:
        prefix = self.request.path[: self.request.path.index("/watch/") + 1]
        self.set_header("Content-Security-Policy", CONSOLE_PAGE_POLICY)
        self.finish(work_view.render_watch_page(prefix, self.attendee_name(name), path))


class WorkStampHandler(InstructorHandler):
    """GET .../api/work-stamp/NAME/PATH: {"stamp": a fingerprint of the notebook as saved, or
    null when it cannot be read}; what the watching page polls (the notebook is not sent)."""

    @web.authenticated
    async def get(self, name: str, path: str) -> None:
        attendee, loop = self.attendee_name(name), asyncio.get_running_loop()
        docker_api = getattr(self.room.containers, "api", None)
        stamp = None
        if docker_api is not None:
            listed = await loop.run_in_executor(None, self.room.containers.listed)
            stamp = await loop.run_in_executor(
                None, work_view.notebook_stamp, docker_api, listed, attendee, path
            )
        self.set_header("Cache-Control", "no-store")
        self.finish({"stamp": stamp})


class CardsHandler(InstructorHandler):
    """GET .../cards: one login card per rostered attendee who has not logged in yet."""

    @web.authenticated
    async def get(self) -> None:
        states = await asyncio.to_thread(Roster(self.room.store).states) if self.room.store else []
        # The address attendees open, as the hub worked it out; else the one this page has.
        address = (
            os.environ.get(PUBLIC_ADDRESS_ENV) or f"{self.request.protocol}://{self.request.host}/"
        )
        self.set_header("Content-Security-Policy", cards.CARDS_PAGE_POLICY)
        self.set_header("Cache-Control", "no-store")
        self.finish(cards.render_cards(states, address))


class HandsHandler(InstructorHandler):
    """GET .../api/hands: the help queue, oldest first, and the day's waits."""

    @web.authenticated
    async def get(self) -> None:
        queue = await in_the_book(self.room.hands, self.room.hands.queue)
        # Each open hand with the check its attendee failed last (what they are stuck on) and
        # what the instructor's guide says of that mistake.
        for hand in queue["open"]:
            last = await self.room.last_failing_check(hand["attendee"])
            hand["failing_check"] = last.as_json() if last else None
            lab_guide = self.room.guides.get(last.lab) if last else None
            hand["guide_note"] = (
                lab_guide.note_for(last.exercise, last.reason) if lab_guide else None
            )
        self.finish(queue)


class HandActionHandler(InstructorHandler):
    """POST .../api/hands/NAME/on-my-way or .../done: the instructor's answer, audited."""

    @web.authenticated
    async def post(self, name: str, answer: str) -> None:
        attendee, by = self.attendee_name(name), self.current_user["name"]
        queue = self.room.hands
        act = {"on-my-way": queue.take, "done": queue.done}.get(answer)
        if act is None:
            raise web.HTTPError(HTTPStatus.NOT_FOUND, "answer a hand with on-my-way or done")
        try:
            hand = await in_the_book(queue, act, attendee, by)
        except hands.HandRefused as error:
            instructor_actions.audit(by, f"hand: {answer}", attendee, f"refused: {error}")
            raise web.HTTPError(HTTPStatus.CONFLICT, str(error)) from None
        text = f"On my way: {by}" if answer == "on-my-way" else f"{by} closed your raised hand"
        self.notices.publish(HAND, text, to=attendee)
        instructor_actions.audit(
            by,
            f"hand: {answer}",
            attendee,
            f"{hand.kind} hand, waited {hand.waited(queue.clock()):.0f} s",
        )
        self.finish({"hand": hand.as_json(queue.clock())})


class GuideHandler(InstructorHandler):
    """GET .../guide/N: lab N's instructor's guide, a page to read or print (no script)."""

    @web.authenticated
    def get(self, lab: str) -> None:
        lab_guide = self.room.guides.get(int(lab))
        if lab_guide is None:
            raise web.HTTPError(HTTPStatus.NOT_FOUND, f"this hub image has no guide for lab {lab}")
        for header, value in work_view.PAGE_HEADERS.items():
            self.set_header(header, value)
        self.finish(guide.render_page(lab_guide))


class AnnouncementHandler(InstructorHandler):
    """GET/POST .../api/announcement: what every hub page shows on top ("" takes it down)."""

    @web.authenticated
    def get(self) -> None:
        self.finish(announcement.read())

    @web.authenticated
    def post(self) -> None:
        try:
            text = json.loads(self.request.body or b"{}").get("text", "")
            entry = announcement.write(str(text), by=self.current_user["name"])
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, 'send {"text": "..."}') from None
        except announcement.BadAnnouncement as error:
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        instructor_actions.audit(
            entry["by"], "announce", "everyone", entry["text"] or "(taken down)"
        )
        if entry["text"]:
            self.notices.publish(ANNOUNCEMENT, entry["text"])
        self.finish(entry)


class RevealHandler(InstructorHandler):
    """GET/POST .../api/solutions: which solutions attendees see; reveal or hide one
    exercise's ({"lab": 1, "exercise": "batch", "revealed": true}) or a whole lab's (no
    "exercise")."""

    @web.authenticated
    def get(self) -> None:
        self.finish({"labs": self.room.solutions.overview()})

    @web.authenticated
    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            lab, exercise = body.get("lab"), body.get("exercise")
            revealed = body.get("revealed", True)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise web.HTTPError(
                HTTPStatus.BAD_REQUEST, 'send {"lab": N, "exercise": "name", "revealed": true}'
            ) from None
        if not isinstance(revealed, bool):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, '"revealed" is true or false')
        try:
            changed = self.room.solutions.reveal(lab, exercise, revealed)
        except UnknownExercise as error:
            raise web.HTTPError(HTTPStatus.NOT_FOUND, str(error)) from None
        what = f"lab {lab} · {exercise}" if exercise is not None else f"lab {lab}, every exercise"
        outcome = f"{what}: {'revealed' if revealed else 'hidden'} ({len(changed)} changed)"
        instructor_actions.audit(
            self.current_user["name"],
            "reveal solution" if revealed else "hide solution",
            "everyone",
            outcome,
        )
        if revealed:
            for name in changed:
                self.notices.publish(SOLUTION, f"The solution to lab {lab} · {name} is out")
        self.finish({"outcome": outcome, "changed": changed})


class AnnouncementFeedHandler(ConsoleBase):
    """GET .../api/announcement.atom: the announcement for JupyterLab's news (fetched by the
    attendees' servers, without a token: it is what every hub page shows anyway)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.finish(announcement.atom_feed())


CONSOLE_PAGE_POLICY = (
    "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)
PAGE = resources.files(__package__).joinpath("console.html").read_text(encoding="utf-8")


class Room:
    """The console's view of the room, from the hub, Docker and the progress book."""

    def __init__(
        self,
        book: ProgressBook,
        users: HubUsers,
        containers: Containers,
        solutions: Solutions,
        hand_queue: hands.HandQueue,
        guides: dict[int, guide.LabGuide] | None = None,
        store: PasswordStore | None = None,
    ):
        self.book, self.users, self.containers = book, users, containers
        self.solutions, self.hands = solutions, hand_queue
        self.guides = guides or {}
        # The login store: rostered attendees, and whether they logged in (access/roster.py).
        self.store = store

    async def last_failing_check(self, attendee: str) -> ExerciseState | None:
        """The check ``attendee`` failed last and has not passed since, if any."""
        standings = await in_the_book(self.book, self.book.standings, attendee)
        failing = [state for state in standings.get(attendee, []) if not state.passed]
        return max(failing, key=lambda state: state.last_tried, default=None)

    async def view(self) -> dict:
        loop = asyncio.get_running_loop()
        users = await self.users.users()
        listed = await loop.run_in_executor(None, self.containers.listed)
        standings = await in_the_book(self.book, self.book.standings)
        warm = (
            await asyncio.to_thread(warm_room.warm_names, self.store, users) if self.store else ()
        )
        view = room_view(
            users,
            listed,
            standings,
            self.containers.memory,
            now=time.time(),
            warm=frozenset(warm),
        )
        view["memory_sampled_at"] = self.containers.memory_sampled_at
        return view


def make_app(
    hub_auth: HubAuth,
    book: ProgressBook,
    solutions: Solutions,
    hand_queue: hands.HandQueue,
    prefix: str,
    room: Room | None = None,
) -> ConsoleApplication:
    rate = ReportRate(REPORT_BURST, REPORTS_PER_SECOND)
    notices = Notices()
    arguments = {
        "hub_auth": hub_auth,
        "book": book,
        "solutions": solutions,
        "rate": rate,
        "hand_queue": hand_queue,
        "notices": notices,
    }
    api = url_path_join(prefix, "api/progress")
    handlers = [
        (api, ProgressHandler, arguments),
        (url_path_join(api, "([^/]+)"), ProgressHandler, arguments),
        (url_path_join(prefix, r"api/solutions/(\d+)/(\w+)"), SolutionHandler, arguments),
        (url_path_join(prefix, "api/announcement.atom"), AnnouncementFeedHandler),
        (url_path_join(prefix, "api/hand"), HandHandler, arguments),
        (url_path_join(prefix, "api/notices"), NoticesHandler, arguments),
    ]
    if room is not None:
        # The one HubOAuth of this process: the OAuth callback finds the login it began
        # (its PKCE verifier is kept in this object) through HubOAuth.instance() too.
        oauth = HubOAuth.instance(cache_max_age=60)
        instructor = {"hub_auth": oauth, "room": room, "notices": notices}
        handlers += [
            (prefix, PageHandler, instructor),
            (url_path_join(prefix, "api/room"), RoomHandler, instructor),
            (url_path_join(prefix, "api/attendees/([^/]+)/([a-z-]+)"), ActionHandler, instructor),
            (url_path_join(prefix, "work/([^/]+)/(.*)"), WorkHandler, instructor),
            (url_path_join(prefix, "watch/([^/]+)/(.+)"), WatchHandler, instructor),
            (url_path_join(prefix, "api/work-stamp/([^/]+)/(.+)"), WorkStampHandler, instructor),
            (url_path_join(prefix, "api/announcement"), AnnouncementHandler, instructor),
            (url_path_join(prefix, "api/solutions"), RevealHandler, instructor),
            (url_path_join(prefix, "api/hands"), HandsHandler, instructor),
            (url_path_join(prefix, "cards"), CardsHandler, instructor),
            (url_path_join(prefix, r"guide/(\d)"), GuideHandler, instructor),
            (url_path_join(prefix, "api/hands/([^/]+)/([a-z-]+)"), HandActionHandler, instructor),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ]
    # The OAuth cookie's key: new at each start, so a console restart only means logging in
    # again through the hub, silently.
    app = ConsoleApplication(handlers, cookie_secret=os.urandom(32), xsrf_cookies=True)
    app.notices = notices  # what the handlers publish, for tests to read and publish too
    return app


def console_server(app: web.Application) -> HTTPServer:
    """The console's HTTP server, with its limits on what a caller may send."""
    return HTTPServer(app, max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_BUFFER_BYTES)


async def serve(
    app: web.Application,
    port: int = CONSOLE_PORT,
    background: Callable[[], Awaitable] | None = None,
) -> None:
    """Serve ``app`` (and run ``background()``) until SIGTERM or SIGINT, then stop quietly:
    JupyterHub stops its services with a signal at every restart, which is no error."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stopping.set)
    server = console_server(app)
    # All interfaces: the proxy reaches it on loopback, attendee kernels on the attendee network.
    server.listen(port, address="0.0.0.0")
    log.info("console service on port %d", port)
    tasks = [asyncio.create_task(background())] if background else []
    await stopping.wait()
    log.info("console service stopping")
    server.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def load_guides() -> dict[int, guide.LabGuide]:
    """The instructor's guides the hub image ships; none (logged) when missing or broken, so
    the rest of the console still works."""
    try:
        guides = guide.load_guide(guide.GUIDE_DIR)
    except (OSError, guide.GuideError) as error:
        log.error("no instructor's guide in the console: %s", error)
        return {}
    log.info("instructor's guide for labs %s", ", ".join(map(str, sorted(guides))) or "none")
    return guides


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[console %(levelname)s] %(message)s")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{CONSOLE_SERVICE}/")
    book = ProgressBook()
    solutions = Solutions(load_catalog(SOLUTIONS_CATALOG))
    instance = os.environ[INSTANCE_ENV]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        # In the hub's pod on Kubernetes: attendees are pods, and there is no Docker socket.
        containers = AttendeePods(instance)
    else:
        containers = Containers(instance)
    hand_queue = hands.HandQueue()
    store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    room = Room(book, HubUsers(), containers, solutions, hand_queue, load_guides(), store)
    app = make_app(HubAuth(), book, solutions, hand_queue, prefix, room)
    asyncio.run(serve(app, background=lambda: in_the_background(room, containers)))


async def in_the_background(room: Room, containers) -> None:
    """Sample the attendees' memory; keep warm servers from the culler; warm the room at
    WORKSHOP_WARM_AT (warm_room.py)."""
    hub = HubApi(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    tasks = [containers.sample_memory_forever(), keep_warm_forever(hub, room)]
    warm_at = os.environ.get(WARM_AT_ENV, "")
    if warm_at:
        hold = float(os.environ.get(WARM_HOLD_ENV) or 3600)

        async def warm() -> None:
            names = sorted(await asyncio.to_thread(rostered_unused_names, room.store))
            if names:
                result = await warm_room.warm_room(hub, names, hold, progress=log.info)
                log.info("room warmed: %d ready, %d failed", len(result.ready), len(result.failed))

        tasks.append(warm_room.warm_every_day(warm_at, warm))
    await asyncio.gather(*tasks)


async def keep_warm_forever(hub: HubApi, room: Room) -> None:
    while True:
        try:
            kept = await warm_room.keep_warm_servers(hub, room.store, room.users.users)
            if kept:
                log.info("kept %d warm servers from the idle culler", kept)
        except Exception:  # the console goes on; the next round tries again
            log.exception("keeping warm servers failed")
        await asyncio.sleep(warm_room.TOUCH_SECONDS)


if __name__ == "__main__":
    main()
