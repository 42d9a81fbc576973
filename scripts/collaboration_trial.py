"""Would real-time collaboration (jupyter-collaboration) survive a workshop? A trial in a real
browser, run before turning it on for the instructor's "type along" help.

    python scripts/collaboration_trial.py --jupyter /path/to/venv/bin/jupyter [--outage 60]

The venv must hold jupyterlab and jupyter-collaboration (the lab image does not: it is off
until this trial passes). The script starts that JupyterLab on loopback with a notebook of
three cells, opens it in two Chromium contexts (the attendee's and the instructor's), and:

1. both type into the notebook at once, turn by turn (the attendee into cell 1, the
   instructor into cell 2), and the attendee adds a cell;
2. the attendee's laptop drops off the network for OUTAGE seconds (its connections go through
   a relay that stops forwarding, then drops them, as venue Wi-Fi does) while both keep typing;
3. the attendee comes back, then the server restarts.

It then reads the notebook from disk and from both pages, and prints PASS only when every
line typed is there exactly once, in its cell, and no cell is lost or duplicated. The exit
status is 0 for PASS and 1 for FAIL, with the differences listed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
NOTEBOOK = "trial.ipynb"
FIRST_CELLS = ["# the attendee's cell", "# the instructor's cell", "# nobody's cell"]
TURNS = 5  # lines each person types before, during and after the outage


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def say(line: str) -> None:
    print(f"[trial {time.strftime('%H:%M:%S')}] {line}", flush=True)


class FlakyWifi:
    """A TCP relay from a loopback port to the server. ``drop()`` stops forwarding (bytes wait,
    as on a Wi-Fi that went away), ``restore()`` closes every connection made so far (the NAT
    forgot them) and forwards again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.online = threading.Event()
        self.online.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # the server is restarting: refused, as a browser would see
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self.online.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> None:
        self.online.clear()

    def restore(self) -> None:
        with self.lock:
            held, self.sockets = self.sockets, []
        for end in held:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()
        self.online.set()


class Server:
    """JupyterLab with jupyter-collaboration, on loopback, in ``root``."""

    def __init__(self, jupyter: str, root: Path):
        self.jupyter, self.root = jupyter, root
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.log = open(root.parent / "server.log", "a")  # noqa: SIM115 (kept for the run)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.jupyter,
                "lab",
                "--no-browser",
                f"--ServerApp.root_dir={self.root}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                f"--IdentityProvider.token={self.token}",
                "--ServerApp.port_retries=0",
                *(["--allow-root"] if os.geteuid() == 0 else []),  # a CI machine's root
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root.parent,  # where the collaboration keeps its store (.jupyter_ystore.db)
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(
                    f"http://127.0.0.1:{self.port}/api/status",
                    params={"token": self.token},
                    timeout=2,
                ).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"JupyterLab did not start: see {self.log.name}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def has_collaboration(self) -> bool:
        listed = subprocess.run(
            [self.jupyter, "labextension", "list"], capture_output=True, text=True, check=False
        )
        return "@jupyter/collaboration-extension" in listed.stdout + listed.stderr


def dismiss_dialogs(page, wait_ms: int = 0) -> None:
    """Close JupyterLab's dialogs as a person would (the venv may have no kernel, and a
    restarted server brings "Server Connection Error"); the trial edits text only."""
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.first.wait_for(timeout=max(wait_ms, 1))
    except PlaywrightTimeout:
        return
    while dialog.count():
        page.keyboard.press("Escape")
        time.sleep(0.5)


