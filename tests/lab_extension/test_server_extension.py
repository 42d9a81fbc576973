"""The attendee's help add-on, server side (lab-extension/workshop_help): a real Jupyter
server with the extension, as the lab image runs it, in front of the real console app on
loopback. What the page sends reaches the console as the attendee (the server's token), the
console's news comes back as it happens, and without a console the page gets a plain reason."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.console_app import console_app, serve_on_loopback
from workshop_help.handlers import NO_CONSOLE
from workshop_hub.console.hands import HandQueue
from workshop_hub.console.progress import ProgressBook
from workshop_hub.console.service import console_server

SERVER_START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class JupyterServer:
    """``jupyter server`` with workshop_help enabled, as the attendee's server runs it."""

    def __init__(self, folder: Path, environment: dict[str, str]):
        self.token, self.port = secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.folder, self.environment = folder, environment
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.jpserver_extensions={'workshop_help': True}",
            f"--ServerApp.root_dir={self.folder}",
            "--no-browser",
            "--allow-root",  # CI runs as root; the lab image runs it as uid 1000
            env={
                **os.environ,
                "JUPYTER_CONFIG_DIR": str(self.folder / "config"),
                **self.environment,
            },
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(self.folder / "server.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                await self.call("api/status")
                return
            except (HTTPClientError, OSError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"jupyter server did not start:\n{self.log()}")

    def jupyter_folders(self) -> dict[str, str]:
        """Config, data and runtime files in the test's folder, never the user's."""
        return {
            f"JUPYTER_{kind}_DIR": str(self.folder / kind.lower())
            for kind in ("CONFIG", "DATA", "RUNTIME")
        }

    async def call(self, path: str, method: str = "GET", body: object = None, **options):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        return await AsyncHTTPClient().fetch(
            self.url + path,
            method=method,
            body=data,
            headers={"Authorization": f"token {self.token}"},
            allow_nonstandard_methods=True,
            **options,
        )

    async def answer(self, path: str, method: str = "GET", body: object = None, **options):
        """(status, JSON) of a call, errors included."""
        try:
            response = await self.call(path, method, body, **options)
        except HTTPClientError as error:
            response = error.response
        return response.code, json.loads(response.body or b"null")

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@pytest.fixture
def hand_queue(tmp_path):
    return HandQueue(tmp_path / "hands.sqlite")


@pytest.fixture
async def console(tmp_path, monkeypatch, hand_queue):
    app = console_app(tmp_path, monkeypatch, ProgressBook(tmp_path / "progress.sqlite"), hand_queue)
    server = console_server(app)
    url, _ = serve_on_loopback(server)
    yield url, app
    server.stop()


@pytest.fixture
async def adas_server(tmp_path, console):
    url, _ = console
    folder = tmp_path / "ada"
    folder.mkdir()
    environment = {
        "WORKSHOP_CONSOLE_URL": url + "api/",
        "JUPYTERHUB_API_TOKEN": "ada-token",
        "JUPYTERHUB_USER": "ada",
    }
    server = JupyterServer(folder, environment)
    await server.start()
    yield server
    await server.stop()


async def test_a_hand_raised_in_jupyterlab_is_adas_in_the_console(adas_server, hand_queue):
    hand = {"kind": "stuck", "note": "exercise 3", "notebook": "01_intro_to_pytorch.ipynb"}
    status, raised = await adas_server.answer("workshop-help/hand", "POST", hand)
    assert status == 201, adas_server.log()
    assert raised["hand"]["attendee"] == "ada"
    assert hand_queue.mine("ada").note == "exercise 3"
    assert (await adas_server.answer("workshop-help/hand"))[1]["hand"]["kind"] == "stuck"
    assert await adas_server.answer("workshop-help/hand", "DELETE") == (200, {"lowered": True})
    assert hand_queue.mine("ada") is None


async def test_the_console_refusal_reaches_the_page_as_it_is(adas_server, hand_queue):
    status, refused = await adas_server.answer("workshop-help/hand", "POST", {"kind": "admin"})
    assert status == 400
    assert "'kind' must be one of stuck, done" in refused["message"]
    status, refused = await adas_server.answer("workshop-help/hand", "POST", b"x" * 5000)
    assert status == 413
    assert hand_queue.mine("ada") is None


async def test_news_reaches_an_open_jupyterlab_as_it_is_published(adas_server, console):
    _, app = console
    status, first = await adas_server.answer("workshop-help/notices")
    assert status == 200 and first["notices"] == []
    query = f"workshop-help/notices?after={first['seq']}&boot={first['boot']}"
    waiting = asyncio.ensure_future(adas_server.answer(query, request_timeout=40))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    published = time.monotonic()
    app.notices.publish("solution", "The solution to lab 1 · batch is out")
    status, news = await waiting
    assert time.monotonic() - published < 2
    assert [notice["text"] for notice in news["notices"]] == [
        "The solution to lab 1 · batch is out"
    ]


async def test_the_page_reads_adas_own_progress(adas_server):
    status, progress = await adas_server.answer("workshop-help/progress")
    assert status == 200
    assert list(progress["attendees"]) in ([], ["ada"])
    assert progress["course"] == {"1": ["batch"]}  # every exercise, tried or not


async def test_without_a_login_the_routes_are_closed(adas_server, hand_queue):
    try:
        await AsyncHTTPClient().fetch(
            adas_server.url + "workshop-help/hand", method="POST", body='{"kind": "stuck"}'
        )
        status = 200
    except HTTPClientError as error:
        status = error.code
    assert status == 403
    assert hand_queue.mine("ada") is None


async def test_outside_the_hub_the_page_is_told_to_raise_a_hand_in_the_room(tmp_path):
    server = JupyterServer(tmp_path, {"WORKSHOP_CONSOLE_URL": "", "JUPYTERHUB_API_TOKEN": ""})
    await server.start()
    try:
        status, answer = await server.answer("workshop-help/hand", "POST", {"kind": "stuck"})
    finally:
        await server.stop()
    assert status == 503
    assert answer["message"] == NO_CONSOLE
