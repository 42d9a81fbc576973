import math
import os
import string

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from workshop_hub.room.profiles import (
    container_limits,
    cpu_profile,
    gpu_memory_fraction,
    gpu_profile,
)
from workshop_hub.settings import (
    COMPOSE_SETTINGS,
    SECRETS,
    SETTINGS,
    TABLE,
    SettingsError,
    WorkshopSettings,
    check_env_file,
    human_size,
    load_settings,
    parse_duration,
    parse_gpus,
    parse_size,
    read_env_file,
    render_compose_environment,
    render_env_example,
)
from workshop_labs import units as lab_units

MiB, GiB = 1024**2, 1024**3
INT64_MAX = 2**63 - 1
# Floors written out here, not imported: the test must fail if settings.py lowers them.
MEMORY_FLOOR = 64 * MiB
PIDS_FLOOR = 64


def test_defaults_need_no_configuration():
    settings = load_settings({})
    assert settings.access_code is None
    assert settings.admin_users == ("instructor",)
    assert settings.mem_limit == 2 * GiB
    assert settings.shm_size == 512 * MiB
    assert settings.idle_timeout == 3600
    assert settings.gpus == ()
    assert settings.offer_cpu is True
    assert settings.domain == ""
    assert settings.listen_address == "127.0.0.1"
    assert settings.session_length == 86400
    assert settings.attendee_internet is False
    assert settings.disk_limit == 2 * GiB
    assert settings.tmp_size == 256 * MiB
    assert settings.max_attendees is None
    assert settings.max_server_age == 10 * 3600


def test_the_settingsobject_has_one_field_per_hub_setting():
    assert list(WorkshopSettings.__dataclass_fields__) == [s.field for s in SETTINGS.values()]
    assert all(s.env.startswith("WORKSHOP_") for s in SETTINGS.values())


def test_every_default_is_valid():
    for setting in TABLE:
        setting.parse(setting.default)


