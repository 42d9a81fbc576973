"""The files that repeat a fact for a tool that cannot import it stay in step with its source."""

import re
from pathlib import Path

import yaml

from workshop_hub.settings import COMPOSE_SETTINGS, SETTINGS, render_env_example

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_default(text: str) -> str:
    return re.fullmatch(r"\$\{\w+:-(.*)\}", text).group(1)


def test_env_example_is_generated_from_the_settings():
    assert (ROOT / ".env.example").read_text() == render_env_example(), (
        "Regenerate it: workshop-hub env-example > .env.example"
    )


def test_compose_passes_every_hub_setting_and_only_those():
    environment = COMPOSE["services"]["hub"]["environment"]
    passed = {name for name in environment if name != "WORKSHOP_NETWORK"}
    assert passed == set(SETTINGS)
    for name in SETTINGS:
        assert environment[name] == f"${{{name}:-}}", name


def test_compose_defaults_agree_with_the_settings():
    services = COMPOSE["services"]
    assert compose_default(services["lab-cpu"]["image"]) == SETTINGS["WORKSHOP_CPU_IMAGE"].default
    assert compose_default(services["lab-cuda"]["image"]) == SETTINGS["WORKSHOP_CUDA_IMAGE"].default
    assert compose_default(services["hub"]["image"]) == COMPOSE_SETTINGS["WORKSHOP_HUB_IMAGE"][0]
    network = COMPOSE["networks"]["workshop"]["name"]
    assert network == "${{WORKSHOP_INSTANCE:-{}}}-network".format(
        SETTINGS["WORKSHOP_INSTANCE"].default
    )
    port = services["hub"]["ports"][0]
    assert port == "${{WORKSHOP_PORT:-{}}}:8000".format(COMPOSE_SETTINGS["WORKSHOP_PORT"][0])
    for name in ("hub", "lab-cpu", "lab-cuda"):
        args = dict(arg.split("=", 1) for arg in services[name]["build"]["args"])
        assert compose_default(args["BASE_IMAGE"]) == COMPOSE_SETTINGS["BASE_IMAGE"][0]
    for flavor in ("cpu", "cuda"):
        args = dict(arg.split("=", 1) for arg in services[f"lab-{flavor}"]["build"]["args"])
        index_setting = f"{flavor.upper()}_TORCH_INDEX_URL"
        assert compose_default(args["TORCH_INDEX_URL"]) == COMPOSE_SETTINGS[index_setting][0]


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in [*SETTINGS, *COMPOSE_SETTINGS] if name not in readme]
    assert not missing, f"README.md does not mention {missing}"
