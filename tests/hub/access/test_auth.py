"""The workshop's login, driven through JupyterHub's own Authenticator entry point."""

import asyncio
import inspect
import time
from types import SimpleNamespace

import pytest
from firstuseauthenticator.firstuseauthenticator import CustomLoginHandler
from tornado.httputil import HTTPHeaders
from tornado.web import HTTPError, create_signed_value, decode_signed_value

from workshop_hub.access.auth import (
    DEVICE_COOKIE,
    NAME_COUNT_SECONDS,
    ClaimedNames,
    WorkshopAuthenticator,
    WorkshopLoginHandler,
    max_names,
)
from workshop_hub.access.passwords import HELD, PasswordStore
from workshop_hub.access.throttle import LoginThrottle, Rule, TokenBucket
from workshop_hub.settings import load_settings

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
    # No waiting in unit tests: the throttle's rules have tests of their own, and the tests
    # of attacks below put the real ones back.
    unlimited = Rule(free_failures=10**6, max_delay=0)
    auth.throttle = LoginThrottle(unlimited, unlimited, TokenBucket(10**6, 1.0))
    return auth


COOKIE_SECRET = b"the hub's cookie secret, 32 bytes"


class Browser:
    """The cookies a browser keeps, as Tornado signs them with the hub's cookie secret."""

    def __init__(self, protocol: str = "http"):
        self.protocol = protocol
        self.cookies: dict[str, bytes] = {}
        self.cookie_options: dict[str, dict] = {}

    def set_signed_cookie(self, name, value, **options):
        self.cookies[name] = create_signed_value(COOKIE_SECRET, name, value)
        self.cookie_options[name] = options

    def get_signed_cookie(self, name, max_age_days):
        return decode_signed_value(
            COOKIE_SECRET, name, self.cookies.get(name), max_age_days=max_age_days
        )


def login_handler(authenticator, address="203.0.113.7", headers=None, browser=None):
    """What authenticate() reads of JupyterHub's login handler: the connection's peer, the
    request's headers, the browser's signed cookies, and the hub's users."""
    browser = browser or Browser()
    connection = SimpleNamespace(context=SimpleNamespace(address=(address, 50000)))
    request = SimpleNamespace(
        connection=connection, headers=HTTPHeaders(headers or {}), protocol=browser.protocol
    )
    return SimpleNamespace(
        request=request,
        settings={"cookie_max_age_days": 1},
        hub=SimpleNamespace(base_url="/hub/"),
        set_signed_cookie=browser.set_signed_cookie,
        get_signed_cookie=browser.get_signed_cookie,
        custom_login_error="",
        find_user=lambda name: name if name in authenticator.known_users else None,
    )


def accepted(result) -> str | None:
    if result is None:
        return None
    assert result["admin"] is False, "the authenticator never makes a JupyterHub admin"
    return result["name"]


async def try_login(
    authenticator, username, password="", room_code="", address="203.0.113.7", browser=None
):
    """(accepted name or None, message the login page shows, HTTP status)."""
    handler = login_handler(authenticator, address, browser=browser)
    data = {"username": username, "password": password, "room_code": room_code}
    try:
        name = accepted(await authenticator.authenticate(handler, data))
    except HTTPError as error:
        assert error.headers["Retry-After"] == str(int(error.headers["Retry-After"]))
        return None, handler.custom_login_error, error.status_code
    return name, handler.custom_login_error, 200 if name else 403


def login(authenticator, username, password="", room_code="", address="203.0.113.7", browser=None):
    """(accepted name or None, message the login page shows)."""
    name, message, _ = asyncio.run(
        try_login(authenticator, username, password, room_code, address, browser)
    )
    return name, message


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
    assert authenticator.throttle.failures["address:172.30.0.5"].failures == 1
    assert "address:192.0.2.66" not in authenticator.throttle.failures


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


# --- Attacks on the room: lockouts, and one room code filling it -------------------------


