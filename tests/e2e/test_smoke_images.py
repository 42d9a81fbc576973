"""scripts/run_smoke_tests.py against the built lab images, as an organizer runs it.

Needs Docker; conftest's `lab_images` builds the test images. On the CI host (no GPU) the
fake nvidia-container-runtime-hook from .ci/prepare-machine.sh lets a container with a GPU
request start, with NVIDIA_VISIBLE_DEVICES set but no CUDA behind it;
/run/fake-nvidia-broken makes it fail like a host whose NVIDIA runtime is broken.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workshop_hub.profiles import container_limits, cpu_profile, gpu_profile
from workshop_hub.settings import load_settings
from workshop_labs.notebooks import lab_sources

from .stack import BROKEN_HOOK_FLAG, TEST_PREFIX, owner_tag

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "scripts" / "run_smoke_tests.py"
STATIC_CHECKS = ["system", "versions", "pins", "gpu", "amp_cpu", "amp_cuda", "dataloader", "kernel"]
LAB_UID = 1000


@pytest.fixture(scope="session")
def runner_env(lab_images) -> dict[str, str]:
    """Settings that point the runner at the test images (built by conftest's `lab_images`)
    and name its containers with the test prefix, so leftovers get cleaned up."""
    return {
        "WORKSHOP_CPU_IMAGE": lab_images["cpu"],
        "WORKSHOP_CUDA_IMAGE": lab_images["cuda"],
        "WORKSHOP_INSTANCE": owner_tag(),
    }


@pytest.fixture(scope="session")
def settings(runner_env):
    return load_settings({**os.environ, **runner_env})


@pytest.fixture
def run_runner(tmp_path, runner_env):
    """Run the runner; returns (completed process, {flavor: its JSON report file's content})."""

    def run(*args: str, env: dict | None = None):
        reports = tmp_path / "reports"
        completed = subprocess.run(
            [sys.executable, str(RUNNER), "--json-dir", str(reports), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **runner_env, **(env or {})},
            timeout=3000,
        )
        assert "Traceback" not in completed.stderr, completed.stderr
        runs = {
            path.stem.removeprefix("smoke-"): json.loads(path.read_text())
            for path in reports.glob("smoke-*.json")
        }
        return completed, runs

    return run


def checks_of(run: dict) -> dict[str, dict]:
    return {check["name"]: check for check in run["report"]["checks"]}


def test_every_image_passes_under_attendee_limits(run_runner, settings, lab_images):
    completed, runs = run_runner("--images", "cpu,cuda")
    assert completed.returncode == 0, completed.stdout + completed.stderr[-5000:]
    assert "OK: every image passed" in completed.stdout
    assert set(runs) == {"cpu", "cuda"}
    for flavor, profile in (("cpu", cpu_profile(settings)), ("cuda", gpu_profile(settings))):
        run = runs[flavor]
        assert run["image"] == lab_images[flavor]
        assert run["problem"] is None and run["exit_code"] == 0
        checks = checks_of(run)
        names = list(checks)
        assert names[: len(STATIC_CHECKS)] == STATIC_CHECKS
        labs = [name for name in names if name.startswith("lab:")]
        assert len(labs) == len(lab_sources(REPO / "labs")), names
        gpu_checks = {"gpu", "amp_cuda"}
        for name, check in checks.items():
            if name in gpu_checks and not run["gpus"]:
                assert check["verdict"] == "skip" and "no CUDA" in check["note"], check
            else:
                assert check["verdict"] == "pass", check
        # The container ran under exactly the limits an attendee's container gets.
        limits = container_limits(settings, profile)
        assert run["limits"] == limits
        system = checks["system"]["figures"]
        assert system["uid"] == LAB_UID
        assert system["memory_limit_bytes"] == profile.mem_limit
        assert system["pids_max"] == settings.pids_limit
        assert system["shm_bytes"] == settings.shm_size
        assert system["cpu_quota_cores"] == profile.cpu_limit
    assert "no GPU" in runs["cuda"]["gpu_note"]


def test_gpu_request_reaches_the_cuda_container(run_runner):
    completed, runs = run_runner("--images", "cuda", "--gpus", "1", "--only", "system,gpu")
    run = runs["cuda"]
    assert run["problem"] is None, f"the fake NVIDIA hook is not on dockerd's PATH? {run}"
    assert run["gpus"] == ["1"]
    gpu = checks_of(run)["gpu"]
    assert gpu["figures"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    # A container given a GPU must be able to use it; the fake hook gives it none.
    assert gpu["verdict"] == "fail"
    assert "GPU required (--require-gpu)" in gpu["note"]
    assert "NVIDIA_VISIBLE_DEVICES=1" in gpu["note"]
    assert completed.returncode == 1
    assert "FAILED: cuda" in completed.stdout


@pytest.fixture
def broken_nvidia_runtime():
    BROKEN_HOOK_FLAG.touch()
    yield
    BROKEN_HOOK_FLAG.unlink(missing_ok=True)


def test_broken_nvidia_runtime_is_explained(run_runner, broken_nvidia_runtime):
    completed, runs = run_runner("--images", "cuda", "--gpus", "1", "--only", "system")
    assert completed.returncode == 1
    problem = runs["cuda"]["problem"]
    assert problem.startswith("GPU 1 requested: ") and "NVIDIA Container Toolkit" in problem
    assert "NVIDIA Container Toolkit" in completed.stdout


def test_tiny_shm_fails_the_dataloader_check(run_runner):
    completed, runs = run_runner(
        "--images",
        "cpu",
        "--only",
        "system,dataloader",
        env={"WORKSHOP_SHM_SIZE": "1M"},
    )
    assert completed.returncode == 1
    checks = checks_of(runs["cpu"])
    assert checks["system"]["figures"]["shm_bytes"] == 1024**2
    dataloader = checks["dataloader"]
    assert dataloader["verdict"] == "fail"
    assert "/dev/shm is 1.0 MiB" in dataloader["note"]
    assert "dataloader FAIL" in completed.stdout


@pytest.fixture
def image_with_broken_torchvision(docker_client, lab_images):
    """The cpu image with torchvision's compiled ops removed: what a torchvision built for
    another torch looks like at run time (`operator torchvision::nms does not exist`), made
    offline so the test needs no package index."""
    client = docker_client
    base = client.images.get(lab_images["cpu"])
    user = base.attrs["Config"].get("User") or "root"
    tag = f"{TEST_PREFIX}/lab:broken-torchvision"
    dockerfile = f"""
FROM {lab_images["cpu"]}
USER root
RUN python -c "import pathlib, torchvision; \\
[p.unlink() for p in pathlib.Path(torchvision.__file__).parent.glob('_C*.so')]"
USER {user}
"""
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    client.images.remove(tag, force=True)


def test_broken_torchvision_fails_the_versions_check(run_runner, image_with_broken_torchvision):
    completed, runs = run_runner(
        "--images",
        "cpu",
        "--image-override",
        f"cpu={image_with_broken_torchvision}",
        "--only",
        "versions",
    )
    assert completed.returncode == 1
    versions = checks_of(runs["cpu"])["versions"]
    assert versions["verdict"] == "fail"
    assert "torchvision does not work with torch" in versions["note"]
    assert checks_of(runs["cpu"])["pins"]["verdict"] == "pass"


def test_missing_image_names_the_build_command(run_runner):
    completed, runs = run_runner(
        "--images", "cpu", "--image-override", f"cpu={TEST_PREFIX}/lab:not-built"
    )
    assert completed.returncode == 1
    assert f"{TEST_PREFIX}/lab:not-built" in runs["cpu"]["problem"]
    assert "docker compose build" in completed.stdout


def test_invalid_setting_is_one_clear_line(run_runner):
    completed, _ = run_runner(env={"WORKSHOP_MEM_LIMIT": "lots"})
    assert completed.returncode == 2
    assert "WORKSHOP_MEM_LIMIT='lots'" in completed.stderr
