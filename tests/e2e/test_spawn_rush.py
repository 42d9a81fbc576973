"""09:00: attendees press start together, against the real stack.

Servers start WORKSHOP_SPAWN_CONCURRENCY at a time; the others wait in line, see their place on
the spawn page, and are never refused. A hub restart loses nobody who waits: their page asks
again (checked in a real browser, Debian's chromium driven by Playwright).
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from workshop_hub.room.spawner import RUNNING_CPU_SHARES

from .browser import launch
from .hub_client import Attendee
from .stack import ACCESS_CODE_OF_TESTS, HubStack, progress

LIMIT = 2
BURST = 8
PLACE_MESSAGE = re.compile(
    r"You are (next|\d+(st|nd|rd|th)) in line, about \d+ (s|min)\. Keep this page open"
)
LOG_TIME = r"\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) JupyterHub [^\]]+\] "
# A hub restart, then six servers two at a time on a busy 2-core machine; far below the
# 120 s JupyterHub would wait for a server whose start it never saw finish.
RECOVERY_SECONDS = 90
# A page opened again by hand, its server running: the hub's redirects into JupyterLab.
REOPEN_SECONDS = 60
# What the hub logs once it serves, at each start.
HUB_RUNNING = "JupyterHub is now running"


@pytest.fixture(scope="module")
def rush(lab_images):
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_SPAWN_CONCURRENCY=str(LIMIT),
        # Small servers, so the room holds the burst on a small CI machine.
        WORKSHOP_MEM_LIMIT="1G",
        WORKSHOP_CPU_LIMIT="1",
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def turns_in_log(log: str) -> list[tuple[datetime, str, str]]:
    """(time, 'joins' | 'begins' | 'ends', name) of every spawn-line line in the hub's log."""
    found = []
    pattern = LOG_TIME + r"Spawn (?:of (\S+) (joins)|turn of (\S+) (begins|ends))"
    for match in re.finditer(pattern, log):
        stamp, joined, joins, turned, what = match.groups()
        found.append((datetime.fromisoformat(stamp), joins or what, joined or turned))
    return found


def most_turns_at_once(turns) -> int:
    holding = most = 0
    for _, what, _ in sorted(turns, key=lambda turn: (turn[0], turn[1] == "begins")):
        holding += {"begins": 1, "ends": -1}.get(what, 0)
        most = max(most, holding)
    return most


def test_a_burst_waits_in_line_in_order_and_everyone_gets_a_server(rush):
    attendees = [Attendee(rush.url, f"rush{number}") for number in range(BURST)]
    everyone_ready = threading.Barrier(BURST)

    def press_start(attendee: Attendee) -> list[tuple[float, dict]]:
        everyone_ready.wait()
        # One profile: logging in starts the server, as for a person.
        response = attendee.login(ACCESS_CODE_OF_TESTS)
        assert response.status_code == 200, (response.status_code, response.text[-500:])
        return attendee.wait_until_ready(timeout=300)

    with ThreadPoolExecutor(BURST) as pool:
        progress = {
            a.name: events
            for a, events in zip(attendees, pool.map(press_start, attendees), strict=True)
        }

    waited = {}
    for name, events in progress.items():
        assert events[-1][1].get("ready"), (name, events)
        places = [event for _, event in events if event.get("workshop_phase") == "queued"]
        positions = [event["queue_position"] for event in places]
        assert positions == sorted(positions, reverse=True), (name, positions)
        for event in places:
            assert PLACE_MESSAGE.match(event["message"]), event["message"]
            assert event["queue_wait_estimate"] > 0
        starting = [event for _, event in events if event.get("workshop_phase") == "starting"]
        assert [event["message"] for event in starting][-1] == "Starting JupyterLab", events
        if places:
            waited[name] = (positions[0], starting[0]["queue_wait"])
    # With 8 at once and 2 starting at a time, most attendees see their place in line,
    # and the ones who waited waited for real.
    assert len(waited) >= BURST // 2, progress
    assert max(position for position, _ in waited.values()) >= 3, waited
    assert all(seconds > 0 for _, seconds in waited.values()), waited

    # Starting servers went first; once running, every server weighs the same again.
    for name in progress:
        host_config = rush.attendee_container(name).attrs["HostConfig"]
        assert host_config["CpuShares"] == RUNNING_CPU_SHARES, (name, host_config["CpuShares"])

    log = rush.logs()
    turns = [turn for turn in turns_in_log(log) if turn[2].startswith("rush")]
    assert most_turns_at_once(turns) == LIMIT, turns
    joined = [name for _, what, name in turns if what == "joins"]
    began = [name for _, what, name in turns if what == "begins"]
    assert sorted(joined) == sorted(progress) and began == joined, turns
    # Never "Too many users" (JupyterHub's 429 for concurrent spawns).
    assert not re.search(r"\b429 (GET|POST) /hub/spawn", log), log[-3000:]


