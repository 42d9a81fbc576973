"""Fixtures for the end-to-end tests: real images, a real compose stack, real attendees.

These tests need Docker. They never skip: without Docker they fail and say how to get it
(`bash .ci/prepare-machine.sh` on Debian, or install Docker). `pytest -m "not e2e"` runs
everything else.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest

from . import stack
from .hub_client import Attendee
from .stack import ROOT, TEST_IMAGES, HubStack, build_images, remove_test_leftovers, running

# Limits the main stack configures, smaller than the defaults so the tests prove they apply.
MAIN_STACK_LIMITS = {
    "WORKSHOP_MEM_LIMIT": "1G",
    "WORKSHOP_CPU_LIMIT": "1",
    "WORKSHOP_PIDS_LIMIT": "300",
    "WORKSHOP_SHM_SIZE": "256M",
}


def pytest_configure(config):
    stack.capture_manager = config.pluginmanager.getplugin("capturemanager")


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(item.fspath).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(
            f"The end-to-end tests need a running Docker daemon ({error}). Start Docker "
            "(on Debian: bash .ci/prepare-machine.sh), or run `pytest -m 'not e2e'`.",
            pytrace=False,
        )
    remove_test_leftovers(client)
    return client


@pytest.fixture(scope="session")
def lab_images(docker_client) -> dict[str, str]:
    """The hub and both lab images, built from this checkout (cached layers make reruns fast)."""
    build_images(ROOT / "reports" / "e2e-image-build.log")
    return {"cpu": TEST_IMAGES["WORKSHOP_CPU_IMAGE"], "cuda": TEST_IMAGES["WORKSHOP_CUDA_IMAGE"]}


@pytest.fixture(scope="session")
def hub(lab_images):
    """The main stack: default settings but smaller limits, and a generated access code."""
    with running(
        HubStack(WORKSHOP_ACCESS_CODE="", WORKSHOP_ADMIN_PASSWORD="", **MAIN_STACK_LIMITS)
    ) as main:
        yield main


@pytest.fixture(scope="session")
def access_code(hub) -> str:
    """Read the way docs/organizers.md tells organizers to."""
    result = hub.hub_exec("workshop-hub", "access-code")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="session")
def ada(hub, access_code) -> Attendee:
    """An attendee with a running server, shared by the tests that only look at it."""
    attendee = Attendee(hub.url, "ada")
    started = time.monotonic()
    # With one profile there is no form: logging in starts the server, as for a person.
    assert attendee.login(access_code).status_code == 200
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    attendee.spawn_seconds = time.monotonic() - started
    return attendee
