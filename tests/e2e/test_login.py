"""A room of strangers: Mallory has the room code and tries to be Ada.

Against the real compose stack, over HTTP as a browser does it. The HTTPS path is in
test_https.py.
"""

from __future__ import annotations

import time

import pytest
import requests

from workshop_hub.access.throttle import ADDRESS_RULE

from .hub_client import Attendee, page_message
from .stack import ACCESS_CODE_OF_TESTS, ADMIN_PASSWORD_OF_TESTS, HubStack


@pytest.fixture(scope="module")
def ada_claimed(hub, access_code, ada) -> Attendee:
    """Ada (the shared attendee of conftest) has claimed her name and saved a file."""
    ada.api(
        "PUT", "contents/secret.txt", json={"type": "file", "format": "text", "content": "ada's"}
    )
    return ada


def test_mallory_with_the_room_code_cannot_become_ada(hub, access_code, ada_claimed):
    # Three tries, one per spelling: the name's free failures (then the throttle answers 429).
    for spelling in ["ada", "Ada", "ADA"]:
        mallory = Attendee(hub.url, spelling, password="mallory-password")
        response = mallory.login(access_code)
        assert response.status_code == 403
        message = page_message(response.text)
        assert "The name 'ada' is taken" in message, message
        assert "ask the instructor to reset it" in message
    # The room code typed as the password does not open it either.
    assert mallory.login(access_code, password=access_code).status_code in (403, 429)
    peek = mallory.http.get(
        ada_claimed.user_url("api/contents/secret.txt"), timeout=30, allow_redirects=False
    )
    assert peek.status_code in (302, 403) and "ada's" not in peek.text
    assert "jupyterhub-hub-login" not in mallory.http.cookies


def test_ada_logs_back_in_from_a_fresh_browser_and_finds_her_file(hub, ada_claimed):
    again = Attendee(hub.url, "ada", password=ada_claimed.password)
    response = again.login()
    if response.status_code == 429:
        # Mallory's tries a moment ago: a browser Ada never used waits as it is told (her own
        # laptop would not: tests/e2e/test_lockout.py).
        time.sleep(float(response.headers["Retry-After"]))
        response = again.login()
    assert response.status_code == 200
    assert again.open_lab().status_code == 200
    assert again.api("GET", "contents/secret.txt").json()["content"] == "ada's"


def test_a_reset_ends_every_session_token_and_server_and_the_work_stays(hub, access_code):
    """An intruder who got into Grace's account keeps nothing once the instructor resets it:
    not the hub's cookie, not a token, not the server."""
    grace = Attendee(hub.url, "grace")
    assert grace.login(access_code).status_code == 200
    grace.wait_until_ready()
    grace.open_lab()
    grace.api("PUT", "contents/mine.txt", json={"type": "file", "format": "text", "content": "g"})
    intruder = requests.Session()
    intruder.cookies.update(grace.http.cookies)
    token = {"Authorization": f"token {grace.new_api_token('the intruder kept this')}"}
    old_server = hub.attendee_container("grace").id
    # The control: before the reset, the intruder's cookie and token open the hub as Grace.
    assert intruder.get(f"{hub.url}/hub/api/user", timeout=30).json()["name"] == "grace"
    assert requests.get(f"{hub.url}/hub/api/user", headers=token, timeout=30).ok

    result = hub.hub_exec("workshop-hub", "reset-password", "Grace")
    assert result.returncode == 0, result.stdout + result.stderr
    new_password = result.stdout.split("New password for grace: ")[1].split()[0]

    assert intruder.get(f"{hub.url}/hub/api/user", timeout=30).status_code == 403
    assert "/hub/login" in intruder.get(f"{hub.url}/hub/home", timeout=30).url
    assert requests.get(f"{hub.url}/hub/api/user", headers=token, timeout=30).status_code == 403
    peek = intruder.get(grace.user_url("api/contents/mine.txt"), timeout=30)
    assert peek.status_code != 200 or '"content": "g"' not in peek.text
    assert Attendee(hub.url, "grace").login().status_code == 403, "the old password still works"
    back = Attendee(hub.url, "grace", password=new_password)
    assert back.login().status_code == 200
    back.wait_until_ready()
    assert hub.attendee_container("grace").id != old_server, "the old server kept running"
    back.open_lab()
    assert back.api("GET", "contents/mine.txt").json()["content"] == "g"
    back.stop_server()


@pytest.mark.parametrize("name", ["admin", "root", "console", "organizer", "proxy", "Admin"])
def test_reserved_names_cannot_be_claimed_with_the_room_code(hub, access_code, name):
    response = Attendee(hub.url, name, password="i-want-this-name").login(access_code)
    assert response.status_code == 403
    assert "reserved" in page_message(response.text)


# Run in an attendee's kernel: failed logins straight at the hub's port, each claiming to come
# from another address in X-Real-IP and X-Forwarded-For (each with the login form's XSRF
# cookie fetched under the same claim, as JupyterHub ties it to the address it believes).
SPOOFED_LOGINS = """
import http.cookiejar, urllib.error, urllib.parse, urllib.request
statuses = []
for attempt in range(ATTEMPTS):
    claimed = {"X-Real-IP": f"192.0.2.{attempt % 250 + 1}",
               "X-Forwarded-For": f"192.0.2.{attempt % 250 + 1}"}
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(urllib.request.Request("http://hub:8081/hub/login", headers=claimed))
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    form = {"username": f"spoof{attempt}", "password": "not-the-password",
            "room_code": "not-the-code", "_xsrf": xsrf}
    try:
        browser.open(urllib.request.Request("http://hub:8081/hub/login",
                     data=urllib.parse.urlencode(form).encode(), headers=claimed))
        statuses.append(200)
    except urllib.error.HTTPError as refused:
        statuses.append(refused.code)
print(statuses)
"""