def test_the_page_of_someone_waiting_asks_again_after_a_hub_restart(rush):
    names = [f"wait{number}" for number in range(6)]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            pages = {}
            for name in names:
                page = browser.new_context().new_page()
                page.goto(f"{rush.url}/hub/login")
                page.fill("#username_input", name)
                page.fill("#password_input", f"{name}-own-password")
                page.fill("#room_code_input", ACCESS_CODE_OF_TESTS)
                pages[name] = page
            # Everyone presses the button within a moment, as at 09:00 (a plain click would
            # wait for each page's navigation in turn).
            for page in pages.values():
                page.evaluate(
                    "() => setTimeout(() => document.getElementById('login_submit').click())"
                )
            # Some wait in line, and their page says where.
            places = {}
            deadline = time.monotonic() + 60
            while len(places) < 2 and time.monotonic() < deadline:
                places = {name: place_in_line(page) for name, page in pages.items()}
                places = {name: place for name, place in places.items() if place}
                time.sleep(0.1)
            assert len(places) >= 2, {name: page_text(page) for name, page in pages.items()}
            last_in_line = max(places, key=places.get)

            starts_before = rush.logs().count(HUB_RUNNING)
            # Docker's restart, not compose's: no command start-up between the look and it.
            rush.docker.containers.get(rush.compose("ps", "-q", "hub").stdout.strip()).restart(
                timeout=5
            )
            # Everyone ends up in JupyterLab, with no click: the pages asked again (those
            # whose start was cut short as well as those who waited).
            deadline = time.monotonic() + RECOVERY_SECONDS
            for name, page in pages.items():
                in_lab = re.compile(rf"/user/{name}/lab")
                try:
                    page.wait_for_url(in_lab, timeout=ms_left(deadline))
                except PlaywrightError as error:
                    # The new hub, not the old one answering while it shuts down.
                    while rush.logs().count(HUB_RUNNING) == starts_before:
                        assert time.monotonic() < deadline, "the hub did not start again"
                        time.sleep(0.5)
                    rush.wait_healthy()
                    if name not in started_before_the_restart(rush.logs()):
                        raise AssertionError(
                            f"{name}'s page stayed at {page.url}: {page_body(page)[:800]}\n"
                            f"--- hub log ---\n{rush.logs()[-6000:]}"
                        ) from error
                    # Not waiting when the hub went: its server had started (maybe after the
                    # look above, while the hub shut down) and its page was on its way into
                    # JupyterLab through the hub's OAuth redirects when the hub's container
                    # stopped. No page script survives that (the browser's error page, a failed
                    # OAuth callback, a blank page). A person opens the hub's address again.
                    # Pages whose server had not started must come back alone.
                    progress(
                        f"{name}: on its way in at the restart ({page.url[:80]}); opened again"
                    )
                    # Its own time: waiting for it to come back alone may have used all of
                    # the deadline.
                    reopened = time.monotonic() + REOPEN_SECONDS
                    page.goto(f"{rush.url}/hub/", timeout=ms_left(reopened))
                    page.wait_for_url(in_lab, timeout=ms_left(reopened))
        finally:
            browser.close()
    since_restart = rush.logs().rsplit(HUB_RUNNING, 1)[1]
    joined_again = {name for _, what, name in turns_in_log(since_restart) if what == "joins"}
    assert last_in_line in joined_again, (places, since_restart[-3000:])
    line_file = rush.hub_exec("cat", "/srv/jupyterhub/data/spawn-line.json")
    assert line_file.stdout.strip() == "{}", line_file


def place_in_line(page) -> int | None:
    """The position the page shows, e.g. 3 for "You are 3rd in line"; 1 for "next"."""
    found = re.match(r"You are (next|(\d+)\w\w) in line", page_text(page))
    if not found:
        return None
    return int(found.group(2) or 1)


def ms_left(deadline: float) -> float:
    return max(1, deadline - time.monotonic()) * 1000


def started_before_the_restart(log: str) -> set[str]:
    """The attendees whose server the hub saw start before its last start."""
    before = log.rsplit(HUB_RUNNING, 1)[0]
    return set(re.findall(r"User (\S+) took [0-9.]+ seconds to start", before))


def page_body(page) -> str:
    """All the text of the page, or why it could not be read."""
    try:
        return page.inner_text("body")
    except PlaywrightError as error:
        return f"(unreadable: {error})"


def page_text(page) -> str:
    """The spawn page's progress message; empty on any other page or while one loads."""
    try:
        return page.evaluate("() => document.getElementById('progress-message')?.textContent || ''")
    except PlaywrightError:
        return ""


def test_starting_a_server_imports_nothing_heavy(docker_client, lab_images):
    """What runs at every container start (seeding the labs, the server) never imports
    torch, nor the grammar compiler that once cost a CPU-second per start; extensions
    attendees have no use for stay off."""
    heavy = ["torch", "numpy", "matplotlib", "rfc3987_syntax"]
    script = (
        "import sys, workshop_labs.workfolder, jupyterhub.singleuser, jupyter_server.serverapp\n"
        f"print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    output = docker_client.containers.run(
        lab_images["cpu"],
        ["sh", "-c", 'python -c "$SCRIPT" && jupyter server extension list 2>&1'],
        environment={"SCRIPT": script},
        remove=True,
        network_mode="none",
    ).decode()
    assert output.splitlines()[0] == "[]", output
    assert re.search(r"jupyter_lsp \S*disabled", output), output
