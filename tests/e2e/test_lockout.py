"""Nobody locks anybody out: sixty guesses at once for Grace's name, against the real stack.

Grace logged in before from her laptop, which keeps the hub's signed device cookie (and only
that: she logged out). Strangers' guesses are refused at once, and her own login from that
laptop is not held up by them; from a browser she never used, it is (the control).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from workshop_hub.auth import DEVICE_COOKIE

from .hub_client import page_message

NAME = "grace-lockout"
PASSWORD = "grace-own-password"
GUESSES = 60


def login_form(hub_url: str, session: requests.Session | None = None) -> requests.Session:
    """A browser with the login page open (its XSRF cookie set)."""
    session = session or requests.Session()
    session.get(f"{hub_url}/hub/login", timeout=30).raise_for_status()
    return session


def submit(
    hub_url: str, session: requests.Session, password: str, room_code: str = ""
) -> requests.Response:
    """Press the login button; the redirect to the server (which would start it) not followed."""
    return session.post(
        f"{hub_url}/hub/login",
        data={
            "username": NAME,
            "password": password,
            "room_code": room_code,
            "_xsrf": session.cookies.get("_xsrf"),
        },
        timeout=30,
        allow_redirects=False,
    )


def test_sixty_guesses_at_once_neither_wait_nor_keep_grace_out_of_her_laptop(hub, access_code):
    laptop = login_form(hub.url)
    assert submit(hub.url, laptop, PASSWORD, access_code).status_code == 302
    device_cookies = [cookie for cookie in laptop.cookies if cookie.name == DEVICE_COOKIE]
    assert len(device_cookies) == 1, list(laptop.cookies)
    assert device_cookies[0].has_nonstandard_attr("HttpOnly")

    # Each guesser opens the form first, then all press the button together.
    guessers = [login_form(hub.url) for _ in range(GUESSES)]
    together = threading.Barrier(GUESSES)

    def guess(index: int) -> tuple[int, float, requests.Response]:
        together.wait(timeout=60)
        started = time.monotonic()
        response = submit(hub.url, guessers[index], f"guess-{index}")
        return response.status_code, time.monotonic() - started, response

    with ThreadPoolExecutor(GUESSES) as pool:
        answers = list(pool.map(guess, range(GUESSES)))
    statuses = [status for status, _, _ in answers]
    waits = [wait for _, wait, _ in answers]
    assert set(statuses) <= {403, 429}, statuses
    assert statuses.count(429) >= GUESSES - 5, statuses
    # Refused at once: nobody queues behind anybody.
    assert max(waits) < 3, sorted(waits)[-5:]
    throttled = next(response for status, _, response in answers if status == 429)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "Too many tries for this name: wait" in page_message(throttled.text)

    # The control: from a browser that never logged in as Grace, her own password waits.
    elsewhere = submit(hub.url, login_form(hub.url), PASSWORD)
    assert elsewhere.status_code == 429, page_message(elsewhere.text)

    # Her laptop after logging out: a fresh browser session holding only the device cookie.
    after_logout = requests.Session()
    after_logout.cookies.set_cookie(device_cookies[0])
    login_form(hub.url, after_logout)
    started = time.monotonic()
    response = submit(hub.url, after_logout, PASSWORD)
    took = time.monotonic() - started
    assert response.status_code == 302, page_message(response.text)
    assert took < 3, took
    assert f"Login refused for '{NAME}' from" in hub.logs()