def test_a_kernel_cannot_choose_the_address_that_is_throttled_and_logged(hub, ada):
    """X-Real-IP from a client that reaches the hub straight is its own word: believed, it
    would dodge the per-address limit (every try from a "new" address) and write any address
    into "Login refused ... from", the line a fail2ban reads."""
    attempts = ADDRESS_RULE.free_failures + 2
    result = ada.run_code(SPOOFED_LOGINS.replace("ATTEMPTS", str(attempts)), timeout=600)
    assert result.error is None, result.error
    statuses = [int(s) for s in result.stdout.strip().strip("[]").split(",")]
    # Counted against the kernel's one address: past its free failures, refused at once.
    free = ADDRESS_RULE.free_failures
    assert set(statuses[:free]) == {403}, statuses
    assert set(statuses[free:]) == {429}, statuses
    networks = hub.attendee_container("ada").attrs["NetworkSettings"]["Networks"]
    kernel_address = next(iter(networks.values()))["IPAddress"]
    refused = [line for line in hub.logs().splitlines() if "Login refused for 'spoof" in line]
    assert len(refused) == attempts
    assert all(f"from {kernel_address}:" in line for line in refused), refused[:3]
    assert not any("192.0.2." in line for line in refused)


def test_an_admin_name_cannot_be_claimed(hub, access_code):
    response = Attendee(hub.url, "instructor", password="i-want-admin").login(access_code)
    assert response.status_code == 403
    assert "admin account" in page_message(response.text)


def test_failed_logins_are_logged_and_throttled_at_once(hub, access_code):
    target = Attendee(hub.url, "target", password="the-real-one")
    assert target.login(access_code).status_code == 200
    guesser = Attendee(hub.url, "target")
    statuses, timings = [], []
    for attempt in range(6):
        started = time.monotonic()
        statuses.append(guesser.login(password=f"guess-{attempt}").status_code)
        timings.append(time.monotonic() - started)
    # Three free failures, then each try is refused at once (429), never made to wait.
    assert statuses == [403, 403, 403, 429, 429, 429], statuses
    assert max(timings) < 3, timings
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
        old_token = {"Authorization": f"token {lin.new_api_token('kept past the event')}"}
        assert requests.get(f"{stack.url}/hub/api/user", headers=old_token, timeout=30).ok

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
        revoked = requests.get(f"{stack.url}/hub/api/user", headers=old_token, timeout=30)
        assert revoked.status_code == 403, "an attendee's token outlived the event"

        assert Attendee(stack.url, "newcomer").login(old_code).status_code == 403
        assert Attendee(stack.url, "newcomer").login(new_code).status_code == 200
        lin_again = Attendee(stack.url, "lin")
        assert lin_again.login().status_code == 200
        lin_again.wait_until_ready()
        lin_again.open_lab()
        assert lin_again.api("GET", "contents/day1.txt").json()["content"] == "1"
    finally:
        stack.down()


def roles_of(stack: HubStack, admin: Attendee, name: str) -> list[str]:
    response = admin.http.get(f"{stack.url}/hub/api/users/{name}", timeout=30)
    response.raise_for_status()
    return response.json()["roles"]


def test_a_renamed_instructor_is_no_longer_one_and_nobody_can_claim_the_old_name(lab_images):
    """The organizer renames the instructor (WORKSHOP_ADMIN_USERS) and restarts the hub: the
    old name must neither keep the instructor's powers nor be claimable with the room code,
    and a name an attendee holds cannot be made an instructor's."""
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD_OF_TESTS,
        WORKSHOP_ADMIN_USERS="instructor",
    )
    try:
        stack.up()
        before = Attendee(stack.url, "instructor", password=ADMIN_PASSWORD_OF_TESTS)
        assert before.login().status_code == 200
        me = before.http.get(f"{stack.url}/hub/api/user", timeout=30).json()
        assert "instructor" in me["roles"] and me["admin"] is False  # the control
        ada = Attendee(stack.url, "ada")
        assert ada.login(ACCESS_CODE_OF_TESTS).status_code == 200

        stack.env["WORKSHOP_ADMIN_USERS"] = "teacher"
        stack.compose("up", "-d", "hub")
        stack.wait_healthy()

        mallory = Attendee(stack.url, "instructor", password="mallory-chooses-this")
        claim = mallory.login(ACCESS_CODE_OF_TESTS)
        assert claim.status_code == 403 and "reserved" in page_message(claim.text)
        assert (
            Attendee(stack.url, "instructor", password=ADMIN_PASSWORD_OF_TESTS).login().status_code
            == 403
        ), "the old name still opens with the admin password"
        teacher = Attendee(stack.url, "teacher", password=ADMIN_PASSWORD_OF_TESTS)
        assert teacher.login().status_code == 200
        assert roles_of(stack, teacher, "instructor") == ["user"]
        assert "instructor" in roles_of(stack, teacher, "teacher")

        # An attendee's name made an instructor's: the hub refuses to start, in one line.
        stack.env["WORKSHOP_ADMIN_USERS"] = "teacher,ada"
        refused = stack.compose("run", "--rm", "--no-deps", "hub", check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "WORKSHOP_ADMIN_USERS names 'ada'" in output and "Traceback" not in output
    finally:
        stack.down()
