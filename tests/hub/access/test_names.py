"""Names nobody can claim: the one in charge, the services, every instructor ever."""

import json

import pytest

from workshop_hub.access.names import (
    NameConflict,
    check_no_attendee_holds,
    remember_instructors,
    reserved_names,
)


def test_a_renamed_instructor_stays_reserved(tmp_path):
    ever = tmp_path / "instructors-ever.json"
    assert remember_instructors({"instructor"}, ever) == {"instructor"}
    # The organizer renames the instructor and restarts the hub: both names stay out of reach.
    assert remember_instructors({"teacher"}, ever) == {"instructor", "teacher"}
    assert json.loads(ever.read_text()) == ["instructor", "teacher"]
    reserved = reserved_names(remember_instructors({"teacher"}, ever), ["console"])
    assert {"instructor", "teacher", "console", "admin", "root", "proxy", "hub"} <= reserved


def test_a_damaged_record_of_instructors_stops_the_start_instead_of_freeing_names(tmp_path):
    ever = tmp_path / "instructors-ever.json"
    ever.write_text("{not json")
    with pytest.raises(NameConflict, match="damaged"):
        remember_instructors({"teacher"}, ever)


def test_an_instructor_name_an_attendee_holds_is_refused_with_one_line():
    with pytest.raises(NameConflict) as refused:
        check_no_attendee_holds({"teacher", "bob"}, {"bob", "ada"})
    message = str(refused.value)
    assert "'bob'" in message and "WORKSHOP_ADMIN_USERS" in message and "\n" not in message
    check_no_attendee_holds({"teacher"}, {"bob", "ada"})  # the control: no conflict
