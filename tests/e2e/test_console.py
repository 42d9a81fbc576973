"""The room's progress, end to end: checks run in real kernels reach the console service,
admins read them, attendees read only their own."""

from __future__ import annotations

import time

import pytest
import requests

from .hub_client import Attendee

PROGRESS = "services/console/api/progress"
# Lab 1's batch check in an attendee's kernel: a right batch, or a wrong one.
RIGHT_BATCH = (
    "import torch\nfrom workshop_labs import lab01\n"
    "batch = lab01.check_batch(torch.rand(32, 64), torch.device('cpu'))\n"
)
WRONG_BATCH = (
    "from workshop_labs import lab01\nimport torch\nlab01.check_batch(None, torch.device('cpu'))\n"
)


def token_of(attendee: Attendee) -> str:
    """An API token of the attendee's own, made as the hub's token page makes one."""
    response = attendee.http.post(
        f"{attendee.base_url}/hub/api/users/{attendee.name}/tokens",
        json={"note": "progress test", "expires_in": 600},
        headers={"X-XSRFToken": attendee._hub_xsrf()},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["token"]


def read_progress(hub, token: str, attendee: str = "") -> requests.Response:
    path = f"{PROGRESS}/{attendee}" if attendee else PROGRESS
    return requests.get(
        f"{hub.url}/{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )


@pytest.fixture(scope="module")
def bob(hub, access_code) -> Attendee:
    attendee = Attendee(hub.url, "bob")
    assert attendee.login(access_code).status_code == 200
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    return attendee


@pytest.fixture(scope="module")
def admin_token(hub) -> str:
    password = hub.hub_exec("workshop-hub", "admin-password").stdout.split()[-1]
    instructor = Attendee(hub.url, "instructor", password=password)
    assert instructor.login_as_admin(password).status_code == 200
    return token_of(instructor)


def test_checks_in_kernels_show_up_for_the_admin_within_seconds(hub, ada, bob, admin_token):
    passing = ada.run_code(RIGHT_BATCH)
    assert passing.error is None and "✅" in passing.stdout, passing
    failing = bob.run_code(WRONG_BATCH)
    assert "Not solved yet" in failing.stdout, failing
    deadline = time.monotonic() + 10
    while True:
        room = read_progress(hub, admin_token)
        assert room.status_code == 200, room.text
        attendees = room.json()["attendees"]
        if {"ada", "bob"} <= set(attendees) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (ada_batch,) = [s for s in attendees["ada"] if s["exercise"] == "batch"]
    (bob_batch,) = [s for s in attendees["bob"] if s["exercise"] == "batch"]
    assert ada_batch["lab"] == 1 and ada_batch["passed"] is True
    assert bob_batch["passed"] is False and "`batch` is None" in bob_batch["reason"]


def test_an_attendee_reads_their_own_progress_and_nobody_elses(hub, ada, bob):
    ada_token = token_of(ada)
    own = read_progress(hub, ada_token, "ada")
    assert own.status_code == 200 and list(own.json()["attendees"]) in ([], ["ada"])
    assert read_progress(hub, ada_token, "bob").status_code == 403
    assert read_progress(hub, ada_token).status_code == 403
    assert read_progress(hub, "not-a-token").status_code == 403
    assert requests.get(f"{hub.url}/{PROGRESS}", timeout=30).status_code == 401


def test_an_attendee_cannot_record_progress_for_someone_else(hub, ada, admin_token):
    forged = requests.post(
        f"{hub.url}/{PROGRESS}",
        json={"lab": 1, "exercise": "batch", "passed": True, "reason": "", "attendee": "bob"},
        headers={"Authorization": f"token {token_of(ada)}"},
        timeout=30,
    )
    assert forged.status_code == 201  # recorded, but as ada's: the token decides, not the body
    bob_batch = [
        s
        for s in read_progress(hub, admin_token, "bob").json()["attendees"]["bob"]
        if s["exercise"] == "batch"
    ]
    assert bob_batch and bob_batch[0]["passed"] is False
    bad = requests.post(
        f"{hub.url}/{PROGRESS}",
        json={"lab": 9, "exercise": "batch", "passed": True},
        headers={"Authorization": f"token {token_of(ada)}"},
        timeout=30,
    )
    assert bad.status_code == 400 and "lab number 1–7" in bad.json()["message"]
