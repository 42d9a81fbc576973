"""The roster: a registration list read as hostile input, one-time passwords held in the login
store, and the login card's one use, driven through the real authenticator."""

from __future__ import annotations

import pytest

from tests.hub.access.test_auth import ROOM_CODE, authenticator, login  # noqa: F401 (a fixture)
from workshop_hub.access.passwords import HELD, ResetRefused, check_resettable
from workshop_hub.access.roster import (
    MAX_ROSTER_FILE_BYTES,
    Roster,
    RosterError,
    parse_roster_csv,
    rostered_unused_names,
)

LIST = b"name,display name\nada,Ada Lovelace\ngrace,Grace Hopper\nalan\n"


@pytest.fixture
def roster(authenticator, tmp_path):  # noqa: F811 (the fixture)
    return Roster(authenticator.store, tmp_path / "roster.json")


def add(roster: Roster, data: bytes = LIST, reserved=(), cap: int = 100):
    return roster.add(parse_roster_csv(data, "roster.csv"), reserved, cap)


def card_of(roster: Roster, name: str) -> str:
    return next(e.one_time_password for e in roster.entries() if e.name == name)


def test_a_list_gives_names_and_display_names_in_order_the_header_skipped():
    attendees = parse_roster_csv(
        "\ufeffName,Display\n Ada ,Ada Lovelace\n\n# late\nalan,\n".encode(), "f"
    )
    assert [(a.line, a.name, a.display_name) for a in attendees] == [
        (2, "ada", "Ada Lovelace"),
        (5, "alan", "alan"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"ada\nAda\n", "line 2: 'ada' is also on line 1"),
        (b"bad name!\n", "line 1: the name 'bad name!' cannot be used"),
        (b"ada,Ada,extra\n", "line 1: 3 columns"),
        (b"ada,Ada\x1b[31m\n", "holds control or invisible characters"),
        ("ada,A\u202eevil\n".encode(), "holds control or invisible characters"),
        (b"ada," + b"x" * 61 + b"\n", "longer than 60 characters"),
        (b"\xff\xfe\x00a", "is not UTF-8 text"),
        (b"name\n\n", "names nobody"),
        (b'ada,"unclosed\n', "not a readable CSV file"),
    ],
)
def test_a_bad_list_is_refused_whole_with_the_line_and_the_fix(data, expected):
    with pytest.raises(RosterError) as refused:
        parse_roster_csv(data, "roster.csv")
    assert expected in str(refused.value)


def test_an_oversized_file_is_refused_before_it_is_read_as_csv():
    with pytest.raises(RosterError, match="over the"):
        parse_roster_csv(b"a\n" * (MAX_ROSTER_FILE_BYTES // 2 + 1), "huge.csv")


def test_rostered_names_are_held_with_a_one_time_password_each(roster):
    added, already = add(roster)
    assert [e.name for e in added] == ["ada", "grace", "alan"] and already == []
    passwords = {e.one_time_password for e in added}
    assert len(passwords) == 3 and all(len(p) == 14 for p in passwords)
    assert rostered_unused_names(roster.store) == {"ada", "grace", "alan"}
    stored = roster.store.entries()
    assert not any(entry.one_time_password.encode() in stored[entry.name] for entry in added)
    # Added again: nobody's card changes.
    added_again, already = add(roster)
    assert added_again == [] and already == ["ada", "grace", "alan"]
    assert {e.one_time_password for e in roster.entries()} == passwords


def test_the_roster_keeps_the_room_codes_rules(roster, authenticator):  # noqa: F811
    assert login(authenticator, "zoe", "zoe-own-pass", ROOM_CODE)[0] == "zoe"
    with pytest.raises(RosterError, match="'zoe' is already an attendee's"):
        add(roster, b"ada\nzoe\n")
    with pytest.raises(RosterError, match="'teacher' is reserved"):
        add(roster, b"ada\nteacher\n", reserved={"teacher"})
    with pytest.raises(RosterError, match="pass the room's 2 names"):
        add(roster, b"ada\ngrace\n", cap=2)  # zoe holds one of the two
    # Nothing of a refused roster stays behind.
    assert roster.entries() == [] and rostered_unused_names(roster.store) == set()


def test_a_card_opens_its_name_once_with_a_password_of_the_attendees_own(roster, authenticator):  # noqa: F811
    add(roster)
    card = card_of(roster, "ada")
    name, message = login(authenticator, "ada", card)
    assert name is None and "type it in the Room code box" in message
    name, message = login(authenticator, "ada", card, card)
    assert name is None and "not the one on your card" in message
    assert login(authenticator, "ada", "ada-own-pass", card) == ("ada", "")
    # The card is used: it opens nothing any more, the own password does.
    assert login(authenticator, "ada", "another-pass", card)[0] is None
    assert login(authenticator, "ada", card)[0] is None
    assert login(authenticator, "ada", "ada-own-pass") == ("ada", "")
    assert rostered_unused_names(roster.store) == {"grace", "alan"}


def test_a_walk_in_cannot_claim_a_rostered_name_with_the_room_code(roster, authenticator):  # noqa: F811
    add(roster)
    name, message = login(authenticator, "grace", "mallory-pass", ROOM_CODE)
    assert name is None and "reserved for an attendee on the list" in message
    name, message = login(authenticator, "grace", "mallory-pass", "aaaa-bbbb-cccc")
    assert name is None and "not the password on grace's login card" in message
    assert login(authenticator, "grace", "mallory-pass")[0] is None
    assert rostered_unused_names(roster.store) == {"ada", "grace", "alan"}


def test_removing_an_unused_card_frees_the_name_a_used_one_stays(roster, authenticator):  # noqa: F811
    add(roster)
    assert login(authenticator, "ada", "ada-own-pass", card_of(roster, "ada"))[0] == "ada"
    assert roster.remove("grace") is True
    assert login(authenticator, "grace", "grace-own-pass", ROOM_CODE) == ("grace", "")
    assert roster.remove("ada") is False
    assert login(authenticator, "ada", "ada-own-pass") == ("ada", "")
    with pytest.raises(RosterError, match="not on the roster"):
        roster.remove("nobody")
    assert [e.name for e in roster.entries()] == ["alan"]


def test_an_unused_card_cannot_be_reset_and_a_held_name_is_not_removed(roster):
    add(roster)
    with pytest.raises(ResetRefused, match="has not used their login card"):
        check_resettable(roster.store, "ada", ())
    roster.store.set("alan", HELD)
    with pytest.raises(RosterError, match="being reset"):
        roster.remove("alan")


def test_a_damaged_roster_file_says_how_to_recover(roster):
    roster.path.write_text("{not json")
    with pytest.raises(RosterError, match="damaged"):
        roster.entries()