def test_empty_values_mean_default():
    assert load_settings({"WORKSHOP_MEM_LIMIT": "  ", "WORKSHOP_GPUS": ""}) == load_settings({})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * MiB),
        ("2G", 2 * GiB),
        ("1.5g", int(1.5 * GiB)),
        ("2GiB", 2 * GiB),
        ("64mb", 64 * MiB),
        ("512Mi", 512 * MiB),
        ("1 T", 1024**4),
        ("1048576", 1048576),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("90m", 5400), ("1.5h", 5400), ("1d", 86400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("env", "value", "expected_words"),
    [
        ("WORKSHOP_MEM_LIMIT", "lots", "use a size such as 512M, 2G or 1.5G"),
        ("WORKSHOP_MEM_LIMIT", "0G", "from 64M"),
        # Docker reads 0 as "no limit"; 0.5 bytes floors to 0.
        ("WORKSHOP_MEM_LIMIT", "0.5", "did you mean 0.5G?"),
        ("WORKSHOP_MEM_LIMIT", "2", "that is 2 bytes; use at least 64M (did you mean 2G?)"),
        ("WORKSHOP_MEM_LIMIT", "nan", "512M"),
        ("WORKSHOP_MEM_LIMIT", "inf", "512M"),
        ("WORKSHOP_MEM_LIMIT", "9" * 400 + "G", "too large"),
        ("WORKSHOP_MEM_LIMIT", "٣G", "512M"),  # float() would read Arabic-Indic digits
        ("WORKSHOP_GPU_MEM_LIMIT", "32M", "from 64M"),
        ("WORKSHOP_SHM_SIZE", "0", "from 1M"),
        ("WORKSHOP_TMP_SIZE", "0M", "from 1M"),  # a tmpfs of size 0 is unlimited
        ("WORKSHOP_CPU_LIMIT", "-1", "from 0.01 to 1024"),
        ("WORKSHOP_CPU_LIMIT", "1e-9", "from 0.01"),  # a CPU quota of 0 is unlimited
        ("WORKSHOP_CPU_LIMIT", "0.001", "from 0.01"),
        ("WORKSHOP_CPU_LIMIT", "nan", "CPU cores"),
        ("WORKSHOP_GPU_CPU_LIMIT", "inf", "CPU cores"),
        ("WORKSHOP_PIDS_LIMIT", "many", "whole number"),
        ("WORKSHOP_PIDS_LIMIT", "0", "from 64"),
        ("WORKSHOP_IDLE_TIMEOUT", "soon", "90m"),
        ("WORKSHOP_IDLE_TIMEOUT", "0.5", "from 1s"),  # would cull everyone at once
        ("WORKSHOP_MAX_SERVER_AGE", "0", "from 1s"),
        ("WORKSHOP_SESSION_LENGTH", "9999d", "to 366d"),
        ("WORKSHOP_ATTENDEES_PER_GPU", "30000", "from 1 to 64"),
        ("WORKSHOP_ATTENDEES_PER_GPU", "0", "from 1 to 64"),
        ("WORKSHOP_MAX_ATTENDEES", "none", "auto or a whole number"),
        ("WORKSHOP_MAX_ATTENDEES", "0", "auto or a whole number"),
        ("WORKSHOP_GPUS", "first", "device ids"),
        ("WORKSHOP_GPUS", "0,0", "twice"),
        ("WORKSHOP_GPUS", "0,00", "device 0 is listed twice"),
        ("WORKSHOP_GPUS", "gpu-1", "device ids"),
        ("WORKSHOP_OFFER_CPU", "maybe", "true or false"),
        ("WORKSHOP_ATTENDEE_INTERNET", "2", "true or false"),
        ("WORKSHOP_ADMIN_USERS", "Ada Lovelace", "not a valid username"),
        ("WORKSHOP_CPU_IMAGE", "bad image!", "Docker image name"),
        ("WORKSHOP_INSTANCE", "My Workshop", "lowercase"),
        ("WORKSHOP_DOMAIN", "https://workshop.example.org", "DNS name"),
        ("WORKSHOP_DOMAIN", "-bad.example.org", "DNS name"),
        ("WORKSHOP_LISTEN_ADDRESS", "localhost", "IP address"),
    ],
)
def test_invalid_values_name_the_setting_and_what_is_allowed(env, value, expected_words):
    with pytest.raises(SettingsError) as raised:
        load_settings({env: value})
    message = str(raised.value)
    assert message.startswith(f"{env}={value.strip()!r}: ")
    assert expected_words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("env", "value", "expected_words"),
    [
        ("WORKSHOP_ACCESS_CODE", "café-crème-2024", "printable ASCII"),
        ("WORKSHOP_ADMIN_PASSWORD", "p" * 40 + "\u00e9", "printable ASCII"),
        ("WORKSHOP_ACCESS_CODE", "tab\tinside!", "printable ASCII"),
        ("WORKSHOP_ACCESS_CODE", "short", "at least 12"),
        # A plain 8-letter word was a valid room code once.
        ("WORKSHOP_ACCESS_CODE", "workshop", "at least 12, or leave it empty"),
        ("WORKSHOP_ACCESS_CODE", "k7mq-2xfp-9", "at least 12"),
        ("WORKSHOP_ADMIN_PASSWORD", "x" * 31, "at least 32"),
    ],
)
def test_secrets_are_printable_ascii_and_never_shown(env, value, expected_words):
    with pytest.raises(SettingsError) as raised:
        load_settings({env: value})
    message = str(raised.value)
    assert message.startswith(f"{env}=<{len(value)} characters, not shown>: ")
    assert expected_words in message
    assert value not in message


def test_a_printable_ascii_code_is_kept_as_typed():
    code = "Tea & Biscuits #7!"
    assert load_settings({"WORKSHOP_ACCESS_CODE": code}).access_code == code


def test_admin_password_must_differ_from_access_code():
    secret = "s" * 40
    with pytest.raises(SettingsError, match="must differ"):
        load_settings({"WORKSHOP_ACCESS_CODE": secret, "WORKSHOP_ADMIN_PASSWORD": secret})


