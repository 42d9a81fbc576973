"""The workshop's login, driven through JupyterHub's own Authenticator entry point."""

import asyncio
from types import SimpleNamespace

import pytest

from workshop_hub.auth import WorkshopAuthenticator
from workshop_hub.throttle import Rule

ROOM_CODE = "k7mq-2xfp-9hdn"
ADMIN_PASSWORD = "an-admin-password-long-enough-for-the-hub-1234"


@pytest.fixture
def authenticator(tmp_path):
    auth = WorkshopAuthenticator(
        room_code=ROOM_CODE,
        admin_password=ADMIN_PASSWORD,
        admin_users={"instructor"},
        dbm_path=str(tmp_path / "passwords"),
    )
    # No waiting in unit tests: the throttle's delays have tests of their own.
    auth.throttle.name_rule = auth.throttle.address_rule = Rule(free_failures=10**6, max_delay=0)
    return auth


def login(authenticator, username, password="", room_code="", address="203.0.113.7"):
    """(accepted name or None, message the login page shows)."""
    handler = SimpleNamespace(request=SimpleNamespace(remote_ip=address), custom_login_error="")
    data = {"username": username, "password": password, "room_code": room_code}
    name = asyncio.run(authenticator.authenticate(handler, data))
    return name, handler.custom_login_error


def test_first_login_claims_the_name_and_later_only_the_own_password_opens_it(authenticator):
    assert login(authenticator, "ada", "ada-own-pass", ROOM_CODE) == ("ada", "")
    assert login(authenticator, "ada", "ada-own-pass") == ("ada", "")
    name, message = login(authenticator, "ada", "mallory-pass", ROOM_CODE)
    assert name is None
    assert "'ada' is taken" in message and "ask the instructor to reset it" in message


@pytest.mark.parametrize("spelling", ["Ada", "ADA", " ada "])
def test_names_are_case_insensitive(authenticator, spelling):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    name, message = login(authenticator, spelling, "mallory-pass", ROOM_CODE)
    assert name is None and "is taken" in message
    assert login(authenticator, spelling, "ada-own-pass")[0] == "ada"


def test_room_code_typed_as_password_on_a_taken_name_says_taken(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    name, message = login(authenticator, "ada", ROOM_CODE)
    assert name is None and "is taken" in message


def test_wrong_password_for_a_claimed_name_does_not_claim_it_again(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    name, message = login(authenticator, "ada", "guess-guess")
    assert name is None and "Wrong password for 'ada'" in message
    assert login(authenticator, "ada", "ada-own-pass")[0] == "ada"


def test_a_new_name_needs_the_right_room_code(authenticator):
    name, message = login(authenticator, "bob", "bob-own-pass", "not-the-code")
    assert name is None and "room code is not right" in message
    name, message = login(authenticator, "bob", "bob-own-pass")
    assert name is None and "First time here?" in message
    assert authenticator.store.get("bob") is None


@pytest.mark.parametrize(
    "password, expected",
    [("short", "at least 8"), (ROOM_CODE, "not the room code"), ("x" * 73, "at most 72 bytes")],
)
def test_weak_personal_passwords_are_refused_and_claim_nothing(authenticator, password, expected):
    name, message = login(authenticator, "bob", password, ROOM_CODE)
    assert name is None and expected in message
    assert authenticator.store.get("bob") is None


def test_non_ascii_input_is_a_refusal_not_a_crash(authenticator):
    assert login(authenticator, "bob", "pässwörd-é", "café-2026")[0] is None
    assert login(authenticator, "bob", "pässwörd-é", ROOM_CODE) == ("bob", "")
    assert login(authenticator, "bob", "pässwörd-é")[0] == "bob"


def test_admins_use_the_admin_password_and_their_name_cannot_be_claimed(authenticator):
    name, message = login(authenticator, "instructor", "my-own-password", ROOM_CODE)
    assert name is None and "admin account" in message
    assert authenticator.store.get("instructor") is None
    assert login(authenticator, "instructor", ADMIN_PASSWORD)[0] == "instructor"
    assert login(authenticator, "Instructor", ADMIN_PASSWORD)[0] == "instructor"


@pytest.mark.parametrize("username", ["a/b", "<script>", "x;y", "", "Ada Lovelace", "ééé"])
def test_odd_names_are_refused_with_the_rule(authenticator, username):
    name, message = login(authenticator, username, "whatever-pass", ROOM_CODE)
    assert name is None and "cannot be used" in message


def test_every_refusal_is_logged_with_the_address(authenticator, caplog):
    caplog.set_level("WARNING")
    login(authenticator, "bob", "bob-own-pass", "wrong-code", address="198.51.100.9")
    assert "Login refused for 'bob' from 198.51.100.9" in caplog.text


def test_two_simultaneous_first_logins_claim_the_name_once(authenticator):
    async def both():
        def attempt(password):
            handler = SimpleNamespace(
                request=SimpleNamespace(remote_ip="203.0.113.7"), custom_login_error=""
            )
            data = {"username": "alex", "password": password, "room_code": ROOM_CODE}
            return authenticator.authenticate(handler, data)

        return await asyncio.gather(attempt("first-alex-pass"), attempt("second-alex-pass"))

    results = asyncio.run(both())
    assert sorted(result or "" for result in results) == ["", "alex"]
    winner = "first-alex-pass" if results[0] else "second-alex-pass"
    assert login(authenticator, "alex", winner)[0] == "alex"


def test_change_password_page_applies_the_same_rules(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    assert "at least 8" in authenticator.reset_password("ada", "short")
    assert "successfully" in authenticator.reset_password("ada", "ada-new-pass")
    assert login(authenticator, "ada", "ada-own-pass")[0] is None
    assert login(authenticator, "ada", "ada-new-pass")[0] == "ada"
