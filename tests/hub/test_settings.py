import pytest

from workshop_hub.settings import (
    SETTINGS,
    SettingsError,
    load_settings,
    parse_duration,
    parse_size,
    read_env_file,
)


def test_defaults_need_no_configuration():
    settings = load_settings({})
    assert settings.access_code is None
    assert settings.admin_users == ("instructor",)
    assert settings.mem_limit == 2 * 1024**3
    assert settings.shm_size == 512 * 1024**2
    assert settings.idle_timeout == 3600
    assert settings.gpus == ()
    assert settings.offer_cpu is True


def test_empty_values_mean_default():
    assert load_settings({"WORKSHOP_MEM_LIMIT": "  ", "WORKSHOP_GPUS": ""}) == load_settings({})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("2GiB", 2 * 1024**3),
        ("1048576", 1048576),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("90m", 5400), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("env", "value", "expected_words"),
    [
        ("WORKSHOP_ACCESS_CODE", "short", "at least 8"),
        ("WORKSHOP_ADMIN_PASSWORD", "x" * 31, "at least 32"),
        ("WORKSHOP_MEM_LIMIT", "lots", "512M"),
        ("WORKSHOP_MEM_LIMIT", "0G", "512M"),
        ("WORKSHOP_CPU_LIMIT", "-1", "above 0"),
        ("WORKSHOP_PIDS_LIMIT", "many", "whole number"),
        ("WORKSHOP_IDLE_TIMEOUT", "soon", "90m"),
        ("WORKSHOP_GPUS", "first", "device ids"),
        ("WORKSHOP_GPUS", "0,0", "twice"),
        ("WORKSHOP_OFFER_CPU", "maybe", "true or false"),
        ("WORKSHOP_ADMIN_USERS", "Ada Lovelace", "not a valid username"),
        ("WORKSHOP_CPU_IMAGE", "bad image!", "Docker image name"),
        ("WORKSHOP_INSTANCE", "My Workshop", "lowercase"),
    ],
)
def test_invalid_values_name_the_setting_and_what_is_allowed(env, value, expected_words):
    with pytest.raises(SettingsError) as raised:
        load_settings({env: value})
    message = str(raised.value)
    assert message.startswith(f"{env}=")
    assert expected_words in message
    assert "\n" not in message


def test_admin_password_must_differ_from_access_code():
    secret = "s" * 40
    with pytest.raises(SettingsError, match="must differ"):
        load_settings({"WORKSHOP_ACCESS_CODE": secret, "WORKSHOP_ADMIN_PASSWORD": secret})


def test_gpu_lists():
    assert load_settings({"WORKSHOP_GPUS": "auto"}).gpus == "auto"
    assert load_settings({"WORKSHOP_GPUS": "0, 1"}).gpus == ("0", "1")
    assert load_settings({"WORKSHOP_GPUS": "none"}).gpus == ()


def test_every_default_is_valid():
    for setting in SETTINGS.values():
        setting.parse(setting.default)


def test_env_file_is_read_like_compose_does(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n\nWORKSHOP_MEM_LIMIT=1G\nWORKSHOP_GPUS='0,1'\nEMPTY=\n")
    assert read_env_file(env_file) == {
        "WORKSHOP_MEM_LIMIT": "1G",
        "WORKSHOP_GPUS": "0,1",
        "EMPTY": "",
    }
    assert read_env_file(tmp_path / "missing") == {}
