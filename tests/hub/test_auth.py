"""The workshop's login, driven through JupyterHub's own Authenticator entry point."""

import asyncio
from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders

from workshop_hub.auth import WorkshopAuthenticator
from workshop_hub.passwords import HELD
from workshop_hub.throttle import Rule

ROOM_CODE = "k7mq-2xfp-9hdn"
ADMIN_PASSWORD = "an-admin-password-long-enough-for-the-hub-1234"


@pytest.fixture
def authenticator(tmp_path):
    auth = WorkshopAuthenticator(
        room_code=ROOM_CODE,
        admin_password=ADMIN_PASSWORD,
        instructors={"instructor"},
        reserved_names={"admin", "console", "teacher"},
        dbm_path=str(tmp_path / "passwords"),
    )
    # The hub's database: users it knows without a password here (as find_user answers).
    auth.known_users = set()
    # No waiting in unit tests: the throttle's delays have tests of their own.
    auth.throttle.name_rule = auth.throttle.address_rule = Rule(free_failures=10**6, max_delay=0)
    return auth


def login_handler(authenticator, address="203.0.113.7", headers=None):
    """What authenticate() reads of JupyterHub's login handler: the connection's peer, the
    request's headers, and the hub's users."""
    connection = SimpleNamespace(context=SimpleNamespace(address=(address, 50000)))
    request = SimpleNamespace(connection=connection, headers=HTTPHeaders(headers or {}))
    return SimpleNamespace(
        request=request,
        custom_login_error="",
        find_user=lambda name: name if name in authenticator.known_users else None,
    )


def accepted(result) -> str | None:
    if result is None:
        return None
    assert result["admin"] is False, "the authenticator never makes a JupyterHub admin"
    return result["name"]


def login(authenticator, username, password="", room_code="", address="203.0.113.7"):
    """(accepted name or None, message the login page shows)."""
    handler = login_handler(authenticator, address)
    data = {"username": username, "password": password, "room_code": room_code}
    name = accepted(asyncio.run(authenticator.authenticate(handler, data)))
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
            handler = login_handler(authenticator)
            data = {"username": "alex", "password": password, "room_code": ROOM_CODE}
            return authenticator.authenticate(handler, data)

        return await asyncio.gather(attempt("first-alex-pass"), attempt("second-alex-pass"))

    results = [accepted(result) for result in asyncio.run(both())]
    assert sorted(result or "" for result in results) == ["", "alex"]
    winner = "first-alex-pass" if results[0] else "second-alex-pass"
    assert login(authenticator, "alex", winner)[0] == "alex"


def test_change_password_page_applies_the_same_rules(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    assert "at least 8" in authenticator.reset_password("ada", "short")
    assert "successfully" in authenticator.reset_password("ada", "ada-new-pass")
    assert login(authenticator, "ada", "ada-own-pass")[0] is None
    assert login(authenticator, "ada", "ada-new-pass")[0] == "ada"


@pytest.mark.parametrize("reserved", ["admin", "console", "teacher"])
def test_reserved_names_cannot_be_claimed_with_the_room_code(authenticator, reserved):
    name, message = login(authenticator, reserved, "i-want-that-name", ROOM_CODE)
    assert name is None and "reserved" in message
    assert authenticator.store.get(reserved) is None


def test_a_name_the_hub_knows_cannot_be_claimed_again(authenticator):
    """A renamed instructor stays a user in the hub's database, with no password here: the
    room code must not hand that name (and what the hub kept for it) to a stranger."""
    authenticator.known_users.add("old-instructor")
    name, message = login(authenticator, "old-instructor", "my-own-password", ROOM_CODE)
    assert name is None and "reserved" in message
    # The control: a name the hub does not know is claimed by the same login.
    assert login(authenticator, "new-attendee", "my-own-password", ROOM_CODE)[0]


def test_a_name_held_for_a_reset_opens_with_nothing(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    authenticator.store.set("ada", HELD)
    assert login(authenticator, "ada", "ada-own-pass")[0] is None
    assert login(authenticator, "ada", "any-password", ROOM_CODE)[0] is None
    assert login(authenticator, "ada", HELD.decode())[0] is None
    assert authenticator.store.get("ada") == HELD


def test_deleting_a_user_frees_its_name_unless_a_reset_holds_it(authenticator):
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)
    login(authenticator, "bob", "bob-own-pass", ROOM_CODE)
    authenticator.store.set("bob", HELD)
    authenticator.delete_user(SimpleNamespace(name="ada"))
    authenticator.delete_user(SimpleNamespace(name="bob"))
    assert authenticator.store.get("ada") is None
    assert authenticator.store.get("bob") == HELD


def spoofed_login(authenticator, peer, headers):
    handler = login_handler(authenticator, peer, headers)
    data = {"username": "bob", "password": "bob-own-pass", "room_code": "wrong-code"}
    asyncio.run(authenticator.authenticate(handler, data))


def test_a_kernel_cannot_choose_the_address_that_is_logged_and_slowed(authenticator, caplog):
    """An attendee's kernel reaches the hub's port 8081 straight: its X-Real-IP and
    X-Forwarded-For are its own words, and the address is the connection's."""
    caplog.set_level("WARNING")
    spoofed = {"X-Real-IP": "192.0.2.66", "X-Forwarded-For": "192.0.2.77"}
    spoofed_login(authenticator, "172.30.0.5", spoofed)
    assert "from 172.30.0.5:" in caplog.text
    assert "192.0.2.66" not in caplog.text and "192.0.2.77" not in caplog.text
    assert authenticator.throttle.address_delay("172.30.0.5") == 0  # counted, under the rule
    assert authenticator.throttle._recent("address:172.30.0.5") == 1
    assert authenticator.throttle._recent("address:192.0.2.66") == 0


def test_through_the_hubs_own_proxy_the_address_it_saw_counts(authenticator, caplog):
    caplog.set_level("WARNING")
    # The client sent its own X-Forwarded-For and X-Real-IP; the hub's proxy appended the
    # address it saw; without the HTTPS proxy, that is the client.
    headers = {"X-Real-IP": "192.0.2.66", "X-Forwarded-For": "192.0.2.77, 198.51.100.20"}
    authenticator.https_proxy.resolve = lambda name: (_ for _ in ()).throw(OSError(name))
    spoofed_login(authenticator, "127.0.0.1", headers)
    assert "from 198.51.100.20:" in caplog.text
    assert "192.0.2" not in caplog.text


def test_through_the_https_proxy_its_x_real_ip_counts(authenticator, caplog):
    caplog.set_level("WARNING")
    authenticator.https_proxy.resolve = lambda name: "172.20.0.3"
    headers = {"X-Real-IP": "198.51.100.30", "X-Forwarded-For": "198.51.100.30, 172.20.0.3"}
    spoofed_login(authenticator, "127.0.0.1", headers)
    assert "from 198.51.100.30:" in caplog.text
