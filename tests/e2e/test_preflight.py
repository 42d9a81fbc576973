"""`workshop-hub preflight` as docs/organizers.md tells organizers to run it
(`docker compose run --rm hub workshop-hub preflight`), against the real stack: ready, the
lab image's own check included; then not ready, with the right advice (and
--no-image-checks, the quick re-check), when a lab image is missing, when the room is larger
than the memory holds, and when GPUs are set but Docker cannot start a GPU container."""

from __future__ import annotations

import json
import subprocess

import pytest

from workshop_hub.settings import load_settings

from .stack import BROKEN_HOOK_FLAG, free_port


def preflight(hub, *options: str, **settings: str) -> tuple[int, dict, str]:
    """The exit status, the JSON report and the progress (stderr) of one preflight."""
    overrides = [arg for name, value in settings.items() for arg in ("-e", f"{name}={value}")]
    done = hub.compose(
        "run",
        "--rm",
        "-T",
        *overrides,
        "hub",
        "workshop-hub",
        "preflight",
        "--json",
        *options,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout), done.stderr


def quick_preflight(hub, **settings: str) -> tuple[int, dict]:
    status, report, _ = preflight(hub, "--no-image-checks", **settings)
    assert not any(item["check"].startswith("image check") for item in report["checks"])
    return status, report


def verdict(report: dict, check: str) -> dict:
    (found,) = [item for item in report["checks"] if item["check"] == check]
    return found


DEFAULT_MEM_LIMIT = str(load_settings({}).mem_limit)  # bytes, as the hub reads them


def test_the_test_stack_is_ready(hub, lab_images):
    # A small room, so the work folders fit on any CI machine's disk; the attendee's default
    # memory (the test stack's attendees get 1 GB, and lab 7's torchrun needs more: the
    # preflight says so, killed by the 1 GB memory limit).
    status, report, progress = preflight(
        hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_MEM_LIMIT=DEFAULT_MEM_LIMIT
    )
    not_passed = [item for item in report["checks"] if item["status"] != "pass"]
    assert status == 0 and report["ready"], (not_passed, progress[-3000:])
    # The CPU image ran its own check, attendee notebooks and all, and said so as it went.
    image_check = verdict(report, f"image check {lab_images['cpu']}")
    assert image_check["status"] == "pass" and "no network" in image_check["detail"], image_check
    assert "[preflight cpu]" in progress and "lab:07_" in progress
    checks = {item["check"]: item["status"] for item in report["checks"]}
    assert checks["docker"] == checks["memory"] == checks["disk for work folders"] == "pass"
    assert checks["access code"] == checks["port"] == "pass"
    assert "the hub already serves it" in verdict(report, "port")["detail"]
    assert any(name.startswith("image ") and value == "pass" for name, value in checks.items())


def test_a_missing_lab_image_is_a_blocker_with_how_to_build_it(hub):
    status, report = quick_preflight(
        hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_CPU_IMAGE="wstest/no-such-lab:cpu"
    )
    assert status == 1 and not report["ready"]
    missing = verdict(report, "image wstest/no-such-lab:cpu")
    assert missing["status"] == "fail" and "docker compose build" in missing["advice"]


def test_a_room_larger_than_the_memory_is_a_blocker_with_the_size_that_fits(hub):
    status, report = quick_preflight(hub, WORKSHOP_MAX_ATTENDEES="100000")
    assert status == 1
    memory = verdict(report, "memory")
    assert memory["status"] == "fail" and "WORKSHOP_MAX_ATTENDEES=" in memory["advice"]


@pytest.fixture
def broken_gpu_runtime():
    BROKEN_HOOK_FLAG.touch()
    yield
    BROKEN_HOOK_FLAG.unlink(missing_ok=True)


def test_gpus_set_without_a_working_runtime_is_a_blocker(hub, broken_gpu_runtime):
    status, report = quick_preflight(hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_GPUS="0")
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
        status, report = quick_preflight(hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_PORT=port)
    finally:
        squatter.remove(force=True)
    assert status == 1
    taken = verdict(report, "port")
    assert taken["status"] == "fail" and squatter.name in taken["detail"], taken
    assert "WORKSHOP_PORT" in taken["advice"]


def self_signed(folder, name: str) -> tuple[str, str]:
    """A certificate and its key, as files on this host (the Docker host)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-subj", f"/CN={name}", "-days", "90", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_the_organizers_own_certificate_is_read_on_the_host(hub, tmp_path):
    """The files are read where the proxy reads them, on the host: a key of another
    certificate is a blocker, the pair that belongs together passes."""
    cert, key = self_signed(tmp_path, "workshop-hub.test")
    _, other_key = self_signed(tmp_path, "other.test")
    status, report = quick_preflight(
        hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_TLS_CERT=cert, WORKSHOP_TLS_KEY=other_key
    )
    assert status == 1
    mismatch = verdict(report, "certificate and key")
    assert (
        mismatch["status"] == "fail"
        and f"{other_key} is not the key of {cert}" in (mismatch["detail"])
    )
    status, report = quick_preflight(
        hub, WORKSHOP_MAX_ATTENDEES="3", WORKSHOP_TLS_CERT=cert, WORKSHOP_TLS_KEY=key
    )
    assert status == 0, report
    for check in ("certificate files", "certificate and key", "certificate dates"):
        assert verdict(report, check)["status"] == "pass", report
    assert "89 days left" in verdict(report, "certificate dates")["detail"]
