"""An attendee's browser, in Python: log in, start a server, run code in a real kernel."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests
import websocket

from workshop_hub.organizer.cell import CellReplies, execute_request
from workshop_hub.organizer.rehearsal import page_message


class SpawnFailed(Exception):
    """The hub reported that the server could not start; the message is what it showed."""


@dataclass
class CodeResult:
    stdout: str
    error: str | None


class Attendee:
    def __init__(
        self, base_url: str, name: str, password: str | None = None, ca_file: str | None = None
    ):
        self.base_url = base_url.rstrip("/")
        self.name = name
        # The attendee's own password, chosen at the first login.
        self.password = password or f"{name}-own-password"
        self.http = requests.Session()
        # Over HTTPS, the CA to trust (like a browser's store), for requests and the websocket.
        # Without trust_env, REQUESTS_CA_BUNDLE cannot override it.
        self.ca_file = ca_file
        if ca_file:
            self.http.verify = ca_file
            self.http.trust_env = False

    # --- the hub ---------------------------------------------------------------------------

    def _hub_xsrf(self) -> str:
        return self.http.cookies.get("_xsrf", path="/hub/") or self.http.cookies.get("_xsrf")

    def login(
        self, room_code: str = "", username: str | None = None, password: str | None = None
    ) -> requests.Response:
        """Fill in the login form like a browser; returns the final response.

        Name, own password and room code, as at a first login (the hub ignores the room code
        once the name is claimed); `room_code=""` logs in as someone who has been here before.
        """
        self.http.get(f"{self.base_url}/hub/login", timeout=30)
        return self.http.post(
            f"{self.base_url}/hub/login",
            data={
                "username": self.name if username is None else username,
                "password": self.password if password is None else password,
                "room_code": room_code,
                "_xsrf": self._hub_xsrf(),
            },
            timeout=30,
        )

    def new_api_token(self, note: str = "an attendee's own token") -> str:
        """An API token of the attendee's own, made as the hub's token page makes one."""
        response = self.http.post(
            f"{self.base_url}/hub/api/users/{self.name}/tokens",
            json={"note": note, "expires_in": 600},
            headers={"X-XSRFToken": self._hub_xsrf()},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["token"]

    def login_as_admin(self, admin_password: str) -> requests.Response:
        return self.login(password=admin_password)

    def spawn_form(self) -> requests.Response:
        return self.http.get(f"{self.base_url}/hub/spawn/{self.name}", timeout=30)

    def start_server(self, profile: str | None = None, timeout: float = 300) -> float:
        """Press start (choosing `profile` on the form); seconds until the server is ready."""
        started = time.monotonic()
        data = {"_xsrf": self._hub_xsrf()}
        if profile:
            data["profile"] = profile
        response = self.http.post(
            f"{self.base_url}/hub/spawn/{self.name}", data=data, timeout=60, allow_redirects=False
        )
        if response.status_code >= 400:
            raise SpawnFailed(f"HTTP {response.status_code}: {page_message(response.text)}")
        self.wait_until_ready(timeout)
        return time.monotonic() - started

    def wait_until_ready(self, timeout: float = 300) -> list[tuple[float, dict]]:
        """Follow the spawn's progress events, as the spawn-pending page does; returns them
        with the monotonic time each arrived."""
        url = f"{self.base_url}/hub/api/users/{self.name}/server/progress"
        deadline = time.monotonic() + timeout
        events = []
        with self.http.get(url, stream=True, timeout=timeout) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    break
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line[len("data:") :])
                events.append((time.monotonic(), event))
                if event.get("failed"):
                    raise SpawnFailed(event.get("message", "spawn failed"))
                if event.get("ready"):
                    return events
        raise TimeoutError(f"{self.name}'s server was not ready after {timeout:.0f} s")

    def server_info(self) -> dict:
        response = self.http.get(f"{self.base_url}/hub/api/users/{self.name}", timeout=30)
        response.raise_for_status()
        return response.json()

    def stop_server(self, timeout: float = 120) -> None:
        response = self.http.delete(
            f"{self.base_url}/hub/api/users/{self.name}/server",
            headers={"X-XSRFToken": self._hub_xsrf()},
            timeout=60,
        )
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server_info()["servers"]:
                return
            time.sleep(1)
        raise TimeoutError(f"{self.name}'s server did not stop within {timeout:.0f} s")

    # --- the attendee's own server ---------------------------------------------------------

    def user_url(self, path: str = "", owner: str | None = None) -> str:
        return f"{self.base_url}/user/{owner or self.name}/{path}"

    def open_lab(self, owner: str | None = None) -> requests.Response:
        """Open JupyterLab, which completes the server's OAuth handshake with the hub."""
        return self.http.get(self.user_url("lab", owner), timeout=60)

    def _server_xsrf(self) -> str:
        return self.http.cookies.get("_xsrf", path=f"/user/{self.name}/") or ""

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-XSRFToken": self._server_xsrf(), **kwargs.pop("headers", {})}
        return self.http.request(
            method, self.user_url(f"api/{path}"), headers=headers, timeout=60, **kwargs
        )

    def run_code(self, code: str, timeout: float = 120) -> CodeResult:
        """Execute `code` in a new kernel over the Jupyter websocket, as JupyterLab does."""
        with self.kernel(timeout) as run:
            return run(code)

    @contextlib.contextmanager
    def kernel(self, timeout: float = 120) -> Iterator[Callable[[str], CodeResult]]:
        """A new kernel for the block: ``run(code)`` executes cells in it, one after another."""
        response = self.api("POST", "kernels", json={"name": "python3"})
        response.raise_for_status()
        kernel_id = response.json()["id"]
        try:
            yield lambda code: self._execute(kernel_id, code, timeout)
        finally:
            self.api("DELETE", f"kernels/{kernel_id}")

    def _execute(self, kernel_id: str, code: str, timeout: float) -> CodeResult:
        ws_url = self.user_url(f"api/kernels/{kernel_id}/channels").replace("http", "ws", 1)
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        connection = websocket.create_connection(
            ws_url,
            header=[f"Cookie: {cookies}"],
            timeout=timeout,
            sslopt={"ca_certs": self.ca_file} if self.ca_file else None,
        )
        request = execute_request(code, self.name)
        replies = CellReplies(request)
        connection.send(json.dumps(request))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if replies.add(json.loads(connection.recv())):
                    return CodeResult(replies.output, replies.error)
        finally:
            connection.close()
        raise TimeoutError(f"code did not finish within {timeout:.0f} s: {code[:80]!r}")
