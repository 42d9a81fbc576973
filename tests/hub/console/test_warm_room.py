"""The warm room (workshop_hub/console/warm_room.py): when to warm, which servers are warm, and
the hold that keeps them from the idle culler."""

from __future__ import annotations

import datetime
import json

from tests.hub.access.test_auth import authenticator, login  # noqa: F401 (a fixture)
from tests.hub.access.test_roster import add, card_of, roster  # noqa: F401 (a fixture)
from workshop_hub.console import warm_room


def test_the_next_warm_time_is_today_if_still_to_come_else_tomorrow():
    utc = datetime.UTC
    before = datetime.datetime(2026, 12, 7, 7, 0, tzinfo=utc)
    assert warm_room.next_warm_time("08:45+01:00", before) == datetime.datetime(
        2026, 12, 7, 7, 45, tzinfo=utc
    )
    after = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=utc)
    assert warm_room.next_warm_time("08:45+01:00", after) == datetime.datetime(
        2026, 12, 8, 7, 45, tzinfo=utc
    )


def test_warm_servers_are_the_running_ones_whose_card_is_unused(roster, authenticator):  # noqa: F811
    add(roster)
    login(authenticator, "ada", "ada-own-pass", card_of(roster, "ada"))
    running = {"servers": {"": {"ready": True}}}
    users = [
        {"name": "ada", **running},  # logged in: like anyone's
        {"name": "grace", **running},  # warm
        {"name": "alan", "servers": {}},  # not started
        {"name": "zoe", **running},  # a walk-in
    ]
    assert warm_room.warm_names(roster.store, users) == {"grace"}


def test_the_hold_is_remembered_and_a_damaged_file_holds_nothing(tmp_path):
    warm_file = tmp_path / "warm-room.json"
    assert warm_room.hold_until(warm_file) == 0.0
    warm_room.remember_hold(1234.5, warm_file)
    assert warm_room.hold_until(warm_file) == 1234.5
    warm_file.write_text(json.dumps({"hold_until": "soon"}))
    assert warm_room.hold_until(warm_file) == 0.0
