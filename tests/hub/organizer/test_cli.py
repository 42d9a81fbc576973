"""The organizer's commands, run as `workshop-hub ...` would be in the hub container."""

import os

import pytest

from workshop_hub.access import credentials, sessions
from workshop_hub.access.passwords import PasswordStore, hash_password, password_matches
from workshop_hub.organizer import cli


@pytest.fixture
def hub_data(tmp_path, monkeypatch):
    for name in ("ACCESS_CODE_FILE", "ADMIN_PASSWORD_FILE", "ATTENDEE_PASSWORDS_FILE"):
        monkeypatch.setattr(credentials, name, tmp_path / name.lower())
    credentials.store(credentials.ACCESS_CODE_FILE, "k7mq-2xfp-9hdn")
    credentials.store(credentials.ADMIN_PASSWORD_FILE, "a" * 40)
    for name in list(os.environ):
        if name.startswith("WORKSHOP_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_access_code_prints_the_room_code_only(hub_data, capsys):
    assert cli.main(["access-code"]) == 0
    assert capsys.readouterr().out == "k7mq-2xfp-9hdn\n"


def test_admin_password_has_its_own_command(hub_data, capsys):
    assert cli.main(["admin-password"]) == 0
    out = capsys.readouterr().out
    assert "a" * 40 in out and "instructor" in out


def test_reset_password_without_a_running_hub_says_so_and_changes_nothing(
    hub_data, monkeypatch, capsys
):
    """The reset ends sessions through the hub's API (tested end to end in
    tests/e2e/test_login.py); before the hub ever started there is no token for it."""
    monkeypatch.setattr(sessions, "ORGANIZER_TOKEN_FILE", hub_data / "no-token-yet")
    store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    store.claim("ada", hash_password("ada-own-pass"))
    assert cli.main(["reset-password", "Ada"]) == 1
    error = capsys.readouterr().err
    assert "Start the hub" in error and "Traceback" not in error
    assert password_matches("ada-own-pass", store.get("ada"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("nobody", "Nobody has claimed 'nobody'"),
        ("instructor", "is an admin"),
        ("a/b", "not a valid"),
    ],
)
def test_reset_password_refuses_with_what_to_do(hub_data, capsys, name, expected):
    assert cli.main(["reset-password", name]) == 1
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


def test_commands_before_the_first_start_say_to_start_the_hub(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(credentials, "ACCESS_CODE_FILE", tmp_path / "missing")
    monkeypatch.delenv("WORKSHOP_ACCESS_CODE", raising=False)
    assert cli.main(["access-code"]) == 1
    assert "start it first" in capsys.readouterr().err


def test_new_event_asks_for_yes_first(hub_data, capsys):
    assert cli.main(["new-event"]) == 1
    assert "--yes" in capsys.readouterr().err
    assert credentials.ACCESS_CODE_FILE.read_text().strip() == "k7mq-2xfp-9hdn"
