"""A room of strangers: Mallory has the room code and tries to be Ada.

Against the real compose stack, over HTTP as a browser does it. The HTTPS path is in
test_https.py.
"""

from __future__ import annotations

import time

import pytest
import requests

from .hub_client import Attendee, page_message
from .stack import ACCESS_CODE_OF_TESTS, ADMIN_PASSWORD_OF_TESTS, HubStack


@pytest.fixture(scope="module")
def ada_claimed(hub, access_code, ada) -> Attendee:
    """Ada (the shared attendee of conftest) has claimed her name and saved a file."""
    ada.api(
        "PUT", "contents/secret.txt", json={"type": "file", "format": "text", "content": "ada's"}
    )
    return ada


@pytest.mark.parametrize("spelling", ["ada", "Ada", "ADA"])
def test_mallory_with_the_room_code_cannot_become_ada(hub, access_code, ada_claimed, spelling):
    mallory = Attendee(hub.url, spelling, password="mallory-password")
    response = mallory.login(access_code)
    assert response.status_code == 403
    message = page_message(response.text)
    assert "The name 'ada' is taken" in message, message
    assert "ask the instructor to reset it" in message
    # The room code typed as the password does not open it either.
    assert mallory.login(access_code, password=access_code).status_code == 403
    peek = mallory.http.get(
        ada_claimed.user_url("api/contents/secret.txt"), timeout=30, allow_redirects=False
    )
    assert peek.status_code in (302, 403) and "ada's" not in peek.text
    assert "jupyterhub-hub-login" not in mallory.http.cookies


def test_ada_logs_back_in_from_a_fresh_browser_and_finds_her_file(hub, ada_claimed):
    again = Attendee(hub.url, "ada", password=ada_claimed.password)
    assert again.login().status_code == 200
    assert again.open_lab().status_code == 200
    assert again.api("GET", "contents/secret.txt").json()["content"] == "ada's"


def test_instructor_resets_a_password_and_the_work_stays(hub, access_code):
    grace = Attendee(hub.url, "grace")
    assert grace.login(access_code).status_code == 200
    grace.wait_until_ready()
    grace.open_lab()
    grace.api("PUT", "contents/mine.txt", json={"type": "file", "format": "text", "content": "g"})

    result = hub.hub_exec("workshop-hub", "reset-password", "Grace")
    assert result.returncode == 0, result.stderr
    new_password = result.stdout.split("New password for grace: ")[1].split()[0]

    assert Attendee(hub.url, "grace").login().status_code == 403, "the old password still works"
    back = Attendee(hub.url, "grace", password=new_password)
    assert back.login().status_code == 200
    back.open_lab()
    assert back.api("GET", "contents/mine.txt").json()["content"] == "g"
    back.stop_server()


def test_an_admin_name_cannot_be_claimed(hub, access_code):
    response = Attendee(hub.url, "instructor", password="i-want-admin").login(access_code)
    assert response.status_code == 403
    assert "admin account" in page_message(response.text)


def test_failed_logins_are_logged_and_slowed_down(hub, access_code):
    target = Attendee(hub.url, "target", password="the-real-one")
    assert target.login(access_code).status_code == 200
    guesser = Attendee(hub.url, "target")
    timings = []
    for attempt in range(6):
        started = time.monotonic()
        response = guesser.login(password=f"guess-{attempt}")
        timings.append(time.monotonic() - started)
        assert response.status_code == 403
    # Three free failures, then 1, 2, 4 s: the sixth guess waited at least 4 s.
    assert timings[-1] >= 3.5, timings
    assert timings[0] < 3, timings
    assert "Failed login for 'target'" in hub.logs()
    assert "Login refused for 'target' from" in hub.logs()


def test_a_room_code_that_is_not_ascii_stops_the_hub_with_one_line(hub):
    result = hub.compose(
        "run", "--rm", "--no-deps", "-e", "WORKSHOP_ACCESS_CODE=café-2026", "hub", check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "WORKSHOP_ACCESS_CODE" in output and "ASCII" in output
    assert "Traceback" not in output


def test_new_event_ends_every_old_session_and_keeps_the_work(lab_images):
    stack = HubStack(WORKSHOP_ACCESS_CODE="", WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD_OF_TESTS)
    try:
        stack.up()
        old_code = stack.hub_exec("workshop-hub", "access-code").stdout.strip()
        assert old_code and old_code != ACCESS_CODE_OF_TESTS
        lin = Attendee(stack.url, "lin")
        assert lin.login(old_code).status_code == 200
        lin.wait_until_ready()
        lin.open_lab()
        lin.api("PUT", "contents/day1.txt", json={"type": "file", "format": "text", "content": "1"})
        old_cookies = requests.utils.dict_from_cookiejar(lin.http.cookies)

        result = stack.hub_exec("workshop-hub", "new-event", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        new_code = result.stdout.split("New room code: ")[1].split()[0]
        assert new_code != old_code
        time.sleep(3)  # the hub ends itself a second after the command returns
        stack.wait_healthy()

        replay = requests.Session()
        replay.cookies.update(old_cookies)
        assert replay.get(f"{stack.url}/hub/api/user", timeout=30).status_code == 403
        home = replay.get(f"{stack.url}/hub/home", timeout=30)
        assert "/hub/login" in home.url, "the old session cookie still opens the hub"

        assert Attendee(stack.url, "newcomer").login(old_code).status_code == 403
        assert Attendee(stack.url, "newcomer").login(new_code).status_code == 200
        lin_again = Attendee(stack.url, "lin")
        assert lin_again.login().status_code == 200
        lin_again.wait_until_ready()
        lin_again.open_lab()
        assert lin_again.api("GET", "contents/day1.txt").json()["content"] == "1"
    finally:
        stack.down()