@pytest.fixture
def real_throttle(authenticator):
    """The authenticator with the throttle's real rules."""
    authenticator.throttle = LoginThrottle()
    return authenticator


def test_sixty_guesses_at_once_do_not_keep_ada_out_of_her_own_browser(real_throttle):
    ada_laptop = Browser()
    assert login(real_throttle, "ada", "ada-own-pass", ROOM_CODE, browser=ada_laptop)[0]
    # Mallory's own device cookie names mallory: it buys her nothing for ada.
    mallory_laptop = Browser()
    assert login(real_throttle, "mallory", "mallory-pass", ROOM_CODE, browser=mallory_laptop)[0]

    async def sixty_guesses():
        return await asyncio.gather(
            *(
                try_login(real_throttle, "ada", f"guess-{index}", browser=mallory_laptop)
                for index in range(60)
            )
        )

    started = time.perf_counter()
    statuses = [status for _, _, status in asyncio.run(sixty_guesses())]
    guessing = time.perf_counter() - started
    # Three checked and wrong, the rest refused before any check, and nobody queued.
    assert statuses.count(403) == 3 and statuses.count(429) == 57, statuses
    assert guessing < 2, guessing
    # The control: from a browser that never logged in as ada, her own password waits too.
    name, message, status = asyncio.run(try_login(real_throttle, "ada", "ada-own-pass"))
    assert (name, status) == (None, 429)
    assert message.startswith("Too many tries for this name: wait ")
    # From her own laptop she is in at once.
    started = time.perf_counter()
    assert login(real_throttle, "ada", "ada-own-pass", browser=ada_laptop)[0] == "ada"
    assert time.perf_counter() - started < 1


def test_a_throttled_try_answers_429_at_once_and_is_logged(real_throttle, caplog):
    caplog.set_level("WARNING")
    login(real_throttle, "ada", "ada-own-pass", ROOM_CODE)
    for attempt in range(3):
        login(real_throttle, "ada", f"guess-{attempt}", address="198.51.100.9")
    handler = login_handler(real_throttle, "198.51.100.9")
    data = {"username": "ada", "password": "guess-3", "room_code": ""}
    started = time.perf_counter()
    with pytest.raises(HTTPError) as refused:
        asyncio.run(real_throttle.authenticate(handler, data))
    assert time.perf_counter() - started < 0.1  # no bcrypt, no sleep
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "1"}
    assert handler.custom_login_error == "Too many tries for this name: wait 1 s and try again."
    assert refused.value.get_message() == handler.custom_login_error
    assert "Login refused for 'ada' from 198.51.100.9: Too many tries" in caplog.text


@pytest.mark.parametrize("protocol, secure", [("http", False), ("https", True)])
def test_a_login_leaves_a_device_cookie_for_that_name_only(authenticator, protocol, secure):
    browser = Browser(protocol)
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE, browser=browser)
    name, device = browser.get_signed_cookie(DEVICE_COOKIE, 1).decode().split("/")
    assert name == "ada" and len(device) == 22
    assert browser.cookie_options[DEVICE_COOKIE] == {
        "expires_days": 1,
        "path": "/hub/",
        "httponly": True,
        "samesite": "Lax",
        "secure": secure,
    }
    # The next login keeps the browser's id, so its budget stays its own.
    login(authenticator, "ada", "ada-own-pass", browser=browser)
    assert browser.get_signed_cookie(DEVICE_COOKIE, 1).decode() == f"ada/{device}"
    # A cookie not signed with the hub's secret is no device at all.
    browser.cookies[DEVICE_COOKIE] = create_signed_value(b"not the secret", DEVICE_COOKIE, "ada/x")
    assert browser.get_signed_cookie(DEVICE_COOKIE, 1) is None
    # A refused login sets no cookie.
    stranger = Browser()
    login(authenticator, "ada", "wrong-password", browser=stranger)
    assert stranger.cookies == {}