def test_a_twelve_character_room_code_is_enough():
    assert load_settings({"WORKSHOP_ACCESS_CODE": "k7mq-2xfp-9h"}).access_code


# --- Secrets: from .env, never through compose's environment --------------------------------

CODE_IN_FILE = "room-code-from-dot-env-7"
PASSWORD_IN_FILE = "admin-password-from-dot-env-0123456789"


def test_the_secret_settings_are_the_room_code_and_the_admin_password():
    assert set(SECRETS) == {"WORKSHOP_ACCESS_CODE", "WORKSHOP_ADMIN_PASSWORD"}


@pytest.fixture
def dot_env(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"WORKSHOP_ACCESS_CODE={CODE_IN_FILE}\n"
        f"WORKSHOP_ADMIN_PASSWORD='{PASSWORD_IN_FILE}'\n"
        "WORKSHOP_MEM_LIMIT=4G\n"
    )
    return env_file


def test_the_hub_reads_its_secrets_from_dot_env(dot_env):
    settings = load_settings({}, dot_env)
    assert settings.access_code == CODE_IN_FILE
    assert settings.admin_password == PASSWORD_IN_FILE


def test_only_the_secrets_come_from_dot_env_the_rest_from_compose(dot_env):
    """Compose passes the other settings (with its own rules for .env); reading them here too
    would make two sources of one value."""
    assert load_settings({}, dot_env).mem_limit == 2 * GiB
    assert load_settings({"WORKSHOP_MEM_LIMIT": "1G"}, dot_env).mem_limit == 1 * GiB


def test_a_secret_in_the_environment_wins_over_dot_env(dot_env):
    """`compose run -e` (and a Kubernetes Secret in the pod's environment) override .env."""
    settings = load_settings({"WORKSHOP_ACCESS_CODE": "from-the-environment"}, dot_env)
    assert settings.access_code == "from-the-environment"
    assert settings.admin_password == PASSWORD_IN_FILE
    with pytest.raises(SettingsError, match="printable ASCII"):
        load_settings({"WORKSHOP_ACCESS_CODE": "café-2026-room"}, dot_env)


def test_an_empty_secret_in_the_environment_leaves_the_one_in_dot_env(dot_env):
    assert load_settings({"WORKSHOP_ACCESS_CODE": ""}, dot_env).access_code == CODE_IN_FILE


