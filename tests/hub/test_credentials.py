import re
import stat

from workshop_hub import credentials


def test_generated_access_code_is_readable_and_long_enough():
    code = credentials.generate_access_code()
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", code)
    assert not set(code) & set("01ilo")


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


def test_banner_shows_the_code_and_how_to_find_the_admin_password():
    text = credentials.banner("k7mq-2xfp-9hdn", ("instructor",))
    assert "k7mq-2xfp-9hdn" in text
    assert credentials.SHOW_COMMAND in text
