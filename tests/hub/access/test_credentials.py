import math
import re
import stat

import pytest

from workshop_hub.access import credentials
from workshop_hub.settings import load_settings


def test_generated_access_code_is_readable_and_long_enough():
    code = credentials.generate_access_code()
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", code)
    assert not set(code) & set("01ilo")
    # What its docstring claims: 12 characters from 31, about 59 bits.
    assert 59 < 12 * math.log2(len(credentials._READABLE)) < 60


def test_a_generated_code_passes_the_hubs_checks_and_is_not_guessable():
    for _ in range(200):
        code = credentials.generate_access_code()
        assert load_settings({"WORKSHOP_ACCESS_CODE": code}).access_code == code
        assert credentials.guessable(code) is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("introductions", "plain word"),
        ("DeepLearningDay", "plain word"),
        ("314159265358", "only digits"),
        ("aaaaaaaaaaaa", "repeats"),
        ("ab-ab-ab-ab-ab", "repeats"),
        ("abc1abc1abc1", "repeats"),
        ("pytorch-day-2026", "'pytorch'"),
        ("Workshop#2026!", "'workshop'"),
    ],
)
def test_guessable_room_codes_say_why(code, reason):
    assert reason in credentials.guessable(code)


@pytest.mark.parametrize("code", ["k7mq-2xfp-9hdn", "Tea & Biscuits #7!", "test-room-code-2026"])
def test_codes_with_no_pattern_pass(code):
    assert credentials.guessable(code) is None


def test_generated_secret_is_kept_across_restarts(tmp_path):
    path = tmp_path / "data" / "access-code"
    first = credentials.resolve(None, path, credentials.generate_access_code)
    again = credentials.resolve(None, path, credentials.generate_access_code)
    assert first == again == path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_secret_wins_and_is_not_stored(tmp_path):
    path = tmp_path / "access-code"
    value = credentials.resolve("from-dot-env", path, credentials.generate_access_code)
    assert value == "from-dot-env"
    assert not path.exists()


def test_admin_password_is_long_enough_for_shared_password_authenticator():
    assert len(credentials.generate_admin_password()) >= 32


def test_banner_says_where_each_secret_is_and_shows_none():
    text = credentials.banner(("instructor",))
    assert credentials.SHOW_CODE_COMMAND in text and credentials.SHOW_ADMIN_COMMAND in text
    assert "instructor" in text


def test_new_event_rotates_the_generated_code_and_the_cookie_secret(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "ACCESS_CODE_FILE", tmp_path / "access-code")
    monkeypatch.setattr(credentials, "COOKIE_SECRET_FILE", tmp_path / "cookie-secret")
    old_code = credentials.resolve(
        None, credentials.ACCESS_CODE_FILE, credentials.generate_access_code
    )
    credentials.COOKIE_SECRET_FILE.write_text("old secret")
    new_code = credentials.start_new_event(None)
    assert new_code != old_code
    assert credentials.ACCESS_CODE_FILE.read_text().strip() == new_code
    assert not credentials.COOKIE_SECRET_FILE.exists()


def test_new_event_leaves_a_configured_code_to_the_organizer(tmp_path, monkeypatch):
    monkeypatch.setattr(credentials, "ACCESS_CODE_FILE", tmp_path / "access-code")
    monkeypatch.setattr(credentials, "COOKIE_SECRET_FILE", tmp_path / "cookie-secret")
    assert credentials.start_new_event("from-dot-env") is None
    assert not credentials.ACCESS_CODE_FILE.exists()