def test_secrets_from_dot_env_are_checked_like_any(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("WORKSHOP_ACCESS_CODE=workshop\n")
    with pytest.raises(SettingsError) as raised:
        load_settings({}, env_file)
    assert str(raised.value).startswith("WORKSHOP_ACCESS_CODE=<8 characters, not shown>: ")
    assert "workshop" not in str(raised.value).removeprefix("WORKSHOP_ACCESS_CODE")
    secret = "s" * 40
    env_file.write_text(f"WORKSHOP_ADMIN_PASSWORD={secret}\n")
    with pytest.raises(SettingsError, match="must differ"):
        load_settings({"WORKSHOP_ACCESS_CODE": secret}, env_file)


def test_without_a_dot_env_the_secrets_are_generated(tmp_path):
    settings = load_settings({}, tmp_path / "absent" / ".env")
    assert settings.access_code is None and settings.admin_password is None


def test_compose_never_passes_a_secret_to_the_hub():
    passed = "\n".join(render_compose_environment())
    assert "WORKSHOP_ADMIN_USERS" in passed
    for name in SECRETS:
        assert name not in passed


def test_env_example_says_where_each_secret_is_read():
    lines = render_env_example().splitlines()
    assert any("chmod 600 .env" in line for line in lines[:5])
    for name in SECRETS:
        note = lines[lines.index(f"{name}=") - 1]
        assert note.startswith("# Secret:") and "docker inspect" in note


UUID = "b3c1f0de-5a2e-4c1b-9f3e-0a1b2c3d4e5F"


def test_gpu_lists():
    assert load_settings({"WORKSHOP_GPUS": "auto"}).gpus == "auto"
    assert load_settings({"WORKSHOP_GPUS": "AUTO"}).gpus == "auto"
    assert load_settings({"WORKSHOP_GPUS": "0, 1"}).gpus == ("0", "1")
    assert load_settings({"WORKSHOP_GPUS": "01,2"}).gpus == ("1", "2")
    assert load_settings({"WORKSHOP_GPUS": "none"}).gpus == ()


@pytest.mark.parametrize(
    "gpu_id",
    [f"GPU-{UUID}", f"MIG-{UUID}", f"MIG-GPU-{UUID}/1/0", f"MIG-GPU-{UUID.lower()}/13/2"],
)
def test_gpu_uuids_and_mig_devices_are_kept_as_given(gpu_id):
    assert parse_gpus(f"0,{gpu_id}") == ("0", gpu_id)


def test_a_gpu_uuid_listed_twice_in_another_case_is_one_gpu():
    with pytest.raises(ValueError, match="twice"):
        parse_gpus(f"GPU-{UUID},GPU-{UUID.lower()}")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"WORKSHOP_MEM_LIMTI": "4G"},
            "WORKSHOP_MEM_LIMTI is not a setting: did you mean WORKSHOP_MEM_LIMIT?",
        ),
        (
            {"WORKSHOP_GPU": "0"},
            "WORKSHOP_GPU is not a setting: did you mean WORKSHOP_GPUS?",
        ),
        (
            {"WORKSHOP_COFFEE_BREAK": "10m"},
            "WORKSHOP_COFFEE_BREAK is not a setting (.env.example lists them all)",
        ),
        (
            {"WORKSHOP_GPU_MEMORY_FRACTION": "0.5"},
            "WORKSHOP_GPU_MEMORY_FRACTION is set inside attendee containers, not a setting: "
            "set WORKSHOP_ATTENDEES_PER_GPU instead",
        ),
        (
            {"WORKSHOP_IDLE_TIMOUT": "1h", "WORKSHOP_SHM_SIZ": "1G"},
            "WORKSHOP_IDLE_TIMOUT is not a setting: did you mean WORKSHOP_IDLE_TIMEOUT?; "
            "WORKSHOP_SHM_SIZ is not a setting: did you mean WORKSHOP_SHM_SIZE?",
        ),
    ],
)
def test_unknown_workshop_names_are_refused(environ, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == message


def test_names_that_are_not_ours_or_legitimately_set_pass():
    load_settings(
        {
            "PATH": "/usr/bin",
            "WORKSHOPS": "x",  # not our prefix
            "WORKSHOP_WORK_DIR": "/tmp/work",  # the lab tests set it in their process
            "WORKSHOP_PORT": "8000",  # compose-only settings are known names
            "WORKSHOP_TLS_CERT": "",
        }
    )


def test_env_file_is_read_like_compose_does(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n\nWORKSHOP_MEM_LIMIT=1G\nWORKSHOP_GPUS='0,1'\nEMPTY=\n"
        'QUOTED="ends with a quote\'"\nTRAILING=it\'s"\n'
    )
    assert read_env_file(env_file) == {
        "WORKSHOP_MEM_LIMIT": "1G",
        "WORKSHOP_GPUS": "0,1",
        "EMPTY": "",
        # Only enclosing quotes go: a secret may end with one.
        "QUOTED": "ends with a quote'",
        "TRAILING": "it's\"",
    }
    assert read_env_file(tmp_path / "missing") == {}


# --- Properties: every accepted value gives limits Docker accepts, never "unlimited" -------

FUZZ = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Arbitrary text, for each of the ~40 settings: fewer examples each keeps the run short.
FUZZ_TEXT = hypothesis_settings(FUZZ, max_examples=60)

numbers = st.one_of(
    st.integers(min_value=0, max_value=2000).map(str),  # near every floor, with any unit
    st.integers(min_value=-10, max_value=10**22).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=1e6).map(lambda x: f"{x:.6f}"),
    st.decimals(min_value=0, max_value=100_000, places=3).map(str),
    st.text("0123456789", min_size=300, max_size=400),  # float() of these is inf
    st.sampled_from(["", "0", "00", ".5", "1.", "1e3", "1_000", "-0", "0x10", "٣", "nan"]),
)


