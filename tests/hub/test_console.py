"""The console service's app, served on loopback: routes, and who may call what before any
hub is asked (tests/e2e/test_console.py drives it in the real stack)."""

from __future__ import annotations

import pytest
from jupyterhub.services.auth import HubAuth
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from workshop_hub.console import Room, make_app
from workshop_hub.progress import ProgressBook
from workshop_hub.room_sources import Containers, HubUsers
from workshop_hub.solutions import Solutions

PREFIX = "/services/console/"


@pytest.fixture
async def console(tmp_path, monkeypatch):
    # What JupyterHub gives a managed service; nothing listens at this hub address.
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-services-token")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-console")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    book = ProgressBook(tmp_path / "progress.sqlite")
    solutions = Solutions({1: {"batch": "the solution"}}, tmp_path / "revealed.json")
    room = Room(book, HubUsers(), Containers("test-instance"), solutions)
    app = make_app(HubAuth(), book, solutions, PREFIX, room)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}{PREFIX}"
    server.stop()


async def fetch(url: str, **options):
    try:
        return await AsyncHTTPClient().fetch(url, follow_redirects=False, **options)
    except HTTPClientError as error:
        return error.response


async def test_progress_without_a_token_is_401_with_a_json_reason(console):
    response = await fetch(f"{console}api/progress")
    assert response.code == 401 and b"send the server's API token" in response.body


async def test_a_solution_without_a_token_is_401_and_never_shown(console):
    response = await fetch(f"{console}api/solutions/1/batch")
    assert response.code == 401 and b"the solution" not in response.body


async def test_revealing_a_solution_without_token_or_xsrf_is_refused(console):
    body = '{"lab": 1, "exercise": "batch"}'
    response = await fetch(f"{console}api/solutions", method="POST", body=body)
    assert response.code == 403


async def test_the_page_sends_a_browser_to_the_hubs_login(console):
    response = await fetch(console)
    assert response.code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]


async def test_an_action_without_token_or_xsrf_is_refused_before_anything_runs(console):
    response = await fetch(f"{console}api/attendees/ada/stop", method="POST", body="{}")
    assert response.code == 403
