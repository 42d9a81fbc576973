"""`workshop-hub preflight` as the README tells organizers to run it
(`docker compose run --rm hub workshop-hub preflight`), against the real stack: ready, then
not ready, with the right advice, when a lab image is missing, when the room is larger than
the memory holds, and when GPUs are set but Docker cannot start a GPU container."""

from __future__ import annotations

import json

import pytest

from .stack import BROKEN_HOOK_FLAG, free_port


def preflight(hub, **settings: str) -> tuple[int, dict]:
    overrides = [arg for name, value in settings.items() for arg in ("-e", f"{name}={value}")]
    done = hub.compose(
        "run", "--rm", "-T", *overrides, "hub", "workshop-hub", "preflight", "--json", check=False
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def verdict(report: dict, check: str) -> dict:
    (found,) = [item for item in report["checks"] if item["check"] == check]
    return found


def test_the_test_stack_is_ready(hub):
    # A small room, so the work folders fit on any CI machine's disk.
    status, report = preflight(hub, WORKSHOP_MAX_ATTENDEES="3")
    assert status == 0 and report["ready"], report
    checks = {item["check"]: item["status"] for item in report["checks"]}
    assert checks["docker"] == checks["memory"] == checks["disk for work folders"] == "pass"
    assert checks["access code"] == checks["port"] == "pass"
    assert "the hub already serves it" in verdict(report, "port")["detail"]
    assert any(name.startswith("image ") and value == "pass" for name, value in checks.items())


def test_a_missing_lab_image_is_a_blocker_with_how_to_build_it(hub):
    status, report = preflight(
        hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_CPU_IMAGE="wstest/no-such-lab:cpu"
    )
    assert status == 1 and not report["ready"]
    missing = verdict(report, "image wstest/no-such-lab:cpu")
    assert missing["status"] == "fail" and "docker compose build" in missing["advice"]


def test_a_room_larger_than_the_memory_is_a_blocker_with_the_size_that_fits(hub):
    status, report = preflight(hub, WORKSHOP_MAX_ATTENDEES="100000")
    assert status == 1
    memory = verdict(report, "memory")
    assert memory["status"] == "fail" and "WORKSHOP_MAX_ATTENDEES=" in memory["advice"]


@pytest.fixture
def broken_gpu_runtime():
    BROKEN_HOOK_FLAG.touch()
    yield
    BROKEN_HOOK_FLAG.unlink(missing_ok=True)


def test_gpus_set_without_a_working_runtime_is_a_blocker(hub, broken_gpu_runtime):
    status, report = preflight(hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_GPUS="0")
    assert status == 1
    gpus = verdict(report, "GPUs")
    assert gpus["status"] == "fail" and "NVIDIA Container Toolkit" in gpus["advice"], gpus


def test_the_hubs_port_taken_by_another_container_is_a_blocker(hub, docker_client, lab_images):
    port = str(free_port())
    squatter = docker_client.containers.run(
        lab_images["cpu"],
        ["sleep", "120"],
        entrypoint=[],
        ports={"9000/tcp": ("127.0.0.1", int(port))},
        name=f"{hub.project}-port-squatter",
        detach=True,
    )
    try:
        status, report = preflight(hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_PORT=port)
    finally:
        squatter.remove(force=True)
    assert status == 1
    taken = verdict(report, "port")
    assert taken["status"] == "fail" and squatter.name in taken["detail"], taken
    assert "WORKSHOP_PORT" in taken["advice"]