def with_unit(units):
    spaces = st.sampled_from(["", " ", "\t"])
    return st.tuples(spaces, numbers, spaces, st.sampled_from(units), spaces).map("".join)


LIMIT_TEXT = {
    "WORKSHOP_MEM_LIMIT": with_unit(["", "b", "k", "M", "g", "GiB", "t", "mb", "x"]),
    "WORKSHOP_GPU_MEM_LIMIT": with_unit(["", "M", "G", "T", "kb"]),
    "WORKSHOP_SHM_SIZE": with_unit(["", "k", "M", "G"]),
    "WORKSHOP_TMP_SIZE": with_unit(["", "k", "M", "G"]),
    "WORKSHOP_CPU_LIMIT": with_unit([""]),
    "WORKSHOP_GPU_CPU_LIMIT": with_unit(["", "c"]),
    "WORKSHOP_PIDS_LIMIT": with_unit([""]),
    "WORKSHOP_ATTENDEES_PER_GPU": with_unit([""]),
}


def assert_docker_accepts_and_limits(limits: dict) -> None:
    """What Docker's daemon requires of a host config (daemon/daemon_unix.go), and that no
    value means "unlimited" there: memory >= 6 MiB (ours: 64 MiB), swap equal to memory,
    CFS quota >= 1 ms of a 100 ms period, a pids limit above 0 (ours: 64), a sized /tmp."""
    for key in ("mem_limit", "memswap_limit", "cpu_period", "cpu_quota", "pids_limit", "shm_size"):
        value = limits[key]
        assert isinstance(value, int) and not isinstance(value, bool), key
        assert 0 < value <= INT64_MAX, key
    assert limits["mem_limit"] >= MEMORY_FLOOR
    assert limits["memswap_limit"] == limits["mem_limit"]
    assert limits["cpu_period"] == 100_000
    assert limits["cpu_quota"] >= 1000
    assert limits["pids_limit"] >= PIDS_FLOOR
    assert limits["shm_size"] >= MiB
    tmp_size = int(limits["tmpfs"]["/tmp"].split("size=")[1].split(",")[0])
    assert tmp_size >= MiB


def check_limits_or_one_line_refusal(environ: dict[str, str]) -> None:
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        message = str(error)
        assert message.split("=")[0] in environ and "\n" not in message
        return
    for profile in (cpu_profile(settings), gpu_profile(settings)):
        assert_docker_accepts_and_limits(container_limits(settings, profile))
    fraction = gpu_memory_fraction(settings)
    assert math.isfinite(fraction) and 0 < fraction <= 1


@pytest.mark.parametrize("env", sorted(LIMIT_TEXT))
def test_every_accepted_limit_gives_docker_limits_that_are_never_unlimited(env):
    @FUZZ
    @given(LIMIT_TEXT[env])
    def check(text):
        check_limits_or_one_line_refusal({env: text})

    check()


@FUZZ
@given(st.fixed_dictionaries(LIMIT_TEXT))
def test_all_limits_at_once(environ):
    check_limits_or_one_line_refusal(environ)


# The smallest value each limit accepts, and the next value down, which it refuses.
FLOORS = [
    ("WORKSHOP_MEM_LIMIT", "64M", "65535K"),
    ("WORKSHOP_GPU_MEM_LIMIT", "64M", "63.9M"),
    ("WORKSHOP_CPU_LIMIT", "0.01", "0.0099"),
    ("WORKSHOP_GPU_CPU_LIMIT", "0.01", "0.009"),
    ("WORKSHOP_PIDS_LIMIT", "64", "63"),
    ("WORKSHOP_SHM_SIZE", "1M", "1023K"),
    ("WORKSHOP_TMP_SIZE", "1M", "1023K"),
    ("WORKSHOP_ATTENDEES_PER_GPU", "64", "65"),  # the upper end: the GPU share shrinks
]