def test_huge_names_are_refused_and_kept_under_the_address_only(authenticator):
    for index in range(2_000):
        name, message = login(authenticator, f"{index}" + "a" * 100_000, "whatever-pass")
        assert name is None and "cannot be used" in message
    assert list(authenticator.throttle.failures) == ["address:203.0.113.7"]


def test_the_room_code_claims_at_most_max_names(authenticator):
    authenticator.max_names = 3
    for name in ("ada", "bob", "cy"):
        assert login(authenticator, name, f"{name}-own-pass", ROOM_CODE)[0] == name
    name, message = login(authenticator, "dee", "dee-own-pass", ROOM_CODE)
    assert name is None
    assert message == "Every name of this room is taken: ask the instructor."
    assert authenticator.store.get("dee") is None
    # Names already claimed still open; a deleted user's name makes room again.
    assert login(authenticator, "bob", "bob-own-pass")[0] == "bob"
    authenticator.delete_user(SimpleNamespace(name="cy"))
    assert login(authenticator, "dee", "dee-own-pass", ROOM_CODE)[0] == "dee"


def test_parallel_claims_cannot_pass_the_cap_together(authenticator):
    authenticator.max_names = 2
    login(authenticator, "ada", "ada-own-pass", ROOM_CODE)

    async def ten_claims():
        return await asyncio.gather(
            *(
                try_login(authenticator, f"bot{index}", "bot-password", ROOM_CODE)
                for index in range(10)
            )
        )

    claimed = [name for name, _, _ in asyncio.run(ten_claims()) if name]
    assert len(claimed) == 1, claimed
    assert len(authenticator.store.names()) == 2


def test_one_address_claims_names_at_a_rooms_pace_only(authenticator):
    authenticator.throttle.new_names_rule = TokenBucket(burst=3, refill_seconds=60.0)
    for index in range(3):
        assert login(authenticator, f"bot{index}", "bot-password", ROOM_CODE)[0]
    name, message, status = asyncio.run(try_login(authenticator, "bot3", "bot-password", ROOM_CODE))
    assert (name, status) == (None, 429)
    assert message == "Too many new names from your network: wait 60 s and try again."
    # The control: another address claims at once, and a claimed name still logs in.
    assert login(authenticator, "bot3", "bot-password", ROOM_CODE, address="198.51.100.4")[0]
    assert login(authenticator, "bot0", "bot-password")[0] == "bot0"


@pytest.mark.parametrize(
    "environ, cap",
    [
        ({}, 400),
        ({"WORKSHOP_MAX_ATTENDEES": "30"}, 60),
        ({"WORKSHOP_MAX_ATTENDEES": "30", "WORKSHOP_MAX_NAMES": "45"}, 45),
    ],
)
def test_the_cap_on_names_follows_the_room_size(environ, cap):
    assert max_names(load_settings(environ, env_file=None)) == cap


def takes_any_keyword(function) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


def test_the_login_page_can_show_a_throttled_tries_message():
    """JupyterHub renders a login's HTTPError as the login form, passing the error page's
    values to `_render`; FirstUseAuthenticator's own takes only two (the control) and the
    429 would come back as an empty page."""
    assert not takes_any_keyword(CustomLoginHandler._render)
    handlers = dict(WorkshopAuthenticator().get_handlers(app=None))
    assert handlers["/login"] is WorkshopLoginHandler
    assert takes_any_keyword(WorkshopLoginHandler._render)


def test_the_count_of_names_is_read_again_from_the_store_now_and_then(tmp_path):
    """`workshop-hub reset-password` and deleting users write the store too: the count is
    read again every NAME_COUNT_SECONDS, not on every login (a listing of the whole file)."""
    store = PasswordStore(tmp_path / "passwords")
    now = [0.0]
    count = ClaimedNames(store, clock=lambda: now[0])
    asyncio.run(count.refresh())
    store.claim("written-elsewhere", b"hash")
    asyncio.run(count.refresh())
    assert count.stored == 0
    now[0] += NAME_COUNT_SECONDS
    asyncio.run(count.refresh())
    assert count.stored == 1