def type_line(page, cell: int, text: str) -> str | None:
    """Type ``text`` on a new last line of ``cell``; what stopped it, or None."""
    editor = page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".cm-content")
    for _ in range(6):
        dismiss_dialogs(page)
        try:
            editor.click(timeout=5_000)
        except PlaywrightTimeout:
            continue
        page.keyboard.press("Control+End")
        page.keyboard.type(f"\n{text}", delay=5)
        # Only a line the person saw on their own page counts as typed: a loss found later
        # is then the collaboration's, not keys that went to a dialog.
        if text in editor.inner_text():
            return None
        time.sleep(1)
        if text in editor.inner_text():
            return None
        return f"typed {text!r}, but the page never showed it"
    dialog = page.locator(".jp-Dialog")
    return f"could not type {text!r}: " + (
        dialog.first.inner_text().splitlines()[0] if dialog.count() else "the cell never answered"
    )


def cells_on_page(page) -> list[str]:
    return page.locator(".jp-Notebook .jp-Cell .cm-content").all_inner_texts()


def differences(cells: list[str], expected: list[list[str]], where: str) -> list[str]:
    """What is lost, duplicated or misplaced in ``cells`` (each cell's text)."""
    found = []
    if len(cells) != len(expected):
        found.append(f"{where}: {len(cells)} cells, expected {len(expected)}")
    everything = "\n".join(cells)
    for index, lines in enumerate(expected):
        for line in lines:
            count = everything.count(line)
            if count != 1:
                found.append(f"{where}: {line!r} appears {count} times")
            elif index < len(cells) and line not in cells[index]:
                found.append(f"{where}: {line!r} is not in cell {index + 1}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jupyter", required=True, help="the venv's jupyter executable")
    parser.add_argument("--outage", type=float, default=60, help="seconds off the network")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="collaboration-trial-"))
    root = folder / "work"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(t) for t in FIRST_CELLS])
    nbformat.write(notebook, root / NOTEBOOK)
    server = Server(args.jupyter, root)
    server.start()
    if not server.has_collaboration():
        raise SystemExit(f"{args.jupyter} has no jupyter-collaboration: pip install it there")
    wifi = FlakyWifi(server.port)
    expected = [[FIRST_CELLS[0]], [FIRST_CELLS[1]], [FIRST_CELLS[2]]]
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            pages = {}
            for who, port in (("attendee", wifi.port), ("instructor", server.port)):
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={server.token}")
                page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for(timeout=60_000)
                dismiss_dialogs(page, wait_ms=5_000)
                pages[who] = page
            attendee, instructor = pages["attendee"], pages["instructor"]

            def turns(phase: str) -> None:
                for turn in range(TURNS):
                    for who, page, cell in (
                        (("attendee", attendee, 0)),
                        ("instructor", instructor, 1),
                    ):
                        line = f"# {who} {phase} {turn}"
                        type_line(page, cell, line)
                        expected[cell].append(line)

            say("1. both type at once")
            turns("together")
            attendee.locator(".jp-Notebook .jp-Cell").nth(2).click()
            attendee.keyboard.press("Escape")
            attendee.keyboard.press("b")  # a new cell below the last
            attendee.keyboard.press("Enter")
            attendee.keyboard.type("# the attendee's new cell", delay=5)
            expected.append(["# the attendee's new cell"])
            time.sleep(3)

            say(f"2. the attendee drops off the network for {args.outage:g} s")
            wifi.drop()
            turns("outage")
            time.sleep(max(0.0, args.outage - 2 * TURNS))
            wifi.restore()
            say("   back on the network")
            time.sleep(15)

            say("3. the server restarts")
            server.stop()
            server.start()
            time.sleep(20)
            turns("after")
            time.sleep(10)
            attendee.keyboard.press("Control+s")
            time.sleep(5)
            for who, page in pages.items():
                problems += differences(cells_on_page(page), expected, f"{who}'s page")
        finally:
            browser.close()
            server.stop()
    on_disk = [cell.source for cell in nbformat.read(root / NOTEBOOK, as_version=4).cells]
    problems += differences(on_disk, expected, "the file on disk")
    say(f"expected cells: {json.dumps(expected)}")
    if problems:
        say("FAIL: " + "; ".join(problems))
        return 1
    say(f"PASS: {sum(map(len, expected))} lines in {len(expected)} cells, none lost or doubled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
