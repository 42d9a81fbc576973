"""The files derived from the settings table are up to date, and what compose writes by hand
(defaults beside `${NAME:-default}`) agrees with the table."""

import importlib.util
import re
import subprocess
from pathlib import Path

import yaml

from workshop_hub.settings import ATTENDEE_NAMES, OTHER_NAMES, SECRETS, SETTINGS, TABLE

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
BY_NAME = {setting.env: setting for setting in TABLE}


def load_generator():
    path = ROOT / "scripts" / "update_settings_files.py"
    spec = importlib.util.spec_from_file_location("update_settings_files", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


def test_generated_files_are_up_to_date():
    stale = GENERATOR.stale_files(ROOT)
    assert not stale, f"{', '.join(stale)} stale: run python3 scripts/update_settings_files.py"


def test_the_generator_rewrites_only_between_its_markers():
    text = f"keep\n  # {GENERATOR.BEGIN}\n  old: 1\n  # {GENERATOR.END}\nkeep too\n"
    assert GENERATOR.replace_region(text, ["a: 1", "b: 2"]) == (
        f"keep\n  # {GENERATOR.BEGIN}\n  a: 1\n  b: 2\n  # {GENERATOR.END}\nkeep too\n"
    )


def test_the_hub_gets_only_names_it_knows():
    """The hub refuses unknown WORKSHOP_* names at start: compose must pass none."""
    environment = yaml.safe_load(COMPOSE_TEXT)["services"]["hub"]["environment"]
    unknown = set(environment) - set(SETTINGS) - set(BY_NAME) - set(OTHER_NAMES)
    assert not unknown


def test_compose_never_hands_a_secret_to_a_container():
    """Whatever compose interpolates ends up in `docker inspect` (environment, labels, command):
    the secret settings must appear nowhere in the compose file but its comments."""
    services = yaml.safe_load(COMPOSE_TEXT)["services"]
    for name in SECRETS:
        assert name not in services["hub"]["environment"]
        assert not re.search(rf"\$\{{?{name}\b", COMPOSE_TEXT), name


def test_compose_defaults_agree_with_the_settings():
    """`${NAME:-default}` anywhere in docker-compose.yml names a setting, with the table's
    default or empty (our code reading it applies the table's default); a setting whose
    default is empty may use a stand-in there (/dev/null for a mount)."""
    hand_written = re.sub(
        rf"{re.escape(GENERATOR.BEGIN)}.*?{re.escape(GENERATOR.END)}", "", COMPOSE_TEXT, flags=re.S
    )
    uses = re.findall(r"\$\{(\w+):-([^}]*)\}", hand_written)
    assert uses
    for name, default in uses:
        assert name in BY_NAME, f"docker-compose.yml uses {name}, which is not in the table"
        if BY_NAME[name].default and default:
            assert default == BY_NAME[name].default, name


def test_every_workshop_name_in_the_repository_is_declared():
    """A new WORKSHOP_* variable anywhere must be a setting or a declared other name, or
    the hub would refuse it (or let a typo of it pass)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # The tests of the unknown-name check misspell names on purpose; the docs show one typo.
    own_tests = {"tests/hub/test_settings.py", "tests/test_configuration_files.py"}
    declared = set(BY_NAME) | set(OTHER_NAMES) | set(ATTENDEE_NAMES) | {"WORKSHOP_MEM_LIMTI"}
    undeclared, used = {}, set()
    for name in files:
        path = ROOT / name
        if name in own_tests or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for variable in set(re.findall(r"\bWORKSHOP_[A-Z][A-Z0-9_]*[A-Z0-9]\b", text)):
            used.add(variable)
            if variable not in declared:
                undeclared.setdefault(variable, name)
    assert not undeclared, (
        "declare these in hub/workshop_hub/settings.py (TABLE, OTHER_NAMES or "
        f"ATTENDEE_NAMES): {undeclared}"
    )
    unused = (set(OTHER_NAMES) | set(ATTENDEE_NAMES)) - used
    assert not unused, f"no file uses {unused} any more: remove them from settings.py"
