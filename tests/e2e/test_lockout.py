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

from workshop_hub.access.auth import DEVICE_COOKIE

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


def guess_together(
    hub_url: str, guessers: list[requests.Session]
) -> list[tuple[requests.Response, float]]:
    """Every guesser presses the button at the same moment; each answer and how long it took."""
    together = threading.Barrier(len(guessers))

    def guess(index: int) -> tuple[requests.Response, float]:
        together.wait(timeout=60)
        started = time.monotonic()
        response = submit(hub_url, guessers[index], f"guess-{index}")
        return response, time.monotonic() - started

    with ThreadPoolExecutor(len(guessers)) as pool:
        return list(pool.map(guess, range(len(guessers))))


def test_sixty_guesses_at_once_neither_wait_nor_keep_grace_out_of_her_laptop(hub, access_code):
    laptop = login_form(hub.url)
    assert submit(hub.url, laptop, PASSWORD, access_code).status_code == 302
    device_cookies = [cookie for cookie in laptop.cookies if cookie.name == DEVICE_COOKIE]
    assert len(device_cookies) == 1, list(laptop.cookies)
    assert device_cookies[0].has_nonstandard_attr("HttpOnly")

    # The guessers keep at it: each round, all sixty at once as soon as the hub lets one in,
    # until a try for her name must wait 8 s (1, 2, 4, then 8 s: four rounds).
    guessers = [login_form(hub.url) for _ in range(GUESSES)]
    retry_after = 0
    for _ in range(4):
        time.sleep(retry_after)
        answers = guess_together(hub.url, guessers)
        statuses = [response.status_code for response, _ in answers]
        assert set(statuses) <= {403, 429}, statuses
        assert statuses.count(429) >= GUESSES - 5, statuses
        # Refused at once: nobody queues behind anybody.
        assert max(wait for _, wait in answers) < 3, sorted(wait for _, wait in answers)[-5:]
        throttled = next(response for response, _ in answers if response.status_code == 429)
        assert "Too many tries for this name: wait" in page_message(throttled.text)
        retry_after = int(throttled.headers["Retry-After"])
    assert retry_after >= 8, retry_after

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
