"""What the console shows: attendees who need help first, the room's summary, server states."""

from __future__ import annotations

from workshop_hub.console.progress import ProgressBook, attempt_from_report
from workshop_hub.console.room_view import STUCK_AFTER_SECONDS, room_view, server_state
from workshop_hub.room.profiles import LABEL_GPU, LABEL_PROFILE, LABEL_USER

NOW = 100_000.0
CATALOG = {1: ["batch"], 2: ["loss_choice"]}


def user(name, *, ready=True, pending=None, admin=False, started="2026-11-27T09:00:00.000000Z"):
    server = {"ready": ready, "pending": pending, "started": started} if ready or pending else {}
    return {
        "name": name,
        "kind": "user",
        "admin": admin,
        "last_activity": "2026-11-27T09:05:00.000000Z",
        "servers": {"": server} if server else {},
    }


def container(name, profile="cpu", gpu=None):
    labels = {LABEL_USER: name, LABEL_PROFILE: profile}
    if gpu is not None:
        labels[LABEL_GPU] = gpu
    return {"Labels": labels, "State": "running"}


def book_with(tmp_path, attempts):
    book = ProgressBook(tmp_path / "progress.sqlite")
    for at, name, lab, exercise, passed in attempts:
        report = {
            "lab": lab,
            "exercise": exercise,
            "passed": passed,
            "reason": f"{exercise} is off",
        }
        book.record(attempt_from_report(name, report, CATALOG, now=at))
    return book


def test_the_attendee_stuck_longest_comes_first_then_the_others_by_name(tmp_path):
    stuck_long = NOW - STUCK_AFTER_SECONDS - 60
    book = book_with(
        tmp_path,
        [
            (NOW - 30, "zoe", 1, "batch", False),  # failing, but only for 30 s
            (stuck_long, "yan", 2, "loss_choice", False),
            (NOW - 10, "yan", 2, "loss_choice", False),  # still the same failure
            (NOW - 900, "amy", 1, "batch", True),
            (NOW - 20, "bob", 1, "batch", False),
        ],
    )
    users = [user("amy"), user("bob"), user("yan"), user("zoe"), user("instructor", admin=True)]
    view = room_view(
        users,
        [container("amy"), container("yan", "gpu", "1"), container("zoe")],
        book.standings(),
        {"yan": 300 * 2**20},
        now=NOW,
    )
    # yan is stuck; zoe's and bob's failures are fresh, zoe's the older; amy is fine.
    assert [row["name"] for row in view["rows"]] == ["yan", "zoe", "bob", "amy"]
    yan = view["rows"][0]
    assert yan["stuck_since"] == stuck_long and yan["stuck_on"] == "lab 2 · loss_choice"
    assert yan["stuck_reason"] == "loss_choice is off"
    assert (yan["profile"], yan["gpu"], yan["memory_bytes"]) == ("gpu", "1", 300 * 2**20)
    summary = view["summary"]
    assert summary["attendees"] == 4 and summary["stuck"] == 1
    assert summary["on_lab"]["1"] == 3 and summary["on_lab"]["2"] == 1
    assert summary["failing_most"] == [
        {"lab": 1, "exercise": "batch", "attendees": 2},
        {"lab": 2, "exercise": "loss_choice", "attendees": 1},
    ]


def test_server_states_as_the_console_names_them():
    assert server_state(user("a"), has_container=True)[0] == "running"
    waiting = user("a", ready=False, pending="spawn")
    assert server_state(waiting, has_container=False)[0] == "queued"
    assert server_state(waiting, has_container=True)[0] == "starting"
    assert server_state(user("a", ready=False, pending="stop"), has_container=True)[0] == "stopping"
    assert server_state(user("a", ready=False), has_container=False)[0] == "stopped"


def test_a_stopped_attendee_holds_no_gpu_and_shows_no_memory(tmp_path):
    view = room_view([user("amy", ready=False)], [], {}, {"amy": 123}, now=NOW)
    (amy,) = view["rows"]
    assert amy["server"] == "stopped" and amy["gpu"] == "" and amy["memory_bytes"] is None
