"""The real console service's app for tests, served on loopback in the test's event loop, with
a hub that knows a few attendees' tokens (TOKENS) and no hub behind it: used by the console's
own tests (tests/hub/console/test_service.py) and the attendee's help add-on's
(tests/lab_extension)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.services.auth import HubAuth
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from workshop_hub.console.hands import HandQueue
from workshop_hub.console.progress import ProgressBook
from workshop_hub.console.room_sources import Containers, HubUsers
from workshop_hub.console.service import ConsoleApplication, Room, make_app
from workshop_hub.console.solutions import Solutions

PREFIX = "/services/console/"
# The tokens this test's hub knows, and whose they are.
TOKENS = {"ada-token": "ada", "bob-token": "bob"}


class HubThatKnowsTokens(HubAuth):
    """The hub's answer for TOKENS, without a hub."""

    async def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
        name = TOKENS.get(token)
        return {"kind": "user", "name": name, "admin": False, "scopes": []} if name else None


def console_app(
    folder: Path, monkeypatch: pytest.MonkeyPatch, book: ProgressBook, hand_queue: HandQueue
) -> ConsoleApplication:
    """The console with its progress book, hands and revealed solutions in ``folder``."""
    # What JupyterHub gives a managed service; nothing listens at this hub address.
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-services-token")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-console")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    solutions = Solutions({1: {"batch": "the solution"}}, folder / "revealed.json")
    room = Room(book, HubUsers(), Containers("test-instance"), solutions, hand_queue)
    return make_app(HubThatKnowsTokens(), book, solutions, hand_queue, PREFIX, room)


def serve_on_loopback(server: HTTPServer) -> tuple[str, int]:
    """Listen on a free loopback port; the console's base URL and the port."""
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}{PREFIX}", port
