"""The `console` service: a JupyterHub-managed service that keeps the room's progress.

JupyterHub starts it (jupyterhub_config.py) and routes /services/console/ to it. The hub
authenticates every caller: the service asks the hub whose token a request carries
(HubAuth), so it keeps no user database of its own.

- ``POST /services/console/api/progress``: an attendee's kernel reports one exercise check,
  with the server's own JUPYTERHUB_API_TOKEN; it is recorded for that token's owner only.
  Attendee containers reach it straight on the attendee network (the firewall lets them
  reach this port of the hub, as it lets them reach the hub's API).
- ``GET /services/console/api/progress``: the whole room, for admins only.
- ``GET /services/console/api/progress/NAME``: one attendee, for that attendee or an admin.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from http import HTTPStatus

from jupyterhub.services.auth import HubAuth
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from .firewall import CONSOLE_PORT, HUB_SERVICE
from .progress import BadReport, ProgressBook, attempt_from_report

SERVICE_NAME = "console"
# The attendee container's variable that tells its kernels where to report (the labs'
# workshop_labs/progress.py reads it; a test keeps the two names the same).
PROGRESS_URL_ENV = "WORKSHOP_PROGRESS_URL"
# Admins hold this scope on every user; an attendee's tokens never do.
ADMIN_SCOPE = "admin:users"
MAX_REPORT_BYTES = 4096

log = logging.getLogger("workshop.console")


def service_command() -> list[str]:
    return [sys.executable, "-m", "workshop_hub.console"]


def progress_url() -> str:
    """Where an attendee's kernel posts its checks: the hub by its name on the attendee network."""
    return f"http://{HUB_SERVICE}:{CONSOLE_PORT}/services/{SERVICE_NAME}/api/progress"


class ConsoleHandler(web.RequestHandler):
    """Who is calling, from the token the request carries, as the hub says."""

    def initialize(self, hub_auth: HubAuth, book: ProgressBook) -> None:
        self.hub_auth = hub_auth
        self.book = book

    async def caller(self) -> dict:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            raise web.HTTPError(HTTPStatus.UNAUTHORIZED, "send the server's API token")
        model = await self.hub_auth.user_for_token(token.strip(), sync=False)
        if not model or model.get("kind") != "user":
            raise web.HTTPError(HTTPStatus.FORBIDDEN, "this token belongs to no attendee")
        return model

    @staticmethod
    def is_admin(model: dict) -> bool:
        return bool(model.get("admin")) or ADMIN_SCOPE in model.get("scopes", ())

    def write_error(self, status_code: int, **kwargs) -> None:
        # One JSON line that says what went wrong; never a traceback.
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.finish({"status": status_code, "message": message})


class ProgressHandler(ConsoleHandler):
    async def post(self) -> None:
        model = await self.caller()
        if len(self.request.body) > MAX_REPORT_BYTES:
            raise web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "one report is a few lines")
        try:
            attempt = attempt_from_report(model["name"], json.loads(self.request.body or b"null"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, "send one JSON object") from None
        except BadReport as error:
            raise web.HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        self.book.record(attempt)
        self.set_status(HTTPStatus.CREATED)
        self.finish({"recorded": True})

    async def get(self, attendee: str | None = None) -> None:
        model = await self.caller()
        if not self.is_admin(model) and attendee != model["name"]:
            raise web.HTTPError(HTTPStatus.FORBIDDEN, "only an admin sees other attendees")
        standings = self.book.standings(attendee)
        self.finish(
            {
                "attendees": {
                    name: [state.as_json() for state in states]
                    for name, states in standings.items()
                }
            }
        )


def make_app(hub_auth: HubAuth, book: ProgressBook, prefix: str) -> web.Application:
    arguments = {"hub_auth": hub_auth, "book": book}
    api = url_path_join(prefix, "api/progress")
    return web.Application(
        [
            (api, ProgressHandler, arguments),
            (url_path_join(api, "([^/]+)"), ProgressHandler, arguments),
        ]
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[console %(levelname)s] %(message)s")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    app = make_app(HubAuth(), ProgressBook(), prefix)
    # All interfaces: the proxy reaches it on loopback, attendee kernels on the attendee network.
    app.listen(CONSOLE_PORT, address="0.0.0.0")
    log.info("console service on port %d under %s", CONSOLE_PORT, prefix)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
