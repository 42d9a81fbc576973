"""The room is warm at 09:00: a roster of three gets login cards, their servers start before
they arrive, and each first login lands in a running JupyterLab.

Against the real compose stack: the organizer's commands run in the hub's container as
docs/organizers.md gives them, the instructor reads the cards page in a real browser (Chromium via
Playwright) and the QR codes are read back from its screenshot by an independent decoder
(zxing-cpp); attendees log in over HTTP as a browser does.
"""

from __future__ import annotations

import io
import time

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from .browser import launch, log_in, screenshot
from .hub_client import Attendee, page_message
from .stack import progress

# Grace's display name carries markup, Alan's is as long as a display name may be, without a
# space: neither may act on the page or spill onto the next card (its QR code would not read).
LONG_NAME = ("Alan_Mathison_Turing_" * 3)[:60]
ROSTER = (
    "name,display name\ncard-ada,Ada Lovelace\ncard-grace,Grace <b>Hopper</b>\n"
    f"card-alan,{LONG_NAME}\n"
)
NAMES = ["card-ada", "card-grace", "card-alan"]
CARDS = "services/console/cards"
# The console renews a warm server's activity every warm_room.TOUCH_SECONDS (30 s).
KEPT_WITHIN_S = 45


@pytest.fixture(scope="module")
def instructor_password(hub) -> str:
    return hub.hub_exec("workshop-hub", "admin-password").stdout.split()[-1]


def organizer(hub, *command: str, stdin: str | None = None, timeout: float = 600) -> str:
    """Run `workshop-hub COMMAND` in the hub's container; its output (fails on an error)."""
    done = hub.hub_exec("workshop-hub", *command, stdin=stdin, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def users(hub, instructor: Attendee) -> dict[str, dict]:
    answer = instructor.http.get(f"{hub.url}/hub/api/users", timeout=30)
    answer.raise_for_status()
    return {user["name"]: user for user in answer.json()}


def instructor_session(hub, password: str) -> Attendee:
    instructor = Attendee(hub.url, "instructor", password=password)
    assert instructor.login().status_code == 200
    return instructor


@pytest.fixture(scope="module")
def rostered(hub, instructor_password):
    organizer(hub, "roster", "add", "-", stdin=ROSTER)
    yield
    # Off the roster, and no server of theirs left for the tests after these.
    instructor = instructor_session(hub, instructor_password)
    for name in NAMES:
        hub.hub_exec("workshop-hub", "roster", "remove", name)
        instructor.http.delete(
            f"{hub.url}/hub/api/users/{name}/server",
            headers={"X-XSRFToken": instructor._hub_xsrf()},
            timeout=60,
        )


def test_the_cards_command_writes_the_page_to_print(hub, rostered):
    page = organizer(hub, "roster", "cards")
    assert page.count('class="card"') == 3 and "<script" not in page
    assert all(f'data-name="{name}"' in page for name in NAMES)
    listed = organizer(hub, "roster", "list")
    assert "3 on the roster" in listed and listed.count("card not used yet") == 3, listed


def test_a_roster_of_three_gets_cards_a_warm_room_and_one_time_logins(
    hub, ada, access_code, instructor_password, rostered
):
    # The cards page: for instructors only (Ada is an attendee who walked in).
    assert ada.http.get(f"{hub.url}/{CARDS}", timeout=30).status_code == 403

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        log_in(page, hub.url, "instructor", instructor_password)
        page.goto(f"{hub.url}/{CARDS}")
        cards = page.locator("section.card")
        expect(cards).to_have_count(3)
        one_time, decoded = {}, {}
        for card in cards.all():
            name = card.locator(".name").inner_text()
            one_time[name] = card.locator(".one-time-password").inner_text()
            expect(card.locator(".address")).to_have_text(f"{hub.url}/")
            # Each card's QR code as the browser drew it, read by an independent decoder.
            drawn = Image.open(io.BytesIO(card.locator(".qr").screenshot())).convert("L")
            decoded[name] = [code.text for code in zxingcpp.read_barcodes(drawn)]
        assert sorted(one_time) == sorted(NAMES)
        # The organizer's markup in a display name is shown as text.
        expect(page.get_by_text("Grace <b>Hopper</b>")).to_be_visible()
        screenshot(page, "warm-room-login-cards")
        browser.close()
    assert decoded == {name: [f"{hub.url}/"] for name in NAMES}, decoded

    # A walk-in with the room code cannot take a rostered name.
    mallory = Attendee(hub.url, "card-grace", password="mallory-password")
    refused = mallory.login(access_code)
    assert refused.status_code == 403
    assert "reserved for an attendee on the list" in page_message(refused.text)

    # Warm the room: every rostered server runs before anyone logs in.
    warmed = organizer(hub, "warm-room", "--profile", "cpu")
    progress(warmed.strip().splitlines()[-1])
    assert "3 of 3 servers warm" in warmed, warmed
    instructor = instructor_session(hub, instructor_password)
    before = users(hub, instructor)
    assert all(before[name]["servers"][""]["ready"] for name in NAMES), before
    room = instructor.http.get(f"{hub.url}/services/console/api/room", timeout=30).json()
    states = {row["name"]: row["server"] for row in room["rows"]}
    assert [states[name] for name in NAMES] == ["warm"] * 3, states

    # The console keeps them from the idle culler: their activity moves with nobody there.
    deadline = time.monotonic() + KEPT_WITHIN_S
    while time.monotonic() < deadline:
        now = users(hub, instructor)
        if all(now[n]["last_activity"] != before[n]["last_activity"] for n in NAMES):
            break
        time.sleep(3)
    else:
        pytest.fail(f"no activity kept for the warm servers in {KEPT_WITHIN_S} s: {now}")

    # Ada uses her card: the card's password as the room code, her own password with it.
    card_ada = Attendee(hub.url, "card-ada", password="ada-chose-this")
    card = one_time["card-ada"]
    typed_as_password = card_ada.login(password=card)
    assert typed_as_password.status_code == 403
    assert "type it in the Room code box" in page_message(typed_as_password.text)
    landed = card_ada.login(card)
    assert landed.status_code == 200, page_message(landed.text)
    visited = [response.url for response in landed.history] + [landed.url]
    assert "/user/card-ada/lab" in landed.url, visited
    assert not any("/hub/spawn" in url for url in visited), visited  # no spawn page at all
    assert card_ada.open_lab().status_code == 200

    # The card worked once: it opens nothing now; her own password does (her browser's
    # tries have a budget of their own, past the other browser's failures).
    again = Attendee(hub.url, "card-ada", password=card)
    assert again.login().status_code == 403
    assert again.login(card, password="someone-else-pass").status_code == 403
    assert card_ada.login().status_code == 200
    room = instructor.http.get(f"{hub.url}/services/console/api/room", timeout=30).json()
    states = {row["name"]: row["server"] for row in room["rows"]}
    assert states["card-ada"] == "running" and states["card-grace"] == "warm", states

    # Taken off the roster, Grace's name is free for the room code again.
    organizer(hub, "roster", "remove", "card-grace")
    grace = Attendee(hub.url, "card-grace", password="grace-walks-in")
    for _ in range(10):  # her warm server stops first
        claimed = grace.login(access_code)
        if claimed.status_code != 429:
            break
        time.sleep(float(claimed.headers.get("Retry-After", 3)))
    assert claimed.status_code == 200, page_message(claimed.text)