@pytest.mark.parametrize(("env", "accepted", "refused"), FLOORS)
def test_the_limits_at_their_bounds(env, accepted, refused):
    settings = load_settings({env: accepted})
    for profile in (cpu_profile(settings), gpu_profile(settings)):
        assert_docker_accepts_and_limits(container_limits(settings, profile))
    assert gpu_memory_fraction(settings) > 0
    with pytest.raises(SettingsError, match=f"^{env}="):
        load_settings({env: refused})


LARGEST = {
    "WORKSHOP_MEM_LIMIT": "16T",
    "WORKSHOP_CPU_LIMIT": "1024",
    "WORKSHOP_PIDS_LIMIT": "4194304",
    "WORKSHOP_SHM_SIZE": "16T",
    "WORKSHOP_TMP_SIZE": "16T",
}
ABOVE_LARGEST = {
    "WORKSHOP_MEM_LIMIT": "17T",
    "WORKSHOP_CPU_LIMIT": "1024.5",
    "WORKSHOP_PIDS_LIMIT": "4194305",
    "WORKSHOP_SHM_SIZE": "16.1T",
    "WORKSHOP_TMP_SIZE": "17T",
}


@pytest.mark.parametrize("env", sorted(LARGEST))
def test_the_largest_values_are_the_tables_maximum(env):
    load_settings({env: LARGEST[env]})
    with pytest.raises(SettingsError, match=f"^{env}=.* to "):
        load_settings({env: ABOVE_LARGEST[env]})


@pytest.mark.e2e
@pytest.mark.parametrize(
    "environ",
    [{env: accepted for env, accepted, _ in FLOORS}, LARGEST],
    ids=["smallest", "largest"],
)
def test_docker_starts_a_container_with_the_extreme_limits(environ):
    """dockerd and the kernel, not only our reading of them, accept both ends of the ranges."""
    import docker

    settings = load_settings(environ)
    client = docker.from_env()
    image = os.environ.get("BASE_IMAGE") or COMPOSE_SETTINGS["BASE_IMAGE"][0]
    container = client.containers.run(
        image, ["true"], detach=True, **container_limits(settings, cpu_profile(settings))
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        host_config = client.api.inspect_container(container.id)["HostConfig"]
        assert host_config["Memory"] == settings.mem_limit
        assert host_config["CpuQuota"] == int(settings.cpu_limit * 100_000)
        assert host_config["PidsLimit"] == settings.pids_limit
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("setting", TABLE, ids=lambda setting: setting.env)
def test_any_text_gives_a_value_or_a_one_line_error(setting):
    @FUZZ_TEXT
    @given(st.one_of(st.text(max_size=40), st.text(string.printable, max_size=40)))
    def check(text):
        try:
            setting.parse(text)
        except ValueError as error:
            assert "\n" not in str(error)

    check()


def test_a_misspelt_name_in_dot_env_is_refused_with_the_right_one(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# ours\nCOMPOSE_PROFILES=gpu\nWORKSHOP_PORT=8080\nWORKSHOP_MEM_LIMTI=4G\n")
    with pytest.raises(SettingsError) as raised:
        check_env_file(env_file)
    assert str(raised.value) == (
        ".env: WORKSHOP_MEM_LIMTI is not a setting: did you mean WORKSHOP_MEM_LIMIT?"
    )


def test_a_correct_or_missing_dot_env_passes(tmp_path):
    (tmp_path / ".env").write_text(
        "WORKSHOP_MEM_LIMIT=4G\nWORKSHOP_HTTPS_PORT=8443\nBASE_IMAGE=x\n"
    )
    check_env_file(tmp_path / ".env")
    check_env_file(tmp_path / "absent" / ".env")


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (2 * GiB, "2.0 GiB"),
     (int(1.9 * GiB), "1.9 GiB"), (5 * 1024**4, "5.0 TiB")],
)  # fmt: skip
def test_sizes_read_the_same_in_the_hub_and_in_the_labs(size, text):
    # Two images, two packages, one rule: what the preflight says about memory and what the
    # image's own check says read alike.
    assert human_size(size) == lab_units.human_size(size) == text


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_the_hub_and_the_labs_never_write_a_size_differently(size):
    assert human_size(size) == lab_units.human_size(size)
