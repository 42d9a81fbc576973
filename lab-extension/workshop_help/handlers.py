"""Each route passes the attendee's call on to the console and its answer back unchanged.

The console decides everything (who may raise what, how long a long poll waits); these
handlers only add the server's token, cap what the page may send, and say plainly when
there is no console (JupyterLab run outside the hub: a laptop, the tests).
"""

from __future__ import annotations

import os
from http import HTTPStatus
from urllib.parse import quote, urlencode

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

# The same variables the labs' checks read (workshop_labs/progress.py), set by the hub.
CONSOLE_URL_ENV = "WORKSHOP_CONSOLE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
USER_ENV = "JUPYTERHUB_USER"
# A hand is a note of a line and a path; nothing the page sends needs more.
MAX_BODY_BYTES = 4096
# The console holds a notices request up to this long when there is no news; this server
# waits a little longer for its answer, and the page a little longer still.
NOTICES_WAIT_SECONDS = 20
CALL_TIMEOUT_SECONDS = 10
NO_CONSOLE = (
    "This JupyterLab runs outside the workshop's hub, so there is no instructor's console to "
    "reach: raise your hand in the room."
)


class ConsoleProxy(APIHandler):
    """Calls the console as this server: its address and token from the environment."""

    async def call_console(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        *,
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        base, token = os.environ.get(CONSOLE_URL_ENV), os.environ.get(TOKEN_ENV)
        if not base or not token:
            raise web.HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, NO_CONSOLE)
        request = HTTPRequest(
            base.rstrip("/") + "/" + path,
            method=method,
            body=body,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            request_timeout=timeout,
            allow_nonstandard_methods=True,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as refused:
            if refused.response is None:  # timed out or never connected
                raise web.HTTPError(
                    HTTPStatus.BAD_GATEWAY,
                    "The instructor's console did not answer: try again in a moment, or "
                    "raise your hand in the room.",
                ) from None
            response = refused.response
        except OSError:
            raise web.HTTPError(
                HTTPStatus.BAD_GATEWAY,
                "The instructor's console cannot be reached: raise your hand in the room.",
            ) from None
        self.set_status(response.code)
        self.set_header("Content-Type", "application/json")
        self.finish(response.body or b"{}")


class HandHandler(ConsoleProxy):
    @web.authenticated
    async def get(self) -> None:
        await self.call_console("hand")

    @web.authenticated
    async def post(self) -> None:
        if len(self.request.body) > MAX_BODY_BYTES:
            raise web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "a hand is a line of text")
        await self.call_console("hand", "POST", self.request.body)

    @web.authenticated
    async def delete(self) -> None:
        await self.call_console("hand", "DELETE")


class NoticesHandler(ConsoleProxy):
    @web.authenticated
    async def get(self) -> None:
        query = {"wait": NOTICES_WAIT_SECONDS}
        for name in ("after", "boot"):
            value = self.get_query_argument(name, None)
            if value is not None:
                query[name] = value[:64]
        await self.call_console(
            "notices?" + urlencode(query), timeout=NOTICES_WAIT_SECONDS + CALL_TIMEOUT_SECONDS
        )


class ProgressHandler(ConsoleProxy):
    @web.authenticated
    async def get(self) -> None:
        user = os.environ.get(USER_ENV)
        if not user:
            raise web.HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, NO_CONSOLE)
        await self.call_console("progress/" + quote(user, safe=""))


def routes(base_url: str) -> list[tuple[str, type]]:
    prefix = url_path_join(base_url, "workshop-help")
    return [
        (url_path_join(prefix, "hand"), HandHandler),
        (url_path_join(prefix, "notices"), NoticesHandler),
        (url_path_join(prefix, "progress"), ProgressHandler),
    ]
